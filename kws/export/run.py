"""Export stage: `export_run`, the library side of `kws export`.

Loads a checkpoint (or a run directory's best one), calibrates on the training split, writes
every artifact under the run's `export/`, evaluates every backend on the test split, checks the
int8 accuracy drop and (optionally) a microcontroller budget, and writes `report.md/json`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch

from kws.config import RecipeConfig
from kws.errors import UserError
from kws.export.artifacts import FORMATS, ExportArtifacts, check_formats, export_model
from kws.export.evaluate import BackendAccuracy, evaluate_backends
from kws.export.report import ExportReport, write_report
from kws.io import load_checkpoint
from kws.models import model_from_checkpoint

# The int8 artifacts that ship, in order of preference; the first one exported gates the drop.
_DEPLOYED_INT8 = ("tflite_int8", "tflm_int8")


def _checkpoint_path(path: Path) -> tuple[Path, Path]:
    """(checkpoint file, run directory) for a checkpoint file or a run directory."""
    if path.is_dir():
        for candidate in ("checkpoints/best.pt", "checkpoints/last.pt", "best.pt", "last.pt"):
            if (path / candidate).is_file():
                return path / candidate, path
        return path, path  # load_checkpoint raises the clear error
    run_dir = path.parent.parent if path.parent.name == "checkpoints" else path.parent
    return path, run_dir


def _collect(batches, limit: int) -> tuple[np.ndarray, np.ndarray]:
    """Stack `(features, labels)` batches into numpy arrays, keeping at most `limit` (0 = all)."""
    features, labels, count = [], [], 0
    for x, y in batches:
        features.append(x.float().cpu().numpy())
        labels.append(y.cpu().numpy())
        count += len(y)
        if limit and count >= limit:
            break
    if not features:
        return np.zeros((0, 0, 0), np.float32), np.zeros(0, np.int64)
    x, y = np.concatenate(features), np.concatenate(labels)
    return (x[:limit], y[:limit]) if limit else (x, y)


def _budget(cfg: RecipeConfig, target_name: str, art: ExportArtifacts) -> list[dict]:
    """Budget lines of `target_name` with the real .tflite size and the measured arena."""
    from kws.budget import budget_lines, load_target, profile

    target = load_target(target_name)
    prof = profile(cfg.model, tflite_path=art.files.get("tflite_int8"), target=target)
    if art.arena_bytes is not None:  # a measurement beats the estimate the profile carries
        prof = dataclasses.replace(prof, arena_estimate_bytes=art.arena_bytes)
    lines = [dataclasses.asdict(line) for line in budget_lines(prof, target)]
    for line in lines:
        if line["name"] == "sram" and art.arena_bytes is not None:
            line["estimate"], line["note"] = False, line["note"] + " (measured arena)"
    return lines


def _gate(accuracies: list[BackendAccuracy], max_drop: float) -> tuple[dict, list[str], list]:
    float_acc = next(a.accuracy for a in accuracies if a.backend == "torch_float")
    drops = {a.backend: 100 * (float_acc - a.accuracy) for a in accuracies if a.int8}
    gated = [b for b in _DEPLOYED_INT8 if b in drops] or list(drops)
    failures = [
        f"{b} accuracy is {drops[b]:.2f} points below torch float (allowed {max_drop:g}); "
        "use more calibration batches (export.calibration_batches) or retrain"
        for b in gated
        if drops[b] > max_drop
    ]
    return drops, failures, gated


def export_run(
    checkpoint_path_or_run_dir: str | Path,
    *,
    formats: tuple[str, ...] | list[str] | None = None,
    target: str | None = None,
    data_root: str | Path | None = None,
    out_dir: str | Path | None = None,
    max_drop_points: float | None = None,
    progress: bool = True,
) -> ExportReport:
    """Export a trained model, evaluate every backend, check int8 accuracy and the budget.

    Args:
        checkpoint_path_or_run_dir: a `.pt` checkpoint or a run directory (its best.pt).
        formats: subset of ("onnx", "tflite", "tflm"); default the run's `export.formats`.
        target: budget target name (kws/budget/targets.yaml); default `budget.target`.
        data_root: overrides the run's `data.root` (calibration and evaluation data).
        out_dir: default `<run dir>/export`.
        max_drop_points: allowed int8 accuracy drop; default `export.max_int8_drop_points`.
        progress: show data-loading progress.

    Returns:
        The report (also written as `report.md` and `report.json` in the export folder);
        `report.passed` is False when the int8 drop or the budget fails.
    """
    ckpt_path, run_dir = _checkpoint_path(Path(checkpoint_path_or_run_dir))
    model, cfg, labels = model_from_checkpoint(load_checkpoint(ckpt_path))
    formats = check_formats(tuple(formats or cfg.export.formats or FORMATS))
    target = target if target is not None else cfg.budget.target
    if target:
        from kws.budget import load_target

        load_target(target)  # fail on an unknown target before the slow work
    if data_root is not None:
        cfg.data.root = str(data_root)
    max_drop = cfg.export.max_int8_drop_points if max_drop_points is None else max_drop_points
    out = Path(out_dir) if out_dir is not None else run_dir / "export"

    from kws.data.dataset import build_data

    data = build_data(cfg, torch.device("cpu"), progress=progress)
    if list(data.labels) != list(labels):
        raise UserError(
            f"the data's labels {data.labels} differ from the checkpoint's {labels}; "
            "point --data at the dataset the model was trained on"
        )
    batch = cfg.train.batch_size
    calib_x, _ = _collect(
        data.batches("training", batch, shuffle=True), cfg.export.calibration_batches * batch
    )
    if len(calib_x) == 0:
        raise UserError("the training split is empty; int8 calibration needs training examples")
    calibration = [calib_x[i : i + batch] for i in range(0, len(calib_x), batch)]
    art = export_model(model, labels, cfg.features, calibration, out, formats=formats,
                       name=cfg.name)  # fmt: skip

    test_x, test_y = _collect(data.batches("testing", 500), cfg.export.eval_max_clips)
    accuracies = evaluate_backends(model, art.files, test_x, test_y, art.arena_bytes)
    drops, failures, gated = _gate(accuracies, max_drop)
    lines = _budget(cfg, target, art) if target else []
    failures += [
        f"budget '{target}': {ln['name']} {ln['value']:,.6g} {ln['unit']} exceeds "
        f"{ln['limit']:,.6g} ({ln['note']})"
        for ln in lines
        if not ln["passed"]
    ]
    report = ExportReport(
        checkpoint=str(ckpt_path),
        export_dir=out,
        formats=list(formats),
        files={role: str(p.relative_to(out)) for role, p in art.files.items()},
        sizes_bytes={role: art.size_bytes(role) or 0 for role in art.files},
        accuracies=accuracies,
        float_accuracy=accuracies[0].accuracy,
        int8_drop_points=drops,
        max_int8_drop_points=max_drop,
        gated_backends=gated,
        arena_bytes=art.arena_bytes,
        ops=art.ops,
        eval_examples=len(test_y),
        eval_split_examples=data.num_examples("testing"),
        target=target or "",
        budget_lines=lines,
        failures=failures,
    )
    write_report(report)
    return report
