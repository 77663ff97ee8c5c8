"""Budget stage: published DS-CNN numbers, hand-computed memory, targets, checks, CLI."""

from __future__ import annotations

import json

import pytest
import torch

from kws.budget import (
    budget_from_config,
    check,
    estimate_arena_bytes,
    estimate_flash_bytes,
    load_target,
    profile,
    target_names,
)
from kws.cli import main
from kws.config import BudgetConfig, RecipeConfig
from kws.errors import UserError
from kws.models import build_model, count_macs, count_params
from kws.run import Checkpoint
from tests.helpers import preset_spec

KIB = 1024


def grown_spec():
    """The growth seed after uneven splits (every width different)."""
    return preset_spec("ds_cnn_seed", widths=[40, 48, 32, 64, 56, 72], preset="")


@pytest.mark.parametrize(
    "preset, published_ops, published_params",
    [("ds_cnn_s", 5.4e6, 23e3), ("ds_cnn_m", 19.8e6, None), ("ds_cnn_l", 56.9e6, 413.7e3)],
)
def test_preset_ops_and_params_match_hello_edge(preset, published_ops, published_params):
    prof = profile(preset_spec(preset))
    assert prof.ops == 2 * prof.macs
    assert prof.ops == pytest.approx(published_ops, rel=0.03)
    if published_params is not None:
        assert prof.params == pytest.approx(published_params, rel=0.03)


@pytest.mark.parametrize(
    "preset, published_kib", [("ds_cnn_s", 38.6), ("ds_cnn_m", 189.2), ("ds_cnn_l", 497.6)]
)
def test_hello_edge_memory_matches_paper(preset, published_kib):
    # Hello Edge's "memory" = weights + activations at 8 bits
    prof = profile(preset_spec(preset))
    assert prof.hello_edge_memory_bytes / KIB == pytest.approx(published_kib, rel=0.03)


def test_ds_cnn_s_peak_activation_by_hand():
    prof = profile(preset_spec("ds_cnn_s"))
    by_name = {layer.name: layer for layer in prof.layers}
    # input 49x10 int8 = 490 bytes; stem output 64 ch x 25 x 5 = 8000 bytes
    assert by_name["stem_conv"].activation_bytes == 64 * 25 * 5 == 8000
    assert by_name["stem_conv"].live_bytes == 490 + 8000
    # every block keeps 64x25x5, so a depthwise op holds two 8000-byte tensors: the peak
    assert by_name["blocks.0.dw_conv"].live_bytes == 16000
    assert prof.peak_activation_bytes == 16000
    assert by_name["pool"].live_bytes == 8000 + 64
    assert by_name["fc"].live_bytes == 64 + 12
    # int8 kernels: stem 10x4x64, 4 x (dw 3x3x64 + pw 64x64), fc 64x12; int32 bias per channel
    kernels = 2560 + 4 * (576 + 4096) + 768
    assert prof.weight_bytes == kernels + 4 * (64 + 4 * 128 + 12)


def test_separate_padding_ops_hold_the_padded_input():
    prof = profile(preset_spec("ds_cnn_s"), separate_padding=True)
    by_name = {layer.name: layer for layer in prof.layers}
    # stem: 49x10 padded for a 10x4 kernel, stride 2 -> 58x12; block dw 3x3 stride 1 -> 27x7
    assert by_name["stem_pad"].out_shape == (1, 58, 12)
    assert by_name["stem_conv"].live_bytes == 58 * 12 + 8000
    assert by_name["blocks.0.dw_pad"].activation_bytes == 64 * 27 * 7
    assert prof.peak_activation_bytes == 8000 + 64 * 27 * 7


# Recorded on the 2-core CPU dev box: `kws.export.tflite_export.convert_int8` (TensorFlow 2.21)
# on random weights with randomized BatchNorm statistics, and `kws.export.tflm.measure_arena`
# (tflite-micro PyPI interpreter). Converting takes ~10 s per model, too slow for this suite.
MEASURED = {
    "ds_cnn_s": (45840, 24064),
    "ds_cnn_m": (184512, 70032),
    "ds_cnn_l": (501632, 115200),
    "ds_cnn_seed": (27048, 16848),
}


@pytest.mark.parametrize("preset", sorted(MEASURED))
def test_flash_and_arena_estimates_against_measured_files(preset):
    tflite_bytes, arena_bytes = MEASURED[preset]
    cfg = preset_spec(preset)
    assert abs(estimate_flash_bytes(cfg) - tflite_bytes) < 256
    assert abs(estimate_arena_bytes(cfg) - arena_bytes) < 256
    # the arena holds at least the activations, and the flash at least the int8 weights
    prof = profile(cfg)
    assert prof.arena_estimate_bytes >= prof.peak_activation_bytes
    assert prof.flash_bytes > prof.weight_bytes


