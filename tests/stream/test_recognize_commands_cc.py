"""The device rule (deploy/tflm/recognize_commands.cc, built with g++) emits exactly the Python
detector's events — labels, times and scores, bit for bit — on the same posterior tracks:
synthesized repeats at 0.3/0.6/1 s, mixed words, a wrong-then-right word over a threshold sweep,
random tracks with NaN scores and levels, and tracks the trained tone model produced."""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from kws.config import StreamConfig
from kws.stream.recognize import MAX_PENDING_WORDS, recognize
from tests.stream.stream_tracks import LABELS, onehot, spaced, word_track
from tests.stream.test_recognize import wrong_then_right

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "tflm"


@pytest.fixture(scope="module")
def driver(tmp_path_factory) -> Path:
    compiler = shutil.which("g++")
    if compiler is None:
        pytest.skip(
            "g++ is not installed (Debian: apt-get install g++), so the C++ rule cannot be built"
        )
    out = tmp_path_factory.mktemp("cc") / "recognize_commands_test"
    # -ffp-contract=off: no fused multiply-add, so the arithmetic is the same IEEE sequence.
    subprocess.run(
        [compiler, "-std=c++17", "-O2", "-Wall", "-Wextra", "-Werror", "-ffp-contract=off",
         str(DEPLOY / "recognize_commands.cc"), str(DEPLOY / "recognize_commands_test.cc"),
         "-o", str(out)],
        check=True, capture_output=True,
    )  # fmt: skip
    return out


