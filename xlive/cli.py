"""The ``xlive`` command: thin subcommands that parse, call the library and print."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .errors import XliveError


def _floats(text: str, n: int, what: str) -> tuple[float, ...]:
    try:
        vals = tuple(float(v) for v in text.replace(",", " ").split())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{what} needs {n} numbers, got {text!r}") from None
    if len(vals) != n:
        raise argparse.ArgumentTypeError(f"{what} needs {n} numbers, got {len(vals)}")
    return vals


def _unit_cell(text: str) -> tuple[float, ...]:
    return _floats(text, 6, "--unit-cell (a,b,c,alpha,beta,gamma)")


def _ranges(text: str) -> tuple[tuple[int, int], ...]:
    out = []
    for part in filter(None, text.split(",")):
        try:
            a, b = (int(v) for v in part.split(":"))
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"--jet-loss takes START:STOP frame ranges separated by commas, got {part!r}"
            ) from None
        out.append((a, b))
    return tuple(out)


def add_simulation_options(p: argparse.ArgumentParser, *, frames: int, rate: float,
                           detector: str) -> None:
    from .detectors import DETECTORS

    p.add_argument("--frames", type=int, default=frames, help="frames to write (default %(default)s)")
    p.add_argument("--rate", type=float, default=rate,
                   help="frames per second; 0 writes as fast as possible (default %(default)s)")
    p.add_argument("--detector", choices=list(DETECTORS), default=detector,
                   help="detector model (default %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default %(default)s)")
    g = p.add_argument_group("what happens in the run")
    g.add_argument("--hit-fraction", type=float, default=0.3, help="fraction of crystal hits")
    g.add_argument("--unit-cell", type=_unit_cell, default=(79.1, 79.1, 37.9, 90, 90, 90),
                   help="a,b,c,alpha,beta,gamma in Å and degrees (default lysozyme)")
    g.add_argument("--wavelength", type=float, default=1.0, help="wavelength in Å")
    g.add_argument("--distance", type=float, default=None, help="detector distance in m")
    g.add_argument("--ice-fraction", type=float, default=0.0, help="fraction of frames with ice")
    g.add_argument("--multi-lattice-fraction", type=float, default=0.0,
                   help="fraction of hits with two lattices")
    g.add_argument("--jet-loss", type=_ranges, default=(),
                   help="frame ranges without jet, e.g. 100:200,500:550")
    g.add_argument("--dose-decay", type=float, default=0.0,
                   help="relative decay of diffraction per frame (sample dying)")
    g.add_argument("--laser-on-fraction", type=float, default=0.0,
                   help="fraction of frames with the pump laser on")
    g.add_argument("--dropped-fraction", type=float, default=0.0,
                   help="fraction of frames the detector drops")


def simulation_params(args: argparse.Namespace):
    from .simulate import SimParams

    return SimParams(
        detector=args.detector, seed=args.seed, hit_fraction=args.hit_fraction,
        unit_cell=tuple(args.unit_cell), wavelength=args.wavelength, distance=args.distance,
        ice_fraction=args.ice_fraction, multi_lattice_fraction=args.multi_lattice_fraction,
        jet_loss=args.jet_loss, dose_decay=args.dose_decay,
        laser_on_fraction=args.laser_on_fraction, dropped_fraction=args.dropped_fraction,
    )


def cmd_simulate(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .simulate import write_run
    from .simulate.run import check_options

    params = simulation_params(args)
    check_options(frames=args.frames, rate=args.rate, fmt=args.format,
                  frames_per_file=args.frames_per_file, out=args.out, overwrite=args.overwrite)
    with tqdm(total=args.frames, unit="frame", desc=f"simulate {args.format}",
              disable=args.quiet) as bar:
        summary = write_run(
            args.out, frames=args.frames, rate=args.rate, fmt=args.format, name=args.name,
            overwrite=args.overwrite, frames_per_file=args.frames_per_file, params=params,
            progress=bar.update,
        )
    print(f"wrote {summary.frames} frames ({summary.dropped} dropped by the detector) to "
          f"{summary.path} at {summary.rate:.1f} frames/s")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from .simulate import FORMATS

    parser = argparse.ArgumentParser(
        prog="xlive", description="Live analysis of serial crystallography runs.")
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("simulate", help="write a simulated run, progressively, at a frame rate",
                       description="Write a simulated serial-crystallography run with ground "
                                   "truth, at a frame rate, so that other processes can read it "
                                   "while it grows.")
    p.add_argument("out", help="output folder (must be new or empty unless --overwrite)")
    p.add_argument("--format", choices=FORMATS, default="zarr", help="file format (default zarr)")
    add_simulation_options(p, frames=200, rate=100.0, detector="eiger4m")
    p.add_argument("--name", default="run", help="file name stem for eiger-h5 and cbf")
    p.add_argument("--frames-per-file", type=int, default=100,
                   help="frames per Eiger data file (default %(default)s)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run in OUT")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_simulate)

    from . import cli_commands

    cli_commands.register(sub)
    from . import cli_outputs; cli_outputs.register(sub)  # noqa: E702, I001
    from . import cli_views; cli_views.register(sub)  # noqa: E702, I001
    from . import cli_logbook; cli_logbook.register(sub)  # noqa: E702, I001
    return parser


def _version() -> str:
    from . import __version__

    return f"xlive {__version__}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except XliveError as e:
        parser.exit(2, f"xlive {args.command}: error: {e}\n")
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
