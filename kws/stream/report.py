"""Streaming stage: report.md sections of a streaming evaluation and of the wake-word benchmark
(`kws stream-eval`), every rate with its counts and 95% interval: misses of commands a Wilson
interval, false accepts per hour an exact Poisson one (kws.stats)."""

from __future__ import annotations

import re
from pathlib import Path

from kws.io import atomic_write_text
from kws.stats import format_rate_per_hour, format_share

SECTION = "## Streaming evaluation"
BENCH_SECTION = "## Streaming benchmark"


def render_section(result: dict) -> str:
    """The report.md section of a `stream_evaluate` result (scores, latency, sweep, plot)."""
    s, st = result["scores"], result["throughput"]
    lines = [
        SECTION, "",
        f"Stream: {result['stream']}; {result['duration_s'] / 60:.1f} min, backend "
        f"`{result['backend']}`, stride {result['stream_config']['stride_ms']:g} ms, threshold "
        f"{result['stream_config']['detection_threshold']:g}, suppression "
        f"{result['stream_config']['suppression_ms']:g} ms, window "
        f"{result['stream_config']['average_window_ms']:g} ms.", "",
        "| keyword words | matched | correct | wrong | commands missed [95%] | false accepts "
        "per hour [95%] |",
        "|---|---|---|---|---|---|",
        f"| {s['keyword_words']} (+{s['unknown_words']} unknown) | {s['matched_percent']:.1f}% | "
        f"{s['correct_percent']:.1f}% | {s['wrong_percent']:.1f}% | "
        f"{format_share(s['misses'], s['keyword_words'])} "
        f"| {format_rate_per_hour(s['false_accepts'], s['hours'])} |", "",
        f"Detection latency of correct detections (firing time = end of the analysed window): "
        f"from the clip's start mean {s['latency_from_onset_mean_ms']:.0f} ms / median "
        f"{s['latency_from_onset_median_ms']:.0f} ms; from the clip's end mean "
        f"{s['latency_from_end_mean_ms']:.0f} ms / median {s['latency_from_end_median_ms']:.0f} "
        "ms.", "",
        f"Throughput: {st['speed_x_realtime']:.0f}x faster than real time, inference latency "
        f"mean {st['latency_mean_ms']:.2f} ms / p95 {st['latency_p95_ms']:.2f} ms "
        f"({st['inferences']} inferences).", "",
        "| threshold | false accepts per hour [95%] | commands missed [95%] |", "|---|---|---|",
    ]  # fmt: skip
    for r in result["sweep"]:
        fa, missed = (format_rate_per_hour(r["false_accepts"], r["hours"]),
                      format_share(r["misses"], r["keyword_words"]))  # fmt: skip
        lines.append(f"| {r['threshold']:g} | {fa} | {missed} |")
    lines += ["", f"![false accepts vs misses]({result['plot']})", ""]
    return "\n".join(lines)


def update_report(path: Path, section: str, heading: str = SECTION) -> Path:
    """Replace the report's section under `heading` (or append it), atomically."""
    text = path.read_text() if path.is_file() else "# Report\n"
    pattern = re.compile(rf"^{re.escape(heading)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    return atomic_write_text(path, text)


def render_benchmark(result: dict) -> str:
    """The report.md section of a benchmark result (counts beside every rate)."""
    op, hours = result["operating"], result["hours"]
    lines = [
        BENCH_SECTION, "",
        f"Backend `{result['backend']}`; stream: {result['stream']}; keyword-free speech: "
        f"{result['negatives']}. MLPerf Tiny rules (a right firing inside a command's clip + "
        "750 ms counts once; any other firing is a false accept).", "",
    ]  # fmt: skip
    if "calibration" in result:
        c = result["calibration"]
        lines += [
            f"Threshold {c['threshold']:g} calibrated on the validation speakers and "
            f"negatives for <= {c['target_fa_per_hour']:g} false accepts per hour on the "
            f"negatives and <= {c.get('stream_fa_per_hour', c['target_fa_per_hour']):g} on the "
            "stream.",
            "",
        ]
    lines += [
        "| threshold | commands missed | false accepts in the stream | false accepts on the "
        "negatives | FA per hour (negatives) |",
        "|---|---|---|---|---|",
    ]
    for r in result["sweep"]:
        mark = " **(operating)**" if r["threshold"] == op["threshold"] else ""
        lines.append(
            f"| {r['threshold']:g}{mark} | {format_share(r['misses'], r['commands'])} | "
            f"{r['false_accepts']} in {60 * hours['stream']:.0f} min | "
            f"{r['negative_false_accepts']} in {60 * hours['negatives']:.0f} min | "
            f"{format_rate_per_hour(r['negative_false_accepts'], hours['negatives'])} |"
        )
    lines += [
        "",
        *_breakdown_lines(result.get("operating_misses")),
        f"![DET curve]({result['plot']})",
        "",
    ]
    return "\n".join(lines)


def _breakdown_lines(breakdown: dict | None) -> list[str]:
    """Where the operating point's misses are: by SNR segment and by speaker group."""
    if not breakdown:
        return []

    def cells(part: dict) -> str:
        return ", ".join(f"{key} {c['misses']}/{c['commands']}" for key, c in part.items())

    lines = [f"Commands missed at the operating threshold, by SNR (dB): "
             f"{cells(breakdown['snr_db'])}."]  # fmt: skip
    if len(breakdown.get("speaker_group", {})) > 1:
        lines[0] += (" By speaker group (the speaker id before its `-`: the TTS engine of a "
                     f"synthesized set): {cells(breakdown['speaker_group'])}.")  # fmt: skip
    return [*lines, ""]
