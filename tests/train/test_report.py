"""Report names: an evaluation elsewhere never replaces the run's own reports."""

from __future__ import annotations

from kws.train.report import report_name


def test_report_names_say_split_held_out_engine_and_foreign_data(tmp_path):
    own, other = str(tmp_path / "synth_medium"), str(tmp_path / "gsc test")
    assert report_name("testing", [], own, own) == "testing"
    assert report_name("testing", ["kokoro-"], own, own + "/") == "testing"  # same folder
    assert report_name("holdout", ["kokoro-"], own, own) == "holdout_kokoro"
    assert report_name("holdout", ["flite-", "kokoro-"], other, own) == (
        "holdout_flite_kokoro_gsc-test"
    )
    assert report_name("validation", [], other, own) == "validation_gsc-test"
