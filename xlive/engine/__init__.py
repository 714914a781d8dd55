"""The engine: lazy features over a source (:mod:`.features`, the only module that builds dask
graphs), the append-only feature store (:mod:`.store`), the live loop (:mod:`.live`), the
session that ties it to aggregates and flags (:mod:`.session`) and worker set-up
(:mod:`.cluster`)."""
