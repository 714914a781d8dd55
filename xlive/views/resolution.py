"""One resolution convention for every plot: q (1/nm) along x, the d-spacing (Å) on a top axis.

The radial profile, the waterfall, the virtual powder pattern and the peakogram (dashboard,
notebook and HTML report alike) put q in 1/nm on the x axis and label the d-spacings on a
second axis above it, at round values of d, so a crystallographer reads Å without arithmetic.
``q = 2 pi / d``; with q in 1/nm and d in Å, ``q = 20 pi / d``.
"""

from __future__ import annotations

import math

import numpy as np

#: q (1/nm) per 1/d (1/Å): q = 2 pi / d, and 1/Å = 10/nm
Q_PER_INV_D = 20 * math.pi
#: d-spacings (Å) labelled on the top axis (spaced so that their labels do not collide)
D_TICKS = (10.0, 6.0, 4.0, 3.0, 2.5, 2.0, 1.6, 1.4, 1.2, 1.0)
#: q (1/nm) -> "d" label in the browser
D_FROM_Q_JS = (
    "if (tick <= 0) return '∞'; const d = 20 * Math.PI / tick;"
    " return String(Number(d.toPrecision(2)));"
)


def q_from_d(d):
    """q (1/nm) of a d-spacing (Å)."""
    return Q_PER_INV_D / np.asarray(d, float)


def d_from_q(q):
    """d-spacing (Å) of q (1/nm) (inf at q = 0)."""
    q = np.asarray(q, float)
    with np.errstate(divide="ignore"):
        return Q_PER_INV_D / q


def add_d_axis(fig, label: str = "d-spacing (Å)") -> None:
    """Put the d-spacing (Å) on a second axis above a figure whose x is q (1/nm)."""
    from bokeh.models import CustomJSTickFormatter, FixedTicker, LinearAxis

    ticks = [float(q) for q in q_from_d(D_TICKS)]
    fig.add_layout(
        LinearAxis(
            axis_label=label,
            ticker=FixedTicker(ticks=ticks),
            formatter=CustomJSTickFormatter(code=D_FROM_Q_JS),
            name="d_axis",
        ),
        "above",
    )


def q_axis(session) -> np.ndarray | None:
    """Radial-profile bin centres (q, 1/nm) of a live session's analyzers (None when none
    of them has a radial profile)."""
    for a in session.processor.analyzers or ():
        coords = a.coords() if hasattr(a, "coords") else {}
        if "q" in coords:
            return np.asarray(coords["q"][1], float)
    return None
