"""Wrong values on the command line give one line saying what to fix, not a traceback or a
misleading "free space or fix the permissions"."""

from __future__ import annotations

import dask
import dask.array
import pytest
from xlive_testing import run_xlive

from xlive.cli.main import build_parser
from xlive.errors import ConfigError, SourceError, XliveError


@pytest.mark.parametrize(
    "argv, says",
    [
        (["serve", "run", "--port", "-1"], "argument --port: --port must be >= 0, got -1"),
        (["serve", "run", "--port", "70000"], "--port must be <= 65535, got 70000"),
        (["serve", "run", "--sample", "0"], "argument --sample: --sample must be > 0"),
        (["serve", "run", "--timeout", "nan"], "--timeout must be a finite number"),
        (["process", "run", "--out", "f.zarr", "--timeout", "-1"], "--timeout must be >= 0"),
    ],
)
def test_out_of_range_options_refused_by_the_parser(argv, says, capsys):
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(argv)
    assert exc.value.code == 2
    assert says in capsys.readouterr().err


@pytest.mark.parametrize("address", ["999.1.1.1", "192.0.2.1"])  # no such name; not ours
def test_serve_on_an_address_not_of_this_machine_says_so(address):
    from xlive.views.app import serve_session

    with pytest.raises(XliveError, match=f"cannot listen on {address} .* --address 127.0.0.1"):
        serve_session(object(), address=address, port=0)  # fails before the page is built


def test_scheduler_that_is_no_address():
    from xlive.engine.cluster import make_client

    with pytest.raises(ConfigError, match="cannot connect to the dask scheduler nonsense"):
        make_client(scheduler="nonsense")
    # the client that failed to connect is not left as the default: dask computations after
    # it (here the threaded scheduler's) used to wait for it forever
    assert dask.config.get("scheduler", None) is None
    assert dask.array.ones(3).sum().compute() == 3


def test_a_failed_scheduler_keeps_the_users_default_client():
    from distributed import Client, default_client

    from xlive.engine.cluster import make_client

    with (
        dask.config.set({"distributed.comm.timeouts.connect": "2s"}),
        Client(processes=False, dashboard_address=None, n_workers=1) as mine,
    ):
        with pytest.raises(ConfigError, match="cannot connect to the dask scheduler"):
            make_client(scheduler="tcp://127.0.0.1:1")
        # the exception kept (as a notebook keeps the last traceback) keeps the failed client
        # alive: it must be closed all the same
        with pytest.raises(ConfigError, match="dask scheduler nonsense") as failed:
            make_client(scheduler="nonsense")
        assert default_client() is mine  # the user's client stays the default
        assert dask.array.ones(3).sum().compute() == 3
    # the user's client closed: no client that never connected is left as the default
    with pytest.raises(ValueError, match="No clients found"):
        default_client()
    assert failed.value is not None


def test_stream_address_without_port():
    from xlive.sources.stream.receiver import StreamSource

    with pytest.raises(SourceError, match="'tcp://nohost' must look like tcp://HOST:PORT"):
        StreamSource("tcp://nohost")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    path = tmp_path_factory.mktemp("run") / "run"
    run_xlive("simulate", str(path), "--frames", "3", "--rate", "0", "--detector", "eiger500k")
    return path


def test_out_that_is_no_feature_store(run, tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "data.h5").write_text("x")
    for out in (tmp_path / "notes.txt", tmp_path / "folder", run):  # the run itself too
        res = run_xlive("process", str(run), "--out", str(out), check=False)
        assert res.returncode == 2, res.stderr
        (line,) = res.stderr.strip().splitlines()
        assert line.endswith(
            "is not an xlive feature store (no zarr.json in it); give another --out"
        )
    assert (tmp_path / "notes.txt").read_text() == "x"


def test_out_made_empty_beforehand_is_used(run, tmp_path):
    (tmp_path / "f.zarr").mkdir()  # `mkdir f.zarr` first: not an error
    run_xlive("process", str(run), "--out", str(tmp_path / "f.zarr"))
    assert (tmp_path / "f.zarr" / "zarr.json").is_file()