def run_cc(driver: Path, tmp_path: Path, times, posteriors, levels, labels, cfg, window_ms=1000.0):
    """Events `(label, time_ms, score)` and the skipped count from the C++ rule."""
    lines = [
        "config " + " ".join(repr(float(v)) for v in (
            cfg.average_window_ms, cfg.detection_threshold, cfg.suppression_ms)) +
        f" {cfg.minimum_count} " + " ".join(repr(float(v)) for v in (
            cfg.release_fraction, cfg.word_gap_ms, cfg.vad_margin_db,
            cfg.noise_floor_rise_db_per_s, window_ms)),
        f"labels {len(labels)} " + " ".join(labels),
    ]  # fmt: skip
    for t, scores, level in zip(times, posteriors, levels, strict=True):
        values = " ".join(format(float(s), ".9g") for s in scores)  # float32 round trip
        lines.append(f"step {float(t)!r} {float(level)!r} {values}")
    track = tmp_path / "track.txt"
    track.write_text("\n".join(lines) + "\n")
    result = subprocess.run([str(driver), str(track)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    events, skipped = [], None
    for line in result.stdout.splitlines():
        kind, *rest = line.split()
        if kind == "event":
            events.append((rest[0], float(rest[1]), float(rest[2])))
        elif kind == "skipped":
            skipped = int(rest[0])
    return events, skipped


def assert_same_events(driver, tmp_path, times, posteriors, levels, cfg, labels=LABELS, **kw):
    posteriors = np.asarray(posteriors, np.float32)
    with np.errstate(invalid="ignore"):
        expected = recognize(times, posteriors, labels, cfg, levels_db=levels, **kw)
    got, _ = run_cc(driver, tmp_path, times, posteriors, levels, labels, cfg, **kw)
    assert got == expected  # exact: same labels, times and scores
    return expected


@pytest.mark.parametrize("gap_ms", [300, 600, 1000])
@pytest.mark.parametrize("words", [["yes"] * 3, ["yes", "no", "yes"], ["_unknown_", "no", "no"]])
def test_same_events_on_repeated_and_mixed_words(driver, tmp_path, words, gap_ms):
    spec = spaced(words, gap_ms)
    times, posteriors, levels = word_track(spec, spec[-1][1] + 3000, np.random.default_rng(gap_ms))
    events = assert_same_events(driver, tmp_path, times, posteriors, levels, StreamConfig())
    assert [e[0] for e in events] == [w for w in words if not w.startswith("_")]


def test_same_events_over_a_threshold_sweep(driver, tmp_path):
    times, posteriors = wrong_then_right()
    levels = np.full(len(times), np.nan)
    for threshold in np.round(np.arange(0.30, 0.96, 0.05), 2):
        cfg = StreamConfig(detection_threshold=float(threshold))
        assert_same_events(driver, tmp_path, times, posteriors, levels, cfg)


def test_same_events_at_exact_ties(driver, tmp_path):
    """Scores exactly at the release level (0.375) and the threshold (0.75), and just below (1 ppt):
    pins `<` / `>` on both sides (float32 values whose running sums are exact in double)."""
    cfg = StreamConfig(detection_threshold=0.75, release_fraction=0.5)
    segments = [("_silence_", 0.9, 1000), ("yes", 0.9, 600), ("yes", 0.375, 800),
                ("yes", 0.9, 600), ("yes", 0.3745, 800), ("yes", 0.9, 600),
                ("_silence_", 0.9, 800), ("no", 0.75, 800), ("no", 0.76, 400)]  # fmt: skip
    times, rows = [], []
    for label, score, length in segments:
        for _ in range(int(length // 20)):
            times.append(20.0 * len(times))
            rows.append(onehot(label, score))
    levels = np.full(len(times), np.nan)
    events = assert_same_events(driver, tmp_path, np.array(times), np.array(rows), levels, cfg)
    # yes fires; 0.375 is not below the release level; 0.3745 is; 0.75 is not above the threshold.
    assert [(e[0], e[1] // 1000) for e in events] == [("yes", 1), ("yes", 4), ("no", 6)]


def random_track(rng: np.random.Generator, cfg: StreamConfig, steps: int, run_steps: int):
    """Runs of one dominant label (`run_steps` long) and speech bursts with random pauses
    (whole strides, so pauses equal to `word_gap_ms` occur), plus NaN/inf scores and levels."""
    times = 1000.0 + cfg.stride_ms * np.arange(steps)
    dominant = np.repeat(rng.integers(0, len(LABELS), steps // run_steps + 1), run_steps)[:steps]
    alpha = np.full((steps, len(LABELS)), 0.3)
    alpha[np.arange(steps), dominant] = rng.uniform(0.5, 6.0, steps)
    posteriors = np.stack([rng.dirichlet(a) for a in alpha]).astype(np.float32)
    loud = np.zeros(steps, bool)
    at = 0
    while at < steps:
        burst = int(rng.integers(3, 30))
        loud[at : at + burst] = True
        at += burst + int(rng.integers(1, 25))
    levels = np.where(loud, -15.0, -50.0) + rng.normal(0, 2, steps)
    posteriors[rng.choice(steps, 5, replace=False)] = np.nan
    posteriors[rng.choice(steps, 2, replace=False), 1] = np.inf
    levels[rng.choice(steps, 5, replace=False)] = np.nan
    return times, posteriors, levels


@pytest.mark.parametrize("run_steps", [25, 200])
@pytest.mark.parametrize(
    "changes",
    [{}, {"stride_ms": 40.0, "average_window_ms": 300.0, "minimum_count": 2},
     {"word_gap_ms": 0.0}, {"word_gap_ms": 100.0}, {"suppression_ms": 0.0, "release_fraction": 0.9},
     {"detection_threshold": 0.3, "vad_margin_db": 3.0}],
)  # fmt: skip
def test_same_events_on_random_tracks_with_bad_values(driver, tmp_path, changes, run_steps):
    rng = np.random.default_rng([run_steps, len(str(changes))])
    cfg = StreamConfig(**changes)
    times, posteriors, levels = random_track(rng, cfg, 3000, run_steps)
    with pytest.warns(UserWarning):
        events = assert_same_events(driver, tmp_path, times, posteriors, levels, cfg)
    assert len(events) > 5  # the track exercises firing, not only silence
    _, skipped = run_cc(driver, tmp_path, times, posteriors, levels, LABELS, cfg)
    assert skipped == 7


@pytest.mark.parametrize("gap_ms", [300, 600, 1000])
def test_same_events_on_tracks_of_the_trained_tone_model(driver, tmp_path, gap_ms):
    """Posteriors and levels recorded from the real detector on audio of three "yes"."""
    from kws.stream.backends import load_backend
    from kws.stream.detector import StreamingDetector, run_detector
    from tests.stream.tones import RATE_HZ, WORD_MS, noise, word, write_run

    rng = np.random.default_rng(gap_ms)
    audio = noise(RATE_HZ * 5, rng)
    for i in range(3):
        start = RATE_HZ * (1000 + i * (WORD_MS + gap_ms)) // 1000
        audio[start : start + RATE_HZ * WORD_MS // 1000] += word("yes", rng)
    detector = StreamingDetector(load_backend("torch", write_run(tmp_path / "run")))
    inferences = run_detector(detector, np.array_split(audio, 13))
    times = np.array([i.time_ms for i in inferences])
    posteriors = np.stack([i.probabilities for i in inferences])
    levels = np.array([i.level_db for i in inferences])
    assert posteriors.dtype == np.float32
    events = assert_same_events(driver, tmp_path, times, posteriors, levels, StreamConfig())
    assert events == [(e.label, e.time_ms, e.score) for i in inferences if (e := i.event)]
    assert [e[0] for e in events] == ["yes"] * 3


def test_header_defaults_equal_stream_config_defaults():
    header = (DEPLOY / "recognize_commands.h").read_text()
    block = re.search(r"struct RecognizeConfig \{(.*?)\};", header, re.S).group(1)
    defaults = dict(re.findall(r"^\s+(?:double|int) (\w+) = ([\d.]+);", block, re.M))
    cfg = StreamConfig()
    for field in dataclasses.fields(StreamConfig):
        if field.name in ("stride_ms", "backend"):
            continue  # the stride is the caller's loop; the backend is host-only
        assert float(defaults.pop(field.name)) == getattr(cfg, field.name), field.name
    assert defaults == {"input_window_ms": "1000.0"}
    assert f"kMaxPendingWords = {MAX_PENDING_WORDS};" in header
