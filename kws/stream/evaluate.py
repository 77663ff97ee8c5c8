"""Streaming stage: streaming accuracy of a model (`kws stream-eval`).

The detector runs over a long stream with known word times (`testset`); its keyword firings are
matched to the words (TensorFlow's `test_streaming_accuracy` rules, with the right label
matched first): a firing within +/- `tolerance_ms` of a word's clip start is matched to that
word, each word at most once. First every firing takes the earliest unmatched word of its own
label near it (correct); then each firing left takes the earliest unmatched word near it, which
makes that word wrong (a keyword) or the firing a false accept (an unknown word); a firing near
no unmatched word (on silence or noise, or a repeat) is a false accept. Misses are keyword
words not correctly detected. Matching the right label first keeps a stray firing of another
keyword, which lower thresholds bring, from taking the word the right firing then cannot have.
Detection latency is measured from the clip's start in the stream ("onset"; the speech starts
somewhere inside the 1 s clip) and from the clip's end.

The posterior track is recorded once; the threshold sweep re-runs only `RecognizeCommands`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kws.config import StreamConfig, unread_overrides
from kws.errors import UserError
from kws.io import atomic_write_json
from kws.plotting import pyplot, save_png
from kws.run import resolve_run
from kws.stats import poisson_interval, wilson_interval
from kws.stream.backends import load_backend
from kws.stream.demo import stream_config_for
from kws.stream.detector import StreamingDetector, Track, record_track
from kws.stream.recognize import is_keyword
from kws.stream.report import (
    BENCH_SECTION,
    render_benchmark,
    render_section,
    update_report,
)
from kws.stream.testset import (
    EvalStream,
    build_test_stream,
    check_stream_minutes,
    load_test_stream,
)

SWEEP_THRESHOLDS = [round(t, 2) for t in np.arange(0.30, 0.96, 0.05)]


@dataclass
class StreamScores:
    """Outcome of matching keyword firings to the ground truth of one stream."""

    keyword_words: int
    unknown_words: int
    correct: int
    wrong: int
    false_accepts: int
    hours: float
    latency_onset_ms: list[float] = field(default_factory=list, repr=False)
    latency_end_ms: list[float] = field(default_factory=list, repr=False)

    def _pct(self, n: int) -> float:
        return 100.0 * n / self.keyword_words if self.keyword_words else float("nan")

    def summary(self) -> dict:
        onset = np.asarray(self.latency_onset_ms) if self.latency_onset_ms else np.full(1, np.nan)
        end = np.asarray(self.latency_end_ms) if self.latency_end_ms else np.full(1, np.nan)
        return {
            "keyword_words": self.keyword_words,
            "unknown_words": self.unknown_words,
            "matched_percent": self._pct(self.correct + self.wrong),
            "correct_percent": self._pct(self.correct),
            "wrong_percent": self._pct(self.wrong),
            "misses": self.keyword_words - self.correct,
            "miss_rate_percent": self._pct(self.keyword_words - self.correct),
            "miss_rate_ci95_percent": [
                100 * x
                for x in wilson_interval(self.keyword_words - self.correct, self.keyword_words)
            ],
            "false_accepts": self.false_accepts,
            "hours": self.hours,
            "false_accepts_per_hour": self.false_accepts / self.hours if self.hours else np.nan,
            "false_accepts_per_hour_ci95": [
                x / self.hours if self.hours else np.nan
                for x in poisson_interval(self.false_accepts)
            ],
            "latency_from_onset_mean_ms": float(onset.mean()),
            "latency_from_onset_median_ms": float(np.median(onset)),
            "latency_from_end_mean_ms": float(end.mean()),
            "latency_from_end_median_ms": float(np.median(end)),
        }


def score_events(
    events: list[tuple[str, float, float]],
    truth: list[tuple[str, float]],
    keywords: list[str],
    duration_s: float,
    tolerance_ms: float = 1500.0,
    clip_ms: float = 1000.0,
) -> StreamScores:
    """Match `(label, time_ms, score)` firings to `(label, start_ms)` words; see module doc."""
    starts = np.array([t for _, t in truth], dtype=np.float64)
    labels = np.array([label for label, _ in truth], dtype=object)
    is_kw = np.array([label in keywords for label, _ in truth], dtype=bool)
    used = np.zeros(len(truth), dtype=bool)
    scores = StreamScores(int(is_kw.sum()), int((~is_kw).sum()), 0, 0, 0, duration_s / 3600)
    left = []  # firings the first pass did not place
    for label, time_ms, _ in events:  # the right label first
        near = np.flatnonzero(~used & is_kw & (labels == label)
                              & (np.abs(starts - time_ms) <= tolerance_ms))  # fmt: skip
        if near.size == 0:
            left.append(time_ms)
            continue
        word = near[np.argmin(starts[near])]
        used[word] = True
        scores.correct += 1
        scores.latency_onset_ms.append(time_ms - starts[word])
        scores.latency_end_ms.append(time_ms - starts[word] - clip_ms)
    for time_ms in left:
        near = np.flatnonzero(~used & (np.abs(starts - time_ms) <= tolerance_ms))
        if near.size == 0:
            scores.false_accepts += 1
            continue
        # Order-preserving: the earliest word still open. A repeat fires ~0.3 s after its word
        # ends (README, streaming semantics), nearer the next word's centre than its own.
        word = near[np.argmin(starts[near])]
        used[word] = True
        if is_kw[word]:
            scores.wrong += 1
        else:
            scores.false_accepts += 1  # a keyword fired on an unknown word
    return scores


def sweep(track: Track, labels, cfg: StreamConfig, stream: EvalStream, keywords) -> list:
    """False accepts per hour and miss rate for every threshold in `SWEEP_THRESHOLDS`."""
    rows = []
    for threshold in sorted({*SWEEP_THRESHOLDS, cfg.detection_threshold}):
        events = track.events(labels, cfg, threshold)
        s = score_events(events, stream.truth, keywords, stream.duration_s).summary()
        rows.append({"threshold": threshold, "false_accepts_per_hour": s["false_accepts_per_hour"],
                     "miss_rate_percent": s["miss_rate_percent"], "misses": s["misses"],
                     "keyword_words": s["keyword_words"], "false_accepts": s["false_accepts"],
                     "hours": s["hours"]})  # fmt: skip
    return rows


def plot_sweep(rows: list[dict], operating: float, path: Path, title: str) -> Path:
    """False accepts per hour (x) against miss rate (y), one point per threshold (PNG)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 4))
    fa = [r["false_accepts_per_hour"] for r in rows]
    miss = [r["miss_rate_percent"] for r in rows]
    ax.plot(fa, miss, marker="o")
    for r in rows:
        if r["threshold"] == operating:
            ax.plot(r["false_accepts_per_hour"], r["miss_rate_percent"], "r*", markersize=14,
                    label=f"threshold {operating:g}")  # fmt: skip
        ax.annotate(f"{r['threshold']:g}", (r["false_accepts_per_hour"], r["miss_rate_percent"]),
                    fontsize=7, xytext=(3, 3), textcoords="offset points")  # fmt: skip
    ax.set_xlabel("false accepts per hour")
    ax.set_ylabel("miss rate (%)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend()
    return save_png(fig, path, dpi=120)


def check_stream_eval_overrides(overrides: list[str] | None, data_root_read: bool) -> None:
    """Refuse dotted overrides `kws stream-eval` would ignore. It reads the run's `stream`
    section, and `data.root` only where it builds the stream from the run's data
    (`data_root_read`: the benchmark, or no --data and no --wav); the model's own front end
    and architecture are used (its checkpoint's or its export's).

    Raises:
        UserError: naming the ignored overrides and what to give instead.
    """
    keys = ("stream", "data.root") if data_root_read else ("stream",)
    if ignored := unread_overrides(overrides, keys):
        read = "the run's stream section" + (" and data.root" if data_root_read else "")
        raise UserError(
            f"kws stream-eval reads only {read}, so {' '.join(ignored)} would change nothing; "
            "give stream.* overrides (stream.detection_threshold=0.6 stream.backend=onnx) or "
            "--data DIR (the folder the test stream is built from), and retrain or export to "
            "change the model"
        )


def stream_data_root(
    model: str | Path, data_root: str | Path | None, overrides: list[str] | None = None
) -> Path:
    """The folder a test stream is built from: `data_root`, else the `data.root` of the run
    `model` belongs to (with `overrides`), as `--benchmark` uses.

    Raises:
        UserError: no `data_root` for a model file outside a run, or a run's data.root that is
            not a folder.
    """
    if data_root is not None:
        return Path(data_root)
    ref = resolve_run(model)
    if not (ref.run.config_path.is_file() or ref.run.checkpoints_dir.is_dir()):
        raise UserError(
            f"'{model}' is not in a run folder, so it has no data.root to build a test stream "
            "from; give --data DIR (a GSC-layout folder), or --wav FILE --labels FILE"
        )
    root = Path(ref.run.config(overrides).data.root)
    if not root.is_dir():
        raise UserError(
            f"the run's data.root '{root}' is not a folder, so no test stream can be built from "
            "it; give --data DIR (a GSC-layout folder), or --wav FILE --labels FILE"
        )
    return root


def stream_evaluate(
    model: str | Path,
    overrides: list[str] | None = None,
    *,
    data_root: str | Path | None = None,
    minutes: float = 10.0,
    wav: str | Path | None = None,
    labels_file: str | Path | None = None,
    seed: int = 0,
    out_dir: str | Path | None = None,
) -> dict:
    """Streaming accuracy of `model` on a built (`data_root`) or given (`wav`) stream.

    Detection settings and backend: the run's `stream` section with dotted `overrides`. The
    built stream's data: `data_root`, else the run's `data.root` (with `overrides`). Writes
    `stream_eval.json`, `plots/stream_far_vs_miss.png` and the report.md section under
    `out_dir` (default: the run folder). Returns the result written to the JSON.

    Raises:
        UserError: no stream source (a model outside a run, no `data_root` and no `wav`), a run
            whose data.root is no folder, a missing labels file, a bad override or one the
            evaluation does not read (`check_stream_eval_overrides`), a stream length that is
            not above 0.
    """
    model = Path(model)
    check_stream_eval_overrides(overrides, data_root_read=wav is None and data_root is None)
    cfg = stream_config_for(model, overrides)
    if wav is not None and labels_file is None:
        raise UserError("--wav needs --labels FILE (TensorFlow format: 'label, time_ms')")
    if wav is None:  # checked before the model loads
        data_root = stream_data_root(model, data_root, overrides)
        check_stream_minutes(minutes)
    backend = load_backend(cfg.backend, model)
    if wav is not None:
        stream = load_test_stream(wav, labels_file, backend.labels)  # matched to its words
    else:
        stream = build_test_stream(data_root, backend.labels, minutes, seed=seed,
                                   clip_ms=backend.feature_cfg.clip_ms)  # fmt: skip
    detector = StreamingDetector(backend, stream_cfg=cfg)
    track = record_track(detector, stream.audio)
    keywords = [label for label in backend.labels if is_keyword(label)]
    events = track.events(backend.labels, cfg)
    scores = score_events(events, stream.truth, keywords, stream.duration_s)
    stats = detector.stats()
    out = Path(out_dir) if out_dir is not None else resolve_run(model).run.root
    rows = sweep(track, backend.labels, cfg, stream, keywords)
    plot = plot_sweep(
        rows,
        cfg.detection_threshold,
        out / "plots" / "stream_far_vs_miss.png",
        f"{model.name} ({backend.kind}): {stream.duration_s / 60:.1f} min stream",
    )
    result = {
        "model": str(model), "backend": backend.kind, "stream": stream.description,
        "duration_s": stream.duration_s, "stream_config": dataclasses.asdict(cfg),
        "scores": scores.summary(), "sweep": rows, "plot": str(plot.relative_to(out)),
        "events": [{"label": e[0], "time_ms": e[1], "score": e[2]} for e in events],
        "throughput": {"speed_x_realtime": stats.speed_x_realtime,
                       "real_time_factor": stats.real_time_factor,
                       "latency_mean_ms": stats.latency_mean_ms,
                       "latency_p95_ms": stats.latency_p95_ms, "inferences": stats.inferences},
    }  # fmt: skip
    atomic_write_json(out / "stream_eval.json", result, strict=True)
    update_report(out / "report.md", render_section(result))
    return result


def plot_det(rows: list[dict], operating: float, path: Path, title: str) -> Path:
    """DET curve: miss rate against false accepts per hour on the negatives (log axis), one
    point per threshold, the operating point starred."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 4))
    floor = 0.1  # zero false accepts plot at 0.1/h on the log axis
    fa = [max(r["negative_false_accepts_per_hour"], floor) for r in rows]
    ax.plot(fa, [r["miss_rate_percent"] for r in rows], marker=".")
    for r, x in zip(rows, fa, strict=True):
        if r["threshold"] == operating:
            ax.plot(x, r["miss_rate_percent"], "r*", markersize=14,
                    label=f"operating point (threshold {operating:g})")  # fmt: skip
    ax.axhline(16, color="gray", lw=0.6, ls="--", label="MLPerf Tiny gate: 16% misses")
    ax.set_xscale("log")
    ax.set_xlabel("false accepts per hour (keyword-free speech; 0 plotted at 0.1)")
    ax.set_ylabel("miss rate (%)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return save_png(fig, path, dpi=120)


def write_benchmark(result: dict, out: Path) -> str:
    """stream_benchmark.json, plots/stream_det.png and report.md's benchmark section."""
    plot = plot_det(result["sweep"], result["operating"]["threshold"],
                    out / "plots" / "stream_det.png",
                    f"{result['backend']}: {result['negatives']} negatives")  # fmt: skip
    result["plot"] = str(plot.relative_to(out))
    atomic_write_json(out / "stream_benchmark.json", result, strict=True)
    section = render_benchmark(result)
    update_report(out / "report.md", section, BENCH_SECTION)
    return section
