"""Config schema helpers: fields that carry their own range or choice rule, and the checker.

Every field of every stage dataclass is declared with `option(default, rule...)`, so the rule
sits next to the default and `check_fields` can validate any config the same way: the error
names the dotted key, the value and what is allowed (`train.batch_size=0: must be >= 1`).
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import MISSING, field
from typing import Any

from kws.errors import ConfigError


def option(
    default: Any = MISSING,
    *,
    factory: Any = MISSING,
    choices: tuple | None = None,
    minimum: float | None = None,
    above: float | None = None,
    maximum: float | None = None,
    below: float | None = None,
    pattern: str | None = None,
    min_items: int | None = None,
    item_minimum: float | None = None,
    item_choices: tuple | None = None,
) -> Any:
    """A dataclass field with a validation rule (checked by `check_fields`).

    Args:
        default / factory: the default value, or a zero-argument factory for lists.
        choices: allowed values.
        minimum / maximum: inclusive bounds; above / below: exclusive bounds.
        pattern: a regular expression the whole string must match.
        min_items: shortest allowed list.
        item_minimum / item_choices: rules for each element of a list (nested lists are
            flattened).
    """
    rules = {
        key: value
        for key, value in dict(
            choices=choices, minimum=minimum, above=above, maximum=maximum, below=below,
            pattern=pattern, min_items=min_items, item_minimum=item_minimum,
            item_choices=item_choices,
        ).items()
        if value is not None
    }  # fmt: skip
    if factory is not MISSING:
        return field(default_factory=factory, metadata={"rules": rules})
    return field(default=default, metadata={"rules": rules})


def _flatten(values: list) -> list:
    out = []
    for value in values:
        out.extend(_flatten(value) if isinstance(value, (list, tuple)) else [value])
    return out


def _scalar_problem(value: Any, rules: dict) -> str | None:
    """What is wrong with one scalar value under `rules`, or None."""
    if isinstance(value, float) and not math.isfinite(value):
        return "must be a finite number"
    checks = (
        ("choices", lambda r: value in r, lambda r: f"must be one of {', '.join(map(str, r))}"),
        ("minimum", lambda r: value >= r, lambda r: f"must be >= {r:g}"),
        ("above", lambda r: value > r, lambda r: f"must be > {r:g}"),
        ("maximum", lambda r: value <= r, lambda r: f"must be <= {r:g}"),
        ("below", lambda r: value < r, lambda r: f"must be < {r:g}"),
        (
            "pattern",
            lambda r: isinstance(value, str) and re.fullmatch(r, value) is not None,
            lambda r: f"must match {r}",
        ),
    )
    for key, ok, message in checks:
        if key in rules and not ok(rules[key]):
            return message(rules[key])
    return None


def check_fields(obj: Any, where: str) -> None:
    """Validate every field of dataclass `obj` (recursively) against its rules.

    Raises:
        ConfigError: naming `where.field`, the value and what is allowed.
    """
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        key = f"{where}.{f.name}" if where else f.name
        if dataclasses.is_dataclass(value):
            check_fields(value, key)
            continue
        rules = f.metadata.get("rules", {})
        if isinstance(value, (list, tuple)):
            if "min_items" in rules and len(value) < rules["min_items"]:
                raise ConfigError(f"{key}={value!r}: needs at least {rules['min_items']} item(s)")
            item_rules = {
                "minimum": rules.get("item_minimum"),
                "choices": rules.get("item_choices"),
            }
            item_rules = {k: v for k, v in item_rules.items() if v is not None}
            for item in _flatten(list(value)):
                problem = _scalar_problem(item, item_rules)
                if problem:
                    raise ConfigError(f"{key}={value!r}: every item {problem} (got {item!r})")
            continue
        if value is None:
            continue
        problem = _scalar_problem(value, rules)
        if problem:
            raise ConfigError(f"{key}={value!r}: {problem}")
