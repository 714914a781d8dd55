"""Flags with memory: when each flag was raised and cleared, and how bad it got.

:class:`FlagTracker` is the one place where flag rules are evaluated along a run, live (a
listener of the live loop) and when a finished feature store is replayed (report, run
database): blocks of features are cut into steps of ``check_every`` analysed frames, the
aggregates are updated step by step, and the windowed rules are evaluated after every step (the
rules over the whole run every ``slow_every`` frames and at the end). So a jet lost for a few
seconds is seen even when the live loop stores large blocks or samples frames, and live and
replay see the same frames through the same windows.

:class:`FlagTimeline` keeps the episodes: ``raised_at`` / ``cleared_at`` frame (None while
still raised), the worst value of the rule's figure and the message at that moment. The live
loop stores the timeline with the features (``FeatureStore.set_flag_timeline``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field

import numpy as np

from .flags import LOWER_IS_WORSE, SLOW_RULES, Flag, FlagThresholds, evaluate, status
from .running import RunAggregates


@dataclass
class FlagEpisode:
    """One stretch of a run during which a flag was raised."""

    name: str
    severity: str
    #: the message at the worst moment
    message: str
    #: frame index at which the rule first fired
    raised_at: int
    #: frame index at which it stopped firing (None: still raised at the last evaluation)
    cleared_at: int | None = None
    #: the worst value of the rule's figure during the episode (None if the rule has none)
    worst: float | None = None
    #: wall-clock times (UNIX seconds) of raising and clearing, when seen live
    raised_time: float | None = None
    cleared_time: float | None = None

    def to_dict(self) -> dict:
        d = asdict(self)
        d["first_frame"] = self.raised_at  # the key older summaries used
        return d

    @classmethod
    def from_dict(cls, d: dict) -> FlagEpisode:
        names = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in d.items() if k in names})

    def describe(self) -> str:
        """``jet_lost (error): frames 104-196, worst 0.05``: one line for summaries."""
        span = (
            f"frames {self.raised_at}-{self.cleared_at}"
            if self.cleared_at is not None
            else f"from frame {self.raised_at} to the end"
        )
        worst = "" if self.worst is None else f", worst {self.worst:.3g}"
        return f"{self.name} ({self.severity}): {span}{worst}"


@dataclass
class FlagTimeline:
    """Episodes of every flag along a run, in the order they were raised."""

    episodes: list[FlagEpisode] = field(default_factory=list)

    def __post_init__(self):
        self._open = {e.name: e for e in self.episodes if e.cleared_at is None}

    def observe(
        self,
        flags: list[Flag],
        frame: int,
        *,
        not_judged: frozenset = frozenset(),
        now: float | None = None,
    ) -> bool:
        """Record the flags firing at ``frame`` (rules in ``not_judged`` were not evaluated:
        their episodes stay as they are).

        Returns True when an episode opened, closed or got worse."""
        changed = False
        firing = {f.name: f for f in flags}
        for name in list(self._open):
            if name not in firing and name not in not_judged:
                ep = self._open.pop(name)
                ep.cleared_at, ep.cleared_time = int(frame), now
                changed = True
        for name, f in firing.items():
            ep = self._open.get(name)
            if ep is None:
                ep = FlagEpisode(
                    f.name, f.severity, f.message, int(frame), worst=f.value, raised_time=now
                )
                self.episodes.append(ep)
                self._open[name] = ep
                changed = True
            elif f.value is not None and (ep.worst is None or _worse(name, f.value, ep.worst)):
                ep.worst, ep.message, ep.severity = f.value, f.message, f.severity
                changed = True
        return changed

    @property
    def open(self) -> list[FlagEpisode]:
        """Episodes still raised."""
        return list(self._open.values())

    def to_list(self) -> list[dict]:
        return [e.to_dict() for e in self.episodes]

    @classmethod
    def from_list(cls, items) -> FlagTimeline:
        return cls([FlagEpisode.from_dict(d) for d in items or ()])

    def status(self) -> str:
        """The run's status over its whole length (the worst flag ever raised)."""
        return status([Flag(e.name, e.severity, e.message) for e in self.episodes])


def _worse(name: str, value: float, than: float) -> bool:
    return value < than if name in LOWER_IS_WORSE else value > than


