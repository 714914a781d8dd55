""":class:`Block`: the features of a block of frames, as they travel from the workers to the
store and the listeners (aggregates, views, CXI writer)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Block:
    """The analyzers' outputs for some frames of a run.

    ``block["n_spots"]`` (or ``block.features["n_spots"]``) is a feature, with the block's
    frames as leading dimension; the frames themselves, which of them are bad, and the
    reducers' partial aggregates are attributes, not keys.
    """

    #: frame indices in the run (int64), increasing
    frames: np.ndarray
    #: True where the frame was corrupt or its analysis failed (its features are fill values)
    bad: np.ndarray
    #: feature name -> array with leading dimension ``len(frames)``
    features: dict[str, np.ndarray] = field(default_factory=dict)
    #: reducer name -> partial aggregate (added up with ``+``)
    partials: dict = field(default_factory=dict)

    def __post_init__(self):
        self.frames = np.asarray(self.frames, np.int64)
        self.bad = np.asarray(self.bad, bool)

    def __len__(self) -> int:
        return len(self.frames)

    def __contains__(self, name: str) -> bool:
        return name in self.features

    def __getitem__(self, name: str) -> np.ndarray:
        return self.features[name]

    def get(self, name: str, default=None):
        return self.features.get(name, default)

    @property
    def good(self) -> np.ndarray:
        """True for the frames whose features were computed."""
        return ~self.bad

    @classmethod
    def empty(cls, specs=()) -> Block:
        """A block of no frames (with empty arrays of the features ``specs``)."""
        return cls(np.zeros(0, np.int64), np.zeros(0, bool), {s.name: s.empty(0) for s in specs})

    def rows(self, sel) -> Block:
        """The block's frames ``sel`` (indices or a boolean mask), without partials."""
        return Block(self.frames[sel], self.bad[sel], {k: v[sel] for k, v in self.features.items()})


def concat_blocks(blocks: list[Block], merge_partials) -> Block:
    """One block of all ``blocks``' frames, sorted by frame index; partials added up."""
    if len(blocks) == 1:
        return blocks[0]
    frames = np.concatenate([b.frames for b in blocks])
    order = np.argsort(frames, kind="stable")
    features = {
        k: np.concatenate([b.features[k] for b in blocks])[order] for k in blocks[0].features
    }
    bad = np.concatenate([b.bad for b in blocks])[order]
    return Block(frames[order], bad, features, merge_partials([b.partials for b in blocks]))
