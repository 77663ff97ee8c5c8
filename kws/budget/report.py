"""Budget stage: `kws profile` — resolve a model, profile it, print a table or JSON."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from kws.budget.check import BudgetLine, budget_lines, config_limit_lines
from kws.budget.profile import Profile, profile
from kws.budget.targets import Target, load_target, runtime_names
from kws.config import RecipeConfig, load_recipe
from kws.data.gsc import num_classes_for
from kws.errors import UserError
from kws.models import ModelSpec
from kws.run import resolve_run

TFLITE_IN_RUN = Path("export") / "model_int8.tflite"


def resolve_model(
    source: str | None, preset: str | None, overrides: list[str] | None = None
) -> tuple[ModelSpec, RecipeConfig, Path | None]:
    """(model spec, resolved config, exported int8 .tflite if any) of what `kws profile` names.

    `source` is a run folder, a checkpoint or a recipe (.yaml); `preset` a preset name (with the
    default front end and the 12-class task unless overrides say otherwise).

    Raises:
        UserError: neither or both given, an unknown preset, a path that is no run or recipe,
            an exported model (.onnx, .tflite) with no run checkpoint beside it.
    """
    overrides = list(overrides or [])
    if source is None and preset is None:
        raise UserError(
            "nothing to profile: give a run folder, checkpoint or recipe, or --model PRESET"
        )
    if source is not None and preset is not None:
        raise UserError(f"give '{source}' or --model {preset}, not both")
    if preset is not None or str(source).endswith((".yaml", ".yml")):
        if preset is not None:
            overrides = [f"model.preset={preset}", *overrides]
        cfg = load_recipe(source if preset is None else None, overrides)
        return ModelSpec.of(cfg.model, cfg.features, num_classes_for(cfg.data)), cfg, None
    ref = resolve_run(source)
    if ref.model_path is not None and ref.kind == "run":  # a file, but of no model kind
        raise UserError(
            f"'{source}' is not a run folder, checkpoint (.pt) or recipe (.yaml); profile "
            "reads the model's architecture from one of those, or use --model PRESET"
        )
    if ref.kind in ("onnx", "tflite"):
        try:  # an export inside a run: the run's checkpoint is the model
            ref.run.checkpoint_path("best")
        except UserError:
            raise UserError(
                f"'{source}' is an exported model with no run checkpoint beside it; profile "
                "reads the architecture from the checkpoint (.pt) it was exported from or its "
                "run folder: pass one of those"
            ) from None
    ckpt = ref.checkpoint()
    # the named checkpoint's own config when no config.yaml is beside it (not the folder's best)
    cfg = ref.run.config(overrides, checkpoint=ckpt)
    tflite = ref.run.root / TFLITE_IN_RUN
    return ckpt.spec, cfg, (tflite if tflite.is_file() else None)


def _fmt_bytes(size: float) -> str:
    return f"{int(size):,} B ({size / 1024:.1f} KiB)"


def _fmt_value(value: float, unit: str) -> str:
    if unit == "bytes":
        return _fmt_bytes(value)
    if unit == "ms":
        return f"{value:.1f} ms"
    return f"{int(value):,} {unit}"


def print_report(prof: Profile, lines: list[BudgetLine], target: Target | None, file=None) -> None:
    """Per-layer table, totals and PASS/FAIL budget lines as rich tables."""
    console = Console(file=file or sys.stdout)
    if not console.is_terminal:  # pipes and files: wide enough for full layer names
        console.width = 120
    table = Table(title=f"{prof.model}: int8 profile (one inference)")
    for header in ("layer", "kind", "output (c, t, f)", "params", "MACs", "act. bytes"):
        table.add_column(header, justify="left" if header in ("layer", "kind") else "right")
    if prof.latency_ms is not None:
        table.add_column("latency ms (est.)", justify="right")
    for layer in prof.layers:
        row = [
            layer.name,
            layer.kind,
            "x".join(map(str, layer.out_shape)),
            f"{layer.params:,}",
            f"{layer.macs:,}",
            f"{layer.activation_bytes:,}",
        ]
        if prof.latency_ms is not None:
            row.append(f"{layer.latency_ms:.2f}")
        table.add_row(*row)
    console.print(table)
    flash_kind = "exported .tflite" if prof.flash_source == "tflite" else "estimate"
    console.print(
        f"params {prof.params:,}   MACs {prof.macs:,}   ops {prof.ops / 1e6:.2f} M\n"
        f"flash {_fmt_bytes(prof.flash_bytes)} ({flash_kind})\n"
        f"peak activations {_fmt_bytes(prof.peak_activation_bytes)} at {prof.peak_layer}   "
        f"TFLM arena {_fmt_bytes(prof.arena_estimate_bytes)} (estimate)\n"
        f"Hello Edge memory (params + activations, 8 bit) "
        f"{_fmt_bytes(prof.hello_edge_memory_bytes)}"
    )
    if prof.latency_ms is not None:
        console.print(
            f"latency {prof.latency_ms:.1f} ms on {prof.target} (estimate; runtime "
            f"{prof.latency_runtime}; {prof.latency_calibration})"
        )
    if not lines:
        return
    title = f"budget: {target.name} ({target.description})" if target else "budget: budget.max_*"
    budget = Table(title=title)
    for header in ("line", "value", "limit", "result", "note"):
        budget.add_column(header)
    for line in lines:
        result = "[green]PASS[/green]" if line.passed else "[red]FAIL[/red]"
        value = _fmt_value(line.value, line.unit) + (" (est.)" if line.estimate else "")
        budget.add_row(line.name, value, _fmt_value(line.limit, line.unit), result, line.note)
    console.print(budget)


def run_profile(
    source: str | None,
    *,
    preset: str | None = None,
    overrides: list[str] | None = None,
    targets_file: str | Path | None = None,
    as_json: bool = False,
    file=None,
) -> int:
    """`kws profile`: print the profile and budget lines; 1 when a budget line fails, else 0.

    The target is `budget.target` of the run/recipe (override it: `budget.target=cortex-m7`),
    its latency model `budget.runtime` (default the target's); `targets_file` adds targets to
    choose from.

    Raises:
        UserError: a `targets_file` or a runtime but no target chosen (either would be
            ignored), and what `resolve_model` and `load_target` raise.
    """
    spec, cfg, tflite = resolve_model(source, preset, overrides)
    name = cfg.budget.target or None
    if targets_file is not None and name is None:
        raise UserError(
            f"--targets {targets_file} adds targets to check the model against, but no target "
            "is chosen, so it would be ignored; add --target NAME (one of that file's or a "
            "built-in one), or drop --targets"
        )
    runtime = cfg.budget.runtime or None
    if runtime and name is None:
        known = runtime_names()
        unknown = "" if runtime in known else f" ('{runtime}' is none of {', '.join(known)})"
        raise UserError(
            f"--runtime {runtime} (budget.runtime) picks the latency model of the target's "
            f"core, but no target is chosen, so it would be ignored{unknown}; add --target NAME "
            "(e.g. cortex-m4f), or drop --runtime"
        )
    target = load_target(name, targets_file, runtime) if name else None
    prof = profile(spec, tflite_path=tflite, target=target)
    lines = budget_lines(prof, target) if target is not None else []
    lines += config_limit_lines(prof, cfg.budget)  # budget.max_params, ... beside a target's
    passed = all(line.passed for line in lines)
    if as_json:
        payload = {
            "profile": prof.to_dict(),
            "target": dataclasses.asdict(target) if target is not None else None,
            "budget": [dataclasses.asdict(line) for line in lines],
            "passed": passed,
        }
        print(json.dumps(payload, indent=2), file=file or sys.stdout)
    else:
        print_report(prof, lines, target, file=file)
    return 0 if passed else 1
