"""Keyword decisions (kws.stream.recognize): smoothing, firing, hysteresis, word segmentation,
bad posteriors. Tracks are synthesized (stream_tracks.py) so each rule is pinned exactly."""

from __future__ import annotations

import numpy as np
import pytest

from kws.config import ConfigError, StreamConfig
from kws.stream.recognize import RecognizeCommands, StreamWarning, is_keyword, recognize
from tests.stream.stream_tracks import LABELS, onehot, spaced, word_track


def run(recognizer: RecognizeCommands, track: list[tuple[float, str]]):
    return [recognizer.process(t, onehot(label)) for t, label in track]


def dense_track(segments: list[tuple[str, int]], step_ms: int = 20) -> list[tuple[float, str]]:
    """Consecutive segments of (label, duration_ms) sampled every `step_ms`."""
    track, start = [], 0
    for label, duration in segments:
        track += [(float(t), label) for t in range(start, start + duration, step_ms)]
        start += duration
    return track


def fired(rec: RecognizeCommands, track) -> list[tuple[str, float]]:
    return [(d.label, d.time_ms) for d in run(rec, track) if d.is_new_command]


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


def test_held_word_fires_once_and_silence_or_unknown_never_fire():
    rec = RecognizeCommands(LABELS, average_window_ms=100, minimum_count=1)
    # 2 s of confident "yes": one firing at the first decidable step (span 40 ms >= 25 ms).
    assert fired(rec, dense_track([("yes", 2000)])) == [("yes", 40.0)]
    rec = RecognizeCommands(LABELS, average_window_ms=100, minimum_count=1)
    assert fired(rec, dense_track([("_silence_", 500), ("_unknown_", 500)])) == []
    assert not any(is_keyword(label) for label in ("_silence_", "_unknown_"))


