"""Configuration: one plain dataclass per pipeline stage, nested in `RecipeConfig`.

Recipes are YAML files with one section per stage. Unknown keys are an error that names the key
and lists the valid ones; command-line overrides are dotted (`train.lr=1e-3`).
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from kws.errors import UserError

GSC12_WORDS = ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go"]


class _Yaml12Loader(yaml.SafeLoader):
    """YAML with only true/false as booleans: GSC keywords yes/no/on/off stay strings."""


_Yaml12Loader.yaml_implicit_resolvers = {
    key: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def parse_yaml(text: str):
    """Parse YAML text keeping yes/no/on/off as strings (they are keywords here)."""
    return yaml.load(text, Loader=_Yaml12Loader)


class ConfigError(UserError, ValueError):
    """A recipe or override that does not fit the configuration schema."""


@dataclass
class DataConfig:
    """Where the audio lives and how examples are drawn (REFERENCE.md, GSC section)."""

    root: str = "data/synth"
    task: str = "gsc12"  # gsc12 | all | custom (then `words` lists the keywords)
    words: list[str] = field(default_factory=list)
    silence_percent: float = 10.0
    unknown_percent: float = 10.0
    validation_percent: float = 10.0
    testing_percent: float = 10.0
    seed: int = 59185
    time_shift_ms: float = 100.0
    background_probability: float = 0.8
    background_volume: float = 0.1
    silence_volume: float = 1.0
    speed_perturb: float = 0.0  # max relative speed change, e.g. 0.1 for +/-10%
    spec_augment: bool = False
    spec_time_masks: int = 2
    spec_time_mask_frames: int = 5
    spec_freq_masks: int = 2
    spec_freq_mask_bins: int = 2
    exclude_speakers: list[str] = field(default_factory=list)  # speaker-id prefixes held out
    cache_dir: str = "data/cache"
    max_clips_per_word: int = 0  # 0 = all; for quick experiments


@dataclass
class FeatureConfig:
    """MFCC front end (Hello Edge / MLPerf Tiny); see REFERENCE.md 'Front end'."""

    kind: str = "mfcc"  # mfcc | logmel
    sample_rate_hz: int = 16000
    clip_ms: float = 1000.0
    window_ms: float = 40.0
    hop_ms: float = 20.0
    fft_size: int = 1024
    num_mel: int = 40
    mel_low_hz: float = 20.0
    mel_high_hz: float = 4000.0
    num_mfcc: int = 10
    log_floor: float = 1e-6

    @property
    def clip_samples(self) -> int:
        return int(round(self.sample_rate_hz * self.clip_ms / 1000))

    @property
    def window_samples(self) -> int:
        return int(round(self.sample_rate_hz * self.window_ms / 1000))

    @property
    def hop_samples(self) -> int:
        return int(round(self.sample_rate_hz * self.hop_ms / 1000))

    @property
    def num_frames(self) -> int:
        return 1 + (self.clip_samples - self.window_samples) // self.hop_samples

    @property
    def num_coeffs(self) -> int:
        return self.num_mfcc if self.kind == "mfcc" else self.num_mel


@dataclass
class ModelConfig:
    """DS-CNN with every width, kernel and stride as data (Hello Edge, Zhang et al. 2017).

    `widths[0]` is the stem conv's output channels; `widths[i]` (i >= 1) is block i's pointwise
    output channels. The depthwise conv of block i keeps `widths[i-1]` channels.
    """

    preset: str = ""  # informational: ds_cnn_s | ds_cnn_m | ds_cnn_l | ds_cnn_seed | ""
    widths: list[int] = field(default_factory=lambda: [64, 64, 64, 64, 64])
    stem_kernel: list[int] = field(default_factory=lambda: [10, 4])
    stem_stride: list[int] = field(default_factory=lambda: [2, 2])
    depthwise_kernel: list[int] = field(default_factory=lambda: [3, 3])
    block_strides: list[list[int]] = field(default_factory=lambda: [[1, 1]] * 4)
    activation: str = "relu"  # relu | softplus | silu | tanh (smooth: exact splitting theory)
    dropout: float = 0.0
    num_classes: int = 12
    input_frames: int = 49
    input_coeffs: int = 10


@dataclass
class TrainConfig:
    """Optimisation schedule; defaults follow Hello Edge scaled down (REFERENCE.md)."""

    epochs: int = 30
    batch_size: int = 100
    lr: float = 5e-4
    lr_milestones: list[float] = field(default_factory=lambda: [0.5, 0.8])  # epoch fractions
    lr_gamma: float = 0.2
    weight_decay: float = 0.0
    label_smoothing: float = 0.0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    amp: bool = True  # only on CUDA
    seed: int = 0
    num_threads: int = 0  # 0 = torch default
    log_every_steps: int = 20
    eval_batch_size: int = 500
    max_steps_per_epoch: int = 0  # 0 = full epoch


@dataclass
class BudgetConfig:
    """Microcontroller budget: a named target (targets YAML) and/or plain limits."""

    target: str = ""
    max_params: int = 0  # 0 = no limit
    max_macs: int = 0
    max_flash_bytes: int = 0
    max_ram_bytes: int = 0


@dataclass
class GrowthConfig:
    """Splitting steepest descent (Liu, Wu, Wang 2019)."""

    rounds: int = 3
    method: str = "splitting"  # splitting | random | random_init | scratch
    epochs_per_round: int = 10
    seed_epochs: int = 0  # 0 = train.epochs
    grow_fraction: float = 0.3
    max_splits_per_round: int = 0  # m*; 0 = no cap beyond grow_fraction
    index_threshold: float = 0.0  # lambda*: split only neurons with index <= this
    cost_aware: bool = True
    cost: str = "macs"  # macs | params
    max_widths: list[int] = field(default_factory=list)
    eps: float = 1e-2
    calibration_batches: int = 8
    solver: str = "exact"  # exact | fast
    dtype: str = "float32"  # float32 | float64
    relu_softplus_beta: float = 3.0
    fast_iterations: int = 0  # LOBPCG iterations for solver=fast; 0 = 100 (fp32) / 300 (fp64)
    fast_tol: float = 0.0  # relative residual for solver=fast; 0 = 1e-3 (fp32) / 1e-9 (fp64)
    baselines: list[str] = field(default_factory=list)


@dataclass
class ExportConfig:
    formats: list[str] = field(default_factory=lambda: ["onnx", "tflite", "tflm"])
    calibration_batches: int = 10
    max_int8_drop_points: float = 1.0
    eval_max_clips: int = 0  # 0 = whole test split


@dataclass
class StreamConfig:
    """Streaming keyword decisions (kws.stream.recognize; README 'Streaming semantics').

    A keyword fires when it tops the smoothed posteriors above the threshold and is armed; it
    re-arms when its smoothed score falls below `release_fraction` x threshold, or when a new
    word starts after a pause (frame-level voice activity). The same rule runs on a device
    (deploy/tflm/recognize_commands.cc).
    """

    stride_ms: float = 20.0  # a model run every stride; a whole number of features.hop_ms
    average_window_ms: float = 500.0  # posteriors of the windows ending this recently are averaged
    detection_threshold: float = 0.7  # smoothed score a keyword must exceed, in (0, 1)
    # Refractory time: no keyword fires this soon after the previous keyword event. Short on
    # purpose: a long one lets a wrong label that fired first block the right one.
    suppression_ms: float = 200.0
    minimum_count: int = 4  # fewest posteriors in the averaging window for any decision
    # A fired keyword re-arms once its smoothed score falls below this fraction of the threshold
    # (hysteresis: it cannot fire twice on one word whose score wobbles around the threshold).
    release_fraction: float = 0.5
    # A pause of at least this long, followed by speech, starts a new word: once the model's
    # window has moved past the pause's start, every keyword re-arms, so a word repeated after a
    # pause fires again. 0 turns word segmentation off (re-arming by the score alone).
    word_gap_ms: float = 150.0
    vad_margin_db: float = 6.0  # speech: frame level this far above the noise floor
    noise_floor_rise_db_per_s: float = 5.0  # the floor follows drops at once, rises this slowly
    backend: str = "torch"  # torch | onnx | tflite

    def results_per_window(self) -> int:
        """Most posteriors the averaging window can hold at this stride (the window is closed)."""
        return int(math.floor(self.average_window_ms / self.stride_ms + 1e-9)) + 1

    def validate_decisions(self) -> None:
        """Check the decision values that do not depend on the front end.

        Raises:
            ConfigError: naming the key, its value and what is allowed.
        """
        ranges = [
            ("detection_threshold", 0.0 < self.detection_threshold < 1.0, "between 0 and 1 "
             "(exclusive; posteriors are probabilities), e.g. 0.7"),
            ("release_fraction", 0.0 < self.release_fraction < 1.0, "between 0 and 1 "
             "(exclusive), e.g. 0.5"),
            ("average_window_ms", self.average_window_ms > 0, "> 0, e.g. 500"),
            ("suppression_ms", self.suppression_ms >= 0, ">= 0 (0: no refractory time), e.g. 200"),
            ("minimum_count", self.minimum_count >= 1, ">= 1, e.g. 4"),
            ("word_gap_ms", self.word_gap_ms >= 0, ">= 0 (0: no word segmentation), e.g. 150"),
            ("vad_margin_db", self.vad_margin_db > 0, "> 0, e.g. 6"),
            ("noise_floor_rise_db_per_s", self.noise_floor_rise_db_per_s > 0, "> 0, e.g. 5"),
        ]  # fmt: skip
        for key, ok, allowed in ranges:
            value = getattr(self, key)
            if not ok or not math.isfinite(value):
                raise ConfigError(f"stream.{key}={value!r} is not allowed: it must be {allowed}")

    def validate(self, features: FeatureConfig) -> None:
        """Refuse settings that are out of range or under which no keyword could ever fire.

        Raises:
            ConfigError: naming the keys, their values and which values to change.
        """
        self.validate_decisions()
        hop = features.hop_ms
        ratio = self.stride_ms / hop if hop > 0 else float("nan")
        if not (math.isfinite(ratio) and ratio >= 1 - 1e-9 and abs(ratio - round(ratio)) < 1e-6):
            raise ConfigError(
                f"stream.stride_ms={self.stride_ms:g} must be a positive multiple of "
                f"features.hop_ms={hop:g} (a model run needs whole new feature frames); set "
                f"stream.stride_ms={hop:g} or {2 * hop:g}"
            )
        count, window = self.results_per_window(), self.average_window_ms
        # The largest stride (a multiple of the hop) at which the window holds enough results.
        needed = self.minimum_count - 1
        best_stride = hop * math.floor(window / needed / hop + 1e-9) if needed else window
        if count < self.minimum_count:
            raise ConfigError(
                f"no keyword can ever fire: stream.average_window_ms={window:g} holds at most "
                f"{count} posterior(s) at stream.stride_ms={self.stride_ms:g}, fewer than "
                f"stream.minimum_count={self.minimum_count}; lower stream.stride_ms to "
                f"{best_stride:g} or less, raise stream.average_window_ms to "
                f"{needed * self.stride_ms:g} or more, or lower stream.minimum_count to {count}"
            )
        if (count - 1) * self.stride_ms < window / 4:  # decisions need a quarter-window span
            raise ConfigError(
                f"no keyword can ever fire: stream.stride_ms={self.stride_ms:g} is longer than "
                f"stream.average_window_ms={window:g}, so the averaged posteriors never span a "
                f"quarter of the window; lower stream.stride_ms or raise "
                f"stream.average_window_ms to {self.stride_ms:g} or more"
            )


@dataclass
class RecipeConfig:
    name: str = "run"
    runs_dir: str = "runs"
    data: DataConfig = field(default_factory=DataConfig)
    features: FeatureConfig = field(default_factory=FeatureConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    growth: GrowthConfig = field(default_factory=GrowthConfig)
    budget: BudgetConfig = field(default_factory=BudgetConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    stream: StreamConfig = field(default_factory=StreamConfig)


def _coerce(value: Any, hint: Any, where: str) -> Any:
    """Convert a YAML value to the annotated type, with an error that names the key."""
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return _build(hint, value, where)
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        (item,) = typing.get_args(hint) or (Any,)
        return [_coerce(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin in (typing.Union, types.UnionType):
        return value
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.lower() in ("true", "yes", "1")
        raise ConfigError(f"{where}: expected true/false, got {value!r}")
    if hint in (int, float, str):
        try:
            if hint is int and isinstance(value, float) and not value.is_integer():
                raise ValueError
            return hint(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected {hint.__name__}, got {value!r}") from None
    return value


def _build(cls: type, values: dict, where: str) -> Any:
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = [k for k in values if k not in names]
    if unknown:
        prefix = f"{where}." if where else ""
        raise ConfigError(
            f"unknown config key '{prefix}{unknown[0]}'; valid keys in "
            f"'{where or 'recipe'}': {', '.join(names)}"
        )
    kwargs = {k: _coerce(v, hints[k], f"{where}.{k}" if where else k) for k, v in values.items()}
    return cls(**kwargs)


def from_dict(values: dict | None) -> RecipeConfig:
    """Build a `RecipeConfig` from nested plain data, rejecting unknown keys."""
    return _build(RecipeConfig, values or {}, "")


def to_dict(cfg: Any) -> dict:
    return dataclasses.asdict(cfg)


def apply_overrides(values: dict, overrides: list[str]) -> dict:
    """Apply dotted `section.key=value` overrides (values parsed as YAML) to nested data."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override '{item}' is not of the form section.key=value")
        dotted, raw = item.split("=", 1)
        keys = dotted.strip().split(".")
        node = values
        for key in keys[:-1]:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override '{dotted}': '{key}' is not a section")
        node[keys[-1]] = parse_yaml(raw) if raw != "" else ""
    return values


def load_recipe(path: str | Path | None, overrides: list[str] | None = None) -> RecipeConfig:
    """Read a YAML recipe (or defaults when `path` is None) and apply dotted overrides."""
    values: dict = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"recipe '{path}' not found; see recipes/ for examples")
        values = parse_yaml(path.read_text()) or {}
        if not isinstance(values, dict):
            raise ConfigError(f"recipe '{path}' must be a mapping of sections")
    values = apply_overrides(values, overrides or [])
    cfg = from_dict(values)
    if cfg.model.preset and "widths" not in values.get("model", {}):
        from kws.models.ds_cnn import preset_config

        preset = preset_config(cfg.model.preset)
        explicit = values.get("model", {})
        for f in dataclasses.fields(ModelConfig):
            if f.name not in explicit:
                setattr(cfg.model, f.name, getattr(preset, f.name))
    return cfg


def save_yaml(cfg: RecipeConfig, path: str | Path) -> None:
    from kws.io import atomic_write_text

    atomic_write_text(path, yaml.safe_dump(to_dict(cfg), sort_keys=False))
