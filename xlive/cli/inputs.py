"""What the analysing commands record about their inputs, and the geometry plan of
``--geometry``, ``--mask`` and the configuration's ``[geometry]`` table (the options themselves
are added by :func:`xlive.cli.process.add_source_options`)."""

from __future__ import annotations

from pathlib import Path


def geometry_plan(args, cfg=None, *, file: bool = True):
    """The :class:`~xlive.geometry.plan.GeometryPlan` of ``--geometry`` (unless ``file`` is
    False: the source was opened with it), ``--mask`` and the ``[geometry]`` values of ``cfg``
    (default: of ``--config``)."""
    from ..geometry.plan import GeometryPlan

    if cfg is None and getattr(args, "config", None):
        from ..config import load_config

        cfg = load_config(args.config)
    geometry = getattr(args, "geometry", None)
    table = dict(getattr(cfg, "geometry", None) or {})
    if not file and geometry:  # the source was opened with --geometry (it beats [geometry] file)
        table.pop("file", None)
        geometry = None
    elif not file:
        geometry = None
    return GeometryPlan.from_options(
        geometry=geometry, mask=getattr(args, "mask", None), table=table
    )


def provenance(args, cfg) -> dict:
    """What a new feature store records about how it was made (besides source, geometry,
    configuration and xlive version, which the live loop adds): the geometry file, mask and
    side table given, so exports reopen the run as it was analysed."""
    plan = geometry_plan(args, cfg)
    if plan is not None and plan.file:
        plan = type(plan)(str(Path(plan.file).absolute()), plan.mask, plan.values)
    if plan is not None and plan.mask:
        plan = type(plan)(plan.file, str(Path(plan.mask).absolute()), plan.values)
    metadata = getattr(args, "metadata", None)
    return {
        "geometry_options": plan.to_dict() if plan else None,
        "metadata_file": str(Path(metadata).absolute()) if metadata else None,
    }
