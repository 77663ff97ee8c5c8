"""Growth stage: the comparison harness behind `kws grow RECIPE --compare`.

Every method of `growth.compare_methods` at every parameter budget of `growth.compare_budgets`
for `growth.compare_seeds` seeds, on the same data, every method at a budget training for the
same epochs (`growth.compare_total_epochs`, one per budget, else `growth.total_epochs`):

- `splitting`: Algorithm 1 grown to the budget (`kws.growth.loop.grow`);
- `uniform`: the hand-designed family at the grown model's size (the family's width knob,
  every unit equally wide), from scratch for the splitting run's total epochs;
- `random_split`, `random_init`: the splitting run's exact per-round growth with random
  directions / freshly initialised neurons, from its trained seed, on its exact epochs;
- `grown_scratch`: the grown widths from scratch for the same total epochs;
- `bn_prune`, `l1_prune`: a larger model of the same topology (trained once per seed, with the
  slimming L1 for `bn_prune`) pruned to the grown model's size and fine-tuned
  (`kws.growth.prune`), the two phases sharing the budget's epochs (fine-tuning takes
  `growth.prune_finetune_epochs`).

Each run is a run folder `<run>/<method>/b<budget>_s<seed>/` with a `record.json` once done, so
an interrupted comparison resumes where it stopped. `comparison.json` holds one record per
method x budget x seed (`method`, `budget_params`, `seed`, `params`, `macs`, `val_accuracy`,
`test_accuracy` (fractions; the checkpoint picked by validation), `epochs`, `wall_s`,
`train_compute_macs`), `comparison.md` the mean +- 95% interval per cell, and
`plots/accuracy_vs_params.png` the paper's Fig. 4 on our data. Under torchrun every rank runs
every method in data parallel and rank 0 alone reads and writes the folders (`_exists`,
`_read_json`: rank 0's answer on every rank; kws.distributed).
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections import defaultdict
from pathlib import Path

from kws import distributed
from kws.budget import budget_from_config
from kws.config import RecipeConfig, copy_config
from kws.data.dataset import KwsData, build_data
from kws.errors import UserError
from kws.growth.loop import check_seed_fits, grow, refuse_hints
from kws.growth.plots import plot_comparison
from kws.growth.prune import prune
from kws.growth.schedule import decay_lr
from kws.io import atomic_write_json, atomic_write_text, other_entries
from kws.models import ModelSpec, count_macs, count_params, family_of
from kws.run import Checkpoint, Run
from kws.stats import mean_interval
from kws.train.distill import check_teacher_inputs
from kws.train.evaluate import evaluate
from kws.train.loop import train
from kws.train.resume import check_compare_resume_settings
from kws.train.setup import recipe_threads


def _exists(path: Path) -> bool:
    """Whether `path` is a file, as rank 0 sees it (the same answer on every rank)."""
    return distributed.main_value(path.is_file)


def _read_json(path: Path):
    """`path`'s JSON as rank 0 reads it, on every rank."""
    return distributed.main_value(lambda: json.loads(path.read_text()))


def _record(method, budget, seed, run: Run, spec, epochs, wall_s, compute, data, cfg) -> dict:
    best = distributed.main_value(run.checkpoint, "best")
    model = best.build_model().to(data.device)
    test = evaluate(model, data, "testing", cfg.train.eval_batch_size, shard=distributed.shard(),
                    batch_parts=cfg.train.batch_parts)  # fmt: skip
    return {
        "method": method, "budget_params": budget, "seed": seed,
        "params": count_params(spec), "macs": count_macs(spec),
        "val_accuracy": best.best_val_accuracy, "test_accuracy": test.accuracy,
        "test_examples": test.num_examples, "epochs": epochs, "wall_s": wall_s,
        "train_compute_macs": compute, "widths": _widths(spec),
    }  # fmt: skip


def _widths(spec: ModelSpec) -> list[int]:
    family = family_of(spec.config)
    return family.unit_widths(spec.config) if family.unit_widths else []


def _scratch(cfg, run: Run, spec, epochs, data, progress, resume) -> tuple[float, int]:
    """Train `spec` from a fresh start for `epochs` with the recipe's decay over them."""
    start = time.perf_counter()
    run_cfg = copy_config(cfg)
    run_cfg.model = spec.config
    tag = f"{run.root.parent.name} "
    train(run_cfg, run, resume=resume, force=not resume, data=data, epochs=epochs,
          lr_at=decay_lr(run_cfg, epochs), tag=tag, progress=progress)  # fmt: skip
    macs = count_macs(spec) * data.num_examples("training") * epochs
    return time.perf_counter() - start, macs


