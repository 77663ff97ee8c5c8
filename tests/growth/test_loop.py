"""The growth loop on the tone set: rounds to a plateau, the final decay, budgets, exact resume."""

from __future__ import annotations

import json

import pytest
import torch

from kws.budget import budget_from_config, estimate_arena_bytes
from kws.cli import main
from kws.config import copy_config
from kws.data.dataset import KwsData
from kws.errors import UserError
from kws.growth import loop
from kws.growth.loop import grow
from kws.models import ModelSpec, count_params
from kws.run import Checkpoint, Run

pytestmark = pytest.mark.usefixtures("one_thread")


def growth_recipe(recipe, **overrides):
    cfg = copy_config(recipe)
    cfg.train.epochs = 2
    cfg.train.max_steps_per_epoch = 2  # the loop's bookkeeping is under test, not accuracy
    g = cfg.growth
    g.rounds, g.epochs_per_round, g.final_epochs = 2, 2, 1
    g.grow_fraction, g.calibration_batches, g.plateau_patience = 0.25, 1, 0
    g.index_threshold = 1e9  # the loop mechanics, not Algorithm 1's threshold, are under test
    for key, value in overrides.items():
        section, name = key.split("__")
        setattr(getattr(cfg, section), name, value)
    return cfg


def state_of(run_dir) -> dict:
    return Checkpoint.load(run_dir / "checkpoints" / "last.pt").state_dict


def test_rounds_final_phase_and_checkpoints(tone_recipe, tmp_path):
    run_dir = tmp_path / "grow"
    result = grow(growth_recipe(tone_recipe), run_dir, progress=False)
    data = json.loads((run_dir / "growth.json").read_text())
    history = data["rounds"]
    assert [h["round"] for h in history] == [0, 1, 2, "final"]
    assert data["stop_reason"] == "2 rounds done"
    assert [h["epochs"] for h in history] == [2, 2, 2, 1]
    assert [h["global_epoch_end"] for h in history] == [2, 4, 6, 7]
    assert sum(history[1]["widths"]) == sum(history[0]["widths"]) + int(0.25 * 48)
    assert history[1]["plan"]["new_widths"] == history[1]["widths"]
    assert set(history[1]["spectrum"]) == {"0", "1", "2"}
    assert history[-1]["widths"] == history[-2]["widths"]  # the final phase only decays
    for name in ("accuracy_vs_params", "widths", "spectra"):
        assert (run_dir / "plots" / f"{name}.png").stat().st_size > 1000
    # the growth run's own checkpoints are the final model's (every verb takes the run folder)
    final = Checkpoint.load(run_dir / "checkpoints" / "best.pt")
    assert final.config.model.widths == history[-1]["widths"] == result.model.spec.config.widths
    assert count_params(final.spec) == history[-1]["params"]
    # one LR schedule: the peak rate while growing (no restart, no decay between splits)
    rows = (run_dir / "rounds" / "round_1" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["lr"] for line in rows] == [tone_recipe.train.lr] * 2


def test_epochs_are_seeded_globally_not_per_round(tone_recipe, tmp_path, monkeypatch):
    """Defect: every round replayed the seed's shuffles and augmentation draws."""
    seeds = []
    original = KwsData.batches

    def spy(self, split, batch_size, shuffle=False, augment=False, seed=0, **kwargs):
        if augment:
            seeds.append(seed)
        return original(self, split, batch_size, shuffle, augment, seed, **kwargs)

    monkeypatch.setattr(KwsData, "batches", spy)
    grow(growth_recipe(tone_recipe), tmp_path / "g", progress=False)
    assert len(seeds) == 7 and len(set(seeds)) == 7


def test_plateau_ends_a_round_before_its_cap(tone_recipe, tmp_path):
    cfg = growth_recipe(tone_recipe, growth__rounds=1, growth__epochs_per_round=6,
                        growth__plateau_patience=1, growth__plateau_min_delta=10.0)  # fmt: skip
    history = grow(cfg, tmp_path / "g", progress=False).history
    # min_delta 1000%: no epoch can count as progress, so each round stops after 2 epochs
    assert [h["epochs"] for h in history] == [2, 2, 1]


