"""Recipes: defaults, overrides, presets, unknown keys, and every bad value named at load."""

from pathlib import Path

import pytest

from kws.cli import main
from kws.config import ConfigError, load_recipe


def test_defaults_and_overrides():
    cfg = load_recipe(None, ["train.lr=1e-3", "model.widths=[8,8]", "model.block_strides=[[1,1]]",
                             "data.spec_augment=true"])  # fmt: skip
    assert cfg.train.lr == pytest.approx(1e-3)
    assert cfg.model.widths == [8, 8]
    assert cfg.data.spec_augment is True


def test_unknown_key_is_named(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("train:\n  epochz: 3\n")
    with pytest.raises(ConfigError, match="train.epochz"):
        load_recipe(recipe)
    with pytest.raises(ConfigError, match="unknown config key 'nosuchsection'"):
        load_recipe(None, ["nosuchsection.x=1"])


def test_wrong_type_is_named():
    with pytest.raises(ConfigError, match="train.epochs"):
        load_recipe(None, ["train.epochs=many"])
    with pytest.raises(ConfigError, match="not of the form"):
        load_recipe(None, ["train.epochs"])


def test_preset_fills_model_but_explicit_keys_win():
    cfg = load_recipe(None, ["model.preset=ds_cnn_l", "model.dropout=0.1"])
    assert cfg.model.widths == [276] * 6
    assert cfg.model.stem_stride == [2, 1]
    assert cfg.model.dropout == pytest.approx(0.1)
    assert cfg.model.family == "ds_cnn"


def test_missing_recipe_file():
    with pytest.raises(ConfigError, match="not found"):
        load_recipe("does/not/exist.yaml")


def test_shipped_recipes_load():
    recipes = sorted(Path("recipes").rglob("*.yaml"))
    assert recipes
    for path in recipes:
        load_recipe(path)


def test_keywords_yes_no_on_off_stay_strings(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("data:\n  task: custom\n  words: [yes, no, on, off]\n  spec_augment: true\n")
    cfg = load_recipe(recipe, ["data.exclude_speakers=[on, off]"])
    assert cfg.data.words == ["yes", "no", "on", "off"]
    assert cfg.data.exclude_speakers == ["on", "off"]
    assert cfg.data.spec_augment is True


@pytest.mark.parametrize(
    "override, named",
    [
        ("train.batch_size=0", "train.batch_size=0: must be >= 1"),
        ("train.batch_size=-5", "train.batch_size=-5"),
        ("train.epochs=0", "train.epochs=0"),
        ("train.lr=-1", "train.lr=-1"),
        ("train.lr=.nan", "train.lr=nan: must be a finite number"),
        ("train.eval_batch_size=0", "train.eval_batch_size"),
        ("train.num_threads=-1", "train.num_threads"),
        ("train.device=gpu", "train.device='gpu'"),
        ("features.sample_rate_hz=0", "features.sample_rate_hz"),
        ("features.kind=mel", "features.kind='mel': must be one of mfcc, logmel"),
        ("model.widths=[]", "model.widths=[]: needs at least 1"),
        ("model.widths=[8,0,8,8,8]", "every item must be >= 1"),
        ("model.preset=ds_cnn_xl", "model.preset='ds_cnn_xl' is unknown"),
        ("model.family=transformer", "model.family='transformer' is unknown"),
        ("model.activation=gelu", "model.activation"),
        ("data.task=keywords", "data.task='keywords'"),
        ("data.task=custom", "data.task=custom needs data.words"),
        ("data.words=[marvin]", "data.task=gsc12 would ignore them: add data.task=custom"),
        ("data.validation_percent=95", "must be < 100"),
        ("data.background_snr_db=[20,0]", "data.background_snr_db=[20.0, 0.0]: give [low, high]"),
        ("data.background_snr_db=[5]", "data.background_snr_db=[5.0]"),
        ("data.background_snr_db=[0,.inf]", "data.background_snr_db"),
        ("data.background_snr_db=[-5,20]", None),
        ("runs_dir=null", "runs_dir=null"),
        ("name=a/b", "name='a/b'"),
        ("growth.method=magic", "growth.method"),
        ("growth.baselines=[random,magic]", "growth.baselines"),
        ("export.formats=[onnx,coreml]", "export.formats"),
        ("export.formats=[]", "export.formats=[]"),
        ("stream.detection_threshold=1.5", "stream.detection_threshold"),
        ("stream.backend=tensorrt", "stream.backend"),
        ("train.lr_milestones=[0.5,3]", "train.lr_milestones"),
        ("growth.total_epochs=10", None),  # valid on its own
        ("growth.final_epochs=12", None),
    ],
)
def test_every_bad_value_is_refused_at_load_naming_key_and_value(override, named):
    if named is None:
        load_recipe(None, [override])
        return
    with pytest.raises(ConfigError) as info:
        load_recipe(None, [override])
    assert named in str(info.value)


def test_growth_epoch_budget_must_hold_the_final_phase():
    with pytest.raises(ConfigError, match="final_epochs"):
        load_recipe(None, ["growth.total_epochs=10", "growth.final_epochs=10"])


def test_compare_epoch_budgets_are_one_per_parameter_budget():
    base = ["growth.compare_budgets=[9000,23000]", "growth.final_epochs=10"]
    load_recipe(None, [*base, "growth.compare_total_epochs=[30,45]"])
    with pytest.raises(ConfigError, match="one per budget"):
        load_recipe(None, [*base, "growth.compare_total_epochs=[30]"])
    with pytest.raises(ConfigError, match="final_epochs"):
        load_recipe(None, [*base, "growth.compare_total_epochs=[10,45]"])


def test_a_key_given_twice_or_an_empty_recipe_is_refused(tmp_path):
    """YAML kept the last of two `lr:` lines silently, and an empty file trained on defaults."""
    twice = tmp_path / "twice.yaml"
    twice.write_text("train:\n  lr: 0.1\n  epochs: 3\n  lr: 0.01\n")
    with pytest.raises(
        ConfigError, match=r"twice.yaml:4:3: .*'lr' is given twice \(first on line 2\)"
    ):
        load_recipe(twice)
    sections = tmp_path / "sections.yaml"
    sections.write_text("train:\n  lr: 0.1\ndata:\n  root: d\ntrain:\n  epochs: 2\n")
    with pytest.raises(ConfigError, match="'train' is given twice"):
        load_recipe(sections)
    for text in ("", "# only a comment\n"):
        (tmp_path / "empty.yaml").write_text(text)
        with pytest.raises(ConfigError, match="is empty, so every setting would be a default"):
            load_recipe(tmp_path / "empty.yaml")
    (tmp_path / "ok.yaml").write_text("train:\n  lr: 0.1\n  epochs: 3\n")
    assert load_recipe(tmp_path / "ok.yaml").train.lr == 0.1


def test_unreadable_recipes_say_file_line_and_column(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  epochs: 3\n  lr: [1, 2\n")
    with pytest.raises(ConfigError, match=r"bad.yaml:\d+:\d+: invalid YAML"):
        load_recipe(bad)
    binary = tmp_path / "model.pt"
    binary.write_bytes(b"\x80\x02\x00\x00binary\x00\xff\xfe")
    with pytest.raises(ConfigError, match="not a UTF-8 text file|binary file"):
        load_recipe(binary)
    with pytest.raises(ConfigError, match=r"override train.lr:1:\d+: invalid YAML"):
        load_recipe(None, ["train.lr=[1, 2"])
    listing = tmp_path / "list.yaml"
    listing.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping of sections"):
        load_recipe(listing)
    assert main(["train", str(bad)]) == 2  # the CLI: one line, no traceback
    err = capsys.readouterr().err
    assert err.startswith("kws: error:") and "Traceback" not in err


# YAML 1.1 reads these as numbers (octal, sexagesimal, hex, a float that drops its zero); a text
# field keeps them as written. `name` forbids ':', so 12:30 goes to runs_dir, also text.
TEXT_LIKE_NUMBERS = [("name", "010"), ("runs_dir", "12:30"), ("name", "0x1F"), ("name", "1.50")]


@pytest.mark.parametrize("key, text", TEXT_LIKE_NUMBERS)
def test_text_fields_keep_number_like_text_in_overrides(key, text):
    cfg = load_recipe(None, [f"{key}={text}"])
    assert getattr(cfg, key) == text


@pytest.mark.parametrize("key, text", TEXT_LIKE_NUMBERS)
def test_text_fields_keep_number_like_text_in_recipe_files(tmp_path, key, text):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"{key}: {text}\n")
    assert getattr(load_recipe(recipe), key) == text


def test_text_lists_keep_number_like_items(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("data:\n  task: custom\n  words: [yes, 010, 0x1F, 1.50, true]\n")
    assert load_recipe(recipe).data.words == ["yes", "010", "0x1F", "1.50", "true"]
    cfg = load_recipe(None, ["data.task=custom", "data.words=[yes, 010]"])
    assert cfg.data.words == ["yes", "010"]
    cfg = load_recipe(None, ["data.hard_negatives=010", "data.exclude_speakers=[0123]"])
    assert cfg.data.hard_negatives == "010" and cfg.data.exclude_speakers == ["0123"]
    assert load_recipe(None, ["data.hard_negatives=[010]"]).data.hard_negatives == ["010"]


def test_number_bool_and_list_fields_still_parse_as_numbers(tmp_path):
    overrides = ["train.lr=1e-3", "train.epochs=30", "train.batch_size=0x10", "train.amp=false",
                 "train.lr_milestones=[0.5, 1]", "model.widths=[8,8]",
                 "model.block_strides=[[1,1]]", "data.seed=010"]  # fmt: skip
    recipe = tmp_path / "r.yaml"
    recipe.write_text("\n".join(["train:", "  lr: 1.0e-3", "  epochs: 30", "  batch_size: 0x10",
                                 "  amp: false", "  lr_milestones: [0.5, 1]", "model:",
                                 "  widths: [8, 8]", "  block_strides: [[1, 1]]", "data:",
                                 "  seed: 010", ""]))  # fmt: skip
    for cfg in (load_recipe(None, overrides), load_recipe(recipe)):
        assert cfg.train.lr == pytest.approx(1e-3) and isinstance(cfg.train.lr, float)
        assert cfg.train.epochs == 30 and type(cfg.train.epochs) is int
        assert cfg.train.batch_size == 16 and cfg.data.seed == 8  # YAML 1.1 hex and octal
        assert cfg.train.amp is False
        assert cfg.train.lr_milestones == [0.5, 1.0]
        assert [type(m) for m in cfg.train.lr_milestones] == [float, float]
        assert cfg.model.widths == [8, 8] and cfg.model.block_strides == [[1, 1]]
        assert type(cfg.model.widths[0]) is int
