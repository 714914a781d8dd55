"""Several zarr arrays written in one pass of zarr's event loop.

Through zarr's synchronous API each array's write is a round trip to zarr's event loop and its
thread pool (~2 ms of CPU each): the live loop writes ~28 feature arrays twice a second, and
the stream receiver two arrays five times a second. :func:`set_many` hands all the writes to
zarr's event loop at once (``AsyncArray.setitem``, gathered). That reaches into zarr 3.1's
``Array._async_array`` and ``zarr.core.sync.sync``; where they are missing (another zarr), it
writes the arrays one after another through the public API.
"""

from __future__ import annotations

import asyncio

import numpy as np
import zarr


def set_many(arrays, span: slice, values, rows: np.ndarray | None = None, *, gather=True) -> None:
    """``arrays[k][span] = values[k]`` for every k; with ``rows`` (positions inside ``span``),
    only those rows are set: the span is read, merged and written back (the caller must be
    the arrays' only writer). ``gather=False``: one array after another (the fallback)."""
    try:
        handles = [a._async_array for a in arrays] if gather else None
        sync = zarr.core.sync.sync
    except AttributeError:
        handles = None
    if handles is None:
        for a, v in zip(arrays, values, strict=True):
            if rows is not None:
                merged = np.array(a[span])
                merged[rows] = v
                v = merged
            a[span] = v
        return

    async def put(a, v) -> None:
        if rows is not None:
            merged = np.array(await a.getitem(span))
            merged[rows] = v
            v = merged
        await a.setitem(span, v)

    async def put_all() -> None:
        await asyncio.gather(*(put(a, v) for a, v in zip(handles, values, strict=True)))

    sync(put_all())
