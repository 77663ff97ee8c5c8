"""Dataset stage (kws/data/dataset.py, kws/data/bank.py): example selection, the audio bank and
its cache, the official test-set layout, and the checks that refuse untrainable data."""

from __future__ import annotations

import copy
import math
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from kws.config import GSC12_WORDS, load_recipe
from kws.data.dataset import build_data, select_examples
from kws.data.gsc import LAYOUT_ARCHIVE, LAYOUT_TEST_SET, index_clips
from kws.errors import UserError
from tests.conftest import tone_word

SPLITS = ("training", "validation", "testing")


def _write_set(root: Path, plan: dict[str, list[str]], seed: int = 0) -> Path:
    """A GSC-archive-layout folder: `plan[word]` lists each clip's split (lists decide)."""
    rng = np.random.default_rng(seed)
    lists: dict[str, list[str]] = {"validation": [], "testing": []}
    for word, splits in plan.items():
        (root / word).mkdir(parents=True, exist_ok=True)
        for i, split in enumerate(splits):
            name = f"{word.strip('_')}{i:03d}_nohash_0.wav"
            sf.write(root / word / name, tone_word(word, rng), 16000, subtype="PCM_16")
            if split in lists:
                lists[split].append(f"{word}/{name}")
    for split, names in lists.items():
        (root / f"{split}_list.txt").write_text("".join(n + "\n" for n in names))
    return root


def _recipe(root: Path, tmp_path: Path, *overrides: str):
    return load_recipe(
        None, [f"data.root={root}", f"data.cache_dir={tmp_path / 'cache'}", *overrides]
    )


def _custom(root, tmp_path, words, *overrides):
    return _recipe(
        root, tmp_path, "data.task=custom", f"data.words=[{','.join(words)}]", *overrides
    )


TRAIN_VAL = ["training"] * 3 + ["validation"]


def test_label_silence_unknown_proportions(tone_recipe):
    clips = index_clips(tone_recipe.data.root)
    labels = ["_silence_", "_unknown_", *GSC12_WORDS]
    examples = select_examples(clips, tone_recipe.data, labels)
    for split in SPLITS:
        lab = examples[split].labels
        wanted = int((lab >= 2).sum())
        assert int((lab == 0).sum()) == math.ceil(wanted * 0.1)
        unknown_available = sum(
            1 for c in clips if c.split == split and c.word in ("bed", "cat", "dog", "tree")
        )
        assert int((lab == 1).sum()) == min(math.ceil(wanted * 0.1), unknown_available)
        assert (examples[split].bank_rows[lab == 0] == -1).all()


def test_bank_is_cached_and_batches_have_shapes(tone_recipe):
    data = build_data(tone_recipe, "cpu", progress=False)
    assert data.layout == "folders"
    assert len(list(Path(tone_recipe.data.cache_dir).glob("bank-*.npy"))) == 1
    features, labels = next(data.batches("training", 8, shuffle=True, augment=True))
    assert features.shape == (8, 49, 10) and labels.shape == (8,)
    again = build_data(tone_recipe, "cpu", progress=False)
    assert torch.equal(again.bank, data.bank)
    assert data.labels[:2] == ["_silence_", "_unknown_"]


