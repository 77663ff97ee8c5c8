"""Field rules: every stage field with a rule rejects a value outside it, naming the key."""

import dataclasses

import pytest

from kws.config import RecipeConfig
from kws.config.schema import check_fields
from kws.errors import ConfigError


def _fields_with_rules():
    cfg = RecipeConfig()
    for section in dataclasses.fields(cfg):
        value = getattr(cfg, section.name)
        if not dataclasses.is_dataclass(value):
            continue
        for f in dataclasses.fields(value):
            rules = f.metadata.get("rules", {})
            if rules:
                yield section.name, f.name, rules


def _bad_value(rules, current):
    if "choices" in rules:
        return "no-such-choice"
    if "item_choices" in rules:
        return ["no-such-choice"]
    if "min_items" in rules:
        return []
    if "item_minimum" in rules:
        return [rules["item_minimum"] - 1]
    for key in ("minimum", "above"):
        if key in rules:
            return type(current)(rules[key] - 1)
    for key in ("maximum", "below"):
        if key in rules:
            return type(current)(rules[key] + 1)
    if "pattern" in rules:
        return ""
    raise AssertionError(f"no bad value for {rules}")


@pytest.mark.parametrize("section, name, rules", list(_fields_with_rules()))
def test_each_rule_rejects_a_value_outside_it(section, name, rules):
    cfg = RecipeConfig()
    part = getattr(cfg, section)
    setattr(part, name, _bad_value(rules, getattr(part, name)))
    with pytest.raises(ConfigError, match=rf"{section}\.{name}="):
        check_fields(cfg, "")


def test_defaults_pass_every_rule():
    check_fields(RecipeConfig(), "")
