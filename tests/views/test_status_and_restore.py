"""An honest status: grey "waiting" before the first analysed frame, "run finished" after it;
a session on a run with an existing feature store shows all its history at once (issue 14)."""

from __future__ import annotations

from xlive.engine.session import LiveSession
from xlive.views.layout import Dashboard
from xlive.views.status_line import status_text


def test_waiting_for_a_run_that_does_not_exist(tmp_path):
    with LiveSession(tmp_path / "later", tmp_path / "f.zarr") as s:
        s.step()
        st, text = status_text(s)
        assert st == "waiting" and text == f"waiting for {tmp_path / 'later'} to appear"


def test_finished_run_restored_at_once_and_its_state(finished_run, run_to_end, tmp_path):
    feats = tmp_path / "f.zarr"
    with LiveSession(finished_run, feats) as s:
        assert status_text(s)[0] == "waiting"  # frames exist, none analysed yet: not green
        run_to_end(s)
        frames, hits = s.aggregates.frames, s.aggregates.hits
        st, text = status_text(s)
        assert st in ("green", "amber", "red") and "run finished" in text
        assert f"{frames} frames analysed of 80" in text
    # served again: the store holds every frame; the views get all of it at the first step
    with LiveSession(finished_run, feats) as s2:
        dash = Dashboard(s2)
        s2.step()
        assert s2.processor.stats.frames_stored == 0  # nothing computed again
        assert (s2.aggregates.frames, s2.aggregates.hits) == (frames, hits)
        dash.update()
        assert len(dash.views["hit_rate"].source.data["frame"]) > 0
        assert len(dash.views["spots"].source.data["frame"]) == frames
        status_text(s2)  # sees the run's end marker; the next poll confirms every frame
        s2.step()
        assert "run finished" in status_text(s2)[1]


def test_flag_episodes_are_bands_and_stay_listed(finished_run, tmp_path):
    from xlive.aggregate.flags import Flag

    with LiveSession(finished_run, tmp_path / "f.zarr") as s:
        dash = Dashboard(s)
        jet = Flag("jet_lost", "error", "Jet lost.", 0.05)
        ice = Flag("ice_rings", "warning", "Ice.", 0.4)
        s.timeline.observe([jet], 40)
        s.timeline.observe([jet, ice], 50)
        s.timeline.observe([ice], 70)  # the jet is back at frame 70
        s.tracker.last_frame = 79
        s.flags = [ice]
        dash.update()
        bands = dash.flag_bands.source.data
        assert list(zip(bands["flag"], bands["x0"], bands["x1"], strict=True)) == [
            ("jet_lost", 40, 70),
            ("ice_rings", 50, 79),
        ]
        assert bands["color"][0] == "#c62828"
        doc_names = {r.glyph.__class__.__name__ for r in dash.views["hit_rate"].root.renderers}
        assert "VStrip" in doc_names
        panel = dash.views["flags"].source.data
        assert panel["name"] == ["ice_rings", "jet_lost"]
        assert panel["message"][1].startswith("earlier, frames 40-70 (cleared)")
