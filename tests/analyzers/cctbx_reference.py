"""Reference results from cctbx/rstbx, run as a separate process (see test_indexing_refs.py).

cctbx's Python extension crashes when imported after numba (as in any xlive process), so the
tests run this script on its own: ``python cctbx_reference.py IN.npz`` prints JSON.

Input arrays: ``r`` (n, 3) reciprocal vectors in 1/Å (optional) and ``cells`` (m, 6).
Output: ``dps_vectors``: the direct-lattice vectors rstbx's 1-D FFT search (DPS) finds in ``r``;
``bravais``: cctbx's Bravais type of each cell (lattice symmetry within 3 degrees) and
``niggli``: its Niggli cell.
"""

from __future__ import annotations

import json
import sys

import cctbx.uctbx  # noqa: F401  (first: before anything loads numba)
import numpy as np
from cctbx import crystal, sgtbx, uctbx
from cctbx.sgtbx import bravais_types, lattice_symmetry


def dps_vectors(r: np.ndarray, max_cell: float) -> np.ndarray:
    """Direct-lattice vectors (Å) rstbx's DPS search finds among reciprocal vectors ``r``."""
    import iotbx.phil
    from rstbx.indexing_api.lattice import DPS_primitive_lattice
    from rstbx.phil.phil_preferences import indexing_api_defs
    from scitbx.array_family import flex

    hard = iotbx.phil.parse(input_string=indexing_api_defs).extract()
    dps = DPS_primitive_lattice(
        max_cell=max_cell, recommended_grid_sampling_rad=None, horizon_phil=hard
    )
    dps.index(reciprocal_space_vectors=flex.vec3_double([tuple(v) for v in r]))
    return np.array([s.bvec() for s in dps.getSolutions()])


def cell_of(d: np.ndarray) -> uctbx.unit_cell:
    g = d @ d.T
    return uctbx.unit_cell(metrical_matrix=(g[0, 0], g[1, 1], g[2, 2], g[0, 1], g[0, 2], g[1, 2]))


def niggli(uc: uctbx.unit_cell) -> list[float]:
    return list(uc.niggli_cell().parameters())


def bravais(cell) -> str:
    cs = crystal.symmetry(unit_cell=cell, space_group_symbol="P 1")
    nig = cs.niggli_cell()
    group = lattice_symmetry.group(nig.unit_cell(), max_delta=3.0)
    ref = sgtbx.space_group_info(group=group).reference_setting()
    return str(bravais_types.bravais_lattice(group=ref.group()))


def main(path: str) -> None:
    data = np.load(path)
    out = {}
    if "r" in data:
        out["dps_vectors"] = dps_vectors(data["r"], float(data["max_cell"])).tolist()
    if "cells" in data:
        out["bravais"] = [bravais(tuple(c)) for c in data["cells"]]
        out["niggli"] = [niggli(uctbx.unit_cell(tuple(c))) for c in data["cells"]]
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1])
