"""Eiger zeromq Stream V1 (JSON multipart) and Stream V2 (CBOR) messages: decode and encode.

Decoded messages are :class:`Start`, :class:`Image` and :class:`End`. An image keeps its blob as
received plus its encoding; :meth:`Image.bslz4` gives HDF5-32008-framed bitshuffle-LZ4 bytes
(the received bytes themselves when they already are), :meth:`Image.array` the pixels.
See formats.md B.1 for the message layouts.
"""

from __future__ import annotations

import json
import struct
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
    """A message that is not a valid Stream V1/V2 message (the receiver counts and skips it)."""


#: largest detector side and pixel count a message may announce (EIGER2 16M: 4371 x 4150)
MAX_SIDE = 1 << 15
MAX_PIXELS = 1 << 27
#: largest series and frame numbers (a detector counts far below this)
MAX_NUMBER = 1 << 48
#: pixel types of Stream V1 ``dimage_d`` parts
V1_TYPES = ("uint8", "uint16", "uint32", "int8", "int16", "int32", "float32")


@dataclass
class Start:
    series: int
    config: dict[str, Any] = field(default_factory=dict)
    pixel_mask: np.ndarray | None = None
    version: int = 1

    @property
    def shape(self) -> tuple[int, int] | None:
        """(ny, nx) the header announces (None when it does not say)."""
        c = self.config
        for kx, ky in (
            ("x_pixels_in_detector", "y_pixels_in_detector"),
            ("image_size_x", "image_size_y"),
        ):
            x, y = c.get(kx), c.get(ky)
            if _is_int(x) and _is_int(y) and 0 < x <= MAX_SIDE and 0 < y <= MAX_SIDE:
                return int(y), int(x)
        return None

    @property
    def n_images(self) -> int | None:
        """Frames the series will hold (nimages x ntrigger; None when unknown)."""
        c = self.config
        n = c.get("number_of_images", c.get("nimages"))
        t = c.get("ntrigger", 1)
        if _is_int(n) and _is_int(t) and n > 0 and t > 0:
            return int(n) * int(t)
        return None


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

    @property
    def nbytes(self) -> int:
        return self.shape[0] * self.shape[1] * self.dtype.itemsize

    def check_blob(self) -> None:
        """Raise ProtocolError when the blob cannot hold this frame (sizes in its framing)."""
        n = (
            len(memoryview(self.blob).cast("B"))
            if not isinstance(self.blob, bytes)
            else len(self.blob)
        )
        if self.encoding == "<":
            if n != self.nbytes:
                raise ProtocolError(
                    f"raw frame {self.frame} has {n} bytes, expected "
                    f"{self.nbytes} for {self.shape} {self.dtype}"
                )
        elif self.encoding in ("bslz4", "lz4"):
            if n < 12:
                raise ProtocolError(f"compressed frame {self.frame} has only {n} bytes")
            total = struct.unpack(">Q", bytes(memoryview(self.blob)[:8]))[0]
            if total != self.nbytes:
                raise ProtocolError(
                    f"compressed frame {self.frame} says {total} bytes, "
                    f"expected {self.nbytes} for {self.shape} {self.dtype}"
                )
        elif n == 0:
            raise ProtocolError(f"frame {self.frame} has no data")

    def bslz4(self) -> bytes | memoryview:
        """HDF5-32008 bitshuffle-LZ4 bytes of the frame (no recompression when possible)."""
        if self.encoding == "bslz4":
            return self.blob
        return bslz4_encode(self.array())

    def array(self) -> np.ndarray:
        nbytes = self.nbytes
        if self.encoding == "bslz4":
            return bslz4_decode(self.blob, dtype=self.dtype, shape=self.shape)
        if self.encoding == "lz4<":
            raw = lz4_block_decode(self.blob, nbytes)
        elif self.encoding == "lz4":
            import dectris.compression

            raw = dectris.compression.decompress(
                bytes(self.blob), "lz4", elem_size=self.dtype.itemsize
            )
        else:
            raw = bytes(self.blob)
        return np.frombuffer(raw, self.dtype).reshape(self.shape)


@dataclass
class End:
    series: int
    version: int = 1


