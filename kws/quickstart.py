"""`kws quickstart` / `make quickstart`: the whole pipeline on a synthesized set.

synthesize -> train DS-CNN-S -> evaluate -> grow a compact seed by splitting -> export (ONNX,
int8 TFLite, TFLite Micro) -> streaming evaluation. Rerunning skips what is done: synthesis,
training and growth resume, an export made from the current best checkpoint is kept; the test
evaluation and the streaming evaluation (a few seconds each) are redone.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from kws.config import load_recipe
from kws.data.dataset import build_data
from kws.data.synth import synthesize
from kws.export import export_run
from kws.export.artifacts import exported_checkpoint_sha256
from kws.growth.loop import grow
from kws.io import atomic_write_text, file_sha256
from kws.run import Run
from kws.stats import format_rate_per_hour, format_share
from kws.stream.evaluate import stream_evaluate
from kws.train.evaluate import evaluate, plot_confusion
from kws.train.loop import train
from kws.train.report import format_result
from kws.train.setup import resolve_device

GROW_RECIPE = "recipes/synth/grow.yaml"


def _step(title: str) -> float:
    print(f"\n== {title}", flush=True)
    return time.perf_counter()


def _done(start: float) -> None:
    print(f"   ({time.perf_counter() - start:.0f} s)", flush=True)


def current_export(run: Run) -> dict | None:
    """The run's export report (report.json) when its manifest records the run's best checkpoint
    (SHA-256) as the model exported; None when there is no export or it is of another model."""
    report = run.export_dir / "report.json"
    made_from = exported_checkpoint_sha256(run.export_dir)
    if not report.is_file() or made_from is None:
        return None
    if made_from != file_sha256(run.checkpoint_path("best")):
        return None
    return json.loads(report.read_text())


def _export(run: Run) -> int:
    """Step 5: export unless the current model's export is there; 1 when its gates fail."""
    done = current_export(run)
    if done is not None:
        print(
            f"   kept the export of this model in {run.export_dir} "
            f"({'PASS' if done['passed'] else 'FAIL: ' + '; '.join(done['failures'])}); "
            f"`kws export {run.root} --force` makes it again"
        )
        return 0 if done["passed"] else 1
    report = export_run(run.root, force=True)
    for acc in report.accuracies:
        print(f"   {acc.backend:>12}: {acc.text()}")
    print(
        f"   int8 .tflite {report.sizes_bytes.get('tflite_int8', 0):,} B; TFLite Micro "
        f"arena {report.arena_bytes or 0:,} B; {'PASS' if report.passed else 'FAIL'}: "
        f"{'; '.join(report.failures) or 'int8 within the allowed drop'}"
    )
    return 0 if report.passed else 1


def run_quickstart(recipe: str, overrides: list[str], skip: list[str] = ()) -> int:
    """Run every quickstart step; returns the exit status (non-zero when export fails)."""
    total = time.perf_counter()
    cfg = load_recipe(recipe, overrides)
    run = Run(Path(cfg.runs_dir) / cfg.name)
    t = _step(f"1. synthesize a 12-class set into {cfg.data.root}")
    synthesize(Path(cfg.data.root), size="quick", seed=0)
    _done(t)

    t = _step(f"2. train {cfg.model.preset or cfg.model.family} -> {run.root}")
    data = build_data(cfg, resolve_device(cfg.train.device))  # decoded once for every step
    result = train(cfg, run, resume=True, data=data)
    _done(t)

    t = _step("3. evaluate on the test split")
    model = run.checkpoint("best").build_model().to(data.device)
    test = evaluate(model, data, "testing")
    plot_confusion(test, run.plots_dir / "confusion_testing.png")
    print(format_result(test))
    summary = [
        f"# {cfg.name}",
        "",
        f"- validation accuracy (best): {100 * result.best_val_accuracy:.2f}%",
        f"- test accuracy: {test.accuracy_text()}",
        f"- commands told apart (of the command clips called a command): "
        f"{test.command_accuracy_text()}",
        "",
    ]
    atomic_write_text(run.root / "summary.md", "\n".join(summary))
    _done(t)

    status = 0
    if "grow" not in skip:
        t = _step(f"4. grow a compact seed by splitting steepest descent ({GROW_RECIPE})")
        grow_cfg = load_recipe(GROW_RECIPE, [f"data.root={cfg.data.root}"])
        same_data = grow_cfg.data == cfg.data and grow_cfg.features == cfg.features
        grow(
            grow_cfg,
            Path(grow_cfg.runs_dir) / grow_cfg.name,
            resume=True,
            data=data if same_data else None,
        )
        _done(t)
    if "export" not in skip:
        t = _step("5. export ONNX, int8 TFLite and TFLite Micro; evaluate every backend")
        status = _export(run)
        _done(t)
    if "stream" not in skip:
        t = _step("6. streaming evaluation (false accepts per hour, misses, latency)")
        scores = stream_evaluate(run.root, data_root=cfg.data.root, minutes=5.0)["scores"]
        print(
            f"   commands missed {format_share(scores['misses'], scores['keyword_words'])}, "
            f"false accepts {format_rate_per_hour(scores['false_accepts'], scores['hours'])} "
            f"(threshold sweep in {run.report_path})"
        )
        _done(t)
    print(
        f"\nquickstart finished in {(time.perf_counter() - total) / 60:.1f} min; "
        f"test accuracy {test.accuracy_text()}; run folder: {run.root}"
    )
    return status
