"""The CrystFEL .geom reader on ~200 mutated real files: a Geometry or one GeometryError, never
a raw UnicodeDecodeError, OverflowError, ValueError, ZeroDivisionError or a giant allocation."""

from __future__ import annotations

import random

import pytest

from xlive.errors import GeometryError
from xlive.geometry import Geometry
from xlive.geometry.crystfel import read_crystfel_geom

GEOMS = (
    "Eiger16M-binning2-nativefiles.geom",
    "cspad-cxiformat.geom",
    "jf-swissfel-16M.geom",
    "pilatus.geom",
)
#: values a clumsy edit or a corrupt copy puts where a number belongs
GARBAGE = [
    "1e999",
    "-1e999",
    "nan",
    "inf",
    "0",
    "-1",
    "9" * 400,
    "abc",
    "",
    "0x10",
    "1/0",
    "1e-320",
    "99999999999",
    "-0",
    "/entry/data",
    "+",
    "x",
    "1 2 3",
    "\x00",
    "é",
]


def mutate(text: str, rng: random.Random) -> bytes:
    """One random corruption of a .geom file's text (values, lines, bytes)."""
    lines = text.splitlines()
    kind = rng.randrange(6)
    if kind == 0:  # a value replaced by garbage
        for _ in range(rng.randint(1, 3)):
            k = rng.randrange(len(lines))
            if "=" in lines[k]:
                key = lines[k].split("=", 1)[0]
                lines[k] = f"{key}= {rng.choice(GARBAGE)}"
    elif kind == 1:  # lines deleted
        for _ in range(rng.randint(1, max(1, len(lines) // 4))):
            if lines:
                del lines[rng.randrange(len(lines))]
    elif kind == 2:  # truncated
        lines = lines[: rng.randrange(len(lines) + 1)]
    elif kind == 3:  # random bytes flipped (often not UTF-8 any more)
        raw = bytearray("\n".join(lines).encode())
        for _ in range(rng.randint(1, 20)):
            raw[rng.randrange(len(raw))] = rng.randrange(256)
        return bytes(raw)
    elif kind == 4:  # a panel's extent made absurd
        for k, line in enumerate(lines):
            if "max_fs" in line or "max_ss" in line:
                lines[k] = (
                    line.split("=")[0]
                    + "= "
                    + rng.choice(["4000000000", "-5", "1e300", "65535", "2"])
                )
                if rng.random() < 0.5:
                    break
    else:  # random lines of junk inserted
        for _ in range(rng.randint(1, 5)):
            junk = "".join(chr(rng.randrange(32, 0x3000)) for _ in range(rng.randint(1, 30)))
            lines.insert(
                rng.randrange(len(lines) + 1), rng.choice([junk, "p0/" + junk, junk + " = " + junk])
            )
    return "\n".join(lines).encode("utf-8", "surrogatepass")


@pytest.mark.realdata
def test_fuzzed_geom_files_give_geometry_or_geometry_error(realdata, tmp_path):
    rng = random.Random(15)
    originals = [(realdata / "crystfel" / name).read_text() for name in GEOMS]
    outcomes = {"geometry": 0, "GeometryError": 0}
    for k in range(200):
        path = tmp_path / f"fuzz{k}.geom"
        path.write_bytes(mutate(originals[k % len(originals)], rng))
        given = {"distance": 0.1, "wavelength": 1.0, "mask_files": False}
        # (pilatus.geom's bad regions cost ~3 s of pixel maps when it is accepted: once is enough)
        for kw in ({}, given) if "pilatus" not in GEOMS[k % len(GEOMS)] else ({},):
            try:
                g = read_crystfel_geom(path, **kw)
            except GeometryError as exc:
                assert str(exc).strip() and "\n" not in str(exc)
                outcomes["GeometryError"] += 1
            else:  # an accepted file must be a usable geometry
                assert isinstance(g, Geometry)
                assert g.shape[0] * g.shape[1] <= 1 << 26
                outcomes["geometry"] += 1
    # both outcomes occur: the mutations are neither all harmless nor all fatal
    assert outcomes["geometry"] > 20 and outcomes["GeometryError"] > 20, outcomes
