"""Export stage: `export_run`, the library side of `kws export`.

Resolves the run, checks the extras and the output folder before any slow work, calibrates on
the training split, writes every artifact under the run's `export/`, evaluates every backend on
the same test examples, gates the deployed int8 model against torch float on those pairs, checks
a microcontroller budget, and writes `report.md/json`.

The int8 gate: a deployed int8 backend fails when it is more than `export.max_int8_drop_points`
below float AND the drop is not noise: McNemar's exact test on the examples where the two
disagree gives p < 0.05. On 240 test clips one point is 2.4 clips; without the paired test the
gate flipped on a single clip. Fewer than 6 test examples cannot reach p < 0.05 however int8
fares, so the gate fails them as undecided instead of passing them.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch

from kws.budget import budget_lines, config_limit_lines, load_target, profile
from kws.config import RecipeConfig, unread_overrides
from kws.data.dataset import build_data
from kws.errors import UserError, require_all
from kws.export.artifacts import (
    FORMATS,
    ExportArtifacts,
    check_formats,
    clear_export,
    export_model,
)
from kws.export.evaluate import BackendAccuracy, evaluate_backends
from kws.export.report import ExportReport, write_report
from kws.io import check_writable, other_entries
from kws.run import Run, pin_to_checkpoint, resolve_run
from kws.stats import mcnemar_p
from kws.train.evaluate import EVAL_SEED
from kws.train.setup import thread_count

# The int8 artifacts that ship, in order of preference; the first one exported gates the drop.
_DEPLOYED_INT8 = ("tflite_int8", "tflm_int8")
_SIGNIFICANCE = 0.05
# What export reads of a run's config; any other override would change nothing.
EXPORT_READS = ("data", "features", "export", "budget", "name", "train.batch_size",
                "train.num_threads")  # fmt: skip
_EXTRAS = {
    "onnx": {"onnx": ("export", None), "onnxruntime": ("export", None),
             "onnxscript": ("export", None)},
    "tflite": {"tensorflow": ("export", "tensorflow-cpu"),
               "ai_edge_litert": ("export", "ai-edge-litert")},
    "tflm": {"tensorflow": ("export", "tensorflow-cpu"),
             "ai_edge_litert": ("export", "ai-edge-litert"),
             "tflite_micro": ("export", "tflite-micro")},
}  # fmt: skip


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


def _budget(cfg: RecipeConfig, spec, art: ExportArtifacts) -> list[dict]:
    """Budget lines of the run's target and of its own `budget.max_*` limits, with the real
    .tflite size and the measured arena."""
    target = None
    if cfg.budget.target:
        target = load_target(cfg.budget.target, runtime=cfg.budget.runtime or None)
    prof = profile(spec, tflite_path=art.files.get("tflite_int8"), target=target)
    if art.arena_bytes is not None:  # a measurement beats the estimate the profile carries
        prof = dataclasses.replace(prof, arena_estimate_bytes=art.arena_bytes)
    found = (budget_lines(prof, target) if target else []) + config_limit_lines(prof, cfg.budget)
    lines = [dataclasses.asdict(line) for line in found]
    for line in lines:
        if line["name"] == "sram" and art.arena_bytes is not None:
            line["estimate"] = False
            line["note"] = line["note"].replace("TFLM arena estimate", "TFLM arena") + (
                " (measured arena)"
            )
    return lines


def int8_gate(
    accuracies: list[BackendAccuracy], right: dict[str, np.ndarray], max_drop: float
) -> tuple[dict, dict, list[str], list[str]]:
    """Paired int8 gate (see the module docstring).

    Returns:
        (drop in points per int8 backend, paired stats per int8 backend, gated backends,
        failure messages).
    """
    float_right = right["torch_float"]
    drops, paired = {}, {}
    for acc in accuracies:
        if not acc.int8:
            continue
        only_float = int((float_right & ~right[acc.backend]).sum())
        only_int8 = int((~float_right & right[acc.backend]).sum())
        drops[acc.backend] = 100.0 * (only_float - only_int8) / max(acc.num_examples, 1)
        paired[acc.backend] = {
            "only_float_right": only_float,
            "only_int8_right": only_int8,
            "mcnemar_p": mcnemar_p(only_float, only_int8),
        }
    gated = [b for b in _DEPLOYED_INT8 if b in drops] or list(drops)
    # Below this many examples even "float right, int8 wrong on every one" is not significant:
    # the gate could not fail, so it must not pass.
    decidable = next(n for n in range(1, 64) if mcnemar_p(n, 0) < _SIGNIFICANCE)
    failures = [
        f"{acc.backend}: only {acc.num_examples} test examples, and the paired test needs at least "
        f"{decidable} to see any drop at all; evaluate on more (a larger test split, "
        "export.eval_max_clips=0)"
        for acc in accuracies
        if acc.backend in gated and acc.num_examples < decidable
    ]
    failures += [
        f"{b} accuracy is {drops[b]:.2f} points below torch float (allowed {max_drop:g}; "
        f"{paired[b]['only_float_right']} examples right only in float vs "
        f"{paired[b]['only_int8_right']} only in int8, McNemar p = {paired[b]['mcnemar_p']:.3g}"
        "); use more calibration batches (export.calibration_batches) or retrain"
        for b in gated
        if drops[b] > max_drop and paired[b]["mcnemar_p"] < _SIGNIFICANCE
    ]
    return drops, paired, gated, failures


def _refuse_foreign_folder(out: Path, force: bool) -> None:
    """An export writes report.md, model files and a manifest: never into a folder of other
    things (a dataset, say), where it would write over their files of the same name, unless
    `force` says the folder is meant (an interrupted export there); never into a run folder.

    Raises:
        UserError: `out` is a file or a run folder, or holds other files without `force`.
    """
    if out.is_file():
        raise UserError(f"--out '{out}' is a file; give a new or empty folder")
    if Run(out).config_path.is_file() or Run(out).has_results():  # --force or not
        raise UserError(
            f"--out '{out}' is a run folder; an export there would replace its report.md and "
            "sit among its checkpoints: give a folder of its own (the run's export/ is the "
            "default)"
        )
    if force or (out / "manifest.json").is_file():
        return
    shown = other_entries(out)
    if shown:
        raise UserError(
            f"'{out}' is not empty ({shown}) and holds no export; an export there would "
            "replace files of the same name (report.md, ...): give --out a new or empty folder "
            "(--force writes into it anyway, e.g. after an interrupted export)"
        )


def export_run(
    path: str | Path,
    overrides: list[str] | None = None,
    *,
    out_dir: str | Path | None = None,
    force: bool = False,
    progress: bool = True,
) -> ExportReport:
    """Export a trained model, evaluate every backend, gate int8 accuracy, check the budget.

    Args:
        path: a run folder or checkpoint (its best one for a folder).
        overrides: dotted overrides of the run's config: `export.formats=[tflite,tflm]`,
            `budget.target=cortex-m4f`, `data.root=...`, `export.max_int8_drop_points=0.5`.
        out_dir: default `<run>/export`.
        force: replace an existing export: its files (`EXPORT_ENTRIES`) are removed first.

    Returns:
        The report (also `report.md` / `report.json` in the export folder); `report.passed` is
        False when the int8 gate or the budget fails.

    Raises:
        MissingExtraError: a format's packages are missing (checked before any slow work).
        UserError: an override export does not read, an existing export or a folder of other
            files without `force`, a file as
            `out_dir`, an unwritable folder, an unknown target, labels that differ between
            data and model, a front end that differs from the model's
            (`kws.run.pin_to_checkpoint`), an empty split.
    """
    if ignored := unread_overrides(overrides, EXPORT_READS):
        raise UserError(
            f"kws export reads only the run's {', '.join(EXPORT_READS)}, so {' '.join(ignored)} "
            "would change nothing; the model is its checkpoint's (retrain, or pick another "
            "checkpoint, to change it)"
        )
    ref = resolve_run(path)
    ckpt = ref.checkpoint()
    checkpoint = ref.checkpoint_path()
    cfg = pin_to_checkpoint(ref.run.config(overrides, checkpoint=ckpt), ckpt, checkpoint)
    with thread_count(cfg.train.num_threads):  # a recipe's threads are its run's
        formats = check_formats(tuple(cfg.export.formats or FORMATS))
        for fmt in formats:
            require_all(_EXTRAS[fmt])
        if cfg.budget.target:
            load_target(cfg.budget.target, runtime=cfg.budget.runtime or None)
        out = Path(out_dir) if out_dir is not None else ref.run.export_dir
        if (out / "manifest.json").is_file() and not force:
            raise UserError(
                f"'{out}' already holds an export; pass --force to replace it, or --out NEW_FOLDER"
            )
        if out != ref.run.export_dir:  # the run's own export folder holds nothing else
            _refuse_foreign_folder(out, force)
        check_writable(out, "the export")
        model = ckpt.build_model()
        data = build_data(cfg, torch.device("cpu"), progress=progress)
        if list(data.labels) != list(ckpt.labels):
            raise UserError(
                f"the data's labels {data.labels} differ from the checkpoint's {ckpt.labels}; "
                "point data.root at the dataset the model was trained on"
            )
        batch = cfg.train.batch_size
        calib_x, _ = _collect(
            data.batches("training", batch, shuffle=True), cfg.export.calibration_batches * batch
        )
        if len(calib_x) == 0:
            raise UserError("the training split is empty; int8 calibration needs training examples")
        calibration = [calib_x[i : i + batch] for i in range(0, len(calib_x), batch)]
        # the evaluation seed: the same examples, silence noise included, as `kws evaluate`
        tests = data.batches("testing", 500, seed=EVAL_SEED)
        test_x, test_y = _collect(tests, cfg.export.eval_max_clips)
        if len(test_y) == 0:
            raise UserError("the test split is empty; export evaluates every backend on it")
        clear_export(out)  # inputs checked; --force: no file of the previous export outlives it
        art = export_model(model, ckpt.labels, cfg.features, calibration, out, formats=formats,
                           name=cfg.name, checkpoint=checkpoint)  # fmt: skip
        accuracies, right = evaluate_backends(model, art.files, test_x, test_y, art.arena_bytes)
        max_drop = cfg.export.max_int8_drop_points
        drops, paired, gated, failures = int8_gate(accuracies, right, max_drop)
        lines = _budget(cfg, ckpt.spec, art)
        where = f" '{cfg.budget.target}'" if cfg.budget.target else ""
        failures += [
            f"budget{where}: {ln['name']} {ln['value']:,.6g} {ln['unit']} exceeds "
            f"{ln['limit']:,.6g} ({ln['note']})"
            for ln in lines
            if not ln["passed"]
        ]
        report = ExportReport(
            checkpoint=str(checkpoint),
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
            target=cfg.budget.target,
            budget_lines=lines,
            failures=failures,
            paired=paired,
        )
        write_report(report)
        return report
