import pytest

from kws.config import ConfigError, load_recipe


def test_defaults_and_overrides():
    cfg = load_recipe(None, ["train.lr=1e-3", "model.widths=[8,8]", "data.spec_augment=true"])
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


def test_missing_recipe_file():
    with pytest.raises(ConfigError, match="not found"):
        load_recipe("does/not/exist.yaml")


def test_shipped_recipes_load():
    from pathlib import Path

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
