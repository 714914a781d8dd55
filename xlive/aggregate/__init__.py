"""What a run adds up to: partial aggregates computed beside the features (:mod:`.reducers`,
kernels in :mod:`._kernels`), running aggregates over the stored features (:mod:`.running`),
beam-centre check (:mod:`.beamcheck`) and flags (:mod:`.flags`)."""

from __future__ import annotations

from .running import AggregateParams, RunAggregates

__all__ = ["AggregateParams", "RunAggregates"]