def test_grown_config_matches_the_torch_model():
    cfg = grown_spec()
    prof = profile(cfg)
    model = build_model(cfg).eval()
    assert prof.params == count_params(cfg) == sum(p.numel() for p in model.parameters())
    assert prof.macs == count_macs(cfg)
    shapes = {}
    hooks = [
        module.register_forward_hook(lambda m, i, o, n=name: shapes.__setitem__(n, o.shape))
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Conv2d)
    ]
    with torch.no_grad():
        model(torch.zeros(1, *cfg.input_shape))
    for hook in hooks:
        hook.remove()
    for layer in prof.layers:
        if layer.name in shapes:
            assert tuple(shapes[layer.name][1:]) == layer.out_shape, layer.name
    assert len([layer for layer in prof.layers if layer.name in shapes]) == len(shapes) == 11
    # the widest early tensors set the peak: stem output 40x25x10 + block 0's 40x13x5
    assert prof.peak_activation_bytes == 40 * 25 * 10 + 40 * 13 * 5
    assert abs(prof.flash_bytes - 42168) < 256  # measured like MEASURED above
    assert abs(prof.arena_estimate_bytes - 20976) < 256


def test_latency_model_by_hand_and_clock_scaling():
    cfg = preset_spec("ds_cnn_s")
    m4 = profile(cfg, target=load_target("cortex-m4f"))
    core = load_target("cortex-m4f").core
    per_mac = core.cycles_per_mac
    cycles = (
        per_mac["conv"] * 320000
        + per_mac["depthwise"] * 4 * 72000
        + per_mac["pointwise"] * 4 * 512000
        + per_mac["linear"] * 768
        + core.cycles_per_layer * 11
    )
    assert m4.latency_ms == pytest.approx(1000 * cycles / 180e6)
    assert m4.latency_ms == pytest.approx(sum(layer.latency_ms for layer in m4.layers))
    nrf = profile(cfg, target=load_target("nrf52840"))  # same core at 64 MHz
    assert nrf.latency_ms == pytest.approx(m4.latency_ms * 180 / 64)
    m7 = profile(cfg, target=load_target("cortex-m7"))
    assert m7.latency_ms < m4.latency_ms
    assert profile(cfg, target=load_target("hello-edge-small")).latency_ms is None


def test_check_on_hello_edge_classes():
    small, medium, large = (
        load_target(f"hello-edge-{size}") for size in ("small", "medium", "large")
    )
    s, m, big = (profile(preset_spec(name)) for name in ("ds_cnn_s", "ds_cnn_m", "ds_cnn_l"))
    assert check(s, small) == []
    assert check(m, medium) == []
    assert check(big, large) == []
    broken = {line.name: line for line in check(big, small)}
    assert set(broken) == {"ops", "memory"}
    assert broken["ops"].value == big.ops and broken["ops"].limit == 6_000_000
    assert not broken["ops"].passed
    assert {line.name for line in check(m, small)} == {"ops", "memory"}


def test_check_on_a_board_includes_flash_sram_latency():
    prof = profile(preset_spec("ds_cnn_m"))
    lines = {line.name for line in check(prof, load_target("nrf52840"))}
    assert lines == {"latency"}  # fits memory; ~10 M MACs at 64 MHz is too slow for 10/s
    # under TFLite Micro even a Cortex-M7 needs ~4 cycles per MAC: too slow for 10/s
    assert {line.name for line in check(prof, load_target("cortex-m7"))} == {"latency"}
    assert check(prof, load_target("cortex-m55")) == []


def test_unknown_target_lists_known_names():
    with pytest.raises(UserError) as info:
        load_target("cortex-m99")
    assert "cortex-m99" in str(info.value)
    for name in ("hello-edge-small", "cortex-m4f", "nrf52840", "esp32-s3"):
        assert name in str(info.value)


def test_user_targets_file_merges_and_overrides(tmp_path):
    extra = tmp_path / "boards.yaml"
    extra.write_text(
        "targets:\n"
        "  tiny-board:\n"
        "    flash_bytes: 65536\n    sram_bytes: 16384\n    core: slow-core\n"
        "    clock_hz: 48000000\n    inferences_per_second: 5\n    reserve_fraction: 0\n"
        "  cortex-m4f:\n    flash_bytes: 32768\n"
        "cores:\n"
        "  slow-core:\n"
        "    tflm:\n"
        "      cycles_per_mac: {conv: 10, pointwise: 10, depthwise: 10, linear: 10}\n"
    )
    assert {"tiny-board", "hello-edge-small"} <= set(target_names(extra))
    tiny = load_target("tiny-board", extra)
    assert tiny.usable_flash_bytes == 65536 and tiny.core.name == "slow-core"
    prof = profile(preset_spec("ds_cnn_s"))
    assert {line.name for line in check(prof, tiny)} == {"sram", "latency"}
    assert load_target("cortex-m4f", extra).flash_bytes == 32768  # replaced entry
    assert load_target("cortex-m7", extra).flash_bytes == 1048576  # shipped entries stay
    bad = tmp_path / "bad.yaml"
    bad.write_text("targets:\n  b:\n    flash_kb: 3\n")
    with pytest.raises(UserError, match="flash_kb"):
        load_target("b", bad)
    with pytest.raises(UserError, match="not found"):
        load_target("b", tmp_path / "missing.yaml")


