"""The speech-embedding teacher (recipes/transfer/speech_embedding.py) on the streaming tone
run: its soft targets cover every training clip of the run's data and are the runs'
log-posteriors plus the head weight's share of a normalised log-posterior (the rows of the two
line up), with each clip's embedding for hints; it scores every teacher on every set; an
existing file is kept, and a missing openwakeword is named."""

from __future__ import annotations

import builtins
import json

import numpy as np
import pytest
import torch

from kws.errors import UserError
from kws.train.distill import load_soft_targets
from tests.helpers import load_script
from tests.recipes.test_shift_checks import _engine_copy
from tests.stream.conftest import make_tone_run

pytest.importorskip("openwakeword", reason="pip install openwakeword==0.4.0 (kws[teacher])")
speech_embedding = load_script("recipes/transfer/speech_embedding.py")
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("teacher")
    run = make_tone_run(tmp)
    held = _engine_copy(tmp / "data", tmp / "held", "espeak", gain=3.0)
    out, scores = tmp / "t.npz", tmp / "scores.json"
    argv = [str(run / "config.yaml"), "--out", str(out), "--fuse", str(run), "--epochs", "3",
            "--augmented-passes", "1", "--head-weight", "0.25", "--holdout-engine", "espeak-ng",
            "--data", str(held), "--json", str(scores)]  # fmt: skip
    assert speech_embedding.main(argv) == 0
    return run, out, json.loads(scores.read_text()), argv


def test_targets_are_fused_log_posteriors_of_every_training_clip(teacher):
    run, out, _, _ = teacher
    cfg = speech_embedding.load_recipe(str(run / "config.yaml"))
    data = speech_embedding.build_data(cfg, torch.device("cpu"), progress=False)
    table = load_soft_targets(str(out), data)  # refuses a training example without a target
    rows = torch.from_numpy(data.examples["training"].bank_rows)
    lp = table(rows)
    with np.load(out) as f:
        assert list(f["labels"]) == list(data.labels)
        assert len(f["clips"]) == int((rows >= 0).sum())
    # weight 0.25 on the head: taking the runs' 0.75 of their log-posteriors away leaves a
    # quarter of a normalised log-posterior for every spoken clip
    model = speech_embedding.load_teacher(str(run), data.labels, cfg.features).eval()
    with torch.no_grad():
        batches = data.batches("training", 500, seed=speech_embedding.EVAL_SEED)
        runs_lp = torch.cat([torch.log_softmax(model(f), 1) for f, _ in batches])
    head_lp = (lp - 0.75 * runs_lp) / 0.25
    spoken = rows >= 0
    torch.testing.assert_close(head_lp[spoken].exp().sum(1), torch.ones(int(spoken.sum())),
                               atol=1e-4, rtol=1e-4)  # fmt: skip


def test_the_file_holds_each_clips_embedding_as_heard(teacher):
    """For hints: each spoken clip's speech embedding, flattened, and silence's the mean of the
    silence examples'; `load_soft_targets` hands them on standardized."""
    run, out, _, _ = teacher
    cfg = speech_embedding.load_recipe(str(run / "config.yaml"))
    data = speech_embedding.build_data(cfg, torch.device("cpu"), progress=False)
    rows = torch.from_numpy(data.examples["training"].bank_rows)
    x, _ = speech_embedding.embed(speech_embedding.embedder(), data.audio_batches(
        "training", 500, seed=speech_embedding.EVAL_SEED))  # fmt: skip
    x = x.flatten(1)
    with np.load(out) as f:
        np.testing.assert_allclose(f["embeddings"], x[rows >= 0].numpy(), atol=1e-5)
        np.testing.assert_allclose(f["silence_embedding"], x[rows < 0].mean(0).numpy(),
                                   atol=1e-5)  # fmt: skip
    taught = x.double()  # each silence example is taught the silence examples' mean
    taught[rows < 0] = taught[rows < 0].mean(0)
    standardized = (taught - taught.mean(0)) / (taught.std(0, unbiased=False) + 1e-6)
    table = load_soft_targets(str(out), data).embeddings
    assert table.shape == (len(data.bank) + 1, x.shape[1])
    torch.testing.assert_close(table[rows].double(), standardized, atol=1e-3, rtol=1e-3)


def test_scores_are_each_teachers_accuracy_on_each_set(teacher):
    _, _, scores, _ = teacher
    assert set(scores) == {"head", "runs", "fused"}
    for sets in scores.values():
        assert set(sets) == {"validation", "testing", "espeak"}
        for correct, n in sets.values():
            assert 0 <= correct <= n and n > 0
    assert scores["runs"]["testing"][0] > 0.8 * scores["runs"]["testing"][1]  # the tone model


def test_an_existing_file_is_kept_and_a_missing_package_named(teacher, tmp_path, monkeypatch,
                                                               capsys):  # fmt: skip
    _, out, _, argv = teacher
    before = out.read_bytes()
    assert speech_embedding.main(argv) == 2
    assert "pass --force" in capsys.readouterr().err and out.read_bytes() == before
    real_import = builtins.__import__

    def no_openwakeword(name, *args, **kwargs):
        if name.startswith("openwakeword"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_openwakeword)
    with pytest.raises(UserError, match="pip install openwakeword==0.4.0"):
        speech_embedding.embedder()
