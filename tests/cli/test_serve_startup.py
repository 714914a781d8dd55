"""``xlive serve`` parses its options without importing the other subcommands' modules."""

from __future__ import annotations

import subprocess
import sys

from xlive.cli.main import build_parser

ARGV = [
    "serve",
    "run",
    "--port",
    "0",
    "--sample",
    "0.5",
    "--features",
    "f.zarr",
    "--cluster",
    "local",
]


def test_serve_parses_alike_with_its_own_group_alone():
    quick = vars(build_parser("serve").parse_args(ARGV))
    whole = vars(build_parser().parse_args(ARGV))
    assert quick == whole
    assert quick["func"].__name__ == "cmd_serve"


def test_serve_parser_leaves_the_simulator_unimported():
    code = (
        "import sys; from xlive.cli.main import build_parser; build_parser({!r}); "
        "print('xlive.simulate' in sys.modules, 'scipy.special' in sys.modules)"
    )
    quick = subprocess.run(
        [sys.executable, "-c", code.format("serve")], capture_output=True, text=True, check=True
    )
    assert quick.stdout.split() == ["False", "False"], quick.stdout + quick.stderr
    whole = subprocess.run(
        [sys.executable, "-c", code.format(None)], capture_output=True, text=True, check=True
    )
    assert whole.stdout.split()[0] == "True"  # what the quick parser spares


def test_serve_starts_a_session_on_a_run_folder_without_fabio_or_h5py(tmp_path):
    """Opening an xlive run folder and building its session (what `xlive serve` does before
    the first frame) imports no image-file reader (fabio: ~0.1 s of the start-up) and no HDF5
    (h5py: the registry imports the in-tree source modules only when no specific built-in
    source takes the target), nor zeromq (the stream and karabo sources open only
    tcp:// and karabo:// addresses: not imported to be asked). Its first block (here one frame,
    as `xlive serve` takes it) is analysed and stored with no dask cluster
    and without importing dask.distributed (~0.5 s), which the next step starts."""
    from xlive.simulate import write_run

    run = tmp_path / "run"
    write_run(run, frames=2, rate=0, detector="eiger500k", seed=1)
    code = (
        "import sys; from xlive.cli.main import build_parser; "
        "from xlive.cli.serve import _start_session; "
        f"args = build_parser('serve').parse_args(['serve', {str(run)!r}, '--port', '0']); "
        "source, session = _start_session(args); "
        "print('fabio' in sys.modules or 'h5py' in sys.modules, "
        "'zmq' in sys.modules or 'xlive.sources.karabo' in sys.modules); "
        "p = session.processor; print(p.first_block_here(1), 'distributed' in sys.modules); "
        "p.step(); print(p.stats.frames_stored, 'distributed' in sys.modules); "
        "session.close(); source.close()"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split()[-6:] == ["False", "False", "1", "False", "2", "True"], (
        out.stdout + out.stderr
    )
