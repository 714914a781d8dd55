"""The detector: :class:`Geometry` and its per-pixel maps (:mod:`.core`), the detector models
the simulator and the stream sender use (:mod:`.detectors`), and readers for the geometry files
beamlines write, one module per format: NXmx/Eiger masters (:mod:`.nxmx`), miniCBF headers
(:mod:`.minicbf`), pyFAI PONI files (:mod:`.poni`) and CrystFEL ``.geom`` files
(:mod:`.crystfel`, which also writes them).

Every reader returns a :class:`Geometry` (pyFAI/DIALS beam-centre rule).
"""

from __future__ import annotations

from .core import Geometry, Panel

__all__ = ["Geometry", "Panel"]
