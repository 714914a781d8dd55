"""``xlive simulate``: write a simulated run; the simulation options ``demo`` shares."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

#: slowest frame rate accepted (one frame per hour); 0 means as fast as possible
MIN_RATE = 1 / 3600


def _floats(text: str, n: int, what: str) -> tuple[float, ...]:
    try:
        vals = tuple(float(v) for v in text.replace(",", " ").split())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{what} needs {n} numbers, got {text!r}") from None
    if len(vals) != n:
        raise argparse.ArgumentTypeError(f"{what} needs {n} numbers, got {len(vals)}")
    return vals


def positive_int(option: str, low: int = 1, high: int | None = None) -> Callable[[str], int]:
    """argparse type: an integer in [low, high] (the message names the option)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{option} needs an integer, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"{option} must be >= {low}, got {value}")
        if high is not None and value > high:
            raise argparse.ArgumentTypeError(f"{option} must be <= {high}, got {value}")
        return value

    parse.__name__ = "integer"
    return parse


def number(
    option: str, *, low: float | None = None, high: float | None = None, low_open: bool = False
) -> Callable[[str], float]:
    """argparse type: a finite number in [low, high] ((low, high] with ``low_open``)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{option} needs a number, got {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{option} must be a finite number, got {text!r}")
        if low is not None and (value < low or (low_open and value == low)):
            raise argparse.ArgumentTypeError(
                f"{option} must be {'>' if low_open else '>='} {low:g}, got {text}"
            )
        if high is not None and value > high:
            raise argparse.ArgumentTypeError(f"{option} must be <= {high:g}, got {text}")
        return value

    parse.__name__ = "number"
    return parse


def _rate(text: str) -> float:
    """--rate: 0 (as fast as possible) or a finite rate of at least one frame per hour."""
    value = number("--rate", low=0)(text)
    if 0 < value < MIN_RATE:
        raise argparse.ArgumentTypeError(
            f"--rate must be 0 (as fast as possible) or at least {MIN_RATE:g} frames/s "
            f"(one per hour), got {text}"
        )
    return value


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


class _Given(argparse.Action):
    """Store the value and remember that the user gave the option (it wins over a preset)."""

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, values)
        namespace.given_options = {*getattr(namespace, "given_options", ()), self.dest}


def add_simulation_options(
    p: argparse.ArgumentParser, *, frames: int, rate: float, detector: str
) -> None:
    from ..geometry.detectors import DETECTORS, INTEGRATING
    from ..simulate.params import PRESETS

    p.add_argument(
        "--frames",
        type=positive_int("--frames", 0),
        default=frames,
        help="frames to write (default %(default)s)",
    )
    p.add_argument(
        "--rate",
        type=_rate,
        default=rate,
        help="frames per second; 0 writes as fast as possible (default %(default)s)",
    )
    p.add_argument(
        "--detector",
        choices=[*DETECTORS, *INTEGRATING],
        default=detector,
        help="detector model (default %(default)s; jungfrau*/agipd* are integrating "
        "multi-panel detectors: float ADU/keV, --format zarr, .geom beside)",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (default %(default)s)")
    g = p.add_argument_group("what happens in the run")
    g.add_argument(
        "--preset",
        choices=list(PRESETS),
        default="default",
        help="a named set of the options below: 'hard' gives broad weak spots (σ 1.5-3.5 px), "
        "a crowded 250 Å cell, bandwidth streaks, zingers and hot pixels outside the mask; "
        "options given on the command line win (default %(default)s)",
    )
    g.add_argument(
        "--hit-fraction",
        action=_Given,
        type=number("--hit-fraction", low=0, high=1),
        default=0.3,
        help="fraction of crystal hits",
    )
    g.add_argument(
        "--unit-cell",
        action=_Given,
        type=_unit_cell,
        default=(79.1, 79.1, 37.9, 90, 90, 90),
        help="a,b,c,alpha,beta,gamma in Å and degrees (default lysozyme)",
    )
    g.add_argument(
        "--wavelength",
        action=_Given,
        type=number("--wavelength", low=0, low_open=True),
        default=1.0,
        help="wavelength in Å",
    )
    g.add_argument(
        "--distance",
        action=_Given,
        type=number("--distance", low=0, low_open=True),
        default=None,
        help="detector distance in m",
    )
    g.add_argument(
        "--ice-fraction",
        action=_Given,
        type=number("--ice-fraction", low=0, high=1),
        default=0.0,
        help="fraction of frames with ice",
    )
    g.add_argument(
        "--multi-lattice-fraction",
        action=_Given,
        type=number("--multi-lattice-fraction", low=0, high=1),
        default=0.0,
        help="fraction of hits with two lattices",
    )
    g.add_argument(
        "--jet-loss",
        action=_Given,
        type=_ranges,
        default=(),
        help="frame ranges without jet, e.g. 100:200,500:550",
    )
    g.add_argument(
        "--dose-decay",
        action=_Given,
        type=number("--dose-decay", low=0, high=1),
        default=0.0,
        help="relative decay of diffraction per frame (sample dying)",
    )
    g.add_argument(
        "--laser-on-fraction",
        action=_Given,
        type=number("--laser-on-fraction", low=0, high=1),
        default=0.0,
        help="fraction of frames with the pump laser on",
    )
    g.add_argument(
        "--dropped-fraction",
        action=_Given,
        type=number("--dropped-fraction", low=0, high=1),
        default=0.0,
        help="fraction of frames the detector drops",
    )


def simulation_params(args: argparse.Namespace):
    """The :class:`~xlive.simulate.SimParams` of the options: the preset's values, except for
    the options given on the command line."""
    from ..simulate import SimParams
    from ..simulate.params import PRESETS

    values = dict(
        detector=args.detector,
        seed=args.seed,
        hit_fraction=args.hit_fraction,
        unit_cell=tuple(args.unit_cell),
        wavelength=args.wavelength,
        distance=args.distance,
        ice_fraction=args.ice_fraction,
        multi_lattice_fraction=args.multi_lattice_fraction,
        jet_loss=args.jet_loss,
        dose_decay=args.dose_decay,
        laser_on_fraction=args.laser_on_fraction,
        dropped_fraction=args.dropped_fraction,
    )
    preset = getattr(args, "preset", "default")
    given = getattr(args, "given_options", set())
    values = {k: v for k, v in values.items() if k in given or k not in PRESETS[preset]}
    return SimParams.preset(preset, **values)


def cmd_simulate(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ..simulate import write_run
    from ..simulate.run import check_options

    params = simulation_params(args)
    check_options(
        frames=args.frames,
        rate=args.rate,
        fmt=args.format,
        frames_per_file=args.frames_per_file,
        out=args.out,
        overwrite=args.overwrite,
    )
    with tqdm(
        total=args.frames, unit="frame", desc=f"simulate {args.format}", disable=args.quiet
    ) as bar:
        summary = write_run(
            args.out,
            frames=args.frames,
            rate=args.rate,
            fmt=args.format,
            name=args.name,
            overwrite=args.overwrite,
            frames_per_file=args.frames_per_file,
            params=params,
            progress=bar.update,
        )
    print(
        f"wrote {summary.frames} frames ({summary.dropped} dropped by the detector) to "
        f"{summary.path} at {summary.rate:.1f} frames/s"
    )
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``simulate`` subcommand to the ``xlive`` parser."""
    from ..simulate.params import FORMATS

    p = sub.add_parser(
        "simulate",
        help="write a simulated run, progressively, at a frame rate",
        description="Write a simulated serial-crystallography run with ground "
        "truth, at a frame rate, so that other processes can read it "
        "while it grows.",
    )
    p.add_argument("out", help="output folder (must be new or empty unless --overwrite)")
    p.add_argument("--format", choices=FORMATS, default="zarr", help="file format (default zarr)")
    add_simulation_options(p, frames=200, rate=100.0, detector="eiger4m")
    p.add_argument("--name", default="run", help="file name stem for eiger-h5 and cbf")
    p.add_argument(
        "--frames-per-file",
        type=positive_int("--frames-per-file"),
        default=100,
        help="frames per Eiger data file (default %(default)s)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing run in OUT")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_simulate)
