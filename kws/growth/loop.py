"""Growth stage: Algorithm 1 of Liu, Wu, Wang (2019) under a budget, exactly resumable.

Round 0 trains the seed to a plateau; every later round scores the trained model, plans,
splits (or runs a baseline's widening) and trains again to a plateau, all at the peak learning
rate; when growth stops (rounds done, nothing to split, the budget or the epoch budget), the
final architecture gets a full learning-rate decay (`rounds/final`). Each round is a run folder
(`rounds/round_<k>/`, plus `grown.pt`, the model right after surgery); the growth run's
`growth.json` holds the history (widths, params, MACs, epochs, accuracies, spectra, plans, why
it stopped), `checkpoints/` the final model picked by validation, `plots/` the growth plots.
Epoch e of the whole run is seeded as global epoch e, so no round replays another's shuffles.
A resumed run continues at the exact point it stopped: scoring, surgery or training.
Under torchrun every rank trains and scores its part of the data (kws.distributed), rank 0's
eigenpairs and plan reach every rank, every rank applies the same surgery, and rank 0 alone
reads and writes the run folder.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from kws import distributed
from kws.batch_parts import BatchParts
from kws.budget import Budget, budget_from_config
from kws.config import RecipeConfig, copy_config
from kws.data.dataset import KwsData, build_data
from kws.errors import UserError
from kws.growth.baselines import matched_random_plan, random_plan, split_randomly, widen_random_init
from kws.growth.plan import SplitPlan, plan_splits
from kws.growth.plots import plot_growth
from kws.growth.schedule import decay_lr, final_epochs, growth_lr, plateau_reached, round_cap
from kws.growth.scores import splitting_scores
from kws.growth.surgery import apply_splits
from kws.io import atomic_write_json
from kws.models import ModelSpec, count_macs, count_params, growable_family
from kws.run import Checkpoint, Run
from kws.train.distill import check_teacher_inputs
from kws.train.evaluate import evaluate
from kws.train.loop import train
from kws.train.resume import check_resume_settings
from kws.train.setup import prepare_model, recipe_threads

GROW_METHODS = ("splitting", "random", "random_init")
FINAL = "final"


@dataclass
class GrowthResult:
    """The grown model (final phase, last epoch), the history and why growth stopped."""

    model: nn.Module
    history: list[dict] = field(default_factory=list)
    run: Run | None = None
    stop_reason: str = ""


def _load_history(run: Run, resume: bool) -> tuple[list[dict], str]:
    if resume and run.growth_path.is_file():
        data = json.loads(run.growth_path.read_text())
        stop = data.get("stop_reason", "")
        return data["rounds"], "" if stop == "running" else stop
    return [], ""


def _save_history(run: Run, cfg: RecipeConfig, history: list[dict], stop: str) -> None:
    atomic_write_json(
        run.growth_path, {"method": cfg.growth.method, "stop_reason": stop, "rounds": history}
    )
    plot_growth(history, run.plots_dir)


def _round_model(round_run: Run, device: torch.device, cfg: RecipeConfig) -> nn.Module:
    """A finished round's last-epoch model, in training layout (see `prepare_model`)."""
    ckpt = distributed.main_value(Checkpoint.load, round_run.last_path)
    return prepare_model(ckpt.build_model(), device, cfg.train.memory_format)


