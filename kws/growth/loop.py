"""Growth stage: the loop of Algorithm 1 (Liu, Wu, Wang 2019) under a budget.

Round 0 trains the seed; every later round scores the trained model, plans, splits (or runs a
baseline's widening) and trains again with a fresh optimizer. Round k lives in
`run_dir/rounds/round_<k>/` (a normal training run plus `grown.pt`, the model right after
surgery); `run_dir/growth.json` holds the history (widths, params, MACs, accuracies, splitting
spectra, what was split and why) and `run_dir/plots/` the growth plots. `resume=True` skips
finished rounds and continues an interrupted one from its last checkpoint.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch

from kws.config import RecipeConfig, from_dict, to_dict
from kws.errors import UserError
from kws.growth.baselines import (
    METHODS,
    matched_random_plan,
    random_plan,
    split_randomly,
    widen_random_init,
)
from kws.growth.plan import plan_splits, size_of
from kws.growth.scores import splitting_scores
from kws.growth.surgery import apply_splits
from kws.io import atomic_write_json, load_checkpoint, save_checkpoint
from kws.models import model_from_checkpoint


@dataclass
class GrowthResult:
    model: torch.nn.Module
    history: list[dict] = field(default_factory=list)
    run_dir: Path | None = None
    stop_reason: str = ""


def _budget(cfg: RecipeConfig):
    """The budget object: a named target from `kws.budget` when set, else the plain limits."""
    if cfg.budget.target:
        try:
            from kws.budget import load_target
        except ImportError:
            raise UserError(
                "budget.target needs kws.budget.load_target; use budget.max_params "
                "/ budget.max_macs instead"
            ) from None
        target = load_target(cfg.budget.target)
        if not getattr(target, "max_params", 0) and not getattr(target, "max_macs", 0):
            return cfg.budget
        return target
    return cfg.budget


def _load_history(run_dir: Path, resume: bool) -> list[dict]:
    path = run_dir / "growth.json"
    if resume and path.is_file():
        return json.loads(path.read_text())["rounds"]
    return []


def _save_history(run_dir: Path, cfg: RecipeConfig, history: list[dict], stop: str) -> None:
    atomic_write_json(
        run_dir / "growth.json",
        {"method": cfg.growth.method, "stop_reason": stop, "rounds": history},
    )
    from kws.growth.plots import plot_growth

    plot_growth(history, run_dir / "plots")


def _round_model(round_dir: Path, device: torch.device):
    ckpt = load_checkpoint(round_dir / "checkpoints" / "last.pt")
    return model_from_checkpoint(ckpt)[0].to(device)


def _grow_model(model, cfg: RecipeConfig, data, k: int, reference: list[dict] | None = None):
    """One growth step of `cfg.growth.method`: (grown model, plan, spectrum or None)."""
    g, budget = cfg.growth, _budget(cfg)
    if g.method == "splitting":
        batches = data.batches("training", cfg.train.batch_size, shuffle=True, seed=1000 + k)
        scores = splitting_scores(model, batches, g)
        plan = plan_splits(scores, model.cfg, g, budget)
        grown = apply_splits(model, plan, g.eps, scores)[0] if plan.num_splits else model
        return grown, plan, scores.spectrum()
    if reference is not None:  # same per-unit growth as the splitting run's round k
        counts = {}
        if k < len(reference) and reference[k].get("plan"):
            counts = {int(j): len(v) for j, v in reference[k]["plan"]["splits"].items()}
        plan = matched_random_plan(model.cfg, counts, seed=cfg.train.seed * 7919 + k)
    else:
        plan = random_plan(model.cfg, g, budget, seed=cfg.train.seed * 7919 + k)
    if not plan.num_splits:
        return model, plan, None
    if g.method == "random":
        return split_randomly(model, plan, g.eps, seed=k)[0], plan, None
    return widen_random_init(model, plan, seed=cfg.train.seed * 31 + k)[0], plan, None


def _record(k: int, model, cfg, result, data, plan=None, spectrum=None) -> dict:
    from kws.train.evaluate import evaluate

    params, macs = size_of(model.cfg, model.cfg.widths)
    test = evaluate(model, data, "testing", cfg.train.eval_batch_size)
    return {
        "round": k,
        "method": cfg.growth.method,
        "widths": list(model.cfg.widths),
        "params": params,
        "macs": macs,
        "val_accuracy": result.best_val_accuracy,
        "final_val_accuracy": result.history[-1]["val_accuracy"] if result.history else None,
        "test_accuracy": test.accuracy,
        "plan": plan.to_dict() if plan else None,
        "spectrum": spectrum,
    }


def grow(
    cfg: RecipeConfig,
    run_dir: str | Path,
    resume: bool = False,
    data=None,
    progress: bool = True,
    reference: list[dict] | None = None,
) -> GrowthResult:
    """Train a seed and grow it for `cfg.growth.rounds` rounds (see the module docstring).

    `reference` (a splitting run's history) makes the random baselines add exactly the same
    number of neurons per unit per round, so all methods share sizes round by round.
    """
    from kws.data.dataset import build_data
    from kws.train.loop import resolve_device, train

    g = cfg.growth
    if g.method not in METHODS:
        raise UserError(f"growth.method '{g.method}' is not one of {', '.join(METHODS)}")
    if g.method == "scratch":
        raise UserError(
            "growth.method=scratch needs the final widths of a splitting run; use "
            "`kws grow RECIPE --compare` (it trains them from scratch)"
        )
    run_dir = Path(run_dir)
    data = data or build_data(cfg, resolve_device(cfg.train.device), progress=progress)
    history = _load_history(run_dir, resume)
    model, stop = None, f"{g.rounds} rounds done"
    rounds = g.rounds if reference is None else min(g.rounds, len(reference) - 1)
    for k in range(rounds + 1):
        round_dir = run_dir / "rounds" / f"round_{k}"
        if k < len(history):  # finished before an interruption
            continue
        plan = spectrum = None
        if k > 0:
            model = model or _round_model(run_dir / "rounds" / f"round_{k - 1}", data.device)
            grown_path = round_dir / "grown.pt"
            if resume and grown_path.is_file():
                ckpt = load_checkpoint(grown_path)
                model = model_from_checkpoint(ckpt)[0].to(data.device)
                plan_dict = ckpt["growth"]["plan"]
                plan, spectrum = _PlanView(plan_dict), ckpt["growth"].get("spectrum")
            else:
                model, plan, spectrum = _grow_model(model, cfg, data, k, reference)
                if not plan.num_splits:
                    stop = f"round {k}: nothing to split ({plan.stop_reason})"
                    break
                _save_grown(grown_path, model, cfg, data, plan, spectrum)
        epochs = (g.seed_epochs or cfg.train.epochs) if k == 0 else g.epochs_per_round
        round_cfg = from_dict(to_dict(cfg))
        if model is not None:
            round_cfg.model.widths = list(model.cfg.widths)
        result = train(
            round_cfg,
            round_dir,
            resume=resume,
            model=model,
            data=data,
            epochs=epochs,
            tag=f"round {k} ",
            progress=progress,
            growth=history,
        )
        model = result.model
        history.append(_record(k, model, round_cfg, result, data, plan, spectrum))
        _save_history(run_dir, cfg, history, "running")
        if progress:
            h = history[-1]
            print(
                f"round {k}: widths {h['widths']} params {h['params']} MACs {h['macs']} "
                f"val {100 * h['val_accuracy']:.2f}% test {100 * h['test_accuracy']:.2f}%"
            )
    model = model or _round_model(run_dir / "rounds" / f"round_{len(history) - 1}", data.device)
    _save_history(run_dir, cfg, history, stop)
    return GrowthResult(model, history, run_dir, stop)


class _PlanView:
    """A resumed plan: only what `_record` needs from a `SplitPlan`."""

    def __init__(self, data: dict):
        self.data = data

    def to_dict(self) -> dict:
        return self.data


def _save_grown(path: Path, model, cfg: RecipeConfig, data, plan, spectrum) -> None:
    from kws.train.loop import make_checkpoint, resolve_model_config

    grown_cfg = resolve_model_config(cfg, data)
    grown_cfg.model = model.cfg
    ckpt = make_checkpoint(
        model, grown_cfg, data.labels, 0, {}, growth={"plan": plan.to_dict(), "spectrum": spectrum}
    )
    save_checkpoint(path, ckpt)


def _scratch(
    cfg: RecipeConfig, run_dir: Path, reference: list[dict], data, resume: bool, progress: bool
) -> list[dict]:
    """Train the splitting run's final architecture from scratch for its total epochs."""
    from kws.models import create_model
    from kws.train.loop import train

    g = cfg.growth
    epochs = (g.seed_epochs or cfg.train.epochs) + g.epochs_per_round * (len(reference) - 1)
    scratch_cfg = from_dict(to_dict(cfg))
    scratch_cfg.growth.method = "scratch"
    scratch_cfg.model.widths = list(reference[-1]["widths"])
    scratch_cfg.model.preset = ""
    scratch_cfg.model.num_classes = len(data.labels)
    model = create_model(scratch_cfg.model)
    result = train(
        scratch_cfg,
        run_dir,
        resume=resume,
        model=model,
        data=data,
        epochs=epochs,
        tag="scratch ",
        progress=progress,
    )
    history = [_record(0, result.model, scratch_cfg, result, data)]
    atomic_write_json(
        run_dir / "growth.json", {"method": "scratch", "stop_reason": "", "rounds": history}
    )
    return history


def _share_seed(source: Path, target: Path, cfg: RecipeConfig, seed_record: dict) -> None:
    """Start a baseline from the splitting run's trained seed (round 0), not a retrained one."""
    import shutil

    if (target / "growth.json").is_file():
        return  # resuming: the baseline already has its own history
    shutil.copytree(
        source / "rounds" / "round_0", target / "rounds" / "round_0", dirs_exist_ok=True
    )
    _save_history(target, cfg, [{**seed_record, "method": cfg.growth.method}], "running")


def comparison_table(results: dict[str, list[dict]]) -> str:
    """Markdown table of each method's final model."""
    lines = [
        "| method | widths | params | MACs | val acc (%) | test acc (%) |",
        "|---|---|---|---|---|---|",
    ]
    for name, history in results.items():
        h = history[-1]
        lines.append(
            f"| {name} | {h['widths']} | {h['params']} | {h['macs']} | "
            f"{100 * h['val_accuracy']:.2f} | {100 * h['test_accuracy']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def grow_compare(
    cfg: RecipeConfig, run_dir: str | Path, resume: bool = False, progress: bool = True
) -> dict[str, list[dict]]:
    """Splitting beside its baselines (`cfg.growth.baselines`, default all) on one budget.

    Each method runs in `run_dir/<method>/`; writes `run_dir/comparison.md` and
    `run_dir/plots/comparison.png`. Returns method -> growth history.
    """
    from kws.data.dataset import build_data
    from kws.growth.plots import plot_comparison
    from kws.io import atomic_write_text
    from kws.train.loop import resolve_device

    run_dir = Path(run_dir)
    baselines = list(cfg.growth.baselines) or ["random", "random_init", "scratch"]
    unknown = [b for b in baselines if b not in METHODS or b == "splitting"]
    if unknown:
        raise UserError(f"growth.baselines has {unknown}; choose from random, random_init, scratch")
    data = build_data(cfg, resolve_device(cfg.train.device), progress=progress)
    results = {}
    for method in ["splitting"] + [b for b in baselines if b != "scratch"]:
        method_cfg = from_dict(to_dict(cfg))
        method_cfg.growth.method = method
        reference = results.get("splitting") if method != "splitting" else None
        if reference is not None:
            _share_seed(run_dir / "splitting", run_dir / method, method_cfg, reference[0])
        results[method] = grow(
            method_cfg,
            run_dir / method,
            resume or reference is not None,
            data,
            progress,
            reference,
        ).history
    if "scratch" in baselines:
        results["scratch"] = _scratch(
            cfg, run_dir / "scratch", results["splitting"], data, resume, progress
        )
    table = comparison_table(results)
    atomic_write_text(run_dir / "comparison.md", table)
    plot_comparison(results, run_dir / "plots" / "comparison.png")
    if progress:
        print(table)
    return results
