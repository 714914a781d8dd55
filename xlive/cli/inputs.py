"""What every analysing command takes: ``--geometry``, ``--mask``, ``--metadata``, ``--config``,
``--timeout``; and how it opens the run with them (waiting for a run that does not exist yet)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_analysis_options(p: argparse.ArgumentParser, *, config: bool = True,
                         timeout: bool = True) -> None:
    """Add the geometry, mask, metadata, configuration (and waiting) options to ``p``."""
    g = p.add_argument_group("geometry, mask, metadata and settings")
    g.add_argument("--geometry", metavar="FILE", default=None,
                   help="detector geometry: CrystFEL .geom, pyFAI .poni or NXmx master "
                        "(.h5/.nxs); replaces what the run's headers say")
    g.add_argument("--mask", metavar="FILE", default=None,
                   help="extra mask, nonzero = masked: .npy, an image (CBF, TIFF, EDF...) or "
                        "HDF5 (FILE or FILE:/dataset)")
    g.add_argument("--metadata", metavar="FILE", default=None,
                   help="per-frame side table (CSV or HDF5: timestamps, laser on/off, ...) "
                        "joined by frame (default: metadata.csv or <run>_metadata.csv beside "
                        "the run, when there)")
    if config:
        g.add_argument("--config", metavar="FILE", default=None,
                       help="run configuration (TOML): [geometry] values (distance m, "
                            "wavelength Å, beam_center_x/y px, pixel_size m, file, mask), "
                            "[analyzers.*], [live], [flags], [aggregate]")
    if timeout:
        p.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                       help="wait at most this long for a run that does not exist yet "
                            "(default: no limit)")


def geometry_plan(args, cfg):
    """The :class:`~xlive.geometry.plan.GeometryPlan` of the options and ``[geometry]``."""
    from ..geometry.plan import GeometryPlan

    return GeometryPlan.from_options(geometry=getattr(args, "geometry", None),
                                     mask=getattr(args, "mask", None),
                                     table=getattr(cfg, "geometry", None))


def open_run(target, args, cfg, *, wait: bool):
    """Open ``target`` with the options of ``args`` (a :class:`PendingSource` that waits for
    it when ``wait`` and it does not exist yet)."""
    from ..errors import ConfigError
    from ..sources import open_source
    from ..sources.pending import PendingSource, target_exists

    options = {}
    if getattr(args, "metadata", None):
        if not Path(args.metadata).exists() and not wait:
            raise ConfigError(f"metadata file {args.metadata} does not exist")
        options["metadata"] = args.metadata
    plan = geometry_plan(args, cfg)
    if wait and not target_exists(str(target)):
        source = PendingSource(target, timeout=getattr(args, "timeout", None), **options)
    else:
        source = open_source(target, **options)
    if plan is not None:
        source.geometry_edit = plan
        source._geometry = None
    return source


def provenance(args, cfg) -> dict:
    """What a new feature store records about how it was made (besides source, geometry,
    configuration and xlive version, which the live loop adds)."""
    plan = geometry_plan(args, cfg)
    return {"geometry_options": plan.to_dict() if plan else None,
            "metadata_file": str(Path(args.metadata).absolute())
            if getattr(args, "metadata", None) else None}
