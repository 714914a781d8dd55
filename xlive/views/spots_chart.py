"""Spots per frame, streamed (hits in red)."""

from __future__ import annotations

from ._strip import StripChart


class SpotsChart(StripChart):
    """Number of spots found in each stored frame; tap a point to show that frame."""

    name = "spots"
    series = "n_spots"
    title = "Spots per frame (hits in red)"
    y_label = "spots"