def uniform_spec(spec: ModelSpec, params: int) -> ModelSpec:
    """The family's uniform-width model whose parameter count is closest to `params`.

    Raises:
        UserError: the family declares no uniform-width knob.
    """
    family = family_of(spec.config)
    if family.uniform is None:
        raise UserError(f"model family '{family.name}' has no uniform-width rival")
    best, width = None, 1
    while True:
        candidate = spec.with_config(family.uniform(spec.config, width))
        gap = abs(count_params(candidate) - params)
        if best is not None and gap > best[0]:
            return best[1]
        best = (gap, candidate) if best is None or gap <= best[0] else best
        width += 1


def _share_seed(source: Run, target: Run) -> None:
    """A baseline starts from the splitting run's trained seed (round 0), not a retrained one."""
    if target.growth_path.is_file():
        return  # resuming: it has its own history
    shutil.copytree(source.round(0).root, target.round(0).root, dirs_exist_ok=True)
    history = json.loads(source.growth_path.read_text())["rounds"][:1]
    atomic_write_json(target.growth_path, {"method": "", "stop_reason": "", "rounds": history})


def _large_model(cfg, root: Path, method: str, seed_cfg, spec, epochs, data, progress, resume):
    """The pruning rival's larger model for one seed and epoch budget (shared by budgets)."""
    run = Run(root / method / f"large_s{seed_cfg.train.seed}_e{epochs}")
    large_cfg = copy_config(seed_cfg)
    large_cfg.train.bn_l1 = cfg.growth.slimming_l1 if method == "bn_prune" else 0.0
    saved = distributed.main_value(
        lambda: Checkpoint.load(run.last_path).epoch if run.last_path.is_file() else None
    )
    if saved is None or saved < epochs:
        _scratch(large_cfg, run, spec, epochs, data, progress, resume=saved is not None)
    return run, count_macs(spec) * data.num_examples("training") * epochs


def _growth_methods(cfg, root, budget, seed_cfg, data, progress, resume) -> dict:
    """splitting, random_split, random_init at one budget and seed: method -> (run, history)."""
    g_cfg = copy_config(seed_cfg)
    g_cfg.budget.max_params = budget
    g_cfg.growth.method = "splitting"
    name = f"b{budget}_s{seed_cfg.train.seed}"
    split_run = Run(root / "splitting" / name)
    finished = _exists(split_run.root / "record.json")
    history = (
        _read_json(split_run.growth_path)["rounds"]
        if finished
        else grow(g_cfg, split_run, resume=resume or _exists(split_run.growth_path),
                  data=data, progress=progress).history
    )  # fmt: skip
    out = {"splitting": (split_run, history)}
    for method, growth_method in (("random_split", "random"), ("random_init", "random_init")):
        if method not in cfg.growth.compare_methods:
            continue
        run = Run(root / method / name)
        if not _exists(run.root / "record.json"):
            distributed.on_main(_share_seed, split_run, run)
            b_cfg = copy_config(g_cfg)
            b_cfg.growth.method = growth_method
            grow(b_cfg, run, data=data, progress=progress, reference=history, resume=True)
        out[method] = (run, _read_json(run.growth_path)["rounds"])
    return out


def _run_cell(cfg, root, budget, seed_cfg, data, progress, resume) -> list[dict]:
    """Every method at one budget and seed; returns their records (from record.json files)."""
    seed, name = seed_cfg.train.seed, f"b{budget}_s{seed_cfg.train.seed}"
    grown = _growth_methods(cfg, root, budget, seed_cfg, data, progress, resume)
    split_run, history = grown["splitting"]
    final = distributed.main_value(split_run.checkpoint, "best")
    spec, total = final.spec, sum(h["epochs"] for h in history)
    for method, (run, h) in grown.items():
        _write_once(run, lambda r=run, h=h, m=method: _record(
            m, budget, seed, r, distributed.main_value(r.checkpoint, "best").spec,
            sum(x["epochs"] for x in h), sum(x["wall_s"] for x in h),
            sum(x["train_compute_macs"] for x in h), data, cfg))  # fmt: skip
    rivals = {
        "grown_scratch": lambda: spec,
        "uniform": lambda: uniform_spec(spec, count_params(spec)),
    }
    for method, make in rivals.items():
        if method in cfg.growth.compare_methods:
            run = Run(root / method / name)
            target = make()
            _write_once(run, lambda r=run, t=target, m=method: _record(
                m, budget, seed, r, t, total,
                *_scratch(seed_cfg, r, t, total, data, progress, _exists(r.last_path)),
                data, cfg))  # fmt: skip
    for method in ("bn_prune", "l1_prune"):
        if method in cfg.growth.compare_methods:
            run = Run(root / method / name)
            _write_once(run, lambda r=run, m=method: _pruned(
                cfg, root, m, budget, seed_cfg, spec, total, r, data, progress))  # fmt: skip
    return [_read_json(root / m / name / "record.json")
            for m in cfg.growth.compare_methods]  # fmt: skip


