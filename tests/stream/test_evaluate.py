"""Streaming evaluation: matching rules, a built test stream over a GSC-layout folder of tone
"words", the given-WAV path, and the report/JSON/plot outputs of `kws stream-eval`."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile
import torch

from kws.cli import main
from kws.config import load_recipe, save_yaml
from kws.errors import UserError
from kws.run import Run
from kws.stream.evaluate import score_events, stream_evaluate
from kws.stream.report import SECTION, update_report
from kws.stream.testset import build_test_stream, labels_file_text, read_labels_file
from tests.stream.tones import RATE_HZ, noise, trained_tone_model, word, write_run

LABELS = ["_silence_", "_unknown_", "yes", "no"]


def test_score_events_matching_rules():
    truth = [("yes", 1000.0), ("_unknown_", 4000.0), ("no", 7000.0), ("yes", 10000.0)]
    events = [
        ("yes", 1800.0, 0.9),  # correct, 800 ms after onset
        ("yes", 2000.0, 0.9),  # repeat: the word is already matched -> false accept
        ("no", 4600.0, 0.9),  # on an unknown word -> false accept
        ("yes", 7700.0, 0.9),  # wrong label on "no"
        ("no", 20000.0, 0.9),  # near nothing -> false accept
    ]
    s = score_events(events, truth, ["yes", "no"], duration_s=36.0).summary()
    assert (s["keyword_words"], s["unknown_words"]) == (3, 1)
    assert s["correct_percent"] == pytest.approx(100 / 3)
    assert s["wrong_percent"] == pytest.approx(100 / 3)
    assert s["matched_percent"] == pytest.approx(200 / 3)
    assert s["miss_rate_percent"] == pytest.approx(200 / 3)
    assert s["false_accepts"] == 3 and s["false_accepts_per_hour"] == pytest.approx(300.0)
    assert s["latency_from_onset_median_ms"] == pytest.approx(800.0)
    assert s["latency_from_end_median_ms"] == pytest.approx(-200.0)


def test_labels_file_round_trip_and_errors(tmp_path):
    truth = [("yes", 1500.0), ("_unknown_", 3200.0)]
    path = tmp_path / "labels.txt"
    path.write_text(labels_file_text(truth))
    assert read_labels_file(path) == truth
    path.write_text("yes, 100\nbroken line\n")
    with pytest.raises(UserError, match="labels.txt:2"):
        read_labels_file(path)


@pytest.fixture(scope="module")
def tone_dataset(tmp_path_factory):
    """GSC layout: yes/no/dog tone clips (all in testing_list.txt) and background noise."""
    root = tmp_path_factory.mktemp("tones")
    rng = np.random.default_rng(0)
    listed = []
    for name, tone in (("yes", "yes"), ("no", "no"), ("dog", "_unknown_")):
        (root / name).mkdir()
        for i in range(4):
            clip = noise(RATE_HZ, rng, 0.005)
            start = rng.integers(0, RATE_HZ // 2)
            clip[start : start + RATE_HZ // 2] += word(tone, rng)
            soundfile.write(root / name / f"spk{i}_nohash_0.wav", clip, RATE_HZ)
            listed.append(f"{name}/spk{i}_nohash_0.wav")
    (root / "testing_list.txt").write_text("\n".join(listed) + "\n")
    (root / "_background_noise_").mkdir()
    soundfile.write(root / "_background_noise_" / "white.wav", noise(RATE_HZ * 5, rng, 0.1),
                    RATE_HZ)  # fmt: skip
    return root


def test_built_stream_layout(tone_dataset):
    stream = build_test_stream(tone_dataset, LABELS, minutes=1.0, seed=3)
    assert stream.duration_s == pytest.approx(60.0)
    starts = [t for _, t in stream.truth]
    assert len(starts) == 30 and starts == sorted(starts)
    assert all(2000 * i <= t <= 2000 * i + 1000 for i, t in enumerate(starts))  # grid + offset
    unknown = sum(label == "_unknown_" for label, _ in stream.truth)
    assert 3 <= unknown <= 18  # about 30% of 30
    assert {label for label, _ in stream.truth} <= {"yes", "no", "_unknown_"}
    assert np.abs(stream.audio).max() <= 1.0


def test_stream_eval_cli_writes_json_plot_and_report(tone_dataset, tmp_path, capsys):
    run_dir = write_run(tmp_path / "run")
    (run_dir / "report.md").write_text("# Report\n\n## Accuracy\n\nkept\n")
    argv = ["stream-eval", str(run_dir), "--data", str(tone_dataset), "--minutes", "0.5"]
    assert main(argv) == 0
    assert SECTION in capsys.readouterr().out
    result = json.loads((run_dir / "stream_eval.json").read_text())
    s = result["scores"]
    assert s["keyword_words"] + s["unknown_words"] == 15
    assert s["correct_percent"] >= 90 and s["wrong_percent"] <= 5
    assert s["false_accepts_per_hour"] <= 240  # at most 2 in the half minute
    assert 0 < s["latency_from_onset_median_ms"] < 1500
    assert {r["threshold"] for r in result["sweep"]} >= {0.3, 0.7, 0.95}
    assert (run_dir / result["plot"]).read_bytes()[:4] == b"\x89PNG"
    # The given-WAV path on the same stream gives the same result; one report section.
    stream = build_test_stream(tone_dataset, LABELS, minutes=0.5, seed=0)
    soundfile.write(tmp_path / "s.wav", stream.audio, RATE_HZ, subtype="FLOAT")
    (tmp_path / "s.txt").write_text(labels_file_text(stream.truth))
    argv = ["stream-eval", str(run_dir), "--wav", str(tmp_path / "s.wav"),
            "--labels", str(tmp_path / "s.txt")]  # fmt: skip
    assert main(argv) == 0
    again = json.loads((run_dir / "stream_eval.json").read_text())["scores"]
    for key, value in s.items():  # labels file keeps whole ms
        assert again[key] == pytest.approx(value, abs=1.0), key
    low, high = s["miss_rate_ci95_percent"]
    assert low <= s["miss_rate_percent"] <= high
    assert "false accepts per hour [95%]" in (run_dir / "report.md").read_text()
    # "YES, 1500": the model's "yes" (it turned right detections into false accepts)
    (tmp_path / "s.txt").write_text(labels_file_text(stream.truth).upper())
    assert main(argv) == 0
    upper = json.loads((run_dir / "stream_eval.json").read_text())["scores"]
    assert upper == again
    report = (run_dir / "report.md").read_text()
    assert report.count(SECTION) == 1 and "## Accuracy\n\nkept" in report
    # a length that builds nothing is refused, and the results stay (it wrote NaNs over them)
    saved = (run_dir / "stream_eval.json").read_bytes()
    for bad in ("0", "-1", "nan"):
        argv = ["stream-eval", str(run_dir), "--data", str(tone_dataset), "--minutes", bad]
        assert main(argv) == 2
        assert f"--minutes {bad} is not a stream length" in capsys.readouterr().err
    assert (run_dir / "stream_eval.json").read_bytes() == saved


def test_update_report_replaces_only_its_section(tmp_path):
    path = tmp_path / "report.md"
    path.write_text(f"# R\n\n{SECTION}\n\nold\n\n## Export\n\nstays\n")
    update_report(path, f"{SECTION}\n\nnew\n")
    text = path.read_text()
    assert "old" not in text and "new" in text and text.index("new") < text.index("## Export")
    assert "stays" in text


def test_stream_eval_builds_its_stream_from_the_runs_data_root(tone_dataset, tmp_path):
    """Without --data it said "give --data DIR" although the run names its data (and
    --benchmark used it)."""
    run = Run(write_run(tmp_path / "run"))
    run.save_config(run.config([f"data.root={tone_dataset}"]))
    assert main(["stream-eval", str(run.root), "--minutes", "0.25"]) == 0
    result = json.loads((run.root / "stream_eval.json").read_text())
    assert f"from the test split of {tone_dataset}:" in result["stream"]


def test_stream_eval_needs_a_stream(tmp_path):
    """A model file outside a run has no data.root to build from; a run's must be a folder."""
    (tmp_path / "model.onnx").write_bytes(b"")
    with pytest.raises(UserError, match="not in a run folder, so it has no data.root to build"):
        stream_evaluate(tmp_path / "model.onnx")
    save_yaml(load_recipe(None, [f"data.root={tmp_path / 'gone'}"]), tmp_path / "config.yaml")
    with pytest.raises(UserError, match=r"the run's data.root '.*gone' is not a folder"):
        stream_evaluate(tmp_path)
    elsewhere = tmp_path / "elsewhere"  # a data.root override is the run's data.root too
    with pytest.raises(UserError, match=r"the run's data.root '.*elsewhere' is not a folder"):
        stream_evaluate(tmp_path, [f"data.root={elsewhere}", "stream.detection_threshold=0.6"])


