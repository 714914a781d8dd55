"""Resolution rings drawn on the powder pattern, the peakogram and the detector image."""

from __future__ import annotations

import numpy as np

from ..conventions import ICE_D_SPACINGS

#: d-spacings (Å) of the labelled resolution rings
RING_D = (8.0, 4.0, 3.0, 2.5, 2.0, 1.5)


def ring_radii_px(geometry, d_values=RING_D) -> tuple[list[float], list[float]]:
    """Radii (pixels) of rings at ``d_values`` on a flat detector normal to the beam.

    Returns the d values that fall on the detector and their radii.
    """
    lam = geometry.wavelength
    pix = geometry.pixel_size
    out_d, out_r = [], []
    for d in d_values:
        s = lam / (2 * d)
        if s >= 1:
            continue
        r = geometry.distance * np.tan(2 * np.arcsin(s)) / pix
        out_d.append(float(d))
        out_r.append(float(r))
    return out_d, out_r


def ice_inv_d() -> list[float]:
    """1/d (1/Å) of the hexagonal ice rings."""
    return [1.0 / d for d in ICE_D_SPACINGS]
