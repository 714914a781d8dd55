"""Dimension, coordinate and attribute names, units and pixel conventions used everywhere.

Pixel coordinates
-----------------
Array-index coordinates: the centre of pixel ``data[i, j]`` is at ``(x=j, y=i)``.
Peak positions (``peak_x``, ``peak_y``) and simulator ground truth use this convention.
(CrystFEL adds +0.5 to CXI peak positions by default, so exported peaks match it.)

Beam centre: ``beam_center_x/y`` are in pixels measured from the *outer corner* of the first
pixel, as pyFAI (``poni = beam_center * pixel_size``), DIALS and NXmx do; so the centre of
0-based pixel ``j`` lies at ``j + 0.5`` in beam-centre units.
"""

from __future__ import annotations

FRAME = "frame"
Y = "y"
X = "x"
Q = "q"
PEAK = "peak"
PANEL = "panel"

#: units written into ``attrs["units"]``
Q_UNITS = "1/nm"
D_UNITS = "angstrom"
LENGTH_UNITS = "m"
WAVELENGTH_UNITS = "angstrom"
ENERGY_UNITS = "eV"

#: per-frame metadata names ("small data")
TIMESTAMP = "timestamp"
LASER_ON = "laser_on"
PULSE_ENERGY = "pulse_energy"
FRAME_NUMBER = "frame_number"
#: European XFEL train and pulse (or memory cell) of a frame
TRAIN_ID = "train_id"
PULSE_ID = "pulse_id"

#: hexagonal ice d-spacings (angstrom) used by the simulator and the ice score
ICE_D_SPACINGS = (3.90, 3.67, 3.44, 2.67, 2.25, 2.07, 1.95)

#: name of the completion counter attribute in growing Zarr stores
FRAMES_COMPLETE = "frames_complete"

#: hc in eV*angstrom
HC_EV_ANGSTROM = 12398.419843320026