def test_budget_from_config_tighter_limit_wins():
    budget = budget_from_config(
        BudgetConfig(target="cortex-m4f", max_flash_bytes=10**6, max_ram_bytes=20_000)
    )
    assert budget.max_flash_bytes == 524288 * 3 // 4  # the target is tighter
    assert budget.max_ram_bytes == 20_000  # the plain limit is tighter
    s = preset_spec("ds_cnn_s")
    assert not budget.fits(s)  # arena estimate ~24 KB > 20 KB; 131 ms per inference > 100 ms
    assert [line.name for line in budget.violations(s)] == ["sram", "latency"]
    small = budget_from_config(BudgetConfig(target="hello-edge-small", max_macs=2_000_000))
    assert small.max_macs == 2_000_000
    assert [line.name for line in small.violations(s)] == ["macs"]
    assert budget_from_config(BudgetConfig(target="hello-edge-small")).fits(s)
    grown_l = budget_from_config(BudgetConfig(target="hello-edge-small"))
    assert {line.name for line in grown_l.violations(preset_spec("ds_cnn_l"))} == {
        "macs",
        "memory",
    }
    plain = budget_from_config(BudgetConfig(max_params=10_000))
    assert plain.target is None and plain.fits(grown_spec()) is False
    assert plain.fits(preset_spec("ds_cnn_seed"))
    assert budget_from_config(BudgetConfig()).fits(preset_spec("ds_cnn_l"))


def test_cli_json_on_a_preset(capsys):
    assert main(["profile", "--model", "ds_cnn_s", "--target", "hello-edge-small", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["passed"] is True
    assert out["profile"]["params"] == 23180
    assert out["profile"]["peak_activation_bytes"] == 16000
    assert {line["name"] for line in out["budget"]} == {"memory", "ops"}
    assert main(["profile", "--model", "ds_cnn_l", "--target", "hello-edge-small"]) == 1
    assert "FAIL" in capsys.readouterr().out
    assert main(["profile", "--model", "ds_cnn_s", "--target", "nope"]) == 2
    assert "known targets" in capsys.readouterr().err


def test_cli_on_a_run_dir_uses_the_exported_tflite_size(tmp_path, capsys):
    spec = grown_spec()
    cfg = RecipeConfig(model=spec.config)
    run = tmp_path / "run"
    labels = [str(i) for i in range(12)]
    Checkpoint(cfg, build_model(spec).state_dict(), labels).save(run / "checkpoints" / "best.pt")
    # only the file's size is read, so any bytes of a known length stand in for the export
    (run / "export").mkdir()
    (run / "export" / "model_int8.tflite").write_bytes(b"\0" * 12345)
    for source in (run, run / "checkpoints" / "best.pt"):
        assert main(["profile", str(source), "--json"]) == 0
        out = json.loads(capsys.readouterr().out)
        assert out["profile"]["flash_bytes"] == 12345
        assert out["profile"]["flash_source"] == "tflite"
        assert out["profile"]["params"] == count_params(spec)
    with pytest.raises(UserError, match="not found"):
        profile(spec, tflite_path=tmp_path / "missing.tflite")


# Recorded like MEASURED, for BC-ResNet at the 98 x 40 log-mel input of its GSC recipes:
# int8 .tflite bytes and TFLite Micro arena bytes.
MEASURED_BC_RESNET = {"bc_resnet_1": (76528, 84512), "bc_resnet_2": (113064, 144800)}


@pytest.mark.parametrize("preset", sorted(MEASURED_BC_RESNET))
def test_bc_resnet_estimates_see_its_elementwise_ops_and_residuals(preset):
    from kws.config import preset_config
    from kws.models import ModelSpec

    tflite_bytes, arena_bytes = MEASURED_BC_RESNET[preset]
    spec = ModelSpec(preset_config(preset), (98, 40), 12)
    assert len(profile(spec).layers) == 126  # every op of the int8 graph, as converted
    assert estimate_flash_bytes(spec) == pytest.approx(tflite_bytes, rel=0.03)
    assert estimate_arena_bytes(spec) == pytest.approx(arena_bytes, rel=0.05)