def test_faulty_clips_are_skipped_or_repaired_one_line_per_kind(tmp_path, capsys):
    root = _write_set(tmp_path / "bad", {w: TRAIN_VAL for w in ("yes", "no", "dog")})
    sf.write(root / "yes" / "stereo_nohash_0.wav", np.zeros((16000, 2), np.float32), 16000)
    sf.write(root / "yes" / "rate_nohash_0.wav", np.zeros(44100, np.float32), 44100)
    sf.write(root / "yes" / "long_nohash_0.wav", np.zeros(40000, np.float32), 16000)
    sf.write(root / "yes" / "short_nohash_0.wav", np.zeros(8000, np.float32), 16000)
    whole = (root / "no" / "no000_nohash_0.wav").read_bytes()
    (root / "no" / "cut_nohash_0.wav").write_bytes(whole[:2000])  # truncated
    (root / "no" / "cut2_nohash_0.wav").write_bytes(whole[:9000])
    (root / "no" / "corrupt_nohash_0.wav").write_bytes(b"RIFF\x00\x00garbage")
    (root / "no" / "empty_nohash_0.wav").write_bytes(b"")
    cfg = _custom(root, tmp_path, ["yes", "no"])
    data = build_data(cfg, "cpu", progress=False)
    err = capsys.readouterr().err
    cut = root / "no" / "cut2_nohash_0.wav"
    assert "warning: 2 clip(s) skipped, truncated (" in err and f"e.g. {cut}" in err
    assert "warning: 2 clip(s) skipped, unreadable (" in err
    for kind in ("downmixed", "resampled", "trimmed"):
        assert f"warning: 1 clip(s) repaired, {kind} (" in err
    assert "note: 1 clip(s) repaired, padded (" in err
    assert len(data.clips) == 16 and data.audio_report.skips == {"truncated": 2, "unreadable": 2}
    # The cut-off clips are nowhere: not as examples of "no", not in any split.
    assert not {c.path.name for c in data.clips} & {"cut_nohash_0.wav", "cut2_nohash_0.wav"}
    assert "no usable" in err  # no background folder: said once, training still works
    next(data.batches("training", 4, augment=True))
    # The cached bank reports the same, without decoding again.
    build_data(cfg, "cpu", progress=False)
    assert capsys.readouterr().err.count("truncated") == 1


def test_cache_survives_moving_the_data_root(tmp_path, capsys):
    first = _write_set(tmp_path / "a", {w: TRAIN_VAL for w in ("yes", "no", "dog")})
    whole = (first / "no" / "no000_nohash_0.wav").read_bytes()
    (first / "no" / "cut_nohash_0.wav").write_bytes(whole[:2000])
    build_data(_custom(first, tmp_path, ["yes", "no"]), "cpu", progress=False)
    moved = first.rename(tmp_path / "b")
    capsys.readouterr()
    data = build_data(_custom(moved, tmp_path, ["yes", "no"]), "cpu", progress=False)
    err = capsys.readouterr().err
    assert len(list((tmp_path / "cache").glob("bank-*.npy"))) == 1  # a cache hit
    assert f"e.g. {moved.resolve() / 'no' / 'cut_nohash_0.wav'}" in err
    assert "cut_nohash_0.wav" not in {c.path.name for c in data.clips} and len(data.clips) == 12


