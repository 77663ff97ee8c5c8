"""Hints (`train.hint_weight`, kws.train.distill): each example is given its own clip's
standardized embedding, a step's loss adds the weight times the projected embedding's error,
weight 0 is offline distillation as before, the projector is training state (in the
checkpoint, not the model) and resumes exactly, and what cannot hint is refused with the fix."""

import copy

import numpy as np
import pytest
import torch
from rich.progress import Progress

from kws import distributed
from kws.config import ConfigError, load_recipe, preset_config
from kws.data.dataset import build_data
from kws.errors import UserError
from kws.growth.compare import compare
from kws.growth.loop import grow
from kws.models import ModelSpec, build_model
from kws.run import resolve_run
from kws.train.distill import (
    check_hint_file,
    clip_key,
    distillation_loss,
    load_soft_targets,
    make_hint,
    save_soft_targets,
)
from kws.train.loop import train, train_epoch
from kws.train.setup import make_optimizer
from tests.train.test_distill import _clean_cfg, student_cfg


@pytest.fixture(scope="module")
def hinted(teacher, tmp_path_factory):
    """(clean recipe, data, soft targets with embeddings, without them); each clip's
    "embedding" is its features' per-coefficient mean and spread over time."""
    cfg, _, model = teacher
    cfg = _clean_cfg(cfg)
    data = build_data(cfg, torch.device("cpu"), progress=False)
    rows = torch.from_numpy(data.examples["training"].bank_rows)
    with torch.no_grad():
        model.eval()
        batches = list(data.batches("training", 64))
        logits = torch.cat([model(f) for f, _ in batches])
        embeddings = torch.cat([torch.cat([f.mean(1), f.std(1)], 1) for f, _ in batches])
    keys = [clip_key(data.clips[r]) for r in rows[rows >= 0]]
    spoken, quiet = rows >= 0, rows < 0
    tmp = tmp_path_factory.mktemp("hints")
    with_embeddings, without = tmp / "emb.npz", tmp / "logits.npz"
    arrays = (list(data.labels), keys, logits[spoken].numpy(), logits[quiet][0].numpy())
    save_soft_targets(with_embeddings, *arrays, embeddings[spoken].numpy(),
                      embeddings[quiet][0].numpy())  # fmt: skip
    save_soft_targets(without, *arrays)
    return cfg, data, with_embeddings, without


def _hint_cfg(cfg, targets, weight, **fields):
    return student_cfg(cfg, "", soft_targets=str(targets), hint_weight=weight,
                       **{"epochs": 2, **fields})  # fmt: skip


def test_the_model_is_classify_of_embed():
    for preset, shape in (("ds_cnn_s", (49, 10)), ("bc_resnet_1", (101, 40))):
        model = build_model(ModelSpec(preset_config(preset), shape, 12)).eval()
        x = torch.randn(3, *shape)
        embedding = model.embed(x)
        assert embedding.shape[0] == 3 and embedding.dim() == 2
        torch.testing.assert_close(model.classify(embedding), model(x))


def test_each_example_gets_its_clips_embedding_standardized(hinted):
    cfg, data, with_embeddings, without = hinted
    table = load_soft_targets(str(with_embeddings), data)
    rows = data.examples["training"].bank_rows
    with np.load(with_embeddings) as f:
        index = {str(name): i for i, name in enumerate(f["clips"])}
        raw = np.stack([f["embeddings"][index[clip_key(data.clips[r])]] if r >= 0
                        else f["silence_embedding"] for r in rows])  # fmt: skip
    mean, std = raw.mean(0), raw.std(0) + 1e-6  # over the training examples, silence included
    got = table.embeddings[torch.from_numpy(rows)].numpy()
    np.testing.assert_allclose(got, (raw - mean) / std, atol=1e-4)
    assert load_soft_targets(str(without), data).embeddings is None


