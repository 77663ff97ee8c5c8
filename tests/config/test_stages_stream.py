"""StreamConfig.validate (fault 2): settings under which no keyword can ever fire, or out of
range, are refused with a message naming the keys, the values and what to change; every value
the message proposes really makes the settings valid."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest

from kws.config import ConfigError, FeatureConfig, StreamConfig, load_recipe
from kws.stream.recognize import recognize
from tests.stream.stream_tracks import LABELS, onehot

FEATURES = FeatureConfig()


def can_fire(cfg: StreamConfig) -> bool:
    """Whether 3 s of a certain keyword at this stride fires at all."""
    times = np.arange(1000.0, 4000.0, cfg.stride_ms)
    posteriors = np.stack([onehot("yes", 0.99)] * len(times))
    return bool(recognize(times, posteriors, LABELS, cfg))


def proposals(message: str) -> list[tuple[str, float]]:
    """The `stream.key to VALUE` changes a message proposes."""
    return [
        (key, float(value)) for key, value in re.findall(r"stream\.(\w+) to (-?[\d.]+)", message)
    ]


def test_defaults_and_hop_multiples_are_valid():
    StreamConfig().validate(FEATURES)
    for stride_ms in (20, 40, 100, 160):
        cfg = StreamConfig(stride_ms=stride_ms)
        cfg.validate(FEATURES)
        assert can_fire(cfg)


@pytest.mark.parametrize(
    "changes",
    [
        {"stride_ms": 200.0},
        {"stride_ms": 400.0},
        {"stride_ms": 100.0, "average_window_ms": 250.0},
        {"minimum_count": 8, "stride_ms": 80.0},
        {"stride_ms": 600.0, "minimum_count": 1},
    ],
)
def test_settings_that_can_never_fire_are_refused_with_working_fixes(changes):
    cfg = StreamConfig(**changes)
    assert not can_fire(cfg)  # what used to run and exit 0 without a single keyword
    with pytest.raises(ConfigError, match="no keyword can ever fire") as info:
        cfg.validate(FEATURES)
    message = str(info.value)
    assert f"stream.stride_ms={cfg.stride_ms:g}" in message
    fixes = proposals(message)
    assert fixes, message
    for key, value in fixes:  # each proposed change alone makes the settings valid
        fixed = dataclasses.replace(cfg, **{key: type(getattr(cfg, key))(value)})
        fixed.validate(FEATURES)
        assert can_fire(fixed), (key, value)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("detection_threshold", 0.0),
        ("detection_threshold", 1.0),
        ("detection_threshold", 1.5),
        ("detection_threshold", float("nan")),
        ("suppression_ms", -1.0),
        ("average_window_ms", 0.0),
        ("minimum_count", 0),
        ("release_fraction", 1.0),
        ("word_gap_ms", -10.0),
        ("vad_margin_db", 0.0),
        ("noise_floor_rise_db_per_s", 0.0),
    ],
)
def test_out_of_range_values_name_key_value_and_range(key, value):
    with pytest.raises(ConfigError, match=rf"stream\.{key}=.*must be") as info:
        StreamConfig(**{key: value}).validate(FEATURES)
    assert repr(value) in str(info.value) or f"{value}" in str(info.value)


@pytest.mark.parametrize("stride_ms", [30.0, 10.0, 0.0, -20.0])
def test_stride_must_be_whole_hops(stride_ms):
    with pytest.raises(
        ConfigError, match=r"multiple of features.hop_ms=20 .*; set stream.stride_ms=20"
    ):
        StreamConfig(stride_ms=stride_ms).validate(FEATURES)
    StreamConfig(stride_ms=30.0).validate(FeatureConfig(hop_ms=10.0))  # 3 hops of 10 ms


def test_a_loaded_recipe_validates(tmp_path):
    """A recipe whose stream can never fire is refused when it loads, naming the fix."""
    with pytest.raises(ConfigError, match="minimum_count=4"):
        load_recipe(None, ["stream.stride_ms=200"])
    cfg = load_recipe(None, ["stream.stride_ms=40", "features.hop_ms=20"])
    cfg.stream.validate(cfg.features)
