"""Frames and damaged bitshuffle-LZ4 blobs for test_bslz4_damaged (also imported by its
child processes)."""

from __future__ import annotations

import numpy as np


def frame(shape, dtype, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).poisson(1.5, shape).astype(dtype)


def damaged(blob: bytes) -> dict[str, bytes]:
    """A whole frame's blob cut at places that crashed bitshuffle's decoder, and padded."""
    n = len(blob)
    return {
        "header_only": blob[:12],
        "first_block_length_cut": blob[:14],
        "in_first_block": blob[:20],
        "half": blob[: n // 2],
        "last_byte_missing": blob[:-1],
        "padded": blob + b"\x00" * 3,
    }
