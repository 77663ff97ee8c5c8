"""Recipes: YAML <-> `RecipeConfig`, dotted overrides, and validation at load time.

A recipe has one section per stage; unknown keys are an error that names the key and lists the
valid ones; overrides are dotted (`train.lr=1e-3`, values parsed as YAML). Every loaded config is
checked field by field (`kws.config.schema.check_fields`) and across fields (each section's
`validate`), so a bad value fails here, with its key, never as a traceback minutes later.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from kws.config.models import model_section_values
from kws.config.schema import check_fields
from kws.config.stages import RecipeConfig
from kws.errors import ConfigError
from kws.io import atomic_write_text


class _Yaml12Loader(yaml.SafeLoader):
    """YAML with only true/false as booleans: GSC keywords yes/no/on/off stay strings."""


_Yaml12Loader.yaml_implicit_resolvers = {
    key: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def parse_yaml(text: str, source: str = "<text>") -> Any:
    """Parse YAML keeping yes/no/on/off as strings (they are keywords here).

    Raises:
        ConfigError: naming `source`, line and column of a syntax error.
    """
    try:
        return yaml.load(text, Loader=_Yaml12Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{where}: invalid YAML: {problem}") from None


def _coerce(value: Any, hint: Any, where: str) -> Any:
    """Convert a YAML value to the annotated type, with an error that names the key."""
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping of keys, got {value!r}")
        return _build(hint, value, where)
    if value is None:
        raise ConfigError(f"{where}=null: give a value (see the recipe defaults in kws/config)")
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list like [a, b], got {value!r}")
        (item,) = typing.get_args(hint) or (Any,)
        return [_coerce(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin in (typing.Union, types.UnionType):
        return value
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise ConfigError(f"{where}={value!r}: expected true or false")
    if hint in (int, float):
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ConfigError(f"{where}={value!r}: expected a number")
        try:
            number = float(value)
        except ValueError:
            raise ConfigError(f"{where}={value!r}: expected a number") from None
        if hint is int:
            if not number.is_integer():
                raise ConfigError(f"{where}={value!r}: expected a whole number")
            return int(number)
        return number
    if hint is str:
        if isinstance(value, (dict, list)):
            raise ConfigError(f"{where}={value!r}: expected a plain string")
        return str(value)
    return value


def _build(cls: type, values: dict, where: str) -> Any:
    if cls is RecipeConfig and isinstance(values.get("model"), dict):
        model_cls, model_values = model_section_values(values["model"])
        values = {**values, "model": _build(model_cls, model_values, "model")}
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = [k for k in values if k not in names]
    if unknown:
        prefix = f"{where}." if where else ""
        raise ConfigError(
            f"unknown config key '{prefix}{unknown[0]}'; valid keys in "
            f"'{where or 'recipe'}': {', '.join(names)}"
        )
    kwargs = {}
    for key, value in values.items():
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            kwargs[key] = value  # the model section, already built
        else:
            kwargs[key] = _coerce(value, hints[key], f"{where}.{key}" if where else key)
    return cls(**kwargs)


def validate(cfg: RecipeConfig) -> RecipeConfig:
    """Check every field's rule and every section's cross-field rules; returns `cfg`.

    Raises:
        ConfigError: naming the key, its value and what is allowed.
    """
    check_fields(cfg, "")
    for section in dataclasses.fields(cfg):
        value = getattr(cfg, section.name)
        if section.name != "stream" and hasattr(value, "validate"):
            value.validate()
    if hasattr(cfg.stream, "validate"):  # streaming rules depend on the front end's hop
        cfg.stream.validate(cfg.features)
    cfg.data.check_features(cfg.features)
    if hasattr(cfg.model, "check_input"):  # some families need particular input shapes
        cfg.model.check_input(cfg.features.input_shape)
    return cfg


def from_dict(values: dict | None) -> RecipeConfig:
    """Build and validate a `RecipeConfig` from nested plain data, rejecting unknown keys.

    Raises:
        ConfigError: unknown keys, wrong types or values outside their rules.
    """
    if values is not None and not isinstance(values, dict):
        raise ConfigError(f"a recipe must be a mapping of sections, got {type(values).__name__}")
    return validate(_build(RecipeConfig, values or {}, ""))


def to_dict(cfg: Any) -> dict:
    """Nested plain data of any config dataclass."""
    return dataclasses.asdict(cfg)


def copy_config(cfg: RecipeConfig) -> RecipeConfig:
    """An independent copy of a recipe config."""
    return from_dict(to_dict(cfg))


def apply_overrides(values: dict, overrides: list[str]) -> dict:
    """Apply dotted `section.key=value` overrides (values parsed as YAML) to nested data.

    Raises:
        ConfigError: for an override that is not `key=value`, or bad YAML in its value.
    """
    for item in overrides:
        if "=" not in item:
            raise ConfigError(
                f"override '{item}' is not of the form section.key=value (e.g. train.epochs=5)"
            )
        dotted, raw = item.split("=", 1)
        keys = dotted.strip().split(".")
        node = values
        for key in keys[:-1]:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override '{dotted}': '{key}' is not a section")
        node[keys[-1]] = parse_yaml(raw, f"override {dotted}") if raw != "" else ""
    return values


def read_recipe_file(path: str | Path) -> dict:
    """The nested plain data of a recipe file.

    Raises:
        ConfigError: missing file, binary/undecodable file, bad YAML (file:line:column), or a
            file that is not a mapping of sections.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"recipe '{path}' not found; see recipes/ for examples")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"recipe '{path}' is not a UTF-8 text file (a YAML recipe?)") from None
    if "\x00" in text:
        raise ConfigError(f"recipe '{path}' is a binary file, not a YAML recipe")
    values = parse_yaml(text, str(path)) or {}
    if not isinstance(values, dict):
        raise ConfigError(f"recipe '{path}' must be a mapping of sections (data:, model:, ...)")
    return values


def load_recipe(path: str | Path | None, overrides: list[str] | None = None) -> RecipeConfig:
    """Read a YAML recipe (or the defaults when `path` is None), apply overrides, validate.

    Raises:
        ConfigError: see `read_recipe_file`, `apply_overrides` and `validate`.
    """
    values = read_recipe_file(path) if path is not None else {}
    return from_dict(apply_overrides(values, list(overrides or [])))


def dump_yaml(cfg: RecipeConfig) -> str:
    """The recipe as YAML text (the form `config.yaml` in a run folder has)."""
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)


def save_yaml(cfg: RecipeConfig, path: str | Path) -> Path:
    """Write the resolved recipe atomically."""
    return atomic_write_text(path, dump_yaml(cfg))
