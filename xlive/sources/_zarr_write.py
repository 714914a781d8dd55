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


def resize_many(arrays, shapes) -> None:
    """``arrays[k].resize(shapes[k])`` for every k, in one pass of zarr's event loop (a resize
    rewrites the array's ``zarr.json``: the feature store resizes ~30 arrays at a time, each a
    round trip through the synchronous API). One after another where zarr's internals differ."""
    try:
        handles = [a._async_array for a in arrays]
        sync = zarr.core.sync.sync
    except AttributeError:
        handles = None
    if handles is None:
        for a, shape in zip(arrays, shapes, strict=True):
            a.resize(shape)
        return

    async def resize_all() -> None:
        # AsyncArray.resize updates each handle's metadata in place, as Array.resize does
        await asyncio.gather(*(h.resize(s) for h, s in zip(handles, shapes, strict=True)))

    sync(resize_all())
