"""Export stage: the export report (accuracy per backend, sizes, arena, budget) as MD and JSON."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from kws.export.evaluate import BackendAccuracy
from kws.io import atomic_write_json, atomic_write_text


@dataclass
class ExportReport:
    """Outcome of `export_run`; `passed` is False when int8 accuracy or the budget fails."""

    checkpoint: str
    export_dir: Path
    formats: list[str]
    files: dict[str, str]  # role -> path relative to export_dir
    sizes_bytes: dict[str, int]
    accuracies: list[BackendAccuracy]
    float_accuracy: float
    int8_drop_points: dict[str, float]  # int8 backend -> (float - int8) accuracy in points
    max_int8_drop_points: float
    gated_backends: list[str]  # int8 backends whose drop decides pass/fail
    arena_bytes: int | None
    ops: list[str]
    eval_examples: int
    eval_split_examples: int
    target: str = ""
    budget_lines: list[dict] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    paired: dict = field(default_factory=dict)  # int8 backend -> disagreement counts, McNemar p

    @property
    def passed(self) -> bool:
        return not self.failures

    def to_json(self) -> dict:
        data = dataclasses.asdict(self)
        data["export_dir"] = str(self.export_dir)
        data["passed"] = self.passed
        return data


def render_markdown(report: ExportReport) -> str:
    """The human-readable `export/report.md`."""
    lines = [
        f"# Export report: {report.checkpoint}",
        "",
        f"Status: **{'PASS' if report.passed else 'FAIL'}**",
        "",
        f"Evaluated on {report.eval_examples} of {report.eval_split_examples} test-split examples "
        "(the same examples for every backend).",
        "",
        "| backend | accuracy [95% interval] (n) | drop vs torch float (points) | "
        "right only in float / only here | McNemar p |",
        "|---|---|---|---|---|",
    ]
    for acc in report.accuracies:
        drop = report.int8_drop_points.get(acc.backend)
        pair = report.paired.get(acc.backend)
        drop_text = "" if drop is None else f"{drop:+.2f}"
        pair_text = (
            f"{pair['only_float_right']} / {pair['only_int8_right']} | {pair['mcnemar_p']:.3g}"
            if pair
            else " | "
        )
        lines.append(f"| {acc.backend} | {acc.text()} | {drop_text} | {pair_text} |")
    lines += ["", "| file | bytes |", "|---|---|"]
    lines += [f"| {report.files[role]} | {size:,} |" for role, size in report.sizes_bytes.items()]
    lines += [""]
    if report.arena_bytes is not None:
        lines.append(f"TFLite Micro arena (measured by the interpreter): {report.arena_bytes:,} B")
    if report.ops:
        lines.append(f"Ops: {', '.join(report.ops)}")
    lines += [
        "",
        f"int8 gate: {', '.join(report.gated_backends) or 'none'} fails when its drop exceeds "
        f"{report.max_int8_drop_points:g} points and McNemar's exact test on the examples where "
        "it and float disagree gives p < 0.05 (paired: the same examples for every backend).",
    ]
    if report.target:
        lines += ["", f"## Budget: {report.target}", "", "| line | value | limit | ok |",
                  "|---|---|---|---|"]  # fmt: skip
        for line in report.budget_lines:
            value = f"{line['value']:,.6g} {line['unit']}"
            lines.append(
                f"| {line['name']} | {value} | {line['limit']:,.6g} | "
                f"{'yes' if line['passed'] else 'NO'} |"
            )
    if report.failures:
        lines += ["", "## Failures", ""] + [f"- {f}" for f in report.failures]
    return "\n".join(lines) + "\n"


def write_report(report: ExportReport) -> tuple[Path, Path]:
    """`report.md` and `report.json` in the export folder (atomically)."""
    md = atomic_write_text(report.export_dir / "report.md", render_markdown(report))
    js = atomic_write_json(report.export_dir / "report.json", report.to_json())
    return md, js