def _grow_model(model, cfg: RecipeConfig, data: KwsData, budget: Budget, k: int, reference):
    """One growth step of `cfg.growth.method`: (grown model, plan, spectrum or None)."""
    g = cfg.growth
    if g.method == "splitting":
        shard = distributed.shard()
        batches = BatchParts(
            data.batches("training", cfg.train.batch_size, shuffle=True, seed=1000 + k, shard=p)
            for p in distributed.parts(cfg.train.batch_parts, cfg.train.batch_size)
        )
        scores = splitting_scores(model, batches, g, shard=shard)
        plan = distributed.broadcast_object(plan_splits(scores, model.spec, g, budget))
        grown = (
            apply_splits(model, plan, g.eps, scores, relative=g.eps_relative)[0]
            if plan.num_splits
            else model
        )
        return grown, plan, scores.spectrum()
    if reference is not None:  # exactly the splitting run's per-unit growth of round k
        counts = {}
        if k < len(reference) and reference[k].get("plan"):
            counts = {int(j): len(v) for j, v in reference[k]["plan"]["splits"].items()}
        plan = matched_random_plan(model.spec, counts, seed=cfg.train.seed * 7919 + k)
    else:
        plan = random_plan(model.spec, g, budget, seed=cfg.train.seed * 7919 + k)
    if not plan.num_splits:
        return model, plan, None
    if g.method == "random":
        seed = cfg.train.seed * 31 + k
        return split_randomly(model, plan, g.eps, seed, g.eps_relative)[0], plan, None
    return widen_random_init(model, plan, seed=cfg.train.seed * 31 + k)[0], plan, None


def _saved(path: Path) -> Checkpoint | None:
    return Checkpoint.load(path) if path.is_file() else None


def _surgery(run: Run, k: int, model, cfg, data, budget, reference, resume: bool):
    """Round k's grown model and plan, from `grown.pt` when a killed run already made it."""
    grown_path = run.round(k).root / "grown.pt"
    ckpt = distributed.main_value(_saved, grown_path) if resume else None
    if ckpt is not None:
        grown = prepare_model(ckpt.build_model().train(), data.device, cfg.train.memory_format)
        return grown, SplitPlan.from_dict(ckpt.growth["plan"]), ckpt.growth.get("spectrum")
    model = model or _round_model(run.round(k - 1), data.device, cfg)
    grown, plan, spectrum = _grow_model(model, cfg, data, budget, k, reference)
    if plan.num_splits:
        round_cfg = copy_config(cfg)
        round_cfg.model = grown.spec.config
        growth = {"round": k, "plan": plan.to_dict(), "spectrum": spectrum}
        ckpt = Checkpoint(round_cfg, grown.state_dict(), data.labels, growth=growth)
        distributed.on_main(ckpt.save, grown_path)
    return grown, plan, spectrum


def _record(k, model, cfg, result, data, round_run: Run, epochs, used, seconds, plan, spectrum):
    """One round's line of growth.json (test accuracy of the round's best-by-validation model)."""
    best = distributed.main_value(round_run.checkpoint, "best").build_model().to(data.device)
    test = evaluate(best, data, "testing", cfg.train.eval_batch_size, shard=distributed.shard(),
                    batch_parts=cfg.train.batch_parts)  # fmt: skip
    params, macs = count_params(model.spec), count_macs(model.spec)
    return distributed.broadcast_object(
        {
            "round": k,
            "method": cfg.growth.method,
            "widths": growable_family(model.spec.config).unit_widths(model.spec.config),
            "params": params,
            "macs": macs,
            "epochs": epochs,
            "global_epoch_end": used,
            "val_accuracy": result.best_val_accuracy,
            "final_val_accuracy": result.history[-1]["val_accuracy"] if result.history else None,
            "test_accuracy": test.accuracy,
            "test_examples": test.num_examples,
            "train_compute_macs": epochs * data.num_examples("training") * macs,
            "wall_s": seconds,
            "plan": plan.to_dict() if plan else None,
            "spectrum": spectrum,
        }
    )  # rank 0's timings on every rank: the histories stay identical


def _epochs_of(reference, k) -> int | None:
    """The reference run's epochs for round k (baselines follow its timeline exactly)."""
    if reference is None:
        return None
    match = [h for h in reference if h["round"] == k]
    return match[0]["epochs"] if match else None