def test_total_epochs_is_a_budget(tone_recipe, tmp_path):
    cfg = growth_recipe(tone_recipe, growth__rounds=5, growth__total_epochs=6,
                        growth__final_epochs=2)  # fmt: skip
    grown = grow(cfg, tmp_path / "g", progress=False)
    assert sum(h["epochs"] for h in grown.history) == 6
    assert grown.stop_reason == "epoch budget spent"


def test_ram_limit_reaches_the_planner_through_the_cli(tone_recipe, tmp_path, capsys):
    """Defect: flash / RAM limits and named targets never reached the planner."""
    cfg = growth_recipe(tone_recipe)
    seed_spec = ModelSpec.of(cfg.model, cfg.features, 12)
    limit = estimate_arena_bytes(seed_spec) + 300
    recipe = tmp_path / "r.yaml"
    from kws.config import save_yaml

    save_yaml(cfg, recipe)
    code = main(["grow", str(recipe), f"budget.max_ram_bytes={limit}", "name=ram",
                 f"runs_dir={tmp_path}"])  # fmt: skip
    assert code == 0
    data = json.loads((tmp_path / "ram" / "growth.json").read_text())
    budget = budget_from_config(cfg.budget.__class__(max_ram_bytes=limit))
    for h in data["rounds"]:
        spec = ModelSpec.of(cfg.model.__class__(**{**cfg.model.__dict__, "widths": h["widths"]}),
                            cfg.features, 12)  # fmt: skip
        assert budget.fits(spec)
    assert "sram" in data["stop_reason"] and "budget" in data["stop_reason"]
    assert main(["grow", str(recipe), "budget.target=no-such-board", f"runs_dir={tmp_path}",
                 "name=x"]) == 2  # fmt: skip
    assert "unknown target 'no-such-board'" in capsys.readouterr().err


class Killed(Exception):
    """Stands for kill -9: the run stops at this point with nothing cleaned up."""


@pytest.mark.parametrize("where", ["scoring", "surgery", "training"])
def test_resume_after_a_kill_is_bit_exact(tone_recipe, tmp_path, monkeypatch, where):
    cfg = growth_recipe(tone_recipe, growth__rounds=2)
    grow(cfg, tmp_path / "whole", progress=False)
    targets = {
        "scoring": (loop, "splitting_scores", 2),  # in round 2's scoring
        "surgery": (loop, "apply_splits", 1),  # in round 1's surgery
        "training": (torch.optim.Adam, "step", 10),  # mid-epoch, in round 2
    }
    owner, name, at = targets[where]
    original = getattr(owner, name)
    calls = {"n": 0}

    def dying(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == at:
            raise Killed(where)
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, dying)
    with pytest.raises(Killed):
        grow(cfg, tmp_path / "killed", progress=False)
    monkeypatch.setattr(owner, name, original)
    grow(cfg, tmp_path / "killed", resume=True, progress=False)
    whole, resumed = state_of(tmp_path / "whole"), state_of(tmp_path / "killed")
    for key, value in whole.items():  # weights and BN running statistics alike
        assert torch.equal(value, resumed[key]), key
    h1 = json.loads((tmp_path / "whole" / "growth.json").read_text())["rounds"]
    h2 = json.loads((tmp_path / "killed" / "growth.json").read_text())["rounds"]
    assert [h["test_accuracy"] for h in h1] == [h["test_accuracy"] for h in h2]


def test_rerun_without_resume_is_refused(tone_recipe, tmp_path):
    cfg = growth_recipe(tone_recipe, growth__rounds=1)
    grow(cfg, tmp_path / "g", progress=False)
    with pytest.raises(Exception, match="--resume"):
        grow(cfg, tmp_path / "g", progress=False)
    assert Run(tmp_path / "g").growth_path.is_file()


