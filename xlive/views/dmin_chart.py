"""Resolution estimate (``d_min``) per frame, streamed."""

from __future__ import annotations

from ._strip import StripChart


class DminChart(StripChart):
    """``d_min`` (Å) of each stored frame; lower is better, so the axis is flipped."""

    name = "d_min"
    series = "d_min"
    title = "Resolution estimate d_min (Å) of hits"
    y_label = "d_min (Å)"
    hits_only = True

    def __init__(self, **kw):
        super().__init__(**kw)
        self.root.y_range.flipped = True
