"""Replay frames as an Eiger zeromq stream (V1 or V2) from a PUSH socket, for tests and demos.

Frames come from a Zarr run (``--zarr run.zarr``, e.g. simulator output), an xlive run folder,
the real captures in ``shared/realdata/eiger_stream_captures`` (``--capture DIR``), or are
synthesised (``--synthetic eiger4m``). They are compressed once and cycled, so the sender is
cheap enough for rate tests. It stops by itself: after ``--series`` series, or when nobody
takes a message for ``--timeout`` seconds.

    python -m xlive.sources.stream.sender --bind tcp://127.0.0.1:5555 --synthetic eiger1m \\
        --frames 100 --rate 200 --protocol 1
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import zmq

from ...geometry.detectors import get_detector
from .._bslz4 import bslz4_encode
from .protocol import (
    decode_v2,
    encode_v1_end,
    encode_v1_header,
    encode_v1_image,
    encode_v2_end,
    encode_v2_image,
    encode_v2_start,
)


def synthetic_frames(
    detector: str, count: int, seed: int = 0, dtype: str = "uint16"
) -> list[np.ndarray]:
    """Sparse Poisson frames with detector gaps (gap value = dtype max)."""
    det = get_detector(detector)
    dtype = np.dtype(dtype)
    rng = np.random.default_rng(seed)
    gaps = det.gap_mask()
    out = []
    for _ in range(count):
        f = rng.poisson(0.05, det.shape).astype(dtype)
        f[gaps] = np.iinfo(dtype).max
        out.append(f)
    return out


def zarr_frames(path: str, count: int, dtype: str | None = None) -> list[np.ndarray]:
    """The first ``count`` frames of a Zarr run (as ``dtype`` pixels: :func:`as_pixels`)."""
    import zarr

    g = zarr.open_group(path, mode="r")
    n = int(g.attrs.get("frames_complete", g["frames"].shape[0]))
    return [as_pixels(np.asarray(g["frames"][i]), dtype) for i in range(min(n, count))]


def as_pixels(frame: np.ndarray, dtype: str | None) -> np.ndarray:
    """``frame`` as an EIGER in that bit depth gives it: unsigned ``dtype`` pixels, values it
    cannot hold (counts above 2**n - 2, the wider type's gap marker) at its maximum, the
    gap/overflow marker (an EIGER 4M streams 16-bit pixels: 65535)."""
    if dtype is None or frame.dtype == np.dtype(dtype):
        return frame
    top = np.iinfo(np.dtype(dtype)).max
    return np.clip(frame, 0, top).astype(dtype)


def load_frames(args: argparse.Namespace) -> tuple[list, tuple[int, int], np.dtype, dict]:
    """(blobs, shape, dtype, detector config) for the chosen frame origin."""
    cfg = {
        "beam_center_x": 0.0,
        "beam_center_y": 0.0,
        "detector_distance": 0.1,
        "wavelength": 1.0,
        "x_pixel_size": 75e-6,
        "description": "xlive stream sender",
    }
    if args.capture:
        blob = (Path(args.capture) / "stream1" / "frame_sample").read_bytes()
        shape, dtype = (4362, 4148), np.dtype("uint16")
        if args.protocol == 2:
            img = decode_v2((Path(args.capture) / "stream2" / "image.cbor").read_bytes())
            blob, shape, dtype = img.blob, img.shape, img.dtype
        cfg.update(
            beam_center_x=2049.38,
            beam_center_y=2163.62,
            detector_distance=0.15,
            wavelength=0.918381073013,
        )
        blobs = [blob]
    else:
        if args.zarr:
            frames = zarr_frames(args.zarr, args.distinct, args.dtype)
            run = Path(args.zarr).parent / "xlive-run.json"
            if run.exists():
                geom = json.loads(run.read_text())["geometry"]
                p = geom["panels"][0]
                cfg.update(
                    beam_center_x=-p["corner_x"],
                    beam_center_y=-p["corner_y"],
                    detector_distance=geom["distance"],
                    wavelength=geom["wavelength"],
                    x_pixel_size=p["pixel_size"],
                )
        else:
            frames = synthetic_frames(
                args.synthetic, args.distinct, args.seed, args.dtype or "uint16"
            )
        shape, dtype = frames[0].shape, frames[0].dtype
        blobs = frames if args.encoding in ("lz4<", "<") else [bslz4_encode(f) for f in frames]
    cfg.update(
        x_pixels_in_detector=shape[1],
        y_pixels_in_detector=shape[0],
        image_size_x=shape[1],
        image_size_y=shape[0],
        pixel_size_x=cfg["x_pixel_size"],
        incident_wavelength=cfg["wavelength"],
    )
    return blobs, shape, dtype, cfg


def send(args: argparse.Namespace) -> dict:
    """Send the series; returns counts (sent, skipped) per series."""
    blobs, shape, dtype, cfg = load_frames(args)
    ctx = zmq.Context()
    sock = ctx.socket(zmq.PUSH)
    sock.setsockopt(zmq.SNDTIMEO, int(args.timeout * 1000))
    sock.setsockopt(zmq.LINGER, int(args.timeout * 1000))
    sock.setsockopt(zmq.SNDHWM, 0)
    sock.bind(args.bind)
    skip = {int(s) for s in args.skip.split(",") if s} if args.skip else set()
    enc = args.encoding or ("bs16-lz4<" if dtype.itemsize == 2 else "bs32-lz4<")
    if enc.startswith("bs"):
        enc = f"bs{dtype.itemsize * 8}-lz4<"
    stats = {"sent": 0, "skipped": 0, "no_receiver": 0}
    t0, cpu0 = time.monotonic(), time.process_time()
    try:
        for s in range(args.series):
            series = args.first_series + s
            try:
                if args.protocol == 1:
                    sock.send_multipart(
                        encode_v1_header(series, args.header_detail, cfg, None),
                        flags=zmq.NOBLOCK if args.no_wait else 0,
                    )
                else:
                    sock.send(
                        encode_v2_start(series, cfg), flags=zmq.NOBLOCK if args.no_wait else 0
                    )
            except zmq.Again:
                if not args.no_wait:
                    raise
                stats["headers_lost"] = stats.get("headers_lost", 0) + 1
            for i in range(args.frames):
                if i in skip:
                    stats["skipped"] += 1
                    continue
                if args.rate > 0:
                    done = stats["sent"] + stats["no_receiver"]
                    delay = t0 + done / args.rate - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                blob = blobs[i % len(blobs)]
                t = time.time()
                flags = zmq.NOBLOCK if args.no_wait else 0
                try:
                    if args.protocol == 1:
                        sock.send_multipart(
                            encode_v1_image(
                                series, i, blob, shape=shape, dtype=dtype, encoding=enc, t=t
                            ),
                            flags=flags,
                            copy=False,
                        )
                    else:
                        sock.send(
                            encode_v2_image(series, i, blob, shape=shape, dtype=dtype, t=t),
                            flags=flags,
                            copy=False,
                        )
                except zmq.Again:
                    if not args.no_wait:
                        raise
                    stats["no_receiver"] += 1  # a detector does not wait: the frame is lost
                    continue
                stats["sent"] += 1
            sock.send_multipart(encode_v1_end(series)) if args.protocol == 1 else sock.send(
                encode_v2_end(series)
            )
    except zmq.Again:
        stats["error"] = f"nobody received for {args.timeout} s"
    finally:
        sock.close()  # lingers until queued messages are out (or the timeout)
        ctx.term()  # before the interpreter frees zero-copy buffers
    stats["seconds"] = time.monotonic() - t0
    # this process's CPU (user + system, all threads) while sending (not loading the frames)
    stats["cpu_seconds"] = time.process_time() - cpu0
    return stats


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--bind", required=True, help="tcp://127.0.0.1:PORT to bind the PUSH socket")
    p.add_argument("--protocol", type=int, choices=(1, 2), default=1)
    src = p.add_mutually_exclusive_group()
    src.add_argument("--zarr", help="Zarr run whose frames to replay")
    src.add_argument("--capture", help="eiger_stream_captures folder (real blobs)")
    src.add_argument("--synthetic", default="eiger500k", help="detector model for synthetic frames")
    p.add_argument("--frames", type=int, default=10, help="frames per series")
    p.add_argument("--distinct", type=int, default=4, help="distinct frames to cycle through")
    p.add_argument("--series", type=int, default=1, help="number of series to send")
    p.add_argument("--first-series", type=int, default=1)
    p.add_argument("--rate", type=float, default=0.0, help="frames/s (0: as fast as possible)")
    p.add_argument("--skip", default="", help="comma-separated frame numbers not to send")
    p.add_argument("--encoding", default=None, help="V1: bs16-lz4<, bs32-lz4<, lz4<, <")
    p.add_argument("--header-detail", default="basic", choices=("none", "basic", "all"))
    p.add_argument("--timeout", type=float, default=20.0, help="give up after S s without a reader")
    p.add_argument(
        "--no-wait",
        action="store_true",
        help="like a detector, drop headers and frames while no receiver takes them "
        "(the end of series still waits up to --timeout)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--dtype",
        default=None,
        choices=("uint8", "uint16", "uint32"),
        help="pixel type sent (synthetic frames: default uint16; --zarr: default the run's; "
        "values the type cannot hold are sent as its maximum, the gap/overflow marker)",
    )
    return p


def main(argv: list[str] | None = None) -> None:
    stats = send(parser().parse_args(argv))
    print(json.dumps(stats), flush=True)


if __name__ == "__main__":
    main()