@pytest.mark.parametrize(
    "given, refused",
    [
        (["train.epochs=5"], "stream section and data.root, so train.epochs=5 would change"),
        (["--data", "d", "data.root=e"], "only the run's stream section, so data.root=e would"),
        (["--wav", "s.wav", "--labels", "l.txt", "features.num_mfcc=20"],
         "stream section, so features.num_mfcc=20 would change nothing"),
    ],
)  # fmt: skip
def test_stream_eval_refuses_overrides_it_does_not_read(tmp_path, capsys, given, refused):
    """`kws stream-eval RUN train.epochs=5` used to run as if nothing had been asked."""
    assert main(["stream-eval", str(tmp_path), *given]) == 2
    err = capsys.readouterr().err
    assert refused in err and "--data DIR (the folder the test stream is built from)" in err


def test_stream_eval_shows_skipped_nan_posteriors_as_a_plain_warning_line(tmp_path, capsys):
    """stream-eval printed Python's "recognize.py:208: StreamWarning: ..." and a source line,
    where kws demo prints "warning: ..." for the same repair (a model that outputs NaN)."""
    checkpoint = trained_tone_model()
    bias = [name for name, value in checkpoint.state_dict.items() if name.endswith("bias")][-1]
    checkpoint.state_dict[bias] = torch.full_like(checkpoint.state_dict[bias], float("nan"))
    checkpoint.save(tmp_path / "run" / "checkpoints" / "best.pt")
    soundfile.write(tmp_path / "s.wav", noise(RATE_HZ * 3, np.random.default_rng(0)), RATE_HZ)
    (tmp_path / "s.txt").write_text(labels_file_text([("yes", 500.0)]))
    argv = ["stream-eval", str(tmp_path / "run"), "--wav", str(tmp_path / "s.wav"),
            "--labels", str(tmp_path / "s.txt")]  # fmt: skip
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "warning: skipped posteriors with NaN/inf values at " in err
    assert "StreamWarning" not in err


def test_a_stray_firing_of_another_keyword_does_not_take_the_word():
    """At a low threshold a stray "up" fired before the right "yes": it took the word as wrong,
    the right firing became a false accept, and misses rose as the threshold fell."""
    truth = [("yes", 1000.0), ("no", 3000.0)]
    strict = [("yes", 1700.0, 0.9)]
    lower = [("up", 900.0, 0.4), ("yes", 1700.0, 0.9), ("go", 3100.0, 0.4)]
    keywords = ["yes", "no", "up", "go"]
    s = score_events(strict, truth, keywords, duration_s=10.0).summary()
    t = score_events(lower, truth, keywords, duration_s=10.0).summary()
    assert s["correct_percent"] == t["correct_percent"] == 50.0  # yes found either way
    assert t["wrong_percent"] == 50.0 and t["false_accepts"] == 1  # go on "no"; up is stray
    assert t["miss_rate_percent"] == s["miss_rate_percent"] == 50.0