def _pruned(cfg, root, method, budget, seed_cfg, spec, total, run, data, progress) -> dict:
    """Train (once) the larger model, prune it to the grown size, fine-tune; the record."""
    start = time.perf_counter()
    large_width = cfg.growth.prune_from_width or 2 * _largest_uniform_width(cfg, spec)
    large_spec = spec.with_config(family_of(spec.config).uniform(spec.config, large_width))
    # the larger model and the fine-tuning share the budget's epochs, as every method does
    epochs = cfg.growth.prune_finetune_epochs or cfg.growth.final_epochs or total // 4 or 1
    epochs = min(epochs, max(total - 1, 1))
    large_epochs = max(total - epochs, 1)
    large_run, large_compute = _large_model(
        cfg, root, method, seed_cfg, large_spec, large_epochs, data, progress, resume=False
    )
    large = distributed.main_value(Checkpoint.load, large_run.last_path).build_model()
    pruned, pruned_spec = prune(large, method, count_params(spec))
    tune_cfg = copy_config(seed_cfg)
    tune_cfg.model = pruned_spec.config
    resume = _exists(run.last_path)
    train(tune_cfg, run, resume=resume, force=not resume,
          model=pruned.train(), data=data, epochs=epochs, lr_at=decay_lr(tune_cfg, epochs),
          tag=f"{method} fine-tune ", progress=progress)  # fmt: skip
    compute = large_compute + count_macs(pruned_spec) * data.num_examples("training") * epochs
    return _record(method, budget, seed_cfg.train.seed, run, pruned_spec, large_epochs + epochs,
                   time.perf_counter() - start, compute, data, cfg)  # fmt: skip


def _largest_uniform_width(cfg: RecipeConfig, spec: ModelSpec) -> int:
    """Width of the uniform model at the largest budget (the pruning models start at 2x it)."""
    target = uniform_spec(spec, max(_budgets(cfg)))
    return max(family_of(spec.config).unit_widths(target.config))


def _write_once(run: Run, make) -> None:
    path = run.root / "record.json"
    if not _exists(path):
        record = make()  # every rank: it trains
        distributed.on_main(atomic_write_json, path, record)


def _budgets(cfg: RecipeConfig) -> list[int]:
    budgets = list(cfg.growth.compare_budgets) or [cfg.budget.max_params]
    if not all(budgets):
        raise UserError(
            "kws grow --compare needs parameter budgets: growth.compare_budgets=[9000,23000] "
            "(or budget.max_params)"
        )
    return budgets


def _total_epochs(cfg: RecipeConfig, budgets: list[int]) -> list[int]:
    """The whole-run epoch budget of each parameter budget (config validation checks lengths)."""
    return list(cfg.growth.compare_total_epochs) or [cfg.growth.total_epochs] * len(budgets)