def test_one_step_adds_weight_times_the_projected_embeddings_error(hinted):
    """A training step by hand: the loss is the offline distillation loss plus hint_weight x
    the mean squared error of the projected embedding against each example's own targets,
    and the projector trains with the model."""
    cfg, data, with_embeddings, _ = hinted
    cfg = _hint_cfg(cfg, with_embeddings, 2.5, max_steps_per_epoch=1)
    torch.manual_seed(0)
    model = build_model(ModelSpec.of(cfg.model, cfg.features, len(data.labels)))
    optimizer = make_optimizer(model, cfg)
    targets = load_soft_targets(cfg.train.soft_targets, data)
    hint = make_hint(model, targets, optimizer, cfg)
    start = copy.deepcopy((model.train(), hint))
    features, labels, rows = next(
        iter(
            data.batches(
                "training", cfg.train.batch_size, shuffle=True, augment=True, seed=7, with_rows=True
            )
        )
    )
    with torch.no_grad():
        embedding = start[0].embed(features)
        soft = distillation_loss(start[0].classify(embedding), targets(rows), labels,
                                 torch.nn.CrossEntropyLoss(), 0.5, 2.0)  # fmt: skip
        mse = ((start[1].projector(embedding) - targets.embeddings[rows]) ** 2).mean()
    with Progress(disable=True) as bar:
        stats = train_epoch(model, optimizer, data, cfg, 7, bar, "step", (0, 1), targets, hint)
    assert stats["train_loss"] == pytest.approx(float(soft + 2.5 * mse), rel=1e-5)
    assert stats["train_hint_loss"] == pytest.approx(float(mse), rel=1e-5)  # logged apart
    assert not torch.equal(hint.projector.weight, start[1].projector.weight)  # it trains


def test_weight_zero_is_offline_distillation(hinted, tmp_path):
    cfg, data, with_embeddings, without = hinted
    plain = train(_hint_cfg(cfg, without, 0.0), tmp_path / "plain", data=data, progress=False)
    zero = train(_hint_cfg(cfg, with_embeddings, 0.0), tmp_path / "zero", data=data,
                 progress=False)  # fmt: skip
    for key, value in plain.model.state_dict().items():
        assert torch.equal(value, zero.model.state_dict()[key]), key
    assert "hint" not in resolve_run(tmp_path / "zero").checkpoint().state


def test_a_hinted_run_resumes_exactly(hinted, tmp_path):
    cfg, data, with_embeddings, _ = hinted
    cfg = _hint_cfg(cfg, with_embeddings, 1.0)
    straight = train(cfg, tmp_path / "a", data=data, progress=False)
    train(cfg, tmp_path / "b", data=data, progress=False, stop=lambda history: len(history) >= 1)
    resumed = train(cfg, tmp_path / "b", data=data, progress=False, resume=True)
    for key, value in straight.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key
    assert straight.model.state_dict().keys() == resumed.model.state_dict().keys()
    ends = [resolve_run(tmp_path / name).checkpoint().state["hint"] for name in ("a", "b")]
    assert set(ends[0]) == {"projector.weight", "projector.bias"}  # training state, not model
    for key in ends[0]:
        assert torch.equal(ends[0][key], ends[1][key]), key


def test_what_cannot_hint_is_refused(hinted, tmp_path, monkeypatch):
    cfg, data, with_embeddings, without = hinted
    with pytest.raises(ConfigError, match="give that file or set train.hint_weight=0"):
        load_recipe(None, ["train.hint_weight=1"])
    for override in ("train.batch_parts=2", "train.compile=on"):
        with pytest.raises(ConfigError, match="do not expose"):
            load_recipe(None, [f"train.soft_targets={without}", "train.hint_weight=1", override])
    with pytest.raises(UserError, match="holds none; write the file again"):
        train(_hint_cfg(cfg, without, 1.0), tmp_path / "none", data=data, progress=False)
    assert not (tmp_path / "none").exists()  # refused before the run folder is made
    monkeypatch.setattr(distributed, "is_distributed", lambda: True)
    with pytest.raises(UserError, match="without torchrun"):
        check_hint_file(_hint_cfg(cfg, with_embeddings, 1.0))
    monkeypatch.undo()
    for verb in (grow, compare):  # each round would start a new projector
        with pytest.raises(UserError, match="growth trains each round as a new run"):
            verb(_hint_cfg(cfg, with_embeddings, 1.0), tmp_path / verb.__name__, data=data,
                 progress=False)  # fmt: skip
        assert not (tmp_path / verb.__name__).exists()
    hinted = _hint_cfg(cfg, with_embeddings, 1.0)
    train(hinted, tmp_path / "half", data=data, progress=False, stop=lambda h: len(h) >= 1)
    with pytest.raises(UserError, match="train.hint_weight as it was"):
        train(_hint_cfg(cfg, with_embeddings, 0.0), tmp_path / "half", data=data,
              progress=False, resume=True)  # fmt: skip
    with np.load(with_embeddings) as f:
        arrays = {k: f[k] for k in f.files}
    np.savez(tmp_path / "short.npz", **{**arrays, "embeddings": arrays["embeddings"][1:]})
    with pytest.raises(UserError, match="is no soft-target file"):
        load_soft_targets(str(tmp_path / "short.npz"), data)
