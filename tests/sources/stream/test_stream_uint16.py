"""16-bit EIGER frames over the stream into the live loop: spooled, decoded, analysed, stored.

Real EIGER streams carry 16-bit pixels (both captures in realdata are ``bs16-lz4``), where 65535
marks gaps, bad pixels and overflows. Frames go from a sender process over zeromq on 127.0.0.1
to the receiver process that ``open_source("tcp://...")`` starts, and through the live loop;
everything is checked against numpy on the frames as sent.
"""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import zarr

from xlive.aggregate._kernels import project_ref
from xlive.aggregate.reducers import ProjectionReducer
from xlive.analyzers import default_analyzers
from xlive.engine.live import LiveParams, LiveProcessor, default_client
from xlive.engine.store import DONE, open_features
from xlive.simulate import SimParams, Simulation
from xlive.sources import open_source

from ..conftest import free_port, start_python

pytestmark = pytest.mark.network

N = 6


@pytest.fixture(scope="module")
def frames32():
    """Simulated 32-bit frames with counts a 16-bit pixel cannot hold, and the 32-bit gaps."""
    sim = Simulation(SimParams(detector="eiger500k", seed=3, hit_fraction=0.5))
    out = []
    rng = np.random.default_rng(0)
    for i in range(N):
        f = np.array(sim.frame(i)[0], np.uint32)
        ys, xs = rng.integers(0, f.shape[0], 40), rng.integers(0, f.shape[1], 40)
        f[ys[:10], xs[:10]] = 70_000  # overflow in 16 bits
        f[ys[10:20], xs[10:20]] = 65_535  # exactly the 16-bit marker
        f[ys[20:30], xs[20:30]] = 65_534  # the largest 16-bit count: valid
        out.append(f)
    return np.stack(out)


def test_uint16_stream_through_the_live_loop_equals_numpy(tmp_path, frames32):
    run = zarr.open_group(str(tmp_path / "run.zarr"), mode="w")
    run.create_array("frames", data=frames32, chunks=(1, *frames32.shape[1:]))
    run.attrs["frames_complete"] = N
    address = f"tcp://127.0.0.1:{free_port()}"
    src = open_source(address, spool=tmp_path / "spool.zarr")  # the receiver process
    client = default_client(1)
    try:
        sender = start_python(
            ["-m", "xlive.sources.stream.sender", "--bind", address, "--zarr"]
            + [str(tmp_path / "run.zarr"), "--frames", str(N), "--distinct", str(N)]
            + ["--dtype", "uint16", "--protocol", "1", "--timeout", "20"]
        )
        out, err = sender.communicate(timeout=60)
        assert sender.returncode == 0, err
        assert json.loads(out.strip().splitlines()[-1])["sent"] == N
        for _ in range(300):  # the receiver publishes within 0.1 s
            if src.refresh() >= N:
                break
            time.sleep(0.05)
        # numpy reference: what a 16-bit EIGER sends
        ref = np.where(frames32 > 65535, 65535, frames32).astype(np.uint16)
        assert (ref == 65535).sum() > 40  # the 32-bit gaps and the overflows
        geometry = src.geometry  # the stream header's: 65535 is the marker (dtype maximum)
        assert geometry.valid_range(np.uint16) == (0.0, 65534.0)
        analyzers = default_analyzers(geometry)
        reducer = ProjectionReducer(geometry, stride=1)  # every frame into the mean image
        parts = []
        with LiveProcessor(
            src,
            tmp_path / "f.zarr",
            client=client,
            analyzers=analyzers,
            reducers=[reducer],
            listeners=[lambda block, meta: parts.append(block.partials.get("projections"))],
            params=LiveParams(poll_interval=0.05, partials_interval=0),
        ) as lp:
            for _ in range(600):
                lp.step()
                if lp.stats.frames_stored >= N:
                    break
        assert src.reader.dtype == np.uint16
        for i in range(N):
            np.testing.assert_array_equal(src.reader.read_one(i), ref[i])
        ds = open_features(tmp_path / "f.zarr", computed_only=False)
        assert (ds.status.values == DONE).all() and ds.sizes["frame"] == N
        valid = ~geometry.maps.mask
        for i in range(N):
            expect = {}
            for an in analyzers:  # the same analyzers on the numpy frame, in this process
                expect.update(an(ref[i][None]))
            for name in ("n_spots", "total_intensity", "is_hit", "background"):
                np.testing.assert_array_equal(ds[name].values[i], expect[name][0], err_msg=name)
            np.testing.assert_array_equal(ds.radial_profile.values[i], expect["radial_profile"][0])
            # 65535 is never counted: total intensity = numpy's sum of the valid pixels
            good = valid & (ref[i] <= 65534)
            assert ds.total_intensity.values[i] == pytest.approx(float(ref[i][good].sum()))
        # the mean image (binned sums) over all frames, against numpy; 65535 left out
        proj = parts[0]
        for p in parts[1:]:
            proj = proj + p if p is not None else proj
        assert proj.n_all == N
        expect_sum = sum(
            project_ref(ref[i], valid, 0.0, 65534.0, reducer.factor)[0] for i in range(N)
        )
        np.testing.assert_allclose(proj.sum_all, expect_sum)
    finally:
        src.close()
        client.close()
        client.cluster.close()
    assert src.receiver.summary.startswith(f"received {N} frames")
