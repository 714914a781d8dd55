"""Full imgCIF/CBF files written by CBFlib itself (pycbf), for the multi-array CBF tests.

Each array is one detector element on two translation axes (fast along +X, slow along -Y in
imgCIF's lab frame, +Z towards the source), hung from one detector axis ``DET_Z`` along -Z set
to the distance: the layout cctbx.xfel writes for a multi-panel detector. The first pixel's
centre is half a pixel from its element's origin (``displacement = pixel / 2``), so the
element's offset is its outer corner.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pycbf

COMPRESSIONS = {
    "packed": pycbf.CBF_PACKED,
    "packed_v2": pycbf.CBF_PACKED_V2,
    "byte_offset": pycbf.CBF_BYTE_OFFSET,
    "canonical": pycbf.CBF_CANONICAL,
    "none": pycbf.CBF_NONE,
}


def _table(h, category: str, columns: list[str], rows: list[list]) -> None:
    h.new_category(category.encode())
    for c in columns:
        h.new_column(c.encode())
    for row in rows:
        h.new_row()
        for c, v in zip(columns, row, strict=True):
            h.find_column(c.encode())
            h.set_value(str(v).encode())


def write_cbf(
    path: str | Path,
    arrays: list[np.ndarray],
    *,
    corners_mm: list[tuple[float, float]] | None = None,
    distance_mm: float = 100.0,
    wavelength: float = 1.0,
    pixel_mm: float = 0.075,
    compression: str = "packed",
    geometry: bool = True,
) -> None:
    """Write ``arrays`` (int32, each ``(slow, fast)``) as one CBF; ``corners_mm`` are the
    imgCIF ``(X, Y)`` of each element's outer corner; without ``geometry`` only the arrays."""
    h = pycbf.cbf_handle_struct()
    h.new_datablock(b"image_1")
    n = len(arrays)
    ids = [f"E{i + 1}" for i in range(n)]
    if geometry:
        _table(h, "diffrn", ["id"], [["DS1"]])
        _table(h, "diffrn_radiation", ["diffrn_id", "wavelength_id"], [["DS1", "WL1"]])
        _table(
            h, "diffrn_radiation_wavelength", ["id", "wavelength", "wt"], [["WL1", wavelength, 1]]
        )
        _table(
            h,
            "diffrn_detector",
            ["id", "diffrn_id", "type", "number_of_axes"],
            [["DET", "DS1", "test multi-panel detector", 1]],
        )
        _table(h, "diffrn_detector_axis", ["detector_id", "axis_id"], [["DET", "DET_Z"]])
        _table(h, "diffrn_detector_element", ["id", "detector_id"], [[e, "DET"] for e in ids])
        _table(
            h,
            "diffrn_data_frame",
            ["id", "detector_element_id", "array_id", "binary_id"],
            [["F1", e, f"A{i + 1}", i + 1] for i, e in enumerate(ids)],
        )
        axes = [["DET_Z", "translation", "detector", ".", 0, 0, -1, 0, 0, 0]]
        for e, (cx, cy) in zip(ids, corners_mm, strict=True):
            axes.append([f"{e}_F", "translation", "detector", "DET_Z", 1, 0, 0, cx, cy, 0])
            axes.append([f"{e}_S", "translation", "detector", f"{e}_F", 0, -1, 0, 0, 0, 0])
        _table(
            h,
            "axis",
            ["id", "type", "equipment", "depends_on"]
            + [f"vector[{k}]" for k in (1, 2, 3)]
            + [f"offset[{k}]" for k in (1, 2, 3)],
            axes,
        )
        names = ["DET_Z"] + [f"{e}_{a}" for e in ids for a in "FS"]
        _table(
            h,
            "diffrn_scan",
            ["id", "frame_id_start", "frame_id_end", "frames"],
            [["SCAN1", "F1", "F1", 1]],
        )
        _table(
            h, "diffrn_scan_frame", ["scan_id", "frame_id", "frame_number"], [["SCAN1", "F1", 1]]
        )
        _table(
            h,
            "diffrn_scan_axis",
            ["scan_id", "axis_id", "angle_start", "angle_range", "angle_increment"]
            + ["displacement_start", "displacement_range", "displacement_increment"],
            [["SCAN1", a, 0, 0, 0, distance_mm if a == "DET_Z" else 0, 0, 0] for a in names],
        )
        _table(
            h,
            "diffrn_scan_frame_axis",
            ["frame_id", "axis_id", "angle", "displacement"],
            [["F1", a, 0, distance_mm if a == "DET_Z" else 0] for a in names],
        )
        lists, list_axes = [], []
        for i, (e, a) in enumerate(zip(ids, arrays, strict=True)):
            ny, nx = a.shape
            lists += [[f"A{i + 1}", 1, nx, 1, "increasing", f"{e}_F"]]
            lists += [[f"A{i + 1}", 2, ny, 2, "increasing", f"{e}_S"]]
            list_axes += [[f"{e}_{k}", f"{e}_{k}", pixel_mm / 2, pixel_mm] for k in "FS"]
        _table(
            h,
            "array_structure_list",
            ["array_id", "index", "dimension", "precedence", "direction", "axis_set_id"],
            lists,
        )
        _table(
            h,
            "array_structure_list_axis",
            ["axis_set_id", "axis_id", "displacement", "displacement_increment"],
            list_axes,
        )
        _table(
            h,
            "array_intensities",
            ["array_id", "binary_id", "linearity", "overload", "undefined_value"],
            [[f"A{i + 1}", i + 1, "linear", 1048500, -1] for i in range(n)],
        )
    h.new_category(b"array_data")
    for c in (b"array_id", b"binary_id", b"data"):
        h.new_column(c)
    for i, a in enumerate(arrays):
        a = np.ascontiguousarray(a, "<i4")
        h.new_row()
        h.find_column(b"array_id")
        h.set_value(f"A{i + 1}".encode())
        h.find_column(b"binary_id")
        h.set_integervalue(i + 1)
        h.find_column(b"data")
        ny, nx = a.shape
        h.set_integerarray_wdims_fs(
            COMPRESSIONS[compression],
            i + 1,
            a.tobytes(),
            4,
            1,
            a.size,
            b"little_endian",
            nx,
            ny,
            1,
            0,
        )
    h.write_file(
        str(path).encode(), pycbf.CBF, pycbf.MIME_HEADERS | pycbf.MSG_DIGEST, pycbf.ENC_NONE
    )