def test_hysteresis_one_event_per_excursion():
    rec = RecognizeCommands(LABELS, average_window_ms=60, minimum_count=1, suppression_ms=0)
    # Wobbling around the threshold (0.75 / 0.65) fires once; only a drop below the release
    # level (0.5 x 0.7 = 0.35) re-arms the keyword.
    wobble = [
        (float(t), onehot("yes", 0.75 if (t // 80) % 2 == 0 else 0.65)) for t in range(0, 800, 20)
    ]
    events = [rec.process(t, s).is_new_command for t, s in wobble]
    assert sum(events) == 1
    assert not any(rec.process(t, onehot("yes", 0.4)).is_new_command for t in (800, 820, 840, 860))
    rec.process(880, onehot("_silence_"))
    for t in range(900, 1000, 20):
        rec.process(float(t), onehot("_silence_"))
    assert (
        sum(rec.process(float(t), onehot("yes")).is_new_command for t in range(1000, 1200, 20)) == 1
    )


def test_refractory_time_delays_other_keywords():
    rec = RecognizeCommands(LABELS, average_window_ms=60, minimum_count=1, suppression_ms=200)
    events = fired(rec, dense_track([("yes", 100), ("no", 400)]))
    assert [label for label, _ in events] == ["yes", "no"]
    assert events[1][1] - events[0][1] >= 200  # "no" leads from ~130 ms but waits


@pytest.mark.parametrize("gap_ms", [300, 600, 1000])
def test_repeated_word_fires_once_per_word(gap_ms):
    """Fault 3: three "yes" with pauses; the 1 s window keeps p(yes) high through 0.3 s pauses."""
    words = spaced(["yes"] * 3, gap_ms)
    times, posteriors, levels = word_track(words, words[-1][1] + 3000)
    events = recognize(times, posteriors, LABELS, StreamConfig(), levels_db=levels)
    assert [e[0] for e in events] == ["yes"] * 3
    for (_, onset, length), (_, time_ms, _) in zip(words, events, strict=True):
        assert onset < time_ms <= onset + length + 1500  # each event near its own word
    # A repeat is judged only on windows that no longer hold the previous word.
    for (_, onset, length), (_, time_ms, _) in zip(words, events[1:], strict=False):
        assert time_ms >= onset + length + 1000


def test_without_levels_a_repeat_needs_the_score_to_fall():
    """Documented fallback: with no frame levels, 0.3 s repeats merge (score never falls)."""
    words = spaced(["yes"] * 3, 300)
    times, posteriors, _ = word_track(words, words[-1][1] + 3000)
    assert [e[0] for e in recognize(times, posteriors, LABELS, StreamConfig())] == ["yes"]
    words = spaced(["yes"] * 3, 1000)  # the posterior falls between words: no levels needed
    times, posteriors, _ = word_track(words, words[-1][1] + 3000)
    assert [e[0] for e in recognize(times, posteriors, LABELS, StreamConfig())] == ["yes"] * 3


@pytest.mark.parametrize(
    "labels", [["yes", "no", "yes"], ["_unknown_", "no"], ["no", "_unknown_", "no", "no"]]
)
@pytest.mark.parametrize("gap_ms", [200, 300, 600])
def test_mixed_words_fire_once_each_without_duplicates(labels, gap_ms):
    """A keyword that fired on a new word is not re-armed when the window leaves the old one."""
    words = spaced(labels, gap_ms)
    times, posteriors, levels = word_track(words, words[-1][1] + 3000)
    events = recognize(times, posteriors, LABELS, StreamConfig(), levels_db=levels)
    assert [e[0] for e in events] == [label for label in labels if is_keyword(label)]


def wrong_then_right(steps_ms: float = 20.0) -> tuple[np.ndarray, np.ndarray]:
    """Two words of "yes" after silence; in each, another label leads first for 300 ms (0.55:
    "no", then "_unknown_", as on a word's onset), then "yes" dominates for 300 ms."""
    times = np.arange(0.0, 6000.0, steps_ms)
    rows = []
    for t in times:
        at, word = t % 3000, int(t // 3000)
        if 1000 <= at < 1300:
            wrong = np.full(len(LABELS), 0.1)
            wrong[LABELS.index(["no", "_unknown_"][word])], wrong[LABELS.index("yes")] = 0.55, 0.25
            rows.append(wrong)
        elif 1300 <= at < 1600:
            rows.append(np.array([0.01, 0.01, 0.95, 0.03]))
        else:
            rows.append(onehot("_silence_", 0.9))
    return times, np.asarray(rows, np.float32)


def test_wrong_label_does_not_block_the_right_one():
    """Fault 4: at every threshold of a sweep the right label fires for both words, and misses
    never rise as the threshold falls (TensorFlow's rule with 500 ms suppression let the wrong
    label, keyword or not, fire first at 0.30 and block "yes": 2 misses there, 0 at 0.35)."""
    times, posteriors = wrong_then_right()
    cfg = StreamConfig()
    misses = []
    for threshold in np.round(np.arange(0.30, 0.96, 0.05), 2):
        labels = [e[0] for e in recognize(times, posteriors, LABELS, cfg, threshold=threshold)]
        misses.append(2 - labels.count("yes"))
        if threshold <= 0.6:  # the smoothed score of "yes" peaks near 0.67 on this track
            assert labels.count("yes") == 2, (threshold, labels)
        assert labels.count("no") <= 1
    assert misses == sorted(misses)  # thresholds ascend: misses may only rise


def test_nonfinite_posterior_is_skipped_not_poisoning():
    """Fault 5: one NaN posterior used to leave the running sum NaN for the rest of the stream."""
    words = spaced(["yes", "no", "yes"], 1000)
    times, posteriors, levels = word_track(words, words[-1][1] + 3000)
    posteriors[10] = np.nan
    posteriors[60, 2] = np.inf
    rec = RecognizeCommands.from_config(LABELS, StreamConfig())
    with pytest.warns(StreamWarning, match="NaN/inf"):
        decisions = [
            rec.process(t, p, lv) for t, p, lv in zip(times, posteriors, levels, strict=True)
        ]
    assert [d.label for d in decisions if d.is_new_command] == ["yes", "no", "yes"]
    assert rec.skipped_results == 2
    assert all(np.isfinite(d.score) for d in decisions)
    # A NaN level only skips word segmentation for that step.
    levels[30] = np.nan
    with pytest.warns(StreamWarning):
        assert len(recognize(times, posteriors, LABELS, StreamConfig(), levels_db=levels)) == 3


def test_rejects_time_going_backwards_wrong_size_and_bad_values():
    rec = RecognizeCommands(LABELS)
    rec.process(100, onehot("yes"))
    with pytest.raises(ValueError, match="backwards"):
        rec.process(50, onehot("yes"))
    with pytest.raises(ValueError, match="scores"):
        rec.process(200, np.ones(3))
    with pytest.raises(ConfigError, match="detection_threshold=1.5"):
        RecognizeCommands(LABELS, detection_threshold=1.5)
    with pytest.raises(ConfigError, match="threshold"):
        recognize(np.zeros(1), np.ones((1, 4)) / 4, LABELS, StreamConfig(), threshold=0.0)


def test_recognize_track_reports_keywords_only():
    cfg = StreamConfig(average_window_ms=100, minimum_count=2, suppression_ms=300)
    times = np.arange(0, 2000, 20.0)
    names = ["_silence_", "yes", "_unknown_", "no", "_silence_"]
    posteriors = np.stack([onehot(n, 0.95) for n in names for _ in range(20)])
    events = recognize(times, posteriors, LABELS, cfg)
    assert [e[0] for e in events] == ["yes", "no"]
    assert 400 <= events[0][1] < 500 and 1200 <= events[1][1] < 1300
    # A threshold above every score fires nothing.
    assert recognize(times, posteriors, LABELS, cfg, threshold=0.96) == []