def _train_round(cfg, run, k, model, data, used, resume, progress, reference, history):
    """Train round k (an int, or FINAL) and return (result, epochs trained, seconds)."""
    g, round_run = cfg.growth, run.round(k) if k != FINAL else Run(run.root / "rounds" / FINAL)
    fixed = _epochs_of(reference, k)
    if k == FINAL:
        epochs = fixed or final_epochs(cfg, used)
        lr_at, stop = decay_lr(cfg, epochs), None
    elif g.schedule == "restart":
        epochs = fixed or round_cap(cfg, k, used)
        lr_at, stop = decay_lr(cfg, epochs), None
    else:
        epochs = fixed or round_cap(cfg, k, used)
        lr_at = growth_lr(cfg, after_split=k > 0)
        stop = None if fixed else (lambda h: plateau_reached(h, cfg))
    round_cfg = copy_config(cfg)
    if model is not None:
        round_cfg.model = model.spec.config
    start = time.perf_counter()
    result = train(
        round_cfg, round_run, resume=resume, force=not resume, model=model, data=data,
        epochs=epochs, lr_at=lr_at, stop=stop, epoch_offset=used, tag=f"round {k} ",
        progress=progress, growth={"history": history},
    )  # fmt: skip
    return result, len(result.history), time.perf_counter() - start


def refuse_hints(cfg: RecipeConfig) -> None:
    """Raises `UserError` for `train.hint_weight`: a hint's projector is one run's training
    state, which growth's rounds (each a new training run) and its rivals would not share."""
    if cfg.train.hint_weight:
        raise UserError(
            f"train.hint_weight={cfg.train.hint_weight}: growth trains each round as a new run, "
            "and a hint's projector would start afresh in each; set train.hint_weight=0 (soft "
            "targets alone, train.soft_targets, grow fine)"
        )


def check_seed_fits(budget: Budget, spec: ModelSpec) -> None:
    """Growth only adds neurons, so a seed that breaks the budget can never meet it.

    Raises:
        UserError: naming each limit the seed breaks and the ways on.
    """
    broken = budget.violations(spec)
    if broken:
        said = "; ".join(f"{b.name} {b.value:,.6g} > {b.limit:,.6g} {b.unit}" for b in broken)
        raise UserError(
            f"the seed model ({count_params(spec):,} parameters) already breaks the budget: "
            f"{said}. Growth by splitting only adds neurons: start from a smaller seed "
            "(model.widths=[...]) or raise the budget (budget.max_params=..., budget.*)"
        )


