"""RingSeries: the last ``maxlen`` values of a per-frame series in one numpy buffer.

The run aggregates keep ~16 per-frame series of up to ``AggregateParams.history`` frames; as
deques of Python floats that is 32 bytes a value (51 MB at 100,000 frames), as numpy 8 (or 1 for
booleans). It behaves like the ``collections.deque(maxlen=...)`` it replaces where the views and
flags use one: ``append``, ``extend``, ``len``, truth, indexing, iteration (also reversed) and
``np.asarray``; ``last(n)`` gives the newest ``n`` values as a new array in O(n).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np


class RingSeries:
    """Bounded series in a buffer a quarter longer than ``maxlen``: appends are amortised O(1)
    and the values always lie contiguous (compacted to the front when the buffer end is
    reached)."""

    def __init__(self, maxlen: int, dtype: np.dtype | str = np.float64):
        self.maxlen = int(maxlen)
        self._cap = self.maxlen + max(self.maxlen // 4, 256)
        self._buf = np.empty(min(self._cap, 1024), dtype)
        self._start = self._end = 0

    def _view(self) -> np.ndarray:
        return self._buf[self._start : self._end]

    def extend(self, values: Iterable) -> None:
        new = np.asarray(
            values if not isinstance(values, Iterator) else list(values), dtype=self._buf.dtype
        ).ravel()
        if new.size >= self.maxlen:
            new = new[-self.maxlen :]
            self._start, self._end = 0, 0
        keep = min(len(self), self.maxlen - new.size)
        if self._end + new.size > self._buf.size:
            old = self._buf[self._end - keep : self._end]
            if self._buf.size < self._cap:  # grow towards the final size
                size = min(self._cap, max(2 * self._buf.size, keep + new.size))
                buf = np.empty(size, self._buf.dtype)
            else:
                buf = self._buf
            buf[:keep] = old  # (overlapping copies are safe: numpy buffers them)
            self._buf, self._start, self._end = buf, 0, keep
        else:
            self._start = self._end - keep
        self._buf[self._end : self._end + new.size] = new
        self._end += new.size

    def append(self, value) -> None:
        self.extend((value,))

    def last(self, n: int | None = None) -> np.ndarray:
        """The newest ``n`` values (all when None), oldest first, as a new array."""
        v = self._view()
        return (v if n is None else v[max(len(v) - n, 0) :]).copy()

    def __getitem__(self, key):
        return self._view()[key].copy() if isinstance(key, slice) else self._view()[key].item()

    def __len__(self) -> int:
        return self._end - self._start

    def __bool__(self) -> bool:
        return self._end > self._start

    def __iter__(self) -> Iterator:
        return iter(self._view().tolist())

    def __reversed__(self) -> Iterator:
        return iter(self._view()[::-1].tolist())

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        v = self.last()
        return v if dtype is None else v.astype(dtype, copy=False)

    def __repr__(self) -> str:
        return f"RingSeries({self._view()!r}, maxlen={self.maxlen})"
