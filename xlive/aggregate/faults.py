"""Faults of a run that must show: frames unreadable, dropped or missing, stream messages refused.

A run's faults are a small JSON-able dict, kept in the feature store's ``faults`` attribute and
turned into flags by :func:`fault_flags` (the live session, ``xlive process`` and the run summary
all use it), so a run with lost or unreadable frames is never reported green::

    {"unreadable": {"data file 2 (x_data_000002.h5)": 30},   # frames marked bad, by origin
     "dropped": 8, "dropped_ranges": {"segment 0": [[3, 6], [17, 18]]},  # numbering gaps
     "bad_messages": 2, "spool_errors": 0, "last_errors": ["..."]}        # stream receiver
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from .flags import Flag

#: origin label of frames when the source does not split the run into files
WHOLE_RUN = "the run"


def run_faults(source, bad_indices: np.ndarray | list[int]) -> dict:
    """The faults of ``source`` plus the frames found unreadable (``bad_indices``), by origin."""
    try:
        out = dict(source.faults())
    except Exception as exc:  # a fault report must not stop the run it reports on
        out = {"fault_report_error": f"{type(exc).__name__}: {exc}"}
    bad = np.asarray(bad_indices, dtype=np.int64)
    if bad.size:
        origin = getattr(source, "frame_origin", lambda i: None)
        out["unreadable"] = dict(Counter(origin(int(i)) or WHOLE_RUN for i in bad.tolist()))
    return out


def _ranges_text(ranges: dict, limit: int = 4) -> str:
    items = []
    for where, rs in ranges.items():
        for a, b in rs:
            items.append((f"{a}" if b - a == 1 else f"{a}-{b - 1}") + f" in {where}")
    more = f" and {len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


def fault_flags(faults: dict | None) -> list[Flag]:
    """Flags for the faults (empty for a clean run)."""
    faults = faults or {}
    out = []
    unreadable = faults.get("unreadable") or {}
    if unreadable:
        total = sum(unreadable.values())
        where = "; ".join(
            f"{n} frame{'s' if n != 1 else ''} unreadable in {origin}"
            for origin, n in sorted(unreadable.items(), key=lambda kv: -kv[1])
        )
        out.append(
            Flag(
                "frames_unreadable",
                "warning",
                f"{where[0].upper()}{where[1:]} ({total} in all): marked bad, not "
                "analysed. Check for truncated or corrupt files.",
            )
        )
    dropped = int(faults.get("dropped") or 0)
    if dropped:
        ranges = faults.get("dropped_ranges") or {}
        detail = f" (detector frame numbers {_ranges_text(ranges)})" if ranges else ""
        out.append(
            Flag(
                "frames_dropped",
                "warning",
                f"{dropped} frames dropped{detail}: never received from the detector. "
                "Check the detector stream, the network and that the receiver ran.",
            )
        )
    bad_messages = int(faults.get("bad_messages") or 0)
    if bad_messages:
        last = (faults.get("last_errors") or [""])[-1]
        out.append(
            Flag(
                "stream_errors",
                "warning",
                f"{bad_messages} malformed stream message{'s' if bad_messages > 1 else ''} "
                f"skipped{' (last: ' + last + ')' if last else ''}. Check the detector's "
                "stream settings.",
            )
        )
    spool_errors = int(faults.get("spool_errors") or 0)
    if spool_errors:
        out.append(
            Flag(
                "spool_errors",
                "error",
                f"{spool_errors} stream messages could not be written to the spool "
                "(disk full or not writable?): those frames are lost.",
            )
        )
    if faults.get("fault_report_error"):
        out.append(
            Flag(
                "fault_report_error",
                "warning",
                f"Faults could not be counted: {faults['fault_report_error']}",
            )
        )
    return out


def merge_flags(flags: list[Flag], faults: dict | None) -> list[Flag]:
    """``flags`` with the fault flags added; a fault flag replaces a rule's flag of its name
    (the fault counts cover the whole run, the rules only their recent window)."""
    extra = fault_flags(faults)
    names = {f.name for f in extra}
    return [f for f in flags if f.name not in names] + extra


def faults_text(faults: dict | None) -> list[str]:
    """One line per fault, for the command line."""
    return [f"[{f.severity}] {f.message}" for f in fault_flags(faults)]