@recipe_threads
def grow(
    cfg: RecipeConfig,
    run: Run | str | Path,
    *,
    resume: bool = False,
    force: bool = False,
    data: KwsData | None = None,
    progress: bool = True,
    reference: list[dict] | None = None,
    check_settings: bool = False,
) -> GrowthResult:
    """Train a seed and grow it (see the module docstring).

    Args:
        cfg: the recipe (`growth.method`: splitting | random | random_init).
        run: the growth run's folder.
        resume: continue an interrupted run exactly where it stopped.
        force: delete an existing run's results and start over.
        data: decoded data to reuse.
        reference: a splitting run's history; baselines then add exactly its neurons per unit
            and train exactly its epochs per round, so sizes and epochs match round by round.
        check_settings: with `resume`, refuse a `cfg` that differs from the run's own
            (`kws grow --resume`; `kws.train.resume.check_resume_settings`).

    Raises:
        UserError: a family without splittable units, a method that is not a growth method, an
            unknown budget target, an existing run without resume/force, changed settings
            (`check_settings`), a seed that already breaks the budget (`check_seed_fits`),
            hints (`refuse_hints`).
    """
    growable_family(cfg.model)
    refuse_hints(cfg)
    if cfg.growth.method not in GROW_METHODS:
        raise UserError(
            f"growth.method={cfg.growth.method!r} is not a growth method "
            f"({', '.join(GROW_METHODS)}); the scratch and uniform rivals run in "
            "`kws grow RECIPE --compare`"
        )
    budget = budget_from_config(cfg.budget)  # an unknown target fails here, before any work
    run = run if isinstance(run, Run) else Run(run)
    check_teacher_inputs(cfg, run)  # before --force deletes anything
    device = distributed.setup(cfg.train.device)
    distributed.check_batch_size(cfg.train.batch_size)
    resume_run = resume or reference is not None
    if resume and check_settings:  # rank 0 reads the run; every rank raises alike
        distributed.main_value(check_resume_settings, run, cfg, growth=True)
    distributed.on_main(run.prepare, resume=resume_run, force=force, what="growth")
    progress = progress and distributed.is_main()
    data = data or distributed.local_main_first(build_data, cfg, device, progress=progress)
    check_seed_fits(budget, ModelSpec.of(cfg.model, cfg.features, len(data.labels)))
    if force and not resume_run:  # the inputs are checked: only now the old run goes
        distributed.on_main(run.clear_results)
    distributed.on_main(run.save_config, cfg)
    history, stop = distributed.main_value(_load_history, run, resume_run)
    used = sum(h["epochs"] for h in history)
    model = None
    done = {h["round"] for h in history}
    rounds = cfg.growth.rounds
    if reference is not None:  # exactly the reference run's rounds
        rounds = max(h["round"] for h in reference if h["round"] != FINAL)
    for k in range(cfg.growth.rounds + 1):
        if k in done or FINAL in done:
            continue
        if k > rounds or (reference is None and round_cap(cfg, k, used) == 0):
            stop = stop or ("epoch budget spent" if k <= rounds else f"{rounds} rounds done")
            break
        plan = spectrum = None
        if k > 0:
            model, plan, spectrum = _surgery(run, k, model, cfg, data, budget, reference, resume)
            if not plan.num_splits:
                stop = f"round {k}: nothing to split ({plan.stop_reason})"
                break
        result, epochs, seconds = _train_round(
            cfg, run, k, model, data, used, resume, progress, reference, history
        )
        model, used = result.model, used + epochs
        history.append(
            _record(k, model, cfg, result, data, run.round(k), epochs, used, seconds, plan,
                    spectrum)
        )  # fmt: skip
        distributed.on_main(_save_history, run, cfg, history, "running")
        _announce(history[-1], progress)
    else:
        stop = stop or f"{cfg.growth.rounds} rounds done"
    if FINAL not in done and cfg.growth.schedule == "global":
        last = history[-1]["round"]
        model = model or _round_model(run.round(last), data.device, cfg)
        result, epochs, seconds = _train_round(
            cfg, run, FINAL, model, data, used, resume, progress, reference, history
        )
        model, used = result.model, used + epochs
        final_run = Run(run.root / "rounds" / FINAL)
        history.append(_record(FINAL, model, cfg, result, data, final_run, epochs, used,
                               seconds, None, None))  # fmt: skip
        _announce(history[-1], progress)
    distributed.on_main(_finish, run, cfg, history, stop)
    model = model or _round_model(_last_round_run(run, history), data.device, cfg)
    return GrowthResult(model, history, run, stop)


def _last_round_run(run: Run, history: list[dict]) -> Run:
    last = history[-1]["round"]
    return Run(run.root / "rounds" / FINAL) if last == FINAL else run.round(last)


def _finish(run: Run, cfg: RecipeConfig, history: list[dict], stop: str) -> None:
    """growth.json with the stop reason; the final model's checkpoints as the run's own."""
    _save_history(run, cfg, history, stop)
    final = _last_round_run(run, history)
    run.checkpoints_dir.mkdir(parents=True, exist_ok=True)
    for name in ("best.pt", "last.pt"):
        source = final.checkpoints_dir / name
        if source.is_file():
            shutil.copyfile(source, run.checkpoints_dir / f".{name}.tmp")
            (run.checkpoints_dir / f".{name}.tmp").replace(run.checkpoints_dir / name)


def _announce(h: dict, progress: bool) -> None:
    if progress:
        print(
            f"round {h['round']}: widths {h['widths']} params {h['params']} MACs {h['macs']} "
            f"epochs {h['epochs']} val {100 * h['val_accuracy']:.2f}% test "
            f"{100 * h['test_accuracy']:.2f}% (n={h['test_examples']})"
        )
