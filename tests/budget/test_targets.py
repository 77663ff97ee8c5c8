"""Latency models per core and runtime, calibrated on published board measurements (8.16)."""

import pytest

from kws.budget import load_target, profile
from kws.cli import main
from kws.errors import UserError
from tests.helpers import preset_spec

# (target, runtime, clock override Hz or None, published DS-CNN-S latency ms, tolerance)
PUBLISHED = [
    ("cortex-m4f", "tflm", None, 131.0, 0.02),  # MicroNets Table 4, STM32F446 @ 180 MHz
    ("cortex-m7", "tflm", None, 58.0, 0.02),  # MicroNets Table 4, STM32F746 @ 216 MHz
    ("cortex-m4f", "vendor", 120e6, 43.4, 0.02),  # MLPerf Tiny, vendor compiler @ 120 MHz
    ("cortex-m4f", "tflm", 120e6, 182.0, 0.10),  # MLPerf Tiny TFLM reference @ 120 MHz
    ("cortex-m55", "tflm", 480e6, 3.46, 0.02),  # MLPerf Tiny, Cortex-M85 (Helium) @ 480 MHz
]


@pytest.mark.parametrize("name, runtime, clock_hz, published_ms, tolerance", PUBLISHED)
def test_ds_cnn_s_estimate_matches_the_published_board_measurement(
    name, runtime, clock_hz, published_ms, tolerance
):
    target = load_target(name, runtime=runtime)
    if clock_hz:
        target.clock_hz = clock_hz
    prof = profile(preset_spec("ds_cnn_s"), target=target)
    assert prof.latency_ms == pytest.approx(published_ms, rel=tolerance)
    assert prof.latency_runtime == runtime and prof.latency_calibration


def test_tflm_to_vendor_ratio_matches_the_same_board_measurements():
    """MLPerf Tiny measured 182 ms (TFLM) vs 43.4 ms (vendor) on one Cortex-M4 at 120 MHz."""
    spec = preset_spec("ds_cnn_s")
    tflm = profile(spec, target=load_target("cortex-m4f")).latency_ms
    vendor = profile(spec, target=load_target("cortex-m4f", runtime="vendor")).latency_ms
    assert tflm / vendor == pytest.approx(182.0 / 43.4, rel=0.1)


def test_uncalibrated_models_say_so_and_unknown_runtimes_are_named():
    assert "not calibrated" in load_target("cortex-m33").core.calibration
    with pytest.raises(UserError, match="no latency model for runtime 'vendor'.*tflm"):
        load_target("cortex-m7", runtime="vendor")


def test_profile_prints_the_runtime_it_assumes(capsys):
    assert main(["profile", "--model", "ds_cnn_s", "--target", "cortex-m4f"]) == 1  # 131 ms
    out = capsys.readouterr().out
    assert "runtime tflm" in out and "MicroNets" in out
    assert main(["profile", "--model", "ds_cnn_s", "--target", "cortex-m4f", "--runtime",
                 "vendor"]) == 0  # fmt: skip
    assert "runtime vendor" in capsys.readouterr().out