def summarize(records: list[dict]) -> str:
    """comparison.md: mean +- 95% t interval of every cell over seeds."""
    cells = defaultdict(list)
    for r in records:
        cells[(r["budget_params"], r["method"])].append(r)
    lines = [
        "| budget (params) | method | params | test accuracy (%) | val accuracy (%) | epochs | "
        "training compute (G MACs) | seeds |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for (budget, method), rows in sorted(cells.items()):
        test = mean_interval([r["test_accuracy"] for r in rows])
        val = mean_interval([r["val_accuracy"] for r in rows])
        params = round(sum(r["params"] for r in rows) / len(rows))
        compute = sum(r["train_compute_macs"] for r in rows) / len(rows) / 1e9
        lines.append(
            f"| {budget:,} | {method} | {params:,} | {test.format()} | {val.format()} | "
            f"{rows[0]['epochs']} | {compute:,.1f} | {len(rows)} |"
        )
    n = sorted({r.get("test_examples", 0) for r in records})
    lines += ["", f"Test examples per run: {', '.join(map(str, n))}. Accuracy of the checkpoint "
              "picked by validation; +- is the 95% t interval of the mean over seeds."]  # fmt: skip
    return "\n".join(lines) + "\n"


@recipe_threads
def compare(
    cfg: RecipeConfig,
    run_dir: str | Path,
    *,
    seeds: int | None = None,
    resume: bool = False,
    force: bool = False,
    data: KwsData | None = None,
    progress: bool = True,
) -> list[dict]:
    """Run the comparison (see the module docstring); returns the records.

    Raises:
        UserError: no budgets, a budget the seed already breaks (`check_seed_fits`), an
            existing comparison without resume/force, a resume with
            changed settings (`check_compare_resume_settings`), a family without units or a
            uniform knob, hints (`refuse_hints`).
    """
    refuse_hints(cfg)
    root = Path(run_dir)
    run = Run(root)
    check_teacher_inputs(cfg, run)  # before --force deletes anything
    _refuse_foreign_folder(root, force)
    device = distributed.setup(cfg.train.device)
    distributed.check_batch_size(cfg.train.batch_size)
    progress = progress and distributed.is_main()
    if not resume and not force and _exists(root / "comparison.json"):
        raise UserError(f"'{root}' holds a comparison; --resume continues it, --force restarts")
    if resume:
        distributed.main_value(check_compare_resume_settings, run, cfg)
    budgets, seeds = _budgets(cfg), seeds or cfg.growth.compare_seeds
    data = data or distributed.local_main_first(build_data, cfg, device, progress=progress)
    seed_spec = ModelSpec.of(cfg.model, cfg.features, len(data.labels))
    for budget in budgets:  # every budget before any training, not the third one an hour in
        cell_budget = copy_config(cfg)
        cell_budget.budget.max_params = budget
        check_seed_fits(budget_from_config(cell_budget.budget), seed_spec)
    if force:  # every input is checked: only now the old comparison goes
        distributed.on_main(_remove_comparison, root)
    distributed.on_main(run.save_config, cfg)
    records = []
    for seed in range(seeds):
        seed_cfg = copy_config(cfg)
        seed_cfg.train.seed = cfg.train.seed + seed
        for budget, epochs in zip(budgets, _total_epochs(cfg, budgets)):
            cell_cfg = copy_config(seed_cfg)
            cell_cfg.growth.total_epochs = epochs
            records += _run_cell(cfg, root, budget, cell_cfg, data, progress, resume)
            distributed.on_main(atomic_write_json, root / "comparison.json", records)
    distributed.on_main(atomic_write_text, root / "comparison.md", summarize(records))
    distributed.on_main(plot_comparison, records, run.plots_dir / "accuracy_vs_params.png")
    if progress:
        print(summarize(records))
    return records


def _remove_comparison(root: Path) -> None:
    """`--force`: the whole comparison folder (every cell's runs), said on stderr."""
    if root.exists():
        shutil.rmtree(root)
        print(f"--force: removed the comparison '{root}' (every cell's runs)", file=sys.stderr)


def _refuse_foreign_folder(root: Path, force: bool) -> None:
    """A comparison writes its config.yaml, plots and records into `root`, and `--force` deletes
    `root` whole: never a folder that holds a training or growth run's results (checkpoints,
    metrics, growth.json, rounds), whatever else it holds; with `force`, only a comparison's
    folder (its comparison.json, or its config.yaml alone: one stopped before its first
    record) or an empty one.

    Raises:
        UserError: a folder that holds a run, or (with `force`) other files.
    """
    run = Run(root)
    if run.has_results() or run.metrics_path.exists():
        raise UserError(
            f"'{root}' holds a training or growth run (checkpoints, metrics, growth.json or "
            "rounds); a comparison there would rewrite its config.yaml, and --force would "
            "delete it. Give the comparison a folder of its own (--run-dir NEW; the default is "
            "<runs_dir>/<name>_compare)"
        )
    if not force or not root.is_dir() or (root / "comparison.json").is_file():
        return
    if run.config_path.is_file() or not other_entries(root):
        return
    raise UserError(
        f"--force deletes the comparison folder '{root}' whole, but it holds no comparison "
        f"({other_entries(root)}); give the comparison a folder of its own (--run-dir NEW)"
    )
