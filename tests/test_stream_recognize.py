"""RecognizeCommands against TensorFlow's documented semantics (REFERENCE.md)."""

from __future__ import annotations

import numpy as np
import pytest

from kws.config import StreamConfig
from kws.stream.recognize import RecognizeCommands, is_keyword, recognize

LABELS = ["_silence_", "_unknown_", "yes", "no"]


def onehot(label: str, score: float = 1.0) -> np.ndarray:
    scores = np.full(len(LABELS), (1.0 - score) / (len(LABELS) - 1))
    scores[LABELS.index(label)] = score
    return scores


def run(recognizer: RecognizeCommands, track: list[tuple[float, str]]):
    return [recognizer.process(t, onehot(label)) for t, label in track]


def test_needs_minimum_count_and_quarter_window():
    rec = RecognizeCommands(LABELS, average_window_ms=500, minimum_count=4)
    # Three results: below minimum_count, no decision although the scores are certain.
    out = run(rec, [(0, "yes"), (30, "yes"), (60, "yes")])
    assert all(not d.is_new_command and d.score == 0.0 for d in out)
    # Fourth result spans 90 ms < 500/4 = 125 ms: still no decision.
    assert rec.process(90, onehot("yes")).score == 0.0
    decision = rec.process(150, onehot("yes"))
    assert decision.is_new_command and decision.label == "yes"
    assert decision.score == pytest.approx(1.0)


def test_averages_over_window_and_drops_old_results():
    rec = RecognizeCommands(LABELS, average_window_ms=100, minimum_count=1, suppression_ms=0)
    rec.process(0, onehot("no"))
    rec.process(50, onehot("no"))
    # At t=150 the window keeps results with time >= 50: "no"@50 and "yes"@150 average to 0.5.
    decision = rec.process(150, onehot("yes"))
    assert decision.score == pytest.approx(0.5)
    # At t=200 only t>=100 remain: "yes"@150 and "yes"@200.
    assert rec.process(200, onehot("yes")).score == pytest.approx(1.0)


def test_threshold_is_strict():
    rec = RecognizeCommands(LABELS, average_window_ms=100, detection_threshold=0.7, minimum_count=2)
    assert not rec.process(0, onehot("yes", 0.7)).is_new_command  # too few results
    decision = rec.process(30, onehot("yes", 0.7))
    assert decision.score == pytest.approx(0.7) and not decision.is_new_command
    assert rec.process(60, onehot("yes", 0.73)).is_new_command  # mean 0.71


def dense_track(segments: list[tuple[str, int]], step_ms: int = 20) -> list[tuple[float, str]]:
    """Consecutive segments of (label, duration_ms) sampled every `step_ms`."""
    track, start = [], 0
    for label, duration in segments:
        track += [(float(t), label) for t in range(start, start + duration, step_ms)]
        start += duration
    return track


def fired(rec: RecognizeCommands, track) -> list[tuple[str, float]]:
    return [(d.label, d.time_ms) for d in run(rec, track) if d.is_new_command]


def test_same_label_held_fires_once():
    rec = RecognizeCommands(LABELS, average_window_ms=100, suppression_ms=500, minimum_count=1)
    # 2 s of confident "yes": one firing at the first decidable step (span 40 ms >= 25 ms).
    assert fired(rec, dense_track([("yes", 2000)])) == [("yes", 40.0)]


def test_suppression_blocks_other_labels_then_allows_them():
    rec = RecognizeCommands(LABELS, average_window_ms=60, suppression_ms=500, minimum_count=1)
    track = dense_track([("yes", 200), ("no", 200), ("_silence_", 400), ("no", 200)])
    # "no" at 200-400 ms is suppressed (< 500 ms after "yes"); silence fires once it is allowed
    # (after 500 ms), and after silence "no" fires without waiting.
    events = fired(rec, track)
    assert [label for label, _ in events] == ["yes", "_silence_", "no"]
    yes_time, silence_time = events[0][1], events[1][1]
    assert silence_time - yes_time > 500
    assert events[2][1] - silence_time < 500


def test_unknown_between_keywords_is_tracked():
    rec = RecognizeCommands(LABELS, average_window_ms=60, suppression_ms=100, minimum_count=1)
    track = dense_track([("yes", 300), ("_unknown_", 300), ("yes", 300), ("yes", 300)])
    # yes, then unknown becomes the last label, so yes can fire again; not twice in a row.
    assert [label for label, _ in fired(rec, track)] == ["yes", "_unknown_", "yes"]


def test_silence_does_not_refire():
    rec = RecognizeCommands(LABELS, average_window_ms=60, suppression_ms=0, minimum_count=1)
    track = dense_track([("_silence_", 500)])
    # The initial last label is silence, so silence itself never fires.
    assert fired(rec, track) == []


def test_rejects_time_going_backwards_and_wrong_size():
    rec = RecognizeCommands(LABELS)
    rec.process(100, onehot("yes"))
    with pytest.raises(ValueError, match="backwards"):
        rec.process(50, onehot("yes"))
    with pytest.raises(ValueError, match="scores"):
        rec.process(200, np.ones(3))


def test_recognize_track_reports_keywords_only():
    cfg = StreamConfig(average_window_ms=100, minimum_count=2, suppression_ms=300)
    times = np.arange(0, 2000, 20.0)
    names = ["_silence_", "yes", "_unknown_", "no", "_silence_"]
    posteriors = np.stack([onehot(n) for n in names for _ in range(20)])
    events = recognize(times, posteriors, LABELS, cfg)
    # Unknown fires between yes and no (it is tracked) but is not reported as a keyword.
    assert [e[0] for e in events] == ["yes", "no"]
    assert 400 <= events[0][1] < 500 and 1200 <= events[1][1] < 1300
    assert all(not is_keyword(label) for label in ("_silence_", "_unknown_"))
    # A threshold above every score fires nothing.
    assert recognize(times, posteriors, LABELS, cfg, threshold=1.0) == []
