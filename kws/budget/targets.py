"""Budget stage: microcontroller targets and core latency models, loaded from YAML data.

The shipped targets live in `kws/budget/targets.yaml` (package data). Users add or replace
entries with a YAML file of the same schema (`targets:` and optionally `cores:` mappings).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from kws.config import parse_yaml
from kws.errors import UserError

LAYER_KINDS = ("conv", "depthwise", "pointwise", "linear")
DEFAULT_RESERVE_FRACTION = 0.25


@dataclass
class Core:
    """Latency model of one core under one runtime.

    cycles = sum over ops of `cycles_per_mac[kind] * macs + cycles_per_layer`; `calibration`
    names the published board measurement it was scaled to (or says it is not calibrated).
    """

    name: str
    cycles_per_mac: dict[str, float]
    cycles_per_layer: float = 0.0
    runtime: str = "tflm"
    calibration: str = ""


@dataclass
class Target:
    """One budget target; a limit of 0 means "no limit"."""

    name: str
    description: str = ""
    flash_bytes: int = 0
    sram_bytes: int = 0
    memory_bytes: int = 0  # Hello Edge: int8 weights + peak activations, one combined limit
    max_ops: int = 0  # per inference, ops = 2 x MACs
    inferences_per_second: float = 0.0
    clock_hz: float = 0.0
    reserve_fraction: float = DEFAULT_RESERVE_FRACTION
    runtime: str = "tflm"
    core: Core | None = None

    @property
    def usable_flash_bytes(self) -> int:
        return int(self.flash_bytes * (1.0 - self.reserve_fraction))

    @property
    def usable_sram_bytes(self) -> int:
        return int(self.sram_bytes * (1.0 - self.reserve_fraction))

    @property
    def period_ms(self) -> float:
        """Time available per inference; 0 when no rate is set."""
        return 1000.0 / self.inferences_per_second if self.inferences_per_second else 0.0


@dataclass
class TargetTable:
    """Raw target and core entries (shipped YAML merged with a user's file)."""

    targets: dict[str, dict] = field(default_factory=dict)
    cores: dict[str, dict] = field(default_factory=dict)


_TARGET_KEYS = {f.name for f in dataclasses.fields(Target)} - {"name"}
_COUNT_KEYS = ("flash_bytes", "sram_bytes", "memory_bytes", "max_ops")  # whole numbers >= 0
_RATE_KEYS = ("inferences_per_second", "clock_hz")  # numbers >= 0
_TEXT_KEYS = ("runtime", "core")
_CORE_KEYS = ("cycles_per_mac", "cycles_per_layer", "calibration")


def _is_number(value) -> bool:
    """A finite int or float (YAML's true/false are not numbers here)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return isinstance(value, int) or math.isfinite(value)


def _number_text(value):
    """`value`, or the finite number a text spells: YAML 1.1 reads `1e6` (no dot) as text, and
    recipes take such text as the number (kws.config.load), so targets files do too."""
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return value
        if math.isfinite(number):
            return number
    return value


def _numbers_in(entry, keys) -> dict:
    """`entry` with `_number_text` applied to `keys` (a non-mapping is left to the checks)."""
    if not isinstance(entry, dict):
        return entry
    return {k: _number_text(v) if k in keys else v for k, v in entry.items()}


def _core_numbers(runtimes):
    """A core's runtimes with `_number_text` applied to every cycle count."""
    if not isinstance(runtimes, dict):
        return runtimes
    out = {}
    for runtime, entry in runtimes.items():
        entry = _numbers_in(entry, ("cycles_per_layer",))
        if isinstance(entry, dict) and isinstance(entry.get("cycles_per_mac"), dict):
            entry["cycles_per_mac"] = {
                kind: _number_text(cycles) for kind, cycles in entry["cycles_per_mac"].items()
            }
        out[runtime] = entry
    return out


def _check_target(where: str, name: str, entry: dict) -> None:
    """Refuse a target entry whose values have the wrong type or range, naming key and rule,
    or that sets no limit at all."""
    what = f"targets file '{where}': target '{name}'"
    bad = set(entry) - _TARGET_KEYS
    if bad:
        raise UserError(
            f"{what} has unknown key '{sorted(bad, key=str)[0]}'; valid keys: "
            f"{', '.join(sorted(_TARGET_KEYS))}"
        )
    for key in _TEXT_KEYS:
        if entry.get(key) is not None and not isinstance(entry[key], str):
            raise UserError(f"{what}: {key}={entry[key]!r} must be a name (text), e.g. {key}: x")
    if entry.get("runtime") and not entry.get("core"):  # it picks the core's latency model
        raise UserError(
            f"{what}: runtime '{entry['runtime']}' picks a core's latency model, but the target "
            "has no core; add core: NAME and clock_hz, or drop runtime"
        )
    for key in _COUNT_KEYS:
        value = entry.get(key)
        if value is not None and not (
            _is_number(value) and float(value).is_integer() and value >= 0
        ):
            raise UserError(f"{what}: {key}={value!r} must be a whole number >= 0 (0 = no limit)")
    for key in _RATE_KEYS:
        value = entry.get(key)
        if value is not None and not (_is_number(value) and value >= 0):
            raise UserError(f"{what}: {key}={value!r} must be a number >= 0 (0 = none)")
    reserve = entry.get("reserve_fraction")
    if reserve is not None and not (_is_number(reserve) and 0.0 <= reserve < 1.0):
        raise UserError(f"{what}: reserve_fraction={reserve!r} must be a number in [0, 1)")
    clock = entry.get("clock_hz")
    if entry.get("core") and not (clock or 0) > 0:
        got = "none given" if clock is None else f"got {clock!r}"
        raise UserError(
            f"{what}: core '{entry['core']}' needs clock_hz > 0 for the latency estimate "
            f"({got}); give the clock in Hz, e.g. clock_hz: 64000000, or drop core"
        )
    # a target with no limit would PASS every model with not one budget line checked
    timed = entry.get("inferences_per_second") and entry.get("core")
    if not any(entry.get(key) for key in _COUNT_KEYS) and not timed:
        raise UserError(
            f"{what} sets no limit, so every model would pass with nothing checked; set at "
            f"least one of {', '.join(_COUNT_KEYS)} (> 0), or inferences_per_second with core "
            "and clock_hz (for the latency line)"
        )


def _check_core(where: str, name: str, runtimes) -> None:
    """Refuse a core entry whose latency models have the wrong type or range."""
    what = f"targets file '{where}': core '{name}'"
    if not isinstance(runtimes, dict):
        raise UserError(f"{what} must map runtimes to latency models (e.g. tflm: {{...}})")
    for runtime, entry in runtimes.items():
        if not isinstance(runtime, str):  # budget.runtime names it by text
            raise UserError(
                f"{what}: runtime name {runtime!r} is not text; quote it ('{runtime}':)"
            )
        where_rt = f"{what}, runtime '{runtime}'"
        if not isinstance(entry, dict):
            raise UserError(f"{where_rt} must be a mapping with keys {', '.join(_CORE_KEYS)}")
        bad = set(entry) - set(_CORE_KEYS)
        if bad:
            raise UserError(
                f"{where_rt} has unknown key '{sorted(bad, key=str)[0]}'; valid keys: "
                f"{', '.join(_CORE_KEYS)}"
            )
        per_mac = entry.get("cycles_per_mac")
        if not isinstance(per_mac, dict):
            raise UserError(
                f"{where_rt}: cycles_per_mac={per_mac!r} must map each layer kind to cycles "
                f"per MAC, e.g. {{{', '.join(f'{k}: 1.0' for k in LAYER_KINDS)}}}"
            )
        for kind, cycles in per_mac.items():
            if not (_is_number(cycles) and cycles > 0):
                raise UserError(
                    f"{where_rt}: cycles_per_mac {kind}={cycles!r} must be a number > 0"
                )
        per_layer = entry.get("cycles_per_layer")
        if per_layer is not None and not (_is_number(per_layer) and per_layer >= 0):
            raise UserError(f"{where_rt}: cycles_per_layer={per_layer!r} must be a number >= 0")
        calibration = entry.get("calibration")
        if calibration is not None and not isinstance(calibration, str):
            raise UserError(f"{where_rt}: calibration={calibration!r} must be text")


def _read_yaml(text: str, where: str) -> TargetTable:
    """Parse a targets file and check every entry's types and ranges.

    Raises:
        UserError: invalid YAML, unknown keys, a target, core or runtime name that is not text,
            or a value of the wrong type or range (naming the file, the target or core, the key
            and what it must be).
    """
    # the recipes' YAML: yes/no/on/off stay text, as names and values do there
    data = parse_yaml(text, f"targets file '{where}'") or {}
    unknown = set(data) - {"targets", "cores"} if isinstance(data, dict) else {"<not a mapping>"}
    if unknown:
        raise UserError(
            f"targets file '{where}': unknown top-level key '{sorted(unknown, key=str)[0]}'; "
            "expected 'targets:' and optionally 'cores:'"
        )
    targets, cores = data.get("targets") or {}, data.get("cores") or {}
    for key, section in (("targets", targets), ("cores", cores)):
        if not isinstance(section, dict):
            raise UserError(
                f"targets file '{where}': '{key}:' must be a mapping of names to entries, got "
                f"{type(section).__name__}"
            )
    for key, section, namer in (("target", targets, "--target"), ("core", cores, "core:")):
        for name in section:
            if not isinstance(name, str):  # --target and `core:` name entries by text
                raise UserError(
                    f"targets file '{where}': {key} name {name!r} is not text, so {namer} "
                    f"cannot name it; quote it ('{name}':)"
                )
    for name, entry in {**targets, **cores}.items():
        if not isinstance(entry, dict):
            raise UserError(f"targets file '{where}': entry '{name}' must be a mapping")
    number_keys = (*_COUNT_KEYS, *_RATE_KEYS, "reserve_fraction")
    targets = {name: _numbers_in(entry, number_keys) for name, entry in targets.items()}
    cores = {name: _core_numbers(runtimes) for name, runtimes in cores.items()}
    for name, entry in targets.items():
        _check_target(where, name, entry)
    for name, runtimes in cores.items():
        _check_core(where, name, runtimes)
    return TargetTable(targets=dict(targets), cores=dict(cores))


def load_target_table(extra_file: str | Path | None = None) -> TargetTable:
    """The shipped targets, merged with `extra_file` (its entries replace same-named ones).

    Raises:
        UserError: a missing or malformed targets file: bad YAML, unknown keys, a name that
            is not text, a value of the wrong type, a negative limit, a core without
            clock_hz > 0, a target that sets no limit, or cycles_per_mac that are not numbers
            > 0 (the message names the target or core and the key).
    """
    shipped = resources.files("kws.budget").joinpath("targets.yaml").read_text()
    table = _read_yaml(shipped, "kws/budget/targets.yaml")
    if extra_file is not None:
        path = Path(extra_file)
        if not path.is_file():
            raise UserError(f"targets file '{path}' not found; pass an existing YAML file")
        extra = _read_yaml(path.read_text(), str(path))
        table.targets.update(extra.targets)
        table.cores.update(extra.cores)
    return table


def _make_core(name: str, runtime: str, table: TargetTable, target: str) -> Core:
    if name not in table.cores:
        raise UserError(
            f"target '{target}' names core '{name}', which is not defined; known cores: "
            f"{', '.join(sorted(table.cores))} (add it under 'cores:' in your targets file)"
        )
    runtimes = table.cores[name]
    if runtime not in runtimes or not isinstance(runtimes[runtime], dict):
        raise UserError(
            f"core '{name}' has no latency model for runtime '{runtime}'; calibrated runtimes: "
            f"{', '.join(sorted(runtimes))} (budget.runtime=...)"
        )
    entry = runtimes[runtime]
    per_mac = {str(k): float(v) for k, v in (entry.get("cycles_per_mac") or {}).items()}
    missing = [kind for kind in LAYER_KINDS if kind not in per_mac]
    if missing:
        raise UserError(f"core '{name}': cycles_per_mac lacks '{missing[0]}' ({LAYER_KINDS})")
    return Core(
        name, per_mac, float(entry.get("cycles_per_layer", 0.0)), runtime,
        str(entry.get("calibration", "")),
    )  # fmt: skip


def load_target(
    name: str, extra_file: str | Path | None = None, runtime: str | None = None
) -> Target:
    """Look up a target by name in the shipped table merged with `extra_file`.

    `runtime` (e.g. "vendor") picks another of the core's calibrated latency models than the
    target's default.

    Raises:
        UserError: unknown target (the message lists the known names), a malformed entry, or
            a `runtime` the target's core has no latency model for (or the target no core).
    """
    table = load_target_table(extra_file)
    if name not in table.targets:
        raise UserError(
            f"unknown target '{name}'; known targets: {', '.join(sorted(table.targets))} "
            "(or add your own with --targets FILE)"
        )
    entry = dict(table.targets[name])
    core_name = entry.pop("core", None)
    try:
        target = Target(name=name, **entry)
        for key in ("flash_bytes", "sram_bytes", "memory_bytes", "max_ops"):
            setattr(target, key, int(getattr(target, key) or 0))
        for key in ("inferences_per_second", "clock_hz", "reserve_fraction"):
            setattr(target, key, float(getattr(target, key) or 0.0))
    except (TypeError, ValueError) as exc:
        raise UserError(f"target '{name}': bad value ({exc})") from None
    if not 0.0 <= target.reserve_fraction < 1.0:
        raise UserError(f"target '{name}': reserve_fraction must be in [0, 1)")
    if runtime and not core_name:  # the runtime picks a core's latency model: none to pick
        with_core = sorted(n for n, t in table.targets.items() if t.get("core"))
        raise UserError(
            f"target '{name}' has no core, so it has no latency estimate for runtime "
            f"'{runtime}' (--runtime, budget.runtime) to pick; drop --runtime, or choose a "
            f"target with a core: {', '.join(with_core)}"
        )
    if runtime:
        target.runtime = runtime
    if core_name:
        target.core = _make_core(core_name, target.runtime, table, name)
    return target


def target_names(extra_file: str | Path | None = None) -> list[str]:
    """Names of every target (shipped plus `extra_file`'s), sorted."""
    return sorted(load_target_table(extra_file).targets)


def runtime_names(extra_file: str | Path | None = None) -> list[str]:
    """Every runtime some core has a latency model for (shipped plus `extra_file`'s), sorted."""
    cores = load_target_table(extra_file).cores.values()
    return sorted({runtime for runtimes in cores for runtime in runtimes})