def test_damaged_cache_is_decoded_again(tone_recipe, capsys):
    data = build_data(tone_recipe, "cpu", progress=False)
    (cache,) = Path(tone_recipe.data.cache_dir).glob("bank-*.npy")
    cache.write_bytes(cache.read_bytes()[: cache.stat().st_size // 2])
    capsys.readouterr()
    again = build_data(tone_recipe, "cpu", progress=False)
    assert "the audio-bank cache" in capsys.readouterr().err
    assert torch.equal(again.bank, data.bank)
    assert np.array_equal(np.load(cache), data.bank.numpy())  # rewritten whole


def test_unwritable_cache_only_warns(tone_dataset, tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")  # a cache folder under a file cannot be made, even by root
    cfg = load_recipe(None, [f"data.root={tone_dataset}", f"data.cache_dir={blocker / 'cache'}"])
    data = build_data(cfg, "cpu", progress=False)
    assert "cannot write the audio-bank cache" in capsys.readouterr().err
    assert data.num_examples("training") > 0


def test_empty_cache_dir_turns_the_cache_off(tone_dataset, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = load_recipe(None, [f"data.root={tone_dataset}", "data.cache_dir=''"])
    build_data(cfg, "cpu", progress=False)
    assert list(tmp_path.rglob("bank-*")) == []


def _test_set(root: Path) -> dict[str, int]:
    """An official test set: 10 commands, _silence_ and _unknown_, no lists, no noise."""
    counts = {w: 2 for w in GSC12_WORDS} | {"_silence_": 3, "_unknown_": 4}
    rng = np.random.default_rng(1)
    for word, n in counts.items():
        (root / word).mkdir(parents=True)
        for i in range(n):
            audio = rng.normal(0, 0.05, 16000) if word == "_silence_" else tone_word(word, rng)
            sf.write(root / word / f"{i:08x}_nohash_0.wav", audio, 16000, subtype="PCM_16")
    return counts


def test_official_test_set_is_evaluated_as_shipped(tmp_path):
    from kws.models import ModelSpec, build_model
    from kws.train.evaluate import evaluate

    root = tmp_path / "speech_commands_test_set_v0.02"
    counts = _test_set(root)
    cfg = _recipe(root, tmp_path)
    data = build_data(cfg, "cpu", progress=False, check_training=False)
    assert data.layout == LAYOUT_TEST_SET
    assert [data.num_examples(s) for s in SPLITS] == [0, 0, sum(counts.values())]
    assert data.class_counts("testing") == counts  # every clip under its folder's label
    assert (data.examples["testing"].bank_rows >= 0).all()  # real silence, none invented
    model = build_model(ModelSpec.of(cfg.model, cfg.features, len(data.labels))).eval()
    result = evaluate(model, data, "testing")
    assert result.num_examples == sum(counts.values())
    with pytest.raises(UserError, match="has no examples: an official test set has only"):
        next(data.batches("validation", 8))
    with pytest.raises(UserError, match="official Speech Commands test set .* Train on the full"):
        build_data(cfg, "cpu", progress=False)


def test_test_set_with_a_task_without_unknown_is_refused(tmp_path):
    root = tmp_path / "ts"
    _test_set(root)
    with pytest.raises(UserError, match="labelled for the 12-class task"):
        build_data(_recipe(root, tmp_path, "data.task=all"), "cpu", check_training=False)


def test_empty_training_split_is_refused(tmp_path):
    root = _write_set(tmp_path / "d", {w: ["testing"] * 3 for w in GSC12_WORDS})
    with pytest.raises(UserError, match=r"training split of .* is empty \(clips: 0 training"):
        build_data(_recipe(root, tmp_path), "cpu", progress=False)


def test_custom_words_without_negatives_are_refused(tmp_path):
    """Issue 10 item 7: a custom task with no other words trained an unknown class of zero
    examples that could never reject speech."""
    root = _write_set(tmp_path / "d", {"marvin": TRAIN_VAL, "sheila": TRAIN_VAL})
    with pytest.raises(UserError) as caught:
        build_data(_custom(root, tmp_path, ["marvin", "sheila"]), "cpu", progress=False)
    message = str(caught.value)
    assert "['_unknown_'] have no training examples" in message
    assert "never reject other speech" in message and "kws data synth --out DIR" in message


def test_zero_percentages_name_their_key(tmp_path):
    root = _write_set(tmp_path / "d", {w: TRAIN_VAL for w in ("yes", "no", "dog")})
    with pytest.raises(UserError, match="data.unknown_percent=0 adds none"):
        build_data(_custom(root, tmp_path, ["yes", "no"], "data.unknown_percent=0"), "cpu")
    with pytest.raises(UserError, match=r"\['_silence_'\] .*data.silence_percent=0 adds no"):
        build_data(_custom(root, tmp_path, ["yes", "no"], "data.silence_percent=0"), "cpu")


def test_keyword_without_training_clips_is_refused(tmp_path):
    plan = {"yes": TRAIN_VAL, "no": ["testing", "validation"], "dog": TRAIN_VAL}
    root = _write_set(tmp_path / "d", plan)
    with pytest.raises(UserError, match=r"\['no'\] have no training .*elsewhere \(1 testing, 1 v"):
        build_data(_custom(root, tmp_path, ["yes", "no"]), "cpu", progress=False)


def test_held_out_speakers_must_exist(tone_recipe, tmp_path):
    data = build_data(tone_recipe, "cpu", progress=False)
    with pytest.raises(UserError, match="no speakers are held out: train with data.exclude_spe"):
        next(data.batches("holdout", 8))  # was: 0.00% over 0 examples
    tone_recipe.data.exclude_speakers = ["flite-"]
    with pytest.raises(UserError, match=r"speakers=\['flite-'\]: 'flite-' matches no speaker"):
        build_data(tone_recipe, "cpu", progress=False)
    clips = index_clips(tone_recipe.data.root)
    unknown_only = next(c.speaker for c in clips if c.word == "bed")
    tone_recipe.data.exclude_speakers = [unknown_only]
    with pytest.raises(UserError, match="matches only clips of words that are not keywords"):
        build_data(tone_recipe, "cpu", progress=False)
    tone_recipe.data.exclude_speakers = [next(c.speaker for c in clips if c.word == "yes")]
    held = build_data(tone_recipe, "cpu", progress=False)
    assert held.num_examples("holdout") > 0
    assert next(held.batches("holdout", 4))[0].shape[0] > 0


def test_missing_keyword_folder(tone_dataset, tmp_path):
    cfg = _custom(tone_dataset, tmp_path, ["marvin"])
    with pytest.raises(UserError, match=r"keyword\(s\) \['marvin'\] have no folder"):
        build_data(cfg, "cpu", progress=False)


def test_a_keyword_in_another_case_names_its_folder(tone_dataset, tmp_path):
    """`data.words=[Marvin,SHEILA]` after `kws data synth --words Marvin SHEILA` (which wrote
    marvin/, sheila/) listed unrelated folders with no hint of the case."""
    cfg = _custom(tone_dataset, tmp_path, ["YES", "no"])
    with pytest.raises(UserError, match=r"^'YES' has no folder under '.*'; 'yes' does: words are "
                       r"lower case, so use data.words=\[yes,no\]$"):  # fmt: skip
        build_data(cfg, "cpu", progress=False)


def test_custom_task_without_words_is_a_user_error(tone_dataset, tmp_path):
    with pytest.raises(UserError, match="data.task=custom needs data.words"):
        build_data(_recipe(tone_dataset, tmp_path, "data.task=custom"), "cpu")  # at load


def test_archive_layout_reported(tmp_path):
    root = _write_set(tmp_path / "d", {w: TRAIN_VAL for w in ("yes", "no", "dog")})
    shutil.rmtree(root / "dog")
    (root / "dog").mkdir()
    data = build_data(_custom(root, tmp_path, ["yes"]), "cpu", progress=False)
    assert data.layout == LAYOUT_ARCHIVE and data.class_counts("training")["_unknown_"] == 1


def test_kws_evaluate_on_official_test_set(tmp_path, capsys):
    """`kws evaluate RUN --data TEST_SET`: every clip evaluated, none refused for training."""
    from kws.cli import main
    from kws.models import ModelSpec, build_model
    from kws.run import Checkpoint

    root = tmp_path / "speech_commands_test_set_v0.02"
    counts = _test_set(root)
    cfg = _recipe(tmp_path / "elsewhere", tmp_path)
    ckpt = tmp_path / "run" / "checkpoints" / "best.pt"
    labels = ["_silence_", "_unknown_", *GSC12_WORDS]
    model = build_model(ModelSpec.of(cfg.model, cfg.features, len(labels)))
    Checkpoint(cfg, model.state_dict(), labels).save(ckpt)
    assert main(["evaluate", str(tmp_path / "run"), "--data", str(root), "--device", "cpu"]) == 0
    captured = capsys.readouterr()
    assert re.search(rf"testing: accuracy .*\(n={sum(counts.values())}\)", captured.out)
    assert "layout gsc-official-test-set" in captured.out
    assert "no usable" not in captured.err  # nothing is made from noise here


def test_vtlp_warps_training_batches_only(tone_recipe):
    plain = build_data(tone_recipe, "cpu", progress=False)
    recipe = copy.deepcopy(tone_recipe)  # the data keeps its recipe
    recipe.data.vtlp_warp = 0.2
    warped = build_data(recipe, "cpu", progress=False)
    cases = (("training", True, True), ("training", True, False), ("validation", False, False))
    for split, shuffle, augment in cases:  # shuffled unaugmented batches: growth's scoring
        a = next(plain.batches(split, 16, shuffle=shuffle, augment=augment, seed=3))
        b = next(warped.batches(split, 16, shuffle=shuffle, augment=augment, seed=3))
        assert torch.equal(a[1], b[1])
        assert torch.equal(a[0], b[0]) != augment  # same draws otherwise: only the warp differs


def test_a_missing_custom_set_names_the_synth_command_with_its_words(tmp_path):
    root = tmp_path / "custom"
    cfg = load_recipe("recipes/custom.yaml", [f"data.root={root}"])
    command = re.escape(f"kws data synth --out {root} --words marvin sheila`")
    with pytest.raises(UserError, match=f"'{re.escape(str(root))}' does not exist.*{command}"):
        build_data(cfg, torch.device("cpu"), progress=False)
    root.mkdir()
    with pytest.raises(UserError, match="no '<word>/.*--words marvin sheila`"):
        build_data(cfg, torch.device("cpu"), progress=False)