def test_resume_with_changed_growth_settings_is_refused(tone_recipe, tmp_path, capsys):
    """`kws grow --resume growth.grow_fraction=...` used to grow on with the new settings and
    record them as the whole run's."""
    cfg = growth_recipe(tone_recipe, growth__rounds=1)
    run_dir = tmp_path / "g"
    grow(cfg, run_dir, progress=False)
    recipe = tmp_path / "r.yaml"
    recipe.write_text((run_dir / "config.yaml").read_text())
    saved = (run_dir / "growth.json").read_text()
    argv = ["grow", str(recipe), "--run-dir", str(run_dir), "--resume"]
    assert main([*argv, "growth.grow_fraction=0.5", "train.epochs=3"]) == 2
    err = capsys.readouterr().err
    assert "growth.grow_fraction: 0.25 there, 0.5 here; train.epochs: 2 there, 3 here" in err
    assert f"kws grow {run_dir / 'config.yaml'} --run-dir {run_dir} --resume" in err
    assert (run_dir / "growth.json").read_text() == saved
    # how fast it runs, and what only --compare reads, are free to change
    assert main([*argv, "train.num_threads=1", "growth.compare_seeds=3"]) == 0


def test_family_without_units_is_refused(tone_recipe, tmp_path, monkeypatch):
    from dataclasses import replace

    from kws.models import MODELS

    monkeypatch.setitem(MODELS, "ds_cnn", replace(MODELS["ds_cnn"], split_structure=None))
    with pytest.raises(Exception, match="declares no splittable units"):
        grow(growth_recipe(tone_recipe), tmp_path / "g", progress=False)


def test_compare_gives_each_budget_its_own_epoch_budget(tone_recipe, tmp_path):
    from kws.growth.compare import compare

    cfg = growth_recipe(tone_recipe, growth__rounds=1)
    cfg.growth.compare_budgets, cfg.growth.compare_total_epochs = [2000, 3000], [3, 4]
    cfg.growth.compare_methods = ["splitting", "uniform"]
    records = compare(cfg, tmp_path / "cmp", seeds=1, progress=False)
    epochs = {(r["method"], r["budget_params"]): r["epochs"] for r in records}
    assert epochs == {("splitting", 2000): 3, ("uniform", 2000): 3,
                      ("splitting", 3000): 4, ("uniform", 3000): 4}  # fmt: skip


def test_compare_runs_every_method_and_writes_the_schema(tone_recipe, tmp_path):
    from kws.growth.compare import compare

    cfg = growth_recipe(tone_recipe, growth__rounds=1)
    cfg.growth.compare_budgets = [3000]
    cfg.growth.prune_finetune_epochs = 1
    records = compare(cfg, tmp_path / "cmp", seeds=1, progress=False)
    methods = [r["method"] for r in records]
    assert methods == ["splitting", "uniform", "random_split", "random_init", "grown_scratch",
                       "bn_prune", "l1_prune"]  # fmt: skip
    keys = {"method", "budget_params", "seed", "params", "macs", "val_accuracy", "test_accuracy",
            "epochs", "wall_s", "train_compute_macs"}  # fmt: skip
    by = {r["method"]: r for r in records}
    for r in records:
        assert keys <= set(r) and 0 <= r["test_accuracy"] <= 1 and r["params"] > 0
    split = by["splitting"]
    assert split["params"] <= 3000
    for name in ("random_split", "random_init", "grown_scratch"):
        assert by[name]["widths"] == split["widths"] and by[name]["epochs"] == split["epochs"]
    assert abs(by["uniform"]["params"] - split["params"]) < 0.25 * split["params"]
    assert len(set(by["uniform"]["widths"])) == 1 and by["uniform"]["epochs"] == split["epochs"]
    for name in ("bn_prune", "l1_prune"):  # larger model + fine-tuning: the same epochs too
        assert by[name]["params"] <= split["params"] and by[name]["epochs"] == split["epochs"]
        assert by[name]["train_compute_macs"] > by["uniform"]["train_compute_macs"]
    saved = json.loads((tmp_path / "cmp" / "comparison.json").read_text())
    assert saved == records
    table = (tmp_path / "cmp" / "comparison.md").read_text()
    assert "+-" in table and "| 3,000 | uniform |" in table
    assert (tmp_path / "cmp" / "plots" / "accuracy_vs_params.png").stat().st_size > 1000
    # resumable: a second call with --resume recomputes nothing
    stamp = (tmp_path / "cmp" / "uniform" / "b3000_s0" / "record.json").stat().st_mtime_ns
    assert compare(cfg, tmp_path / "cmp", seeds=1, resume=True, progress=False) == records
    assert (tmp_path / "cmp" / "uniform" / "b3000_s0" / "record.json").stat().st_mtime_ns == stamp
    # a resume with other settings is refused before anything runs (it used to mix them in)
    changed = copy_config(cfg)
    changed.growth.grow_fraction, changed.train.num_threads = 0.9, 1  # threads are free
    with pytest.raises(UserError, match=r"differ: growth.grow_fraction: .* there, 0.9 here\.") as e:
        compare(changed, tmp_path / "cmp", seeds=1, resume=True, progress=False)
    assert "--compare --resume" in str(e.value)


