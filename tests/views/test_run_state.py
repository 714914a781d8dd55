"""The run's state as the page reads it from another thread while the live loop polls."""

from __future__ import annotations

import time


def test_finished_run_stays_finished_while_the_loop_polls(finished_run):
    from xlive.engine.session import LiveSession

    with LiveSession(finished_run) as s:
        t_end = time.monotonic() + 120
        while s.run_state() != "finished":
            s.step()
            assert time.monotonic() < t_end, "the finished run was never found finished"
        # the page's timer reads the state in the middle of the loop's next polls (here from
        # inside the source's refresh, the moment a poll looks for frames): a run that got no
        # new frame stays finished (the status line flickered back to live: CI)
        seen = []
        refresh = s.source.refresh

        def refresh_and_look():
            n = refresh()
            seen.append(s.run_state())
            return n

        s.source.refresh = refresh_and_look
        for _ in range(3):
            s.step()
        assert seen and set(seen) == {"finished"}, seen
        assert s.run_state() == "finished"