def split_block(
    block, meta: dict, size: int, first: int | None = None
) -> Iterator[tuple[object, dict]]:
    """``(block, meta)`` of a stored :class:`~xlive.engine.block.Block` in steps of ``size``
    frames (the first step: ``first`` frames); the partial aggregates go with the last step."""
    n = len(block)
    first = size if first is None else max(1, min(first, size))
    if n <= first:
        yield block, meta
        return
    cuts = [0, *range(first, n, size), n]
    for a, b in zip(cuts[:-1], cuts[1:], strict=True):
        sub = block.rows(slice(a, b))
        if b == n:
            sub.partials = block.partials
        yield sub, {k: np.asarray(v)[a:b] for k, v in meta.items()}


class FlagTracker:
    """Aggregates + flag rules + timeline, fed block by block (a live-loop listener).

    Parameters
    ----------
    aggregates
        The run's :class:`~xlive.aggregate.RunAggregates` (updated here).
    thresholds
        Flag thresholds (may be replaced later: ``tracker.thresholds = ...``).
    on_change
        Called with the tracker when the timeline changed (e.g. to store it).
    clock
        Wall clock for the episodes' times (None when replaying a finished run).
    """

    def __init__(
        self,
        aggregates: RunAggregates | None = None,
        thresholds: FlagThresholds | None = None,
        *,
        timeline: FlagTimeline | None = None,
        on_change: Callable[[FlagTracker], None] | None = None,
        rules=None,
        clock: Callable[[], float] | None = time.time,
    ):
        self.aggregates = aggregates if aggregates is not None else RunAggregates()
        self.thresholds = thresholds or FlagThresholds()
        self.timeline = timeline or FlagTimeline()
        #: rules to evaluate (None: the built-in rules and the analyzers' declared flags)
        self.rules = rules
        self.on_change = on_change
        self.clock = clock
        #: the flags firing at the last evaluation
        self.flags: list[Flag] = []
        self.last_frame: int | None = None
        self._since_check = 0
        self._since_slow = 0
        self._slow: list[Flag] = []

    def __call__(self, block, meta: dict) -> None:
        self.update(block, meta)

    def update(self, block, meta: dict) -> None:
        """Add a stored :class:`~xlive.engine.block.Block`: aggregates and flag rules, step by
        step."""
        t = self.thresholds
        now = self.clock() if self.clock else None
        changed = False
        every = max(1, t.check_every)
        # steps end where the count of frames since the start reaches a multiple of
        # check_every, so the rules see the same frames whatever the block sizes
        for sub, sub_meta in split_block(block, meta, every, every - self._since_check):
            self.aggregates.update(sub, sub_meta)
            idx = sub.frames
            self._since_check += idx.size
            self._since_slow += idx.size
            good = idx[sub.good]
            if good.size:
                self.last_frame = max(int(good.max()), self.last_frame or 0)
            if self._since_check >= every:
                changed |= self._check(slow=self._since_slow >= t.slow_every, now=now)
        if changed and self.on_change is not None:
            self.on_change(self)

    def _check(self, *, slow: bool, now: float | None) -> bool:
        t = self.thresholds
        self._since_check = 0
        flags = evaluate(self.aggregates, t, self.rules, skip=SLOW_RULES)
        not_judged = SLOW_RULES
        if slow:
            self._since_slow = 0
            self._slow = evaluate(self.aggregates, t, self.rules, only=SLOW_RULES)
            not_judged = frozenset()
        self.flags = flags + self._slow
        if self.last_frame is None:
            return False
        return self.timeline.observe(self.flags, self.last_frame, not_judged=not_judged, now=now)

    def evaluate_all(self) -> list[Flag]:
        """Every rule now (e.g. at the end of the run or after new thresholds)."""
        changed = self._check(slow=True, now=self.clock() if self.clock else None)
        if changed and self.on_change is not None:
            self.on_change(self)
        return self.flags

    @property
    def status(self) -> str:
        return status(self.flags)


def replay(
    blocks, *, aggregates: RunAggregates | None = None, thresholds: FlagThresholds | None = None
) -> FlagTracker:
    """A tracker fed with ``(block, meta)`` pairs (e.g. a finished feature store), as the live
    loop would have been, then judged by every rule at the end."""
    tracker = FlagTracker(aggregates, thresholds, clock=None)
    for block, meta in blocks:
        tracker.update(block, meta)
    tracker.evaluate_all()
    return tracker
