"""Eiger zeromq Stream V1 (JSON multipart) and Stream V2 (CBOR) messages: decode and encode.

Decoded messages are :class:`Start`, :class:`Image` and :class:`End`. An image keeps its blob as
received plus its encoding; :meth:`Image.bslz4` gives HDF5-32008-framed bitshuffle-LZ4 bytes
(the received bytes themselves when they already are), :meth:`Image.array` the pixels.
See formats.md B.1 for the message layouts.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import cbor2
import numpy as np

from .._bslz4 import bslz4_decode, bslz4_encode, lz4_block_decode, lz4_block_encode

#: RFC 8746 typed-array tags used by Stream V2
TYPED_ARRAY_TAGS = {64: "u1", 69: "<u2", 70: "<u4", 72: "i1", 77: "<i2", 78: "<i4", 85: "<f4"}
DTYPE_TAGS = {np.dtype(v).str: k for k, v in TYPED_ARRAY_TAGS.items()}
V1_ENCODINGS = ("bs32-lz4<", "bs16-lz4<", "bs8-lz4<", "lz4<", "<")


class ProtocolError(ValueError):
    """A message that is not a Stream V1/V2 message."""


@dataclass
class Start:
    series: int
    config: dict[str, Any] = field(default_factory=dict)
    pixel_mask: np.ndarray | None = None
    version: int = 1


@dataclass
class Image:
    series: int
    frame: int
    shape: tuple[int, int]  # (ny, nx)
    dtype: np.dtype
    encoding: str  # "bslz4", "lz4" (V2, HDF5 LZ4 framing), "lz4<" (V1 raw block), "<" (raw)
    blob: Any  # bytes-like
    start_time: float = float("nan")  # seconds
    version: int = 1

    def bslz4(self) -> bytes | memoryview:
        """HDF5-32008 bitshuffle-LZ4 bytes of the frame (no recompression when possible)."""
        if self.encoding == "bslz4":
            return self.blob
        return bslz4_encode(self.array())

    def array(self) -> np.ndarray:
        nbytes = int(np.prod(self.shape)) * self.dtype.itemsize
        if self.encoding == "bslz4":
            return bslz4_decode(self.blob, dtype=self.dtype, shape=self.shape)
        if self.encoding == "lz4<":
            raw = lz4_block_decode(self.blob, nbytes)
        elif self.encoding == "lz4":
            import dectris.compression

            raw = dectris.compression.decompress(bytes(self.blob), "lz4",
                                                 elem_size=self.dtype.itemsize)
        else:
            raw = bytes(self.blob)
        return np.frombuffer(raw, self.dtype).reshape(self.shape)


@dataclass
class End:
    series: int
    version: int = 1


def _blob_bytes(part: Any) -> Any:
    return part.buffer if hasattr(part, "buffer") else part


def decode_v1(parts: list[Any]) -> Start | Image | End | None:
    """Decode one Stream V1 multipart message (parts: bytes or zmq.Frame)."""
    try:
        head = json.loads(bytes(_blob_bytes(parts[0])))
    except ValueError as exc:
        raise ProtocolError(f"first part is not JSON: {exc}") from exc
    htype = str(head.get("htype", ""))
    if htype.startswith("dheader"):
        config, mask = {}, None
        if head.get("header_detail", "none") != "none" and len(parts) > 1:
            config = json.loads(bytes(_blob_bytes(parts[1])))
        rest = parts[2:]
        for k in range(0, len(rest) - 1, 2):  # (header, blob) pairs with header_detail all
            sub = json.loads(bytes(_blob_bytes(rest[k])))
            if str(sub.get("htype", "")).startswith("dpixelmask"):
                x, y = sub["shape"]
                mask = np.frombuffer(bytes(_blob_bytes(rest[k + 1])), sub.get("type", "uint32"))
                mask = mask.reshape(y, x)
        return Start(series=int(head.get("series", 0)), config=config, pixel_mask=mask, version=1)
    if htype.startswith("dimage-"):
        if len(parts) < 3:
            raise ProtocolError(f"dimage message has {len(parts)} parts, expected 4")
        d = json.loads(bytes(_blob_bytes(parts[1])))
        enc = d.get("encoding", "<")
        if enc not in V1_ENCODINGS:
            raise ProtocolError(f"unknown Stream V1 encoding {enc!r}; known {V1_ENCODINGS}")
        x, y = d["shape"]
        start = float("nan")
        if len(parts) > 3:
            cfg = json.loads(bytes(_blob_bytes(parts[3])))
            start = cfg.get("start_time", float("nan")) * 1e-9
        return Image(series=int(head.get("series", 0)), frame=int(head["frame"]), shape=(y, x),
                     dtype=np.dtype(d.get("type", "uint16")),
                     encoding="bslz4" if enc.startswith("bs") else enc,
                     blob=_blob_bytes(parts[2]), start_time=start, version=1)
    if htype.startswith("dseries_end"):
        return End(series=int(head.get("series", 0)), version=1)
    return None  # unknown htype (e.g. an appendix): ignored


def _untag(value: Any) -> tuple[np.dtype, tuple[int, int], str, Any]:
    """tag40[[dims], tagNN(tag56500([alg, elem, bytes]) | bytes)] -> dtype, shape, encoding, blob."""
    if not (isinstance(value, cbor2.CBORTag) and value.tag == 40):
        raise ProtocolError("image data is not a row-major MultiDimArray (CBOR tag 40)")
    dims, typed = value.value
    if not isinstance(typed, cbor2.CBORTag) or typed.tag not in TYPED_ARRAY_TAGS:
        raise ProtocolError(f"unsupported typed array {getattr(typed, 'tag', typed)!r}")
    dtype = np.dtype(TYPED_ARRAY_TAGS[typed.tag])
    inner = typed.value
    if isinstance(inner, cbor2.CBORTag) and inner.tag == 56500:
        alg, _elem, blob = inner.value
        return dtype, (int(dims[0]), int(dims[1])), str(alg), blob
    return dtype, (int(dims[0]), int(dims[1])), "<", inner


def decode_v2(message: bytes) -> Start | Image | End | None:
    """Decode one Stream V2 (CBOR) message."""
    try:
        d = cbor2.loads(message)
    except Exception as exc:
        raise ProtocolError(f"not a CBOR message: {exc}") from exc
    if hasattr(d, "items") and not isinstance(d, Mapping):  # cbor2's frozendict
        d = dict(d.items())
    if not isinstance(d, Mapping) or "type" not in d:
        raise ProtocolError("CBOR message without a 'type' key")
    kind = d["type"]
    if kind == "start":
        cfg = {k: v for k, v in d.items() if isinstance(v, (int, float, str, list))}
        return Start(series=int(d.get("series_id", 0)), config=cfg, version=2)
    if kind == "image":
        channel = next(iter(dict(d["data"].items()).values()))
        dtype, shape, enc, blob = _untag(channel)
        start = d.get("start_time")
        t = start[0] / start[1] if isinstance(start, (list, tuple)) and start[1] else float("nan")
        return Image(series=int(d.get("series_id", 0)), frame=int(d["image_id"]), shape=shape,
                     dtype=dtype, encoding=enc, blob=blob, start_time=t, version=2)
    if kind == "end":
        return End(series=int(d.get("series_id", 0)), version=2)
    return None


def decode(parts: list[Any]) -> Start | Image | End | None:
    """Decode a message of either version (V2 messages are single-part CBOR)."""
    first = bytes(_blob_bytes(parts[0])[:1])
    if len(parts) == 1 and first != b"{":
        return decode_v2(bytes(_blob_bytes(parts[0])))
    return decode_v1(parts)


# ------------------------------------------------------------------------- encoding (sender)
def encode_v1_header(series: int, detail: str, config: dict, mask: np.ndarray | None) -> list[bytes]:
    parts = [json.dumps({"htype": "dheader-1.0", "series": series, "header_detail": detail}).encode()]
    if detail in ("basic", "all"):
        parts.append(json.dumps(config).encode())
    if detail == "all":
        ny, nx = config["y_pixels_in_detector"], config["x_pixels_in_detector"]
        m = mask if mask is not None else np.zeros((ny, nx), np.uint32)
        for htype, arr in (("dflatfield-1.0", np.ones((ny, nx), np.float32)),
                           ("dpixelmask-1.0", m.astype(np.uint32)),
                           ("dcountrate_table-1.0", np.zeros((2, 16), np.float32))):
            shape = list(arr.shape[::-1])
            parts += [json.dumps({"htype": htype, "shape": shape, "type": str(arr.dtype)}).encode(),
                      arr.tobytes()]
    return parts


def encode_v1_image(series: int, frame: int, array_or_blob: Any, *, shape: tuple[int, int],
                    dtype: np.dtype, encoding: str, t: float) -> list[Any]:
    blob = array_or_blob
    if isinstance(blob, np.ndarray):
        if encoding == "<":
            blob = np.ascontiguousarray(blob).tobytes()
        else:
            blob = lz4_block_encode(blob) if encoding == "lz4<" else bslz4_encode(blob)
    head = {"htype": "dimage-1.0", "series": series, "frame": frame, "hash": ""}
    d = {"htype": "dimage_d-1.0", "shape": [shape[1], shape[0]], "type": np.dtype(dtype).name,
         "encoding": encoding, "size": len(blob)}
    cfg = {"htype": "dconfig-1.0", "start_time": int(t * 1e9), "stop_time": int(t * 1e9) + 1000,
           "real_time": 1000}
    return [json.dumps(head).encode(), json.dumps(d).encode(), blob, json.dumps(cfg).encode()]


def encode_v1_end(series: int) -> list[bytes]:
    return [json.dumps({"htype": "dseries_end-1.0", "series": series}).encode()]


def encode_v2_start(series: int, config: dict) -> bytes:
    return cbor2.dumps({"type": "start", "series_id": series, "series_unique_id": f"xlive-{series}",
                        **config})


def encode_v2_image(series: int, frame: int, blob: bytes, *, shape: tuple[int, int],
                    dtype: np.dtype, t: float) -> bytes:
    elem = np.dtype(dtype).itemsize
    data = cbor2.CBORTag(40, [list(shape), cbor2.CBORTag(
        DTYPE_TAGS[np.dtype(dtype).newbyteorder("<").str if elem > 1 else np.dtype(dtype).str],
        cbor2.CBORTag(56500, ["bslz4", elem, blob]))])
    num = int(round(t * 1e6))
    return cbor2.dumps({"type": "image", "series_id": series, "series_unique_id": f"xlive-{series}",
                        "image_id": frame, "start_time": [num, 1000000],
                        "stop_time": [num + 1000, 1000000], "real_time": [1000, 1000000],
                        "data": {"threshold_1": data}})


def encode_v2_end(series: int) -> bytes:
    return cbor2.dumps({"type": "end", "series_id": series, "series_unique_id": f"xlive-{series}"})
