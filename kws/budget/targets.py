"""Budget stage: microcontroller targets and core latency models, loaded from YAML data.

The shipped targets live in `kws/budget/targets.yaml` (package data). Users add or replace
entries with a YAML file of the same schema (`targets:` and optionally `cores:` mappings).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import yaml

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


def _read_yaml(text: str, where: str) -> TargetTable:
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise UserError(f"targets file '{where}' is not valid YAML ({exc})") from None
    unknown = set(data) - {"targets", "cores"} if isinstance(data, dict) else {"<not a mapping>"}
    if unknown:
        raise UserError(
            f"targets file '{where}': unknown top-level key '{sorted(unknown)[0]}'; "
            "expected 'targets:' and optionally 'cores:'"
        )
    targets, cores = data.get("targets") or {}, data.get("cores") or {}
    for name, entry in {**targets, **cores}.items():
        if not isinstance(entry, dict):
            raise UserError(f"targets file '{where}': entry '{name}' must be a mapping")
    for name, entry in targets.items():
        bad = set(entry) - _TARGET_KEYS
        if bad:
            raise UserError(
                f"targets file '{where}': target '{name}' has unknown key '{sorted(bad)[0]}'; "
                f"valid keys: {', '.join(sorted(_TARGET_KEYS))}"
            )
    return TargetTable(targets=dict(targets), cores=dict(cores))


def load_target_table(extra_file: str | Path | None = None) -> TargetTable:
    """The shipped targets, merged with `extra_file` (its entries replace same-named ones).

    Raises:
        UserError: a missing or malformed targets file.
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
        UserError: unknown target (the message lists the known names) or a malformed entry.
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
    if runtime:
        target.runtime = runtime
    if core_name:
        target.core = _make_core(core_name, target.runtime, table, name)
    return target


def target_names(extra_file: str | Path | None = None) -> list[str]:
    """Names of every target (shipped plus `extra_file`'s), sorted."""
    return sorted(load_target_table(extra_file).targets)