def _blob_bytes(part: Any) -> Any:
    return part.buffer if hasattr(part, "buffer") else part


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _number(d: Mapping, key: str, what: str, *, default: int | None = None) -> int:
    """A non-negative integer field (series, frame) or ProtocolError."""
    if key not in d:
        if default is not None:
            return default
        raise ProtocolError(f"{what} message without {key!r}")
    v = d[key]
    if not _is_int(v) or not 0 <= v < MAX_NUMBER:
        raise ProtocolError(f"{what} {key} must be an integer in [0, 2**48), got {_short(v)}")
    return int(v)


def _short(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 40 else text[:37] + "..."


def _json_object(part: Any, what: str) -> dict:
    try:
        d = json.loads(bytes(_blob_bytes(part)))
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise ProtocolError(f"{what} is not JSON: {exc}") from None
    if not isinstance(d, dict):
        raise ProtocolError(f"{what} is JSON {type(d).__name__}, not an object")
    return d


def _shape(dims: Any, what: str, *, xy: bool) -> tuple[int, int]:
    """(ny, nx) from [x, y] (V1, ``xy``) or [y, x] (V2 dims), checked against the limits."""
    if not isinstance(dims, (list, tuple)) or len(dims) != 2 or not all(_is_int(v) for v in dims):
        raise ProtocolError(f"{what} shape must be two integers, got {_short(dims)}")
    ny, nx = (dims[1], dims[0]) if xy else (dims[0], dims[1])
    if not (0 < nx <= MAX_SIDE and 0 < ny <= MAX_SIDE and nx * ny <= MAX_PIXELS):
        raise ProtocolError(
            f"{what} shape {list(dims)} is out of range (sides 1..{MAX_SIDE}, "
            f"at most {MAX_PIXELS} pixels)"
        )
    return int(ny), int(nx)


def decode_v1(parts: list[Any]) -> Start | Image | End | None:
    """Decode one Stream V1 multipart message (parts: bytes or zmq.Frame)."""
    head = _json_object(parts[0], "first part")
    htype = head.get("htype", "")
    if not isinstance(htype, str):
        raise ProtocolError(f"htype must be a string, got {_short(htype)}")
    if htype.startswith("dheader"):
        series = _number(head, "series", "dheader", default=0)
        config, mask = {}, None
        if head.get("header_detail", "none") != "none" and len(parts) > 1:
            config = _json_object(parts[1], "dheader detector config")
        rest = parts[2:]
        for k in range(0, len(rest) - 1, 2):  # (header, blob) pairs with header_detail all
            sub = _json_object(rest[k], "dheader table header")
            if str(sub.get("htype", "")).startswith("dpixelmask"):
                ny, nx = _shape(sub.get("shape"), "dpixelmask", xy=True)
                kind = sub.get("type", "uint32")
                if kind not in V1_TYPES:
                    raise ProtocolError(f"dpixelmask type {_short(kind)} not one of {V1_TYPES}")
                raw = bytes(_blob_bytes(rest[k + 1]))
                if len(raw) != ny * nx * np.dtype(kind).itemsize:
                    raise ProtocolError(
                        f"dpixelmask has {len(raw)} bytes, expected "
                        f"{ny * nx * np.dtype(kind).itemsize}"
                    )
                mask = np.frombuffer(raw, kind).reshape(ny, nx)
        return Start(series=series, config=config, pixel_mask=mask, version=1)
    if htype.startswith("dimage-"):
        if len(parts) < 3:
            raise ProtocolError(f"dimage message has {len(parts)} parts, expected 4")
        series = _number(head, "series", "dimage", default=0)
        frame = _number(head, "frame", "dimage")
        d = _json_object(parts[1], "dimage_d part")
        enc = d.get("encoding", "<")
        if enc not in V1_ENCODINGS:
            raise ProtocolError(f"unknown Stream V1 encoding {_short(enc)}; known {V1_ENCODINGS}")
        if "shape" not in d:
            raise ProtocolError("dimage_d part without 'shape'")
        shape = _shape(d["shape"], "dimage_d", xy=True)
        kind = d.get("type", "uint16")
        if kind not in V1_TYPES:
            raise ProtocolError(f"dimage_d type {_short(kind)} not one of {V1_TYPES}")
        start = float("nan")
        if len(parts) > 3:
            try:
                cfg = json.loads(bytes(_blob_bytes(parts[3])))
                t = cfg.get("start_time") if isinstance(cfg, dict) else None
                if isinstance(t, (int, float)) and not isinstance(t, bool):
                    start = float(t) * 1e-9
            except (ValueError, UnicodeDecodeError, OverflowError, RecursionError):
                pass  # the timing part is optional: a bad one costs only the timestamp
        img = Image(
            series=series,
            frame=frame,
            shape=shape,
            dtype=np.dtype(kind),
            encoding="bslz4" if enc.startswith("bs") else enc,
            blob=_blob_bytes(parts[2]),
            start_time=start,
            version=1,
        )
        img.check_blob()
        return img
    if htype.startswith("dseries_end"):
        return End(series=_number(head, "series", "dseries_end", default=0), version=1)
    return None  # unknown htype (e.g. an appendix): ignored


def _untag(value: Any) -> tuple[np.dtype, tuple[int, int], str, Any]:
    """tag40[[dims], tagNN(tag56500([alg, elem, bytes]) | bytes)] -> dtype, shape, encoding, blob."""
    if not (isinstance(value, cbor2.CBORTag) and value.tag == 40):
        raise ProtocolError("image data is not a row-major MultiDimArray (CBOR tag 40)")
    if not isinstance(value.value, (list, tuple)) or len(value.value) != 2:
        raise ProtocolError("MultiDimArray is not [dims, array]")
    dims, typed = value.value
    shape = _shape(dims, "MultiDimArray", xy=False)
    if not isinstance(typed, cbor2.CBORTag) or typed.tag not in TYPED_ARRAY_TAGS:
        raise ProtocolError(f"unsupported typed array {_short(getattr(typed, 'tag', typed))}")
    dtype = np.dtype(TYPED_ARRAY_TAGS[typed.tag])
    inner = typed.value
    if isinstance(inner, cbor2.CBORTag) and inner.tag == 56500:
        if not isinstance(inner.value, (list, tuple)) or len(inner.value) != 3:
            raise ProtocolError("compressed array (tag 56500) is not [algorithm, size, bytes]")
        alg, _elem, blob = inner.value
        if alg not in ("bslz4", "lz4") or not isinstance(blob, bytes):
            raise ProtocolError(f"unsupported compression {_short(alg)} (known: bslz4, lz4)")
        return dtype, shape, str(alg), blob
    if not isinstance(inner, bytes):
        raise ProtocolError(f"typed array holds {type(inner).__name__}, not bytes")
    return dtype, shape, "<", inner


def _plain(d: Any) -> Any:
    if hasattr(d, "items") and not isinstance(d, dict):  # cbor2's frozendict
        return dict(d.items())
    return d


def decode_v2(message: bytes) -> Start | Image | End | None:
    """Decode one Stream V2 (CBOR) message."""
    try:
        d = _plain(cbor2.loads(message))
    except Exception as exc:  # cbor2 raises many kinds on garbage (CBORDecodeError, ValueError...)
        raise ProtocolError(f"not a CBOR message: {type(exc).__name__}: {exc}") from None
    if not isinstance(d, Mapping) or "type" not in d:
        raise ProtocolError("CBOR message is not a map with a 'type' key")
    kind = d["type"]
    if kind == "start":
        cfg = {
            k: v
            for k, v in d.items()
            if isinstance(k, str) and isinstance(v, (int, float, str, list))
        }
        return Start(series=_number(d, "series_id", "start", default=0), config=cfg, version=2)
    if kind == "image":
        series = _number(d, "series_id", "image", default=0)
        frame = _number(d, "image_id", "image")
        data = _plain(d.get("data"))
        if not isinstance(data, Mapping) or not data:
            raise ProtocolError("image message without 'data' channels")
        channel = next(iter(data.values()))
        dtype, shape, enc, blob = _untag(channel)
        start = d.get("start_time")
        t = float("nan")
        if (
            isinstance(start, (list, tuple))
            and len(start) == 2
            and all(_is_int(v) for v in start)
            and start[1]
        ):
            t = start[0] / start[1]
        img = Image(
            series=series,
            frame=frame,
            shape=shape,
            dtype=dtype,
            encoding=enc,
            blob=blob,
            start_time=t,
            version=2,
        )
        img.check_blob()
        return img
    if kind == "end":
        return End(series=_number(d, "series_id", "end", default=0), version=2)
    return None


def decode(parts: list[Any]) -> Start | Image | End | None:
    """Decode a message of either version (V2 messages are single-part CBOR).

    Raises
    ------
    ProtocolError
        For anything that is not a well-formed message, whatever the bytes.
    """
    try:
        if not parts or not len(_blob_bytes(parts[0])):
            raise ProtocolError("empty message")
        first = bytes(_blob_bytes(parts[0])[:1])
        if len(parts) == 1 and first != b"{":
            return decode_v2(bytes(_blob_bytes(parts[0])))
        return decode_v1(parts)
    except ProtocolError:
        raise
    except Exception as exc:  # a check missed above: still a bad message, never a crash
        raise ProtocolError(f"undecodable message ({type(exc).__name__}: {exc})") from None


# ------------------------------------------------------------------------- encoding (sender)
def encode_v1_header(
    series: int, detail: str, config: dict, mask: np.ndarray | None
) -> list[bytes]:
    parts = [
        json.dumps({"htype": "dheader-1.0", "series": series, "header_detail": detail}).encode()
    ]
    if detail in ("basic", "all"):
        parts.append(json.dumps(config).encode())
    if detail == "all":
        ny, nx = config["y_pixels_in_detector"], config["x_pixels_in_detector"]
        m = mask if mask is not None else np.zeros((ny, nx), np.uint32)
        for htype, arr in (
            ("dflatfield-1.0", np.ones((ny, nx), np.float32)),
            ("dpixelmask-1.0", m.astype(np.uint32)),
            ("dcountrate_table-1.0", np.zeros((2, 16), np.float32)),
        ):
            shape = list(arr.shape[::-1])
            parts += [
                json.dumps({"htype": htype, "shape": shape, "type": str(arr.dtype)}).encode(),
                arr.tobytes(),
            ]
    return parts


def encode_v1_image(
    series: int,
    frame: int,
    array_or_blob: Any,
    *,
    shape: tuple[int, int],
    dtype: np.dtype,
    encoding: str,
    t: float,
) -> list[Any]:
    blob = array_or_blob
    if isinstance(blob, np.ndarray):
        if encoding == "<":
            blob = np.ascontiguousarray(blob).tobytes()
        else:
            blob = lz4_block_encode(blob) if encoding == "lz4<" else bslz4_encode(blob)
    head = {"htype": "dimage-1.0", "series": series, "frame": frame, "hash": ""}
    d = {
        "htype": "dimage_d-1.0",
        "shape": [shape[1], shape[0]],
        "type": np.dtype(dtype).name,
        "encoding": encoding,
        "size": len(blob),
    }
    cfg = {
        "htype": "dconfig-1.0",
        "start_time": int(t * 1e9),
        "stop_time": int(t * 1e9) + 1000,
        "real_time": 1000,
    }
    return [json.dumps(head).encode(), json.dumps(d).encode(), blob, json.dumps(cfg).encode()]


def encode_v1_end(series: int) -> list[bytes]:
    return [json.dumps({"htype": "dseries_end-1.0", "series": series}).encode()]


def encode_v2_start(series: int, config: dict) -> bytes:
    return cbor2.dumps(
        {"type": "start", "series_id": series, "series_unique_id": f"xlive-{series}", **config}
    )


def encode_v2_image(
    series: int, frame: int, blob: bytes, *, shape: tuple[int, int], dtype: np.dtype, t: float
) -> bytes:
    elem = np.dtype(dtype).itemsize
    data = cbor2.CBORTag(
        40,
        [
            list(shape),
            cbor2.CBORTag(
                DTYPE_TAGS[
                    np.dtype(dtype).newbyteorder("<").str if elem > 1 else np.dtype(dtype).str
                ],
                cbor2.CBORTag(56500, ["bslz4", elem, blob]),
            ),
        ],
    )
    num = int(round(t * 1e6))
    return cbor2.dumps(
        {
            "type": "image",
            "series_id": series,
            "series_unique_id": f"xlive-{series}",
            "image_id": frame,
            "start_time": [num, 1000000],
            "stop_time": [num + 1000, 1000000],
            "real_time": [1000, 1000000],
            "data": {"threshold_1": data},
        }
    )


def encode_v2_end(series: int) -> bytes:
    return cbor2.dumps({"type": "end", "series_id": series, "series_unique_id": f"xlive-{series}"})
