"""Per-frame state the aggregates do not keep but some views need, collected from the session.

One :class:`ViewHistory` per session (shared by every dashboard showing it) listens to stored
blocks and keeps, in bounded buffers, the radial profile of recent frames (for the waterfall)
and spots per grid position (for grid scans, when the metadata carries ``grid_x``/``grid_y``).
"""

from __future__ import annotations

import collections
import weakref

import numpy as np

#: metadata names giving the grid position of a frame (grid scans)
GRID_KEYS = ("grid_x", "grid_y")

_HISTORIES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class ViewHistory:
    """Bounded per-frame buffers filled by a session listener."""

    def __init__(self, max_profiles: int = 2000):
        self.profiles: collections.deque = collections.deque(maxlen=max_profiles)
        self.profiles_added = 0
        #: (grid_x, grid_y) -> [frames, spots, hits]
        self.grid: dict[tuple[float, float], list[float]] = {}
        self.grid_updates = 0

    def __call__(self, result, meta: dict) -> None:
        good = result.good
        idx = result.frames[good]
        if "radial_profile" in result:
            prof = np.asarray(result["radial_profile"], np.float32)[good]
            for i, p in zip(idx.tolist(), prof, strict=True):
                self.profiles.append((i, p))
            self.profiles_added += len(idx)
        if all(k in meta for k in GRID_KEYS):
            gx = np.asarray(meta[GRID_KEYS[0]], float)[good]
            gy = np.asarray(meta[GRID_KEYS[1]], float)[good]
            spots = np.asarray(result.get("n_spots", np.zeros(good.size)), float)[good]
            hits = np.asarray(result.get("is_hit", np.zeros(good.size)), float)[good]
            for x, y, s, h in zip(
                gx.tolist(), gy.tolist(), spots.tolist(), hits.tolist(), strict=True
            ):
                acc = self.grid.setdefault((x, y), [0.0, 0.0, 0.0])
                acc[0] += 1
                acc[1] += s
                acc[2] += h
            self.grid_updates += 1


def history_for(session) -> ViewHistory:
    """The session's :class:`ViewHistory`, attached as a listener on first use."""
    with session.lock:
        hist = _HISTORIES.get(session)
        if hist is None:
            hist = _HISTORIES[session] = ViewHistory()
            session.listeners.append(hist)
        return hist


def q_axis(session) -> np.ndarray | None:
    """Radial-profile bin centres (q, 1/nm); see :func:`xlive.views.resolution.q_axis`."""
    from .resolution import q_axis as public

    return public(session)
