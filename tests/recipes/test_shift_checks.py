"""The shift diagnostic (recipes/diagnostics/shift_checks.py) on the streaming tone run."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import soundfile as sf
import torch

from kws.train.report import evaluate_run
from tests.helpers import load_script
from tests.stream.conftest import make_tone_run

shift_checks = load_script("recipes/diagnostics/shift_checks.py")

pytestmark = pytest.mark.usefixtures("one_thread")


def _engine_copy(root, out, engine, gain=1.0):
    """`root`'s clips as speakers of `engine` (ids `<engine>-<hash>`), louder by `gain`."""
    shutil.copytree(root, out)
    for clip in out.glob("*/*.wav"):
        if clip.parent.name.startswith("_"):
            continue
        audio, rate = sf.read(clip, dtype="float32")
        sf.write(clip, np.clip(audio * gain, -1, 1), rate, subtype="PCM_16")
        clip.rename(clip.with_name(f"{engine}-{clip.name}"))
    return out


def test_scores_are_evaluates_and_the_offset_is_the_validation_engines_best(tmp_path):
    run = make_tone_run(tmp_path)
    held = _engine_copy(tmp_path / "data", tmp_path / "held", "espeak", gain=3.0)
    check = _engine_copy(tmp_path / "data", tmp_path / "check", "flite")
    out = tmp_path / "rows.json"
    argv = [str(run), "--holdout-engine", "espeak-ng", "--data", str(held), "--json", str(out),
            "--validation-engine", "flite", "--validation-data", str(check)]  # fmt: skip
    assert shift_checks.main(argv) == 0
    (row,) = json.loads(out.read_text())
    (test,) = evaluate_run(run, split="testing")
    assert row["in_domain"] == [test.num_correct, test.num_examples]
    (flite,) = evaluate_run(run, [f"data.root={check}", "data.exclude_speakers=[flite-]"],
                            split="holdout")  # fmt: skip
    assert row["validation"] == [flite.num_correct, flite.num_examples]
    (espeak,) = evaluate_run(run, [f"data.root={held}", "data.exclude_speakers=[espeak-]"],
                             split="holdout")  # fmt: skip
    assert row["held_out"] == [espeak.num_correct, espeak.num_examples]
    # the offset is the first best of the grid on the validation engine's logits
    cfg, data = shift_checks._data(
        str(run), [f"data.root={check}", "data.exclude_speakers=[flite-]"]
    )
    model = shift_checks.load_teacher(str(run), data.labels, cfg.features)
    logits, labels = shift_checks.split_logits(model, data, "holdout")
    unknown = list(data.labels).index("_unknown_")
    scores = [shift_checks._correct(logits, labels, unknown, o)[0] for o in shift_checks.OFFSETS]
    assert row["offset"] == shift_checks.OFFSETS[scores.index(max(scores))]
    assert row["validation_at_offset"][0] == max(scores)
    for name in ("held_out", "held_out_at_offset", "held_out_adabn"):
        assert row[name][1] == row["held_out"][1]


def test_the_offset_is_taken_from_the_unknown_logit_only():
    """A clip the unknown class wins by 0.5 is right once the offset passes 0.5; a clip of the
    unknown class stays right until the offset passes its own margin."""
    logits = np.array([[0.0, 2.0, 1.5, 0.0], [0.0, 3.0, 1.0, 0.0]])  # labels 2, then unknown (1)
    labels = np.array([2, 1])
    assert shift_checks._correct(logits, labels, 1, 0.0) == [1, 2]
    assert shift_checks._correct(logits, labels, 1, 0.25) == [1, 2]
    assert shift_checks._correct(logits, labels, 1, 0.75) == [2, 2]
    assert shift_checks._correct(logits, labels, 1, 2.25) == [1, 2]
    assert logits[0, 1] == 2.0  # the caller's logits are left as they were


def test_adapted_batchnorm_holds_the_average_statistics_of_the_split(tmp_path):
    """AdaBN's first BatchNorm layer: mean and (unbiased) variance of its input over every
    example of the split at once, per channel (the tone training split fits one evaluation batch, so
    the data here comes in batches of 40, where a per-batch average would differ); the weights
    are the model's."""
    run = make_tone_run(tmp_path)
    cfg, data = shift_checks._data(str(run), [])
    model = shift_checks.load_teacher(str(run), data.labels, cfg.features)
    batches = data.batches

    def small_batches(split, _size, **kwargs):
        return batches(split, 40, **kwargs)

    data.batches = small_batches
    adapted = shift_checks.adapt_batchnorm(model, data, "training")
    first = next(m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    norm = next(m for m in adapted.modules() if isinstance(m, torch.nn.BatchNorm2d))
    seen = []
    hook = first.register_forward_hook(lambda _m, inputs, _o: seen.append(inputs[0]))
    with torch.no_grad():
        for features, _ in data.batches("training", 500, seed=shift_checks.EVAL_SEED):
            model.eval()(features)
    hook.remove()
    assert len(seen) > 1  # the split came in several batches
    every = torch.cat(seen).transpose(0, 1).flatten(1)  # (channels, everything else)
    assert torch.allclose(norm.running_mean, every.mean(1), atol=1e-5)
    assert torch.allclose(norm.running_var, every.var(1), rtol=1e-4, atol=1e-6)
    assert not torch.allclose(norm.running_mean, first.running_mean)
    assert torch.equal(norm.weight, first.weight) and adapted is not model


def test_the_same_engine_twice_and_a_trained_engine_are_refused(tmp_path, capsys):
    run = make_tone_run(tmp_path)
    check = _engine_copy(tmp_path / "data", tmp_path / "check", "flite")
    argv = [str(run), "--holdout-engine", "flite", "--data", str(check),
            "--validation-engine", "flite", "--validation-data", str(check)]  # fmt: skip
    assert shift_checks.main(argv) == 2
    assert "must differ" in capsys.readouterr().err
    for clip in list((tmp_path / "data" / "yes").glob("*.wav"))[:20]:
        clip.rename(clip.with_name(f"espeak-{clip.name}"))  # speakers of an engine, in training
    for engine, position in (("espeak", 2), ("espeak", 6)):  # as held-out, as validation engine
        bad = list(argv)
        bad[position] = engine
        assert shift_checks.main(bad) == 2
        assert "error: the run trained on" in capsys.readouterr().err