def test_a_seed_that_already_breaks_the_budget_is_refused(tone_recipe, tmp_path, monkeypatch):
    """A seed over budget.max_params grew nothing, exited 0 with an over-budget model, and
    `--compare` listed over-budget models under that budget."""
    from kws.growth import compare as compare_module

    monkeypatch.setattr(loop, "train", lambda *a, **k: pytest.fail("training started"))
    monkeypatch.setattr(compare_module, "train", lambda *a, **k: pytest.fail("training started"))
    cfg = growth_recipe(tone_recipe, budget__max_params=100)
    with pytest.raises(UserError, match=r"seed model \([\d,]+ parameters\) already breaks the "
                       r"budget: params [\d,]+ > 100 params.*smaller seed"):  # fmt: skip
        grow(cfg, tmp_path / "g", progress=False)
    cfg.growth.compare_budgets = [3000, 100]
    with pytest.raises(UserError, match="already breaks the budget: params"):
        compare_module.compare(cfg, tmp_path / "cmp", seeds=1, progress=False)


def test_force_keeps_a_run_whose_inputs_or_kind_are_wrong(tone_recipe, tmp_path):
    """`kws grow --force train.teacher=TYPO` deleted the growth run, then failed on the teacher;
    `--compare --force` deleted any folder it was given, a training run's too."""
    from kws.growth.compare import compare

    cfg = growth_recipe(tone_recipe, growth__rounds=1)
    grow(cfg, tmp_path / "g", progress=False)
    kept = sorted(p for p in (tmp_path / "g").rglob("*"))
    for field, value in (("teacher", str(tmp_path / "typo")), ("soft_targets", "typo.npz"),
                         ("teacher", str(tmp_path / "g"))):  # fmt: skip
        bad = copy_config(cfg)
        setattr(bad.train, field, value)
        with pytest.raises(UserError):
            grow(bad, tmp_path / "g", force=True, progress=False)
        with pytest.raises(UserError):
            compare(bad, tmp_path / "g", seeds=1, force=True, progress=False)
    assert sorted(p for p in (tmp_path / "g").rglob("*")) == kept
    for force in (True, False):  # a comparison there rewrote its config.yaml; --force: all of it
        with pytest.raises(UserError, match="holds a training or growth run"):
            compare(cfg, tmp_path / "g", seeds=1, force=force, progress=False)
    assert sorted(p for p in (tmp_path / "g").rglob("*")) == kept
    (tmp_path / "other" / "notes").mkdir(parents=True)
    with pytest.raises(UserError, match=r"holds no comparison \(notes\)"):
        compare(cfg, tmp_path / "other", seeds=1, force=True, progress=False)


def test_the_cli_compares_beside_the_growth_run_not_in_it(tone_recipe, tmp_path, monkeypatch):
    """The README's `kws grow R` then `kws grow R --compare` shared runs/<name>; `--force` on
    the second then deleted the growth run with the comparison."""
    from kws.cli import main

    seen = {}

    def fake_compare(cfg, run_dir, **kwargs):
        seen["dir"] = run_dir
        return []

    monkeypatch.setattr("kws.growth.compare.compare", fake_compare)
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"name: g\nruns_dir: {tmp_path}\n")
    assert main(["grow", str(recipe), "--compare"]) == 0
    assert seen["dir"] == tmp_path / "g_compare"
