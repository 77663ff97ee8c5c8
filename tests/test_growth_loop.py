"""The growth loop end to end on the tone set: rounds, checkpoints, resume, budget, baselines."""

from __future__ import annotations

import json

import pytest

from kws.config import from_dict, to_dict
from kws.growth.loop import grow, grow_compare
from kws.io import load_checkpoint
from kws.models import model_from_checkpoint
from kws.models.ds_cnn import count_params

pytestmark = pytest.mark.usefixtures("one_thread")


def growth_recipe(recipe, **overrides):
    cfg = from_dict(to_dict(recipe))
    cfg.train.epochs = 2
    cfg.train.max_steps_per_epoch = 3  # the loop's bookkeeping is under test, not accuracy
    g = cfg.growth
    g.rounds, g.epochs_per_round, g.grow_fraction, g.calibration_batches = 1, 1, 0.25, 2
    g.index_threshold = 1e9  # the loop mechanics, not Algorithm 1's threshold, are under test
    for key, value in overrides.items():
        section, name = key.split("__")
        setattr(getattr(cfg, section), name, value)
    return cfg


def test_grow_rounds_checkpoints_and_resume(tone_recipe, tmp_path):
    run_dir = tmp_path / "grow"
    cfg = growth_recipe(tone_recipe)
    result = grow(cfg, run_dir, progress=False)
    history = json.loads((run_dir / "growth.json").read_text())["rounds"]
    assert [h["round"] for h in history] == [0, 1]
    assert sum(history[1]["widths"]) == sum(history[0]["widths"]) + int(0.25 * 48)
    assert history[1]["plan"]["new_widths"] == history[1]["widths"]
    assert set(history[1]["spectrum"]) == {"0", "1", "2"}
    for name in ("accuracy_vs_params", "widths", "spectra"):
        assert (run_dir / "plots" / f"{name}.png").stat().st_size > 1000
    ckpt = load_checkpoint(run_dir / "rounds" / "round_1" / "checkpoints" / "last.pt")
    model, rcfg, _ = model_from_checkpoint(ckpt)
    assert rcfg.model.widths == history[1]["widths"] == list(result.model.cfg.widths)
    assert ckpt["growth"][0]["round"] == 0  # checkpoints carry the history so far
    seed_ckpt = run_dir / "rounds" / "round_0" / "checkpoints" / "last.pt"
    stamp = seed_ckpt.stat().st_mtime_ns

    # resume with one more round and a budget that admits only a few more neurons
    limit = history[1]["params"] + 200
    more = growth_recipe(tone_recipe, growth__rounds=3, budget__max_params=limit)
    resumed = grow(more, run_dir, resume=True, progress=False)
    assert seed_ckpt.stat().st_mtime_ns == stamp  # finished rounds are not retrained
    assert resumed.history[:2] == history
    assert all(h["params"] <= limit for h in resumed.history[2:])
    assert len(resumed.history) < 4 and "budget" in resumed.stop_reason
    assert count_params(resumed.model.cfg) == resumed.history[-1]["params"]


def test_compare_writes_a_table(tone_recipe, tmp_path):
    cfg = growth_recipe(tone_recipe, growth__baselines=["random", "random_init", "scratch"])
    cfg.train.epochs = 1
    results = grow_compare(cfg, tmp_path / "cmp", progress=False)
    assert list(results) == ["splitting", "random", "random_init", "scratch"]
    widths = {name: h[-1]["widths"] for name, h in results.items()}
    assert widths["scratch"] == widths["splitting"]
    # Baselines add the same neurons per unit per round: identical architectures throughout.
    assert widths["random"] == widths["splitting"] == widths["random_init"]
    for name in ("random", "random_init"):
        assert [h["widths"] for h in results[name]] == [h["widths"] for h in results["splitting"]]
        # ... and start from the splitting run's trained seed, not a retrained one.
        assert results[name][0]["test_accuracy"] == results["splitting"][0]["test_accuracy"]
        assert results[name][0]["method"] == name
    table = (tmp_path / "cmp" / "comparison.md").read_text()
    assert table.count("\n") == 6 and "random_init" in table
    assert (tmp_path / "cmp" / "plots" / "comparison.png").is_file()
