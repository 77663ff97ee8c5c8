"""Recipes: YAML <-> `RecipeConfig`, dotted overrides, and validation at load time.

A recipe has one section per stage; unknown keys are an error that names the key and lists the
valid ones; overrides are dotted (`train.lr=1e-3`, values parsed as YAML). A plain scalar that
YAML reads as a number or boolean keeps the text it was written as, so a text field gets that
text (`name=010` is "010", not 8) while a number field gets the number. Every loaded config is
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
    return _load_yaml(text, source, _Yaml12Loader)


def _load_yaml(text: str, source: str, loader: type) -> Any:
    try:
        return yaml.load(text, Loader=loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{where}: invalid YAML: {problem}") from None


class _NumberText:
    """A number read from a plain YAML scalar, with the text it was written as (`010` is 8,
    `1.50` is 1.5); mixed into int and float."""

    def __new__(cls, value=0, text: str = ""):
        obj = super().__new__(cls, value)
        obj.text = text
        return obj

    def plain(self):
        return self.number_type(self)


class _IntText(_NumberText, int):
    number_type = int


class _FloatText(_NumberText, float):
    number_type = float


class _BoolText:
    """A boolean read from a plain YAML scalar, with its text (bool cannot be subclassed)."""

    def __init__(self, value: bool = False, text: str = ""):
        self.value, self.text = bool(value), text

    def plain(self) -> bool:
        return self.value

    def __bool__(self) -> bool:
        return self.value

    def __eq__(self, other: object) -> bool:
        return self.value == (other.value if isinstance(other, _BoolText) else other)

    def __hash__(self) -> int:
        return hash(self.value)

    def __repr__(self) -> str:
        return repr(self.value)


_TEXT_KEEPERS = (_IntText, _FloatText, _BoolText)


class _RecipeLoader(_Yaml12Loader):
    """`_Yaml12Loader` whose plain number/boolean scalars also keep their text (see `_coerce`)."""


def _keeping_text(tag: str, cls: type) -> None:
    construct = _Yaml12Loader.yaml_constructors[tag]

    def constructor(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> Any:
        value = construct(loader, node)
        return cls(value, node.value) if node.style is None else value  # None: plain, unquoted

    _RecipeLoader.add_constructor(tag, constructor)


for _tag, _cls in (("int", _IntText), ("float", _FloatText), ("bool", _BoolText)):
    _keeping_text(f"tag:yaml.org,2002:{_tag}", _cls)


def _unique_keys(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict:
    """A mapping whose keys are each written once: YAML would keep the last of two silently,
    so `lr: 0.1` above a forgotten `lr: 0.01` would train at the second."""
    first: dict = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in first:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"'{key}' is given twice (first on line {first[key] + 1}); keep one",
                key_node.start_mark,
            )
        first[key] = key_node.start_mark.line
    return loader.construct_mapping(node, deep=True)


_RecipeLoader.add_constructor("tag:yaml.org,2002:map", _unique_keys)


def _plain(value: Any) -> Any:
    """`value` with every text-keeping scalar replaced by its ordinary Python value."""
    if isinstance(value, _TEXT_KEEPERS):
        return value.plain()
    if isinstance(value, dict):
        return {_plain(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _coerce(value: Any, hint: Any, where: str) -> Any:
    """Convert a YAML value to the annotated type, with an error that names the key.

    A text field takes a plain scalar's text as written (`010`, `12:30`, `0x1F`, `1.50`), which
    YAML 1.1 would read as a number; every other field takes the value YAML read.
    """
    origin = typing.get_origin(hint)
    if isinstance(value, _TEXT_KEEPERS):
        if hint is str or (
            origin in (typing.Union, types.UnionType) and str in typing.get_args(hint)
        ):
            return value.text
        value = value.plain()
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
        arms = typing.get_args(hint)
        if isinstance(value, (list, tuple)):
            lists = [arm for arm in arms if typing.get_origin(arm) is list]
            if lists:
                return _coerce(value, lists[0], where)
        elif str in arms and not isinstance(value, dict):
            return _coerce(value, str, where)
        return _plain(value)
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
    return _plain(value)


def _build(cls: type, values: dict, where: str) -> Any:
    if cls is RecipeConfig and isinstance(values.get("model"), dict):
        model_cls, model_values = model_section_values(values["model"])
        values = {**values, "model": _build(model_cls, model_values, "model")}
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = [k for k in values if k not in names]
    if unknown:
        prefix = f"{where}." if where else ""
        key = getattr(unknown[0], "text", unknown[0])  # `010:` is named as written
        raise ConfigError(
            f"unknown config key '{prefix}{key}'; valid keys in "
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


def unread_overrides(overrides: list[str] | None, read: tuple[str, ...]) -> list[str]:
    """The `overrides` (`key=value`) a verb would ignore: those whose key is neither one of
    `read` nor inside a section `read` names (`read=("data", "train.device")` reads
    `data.root` and `train.device`, not `train.lr`)."""
    unread = []
    for override in overrides or []:
        key = override.split("=", 1)[0].strip()
        if "=" in override and not any(key == r or key.startswith(f"{r}.") for r in read):
            unread.append(override)
    return unread


def apply_overrides(values: dict, overrides: list[str]) -> dict:
    """Apply dotted `section.key=value` overrides (values parsed as YAML) to nested data.

    Plain numbers and booleans in the values keep their text until `from_dict` converts them
    by the field's type (so `name=010` stays "010" and `train.epochs=010` is 8).

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
        parsed = _load_yaml(raw, f"override {dotted}", _RecipeLoader) if raw != "" else ""
        node[keys[-1]] = parsed
    return values


def read_recipe_file(path: str | Path) -> dict:
    """The nested plain data of a recipe file.

    Plain numbers and booleans are int/float/bool-like values that also keep the text they were
    written as, which `from_dict` gives to text fields (`name: 010` stays "010").

    Raises:
        ConfigError: missing file, binary/undecodable file, bad YAML (file:line:column), a key
            given twice, an empty file, or a file that is not a mapping of sections.
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
    values = _load_yaml(text, str(path), _RecipeLoader)
    if values is None:
        raise ConfigError(
            f"recipe '{path}' is empty, so every setting would be a default (data/synth, "
            "DS-CNN-S); give at least its data section, or start from one in recipes/"
        )
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
