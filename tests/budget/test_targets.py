"""Latency models per core and runtime, calibrated on published board measurements (8.16)."""

import json

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


GOOD_CORE = "      cycles_per_mac: {conv: 10, pointwise: 10, depthwise: 10, linear: 10}\n"
GOOD_TARGET = "    core: slow-core\n    clock_hz: 48000000\n"


def _targets_file(tmp_path, target=GOOD_TARGET, core=GOOD_CORE, cores=None):
    """A targets file with target 'board' (its last keys `target`) and core 'slow-core'."""
    path = tmp_path / "boards.yaml"
    cores = cores if cores is not None else f"cores:\n  slow-core:\n    tflm:\n{core}"
    head = "targets:\n  board:\n    flash_bytes: 65536\n    inferences_per_second: 5\n"
    path.write_text(head + target + cores)
    return path


@pytest.mark.parametrize(
    "parts, named",
    [
        ({"core": "      cycles_per_mac: {conv: abc, pointwise: 1, depthwise: 1, linear: 1}\n"},
         "core 'slow-core', runtime 'tflm': cycles_per_mac conv='abc' must be a number > 0"),
        ({"core": "      cycles_per_mac: {conv: 0, pointwise: 1, depthwise: 1, linear: 1}\n"},
         "cycles_per_mac conv=0 must be a number > 0"),
        ({"core": "      cycles_per_mac: [1, 2]\n"}, "cycles_per_mac=[1, 2] must map each layer"),
        ({"core": GOOD_CORE + "      cycles_per_layer: -5\n"}, "cycles_per_layer=-5 must be"),
        ({"cores": "cores: [1, 2]\n"}, "'cores:' must be a mapping of names to entries"),
        ({"cores": "cores:\n  slow-core: [1, 2]\n"}, "entry 'slow-core' must be a mapping"),
        ({"target": "    core: [1, 2]\n    clock_hz: 48000000\n"},
         "target 'board': core=[1, 2] must be a name"),
        ({"target": "    core: slow-core\n    clock_hz: 0\n"},
         "target 'board': core 'slow-core' needs clock_hz > 0 for the latency estimate (got 0)"),
        ({"target": "    core: slow-core\n"},
         "core 'slow-core' needs clock_hz > 0 for the latency estimate (none given)"),
        ({"target": "    clock_hz: -48000000\n"}, "target 'board': clock_hz=-48000000 must be"),
        ({"target": "    clock_hz: fast\n"}, "target 'board': clock_hz='fast' must be a number"),
        ({"target": "    sram_bytes: -1\n"}, "target 'board': sram_bytes=-1 must be a whole"),
        ({"target": "    max_ops: 1.5\n"}, "target 'board': max_ops=1.5 must be a whole number"),
        ({"target": "    reserve_fraction: true\n"}, "reserve_fraction=True must be a number"),
    ],
)  # fmt: skip
def test_malformed_targets_files_are_refused_naming_entry_key_and_rule(tmp_path, parts, named):
    path = _targets_file(tmp_path, **parts)
    with pytest.raises(UserError) as info:
        load_target("board", path)
    assert named in str(info.value) and str(path) in str(info.value)


def test_profile_refuses_a_core_without_a_clock_instead_of_passing(tmp_path, capsys):
    path = _targets_file(tmp_path, target="    core: slow-core\n    clock_hz: 0\n")
    assert main(["profile", "--model", "ds_cnn_s", "--targets", str(path), "--target",
                 "board"]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert "core 'slow-core' needs clock_hz > 0" in err and "Traceback" not in err
    bad_cycles = _targets_file(tmp_path, core="      cycles_per_mac: {conv: abc}\n")
    assert main(["profile", "--model", "ds_cnn_s", "--targets", str(bad_cycles), "--target",
                 "board"]) == 2  # fmt: skip
    assert "cycles_per_mac conv='abc'" in capsys.readouterr().err


def test_a_well_formed_targets_file_still_loads(tmp_path):
    board = load_target("board", _targets_file(tmp_path))
    assert board.core.cycles_per_mac["conv"] == 10.0 and board.clock_hz == 48e6
    no_core = _targets_file(tmp_path, target="    clock_hz: 0\n")
    assert load_target("board", no_core).core is None  # no core: no clock needed


@pytest.mark.parametrize(
    "text, named",
    [
        ("targets:\n  123: {flash_bytes: 10}\n", "target name 123 is not text"),
        ("targets:\n  1.5: {flash_bytes: 10}\n", "target name 1.5 is not text"),
        ("targets:\n  b: {flash_bytes: 10}\ncores:\n  7: {tflm: {}}\n", "core name 7 is not"),
        ("targets:\n  b: {flash_bytes: 10}\ncores:\n  c:\n    2:\n" + GOOD_CORE,
         "core 'c': runtime name 2 is not text"),
    ],
    ids=["int-target", "float-target", "core", "runtime"],
)  # fmt: skip
def test_names_that_are_not_text_are_refused(tmp_path, capsys, text, named):
    """`targets: {123: ...}` then `--target 123` crashed: TypeError sorting int and str names."""
    path = tmp_path / "t.yaml"
    path.write_text(text)
    argv = ["profile", "--model", "ds_cnn_s", "--targets", str(path), "--target", "123"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert named in err and "quote it" in err and "Traceback" not in err


def test_quoted_numeric_and_yes_no_names_are_text(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text("targets:\n  '123': {flash_bytes: 10}\n  on: {max_ops: 5}\n")
    assert load_target("123", path).flash_bytes == 10
    assert load_target("on", path).max_ops == 5  # as in recipes, on/off/yes/no are words


@pytest.mark.parametrize(
    "entry",
    ["{}", "{flash_bytes: 0, sram_bytes: 0, memory_bytes: 0, max_ops: 0}",
     "{description: x, inferences_per_second: 10}", "{reserve_fraction: 0.5}"],
    ids=["empty", "all-zero", "rate-without-core", "reserve-only"],
)  # fmt: skip
def test_a_target_that_sets_no_limit_is_refused(tmp_path, capsys, entry):
    """`targets: {b: {}}` printed an empty budget table and exited 0: PASS, nothing checked."""
    path = tmp_path / "t.yaml"
    path.write_text(f"targets:\n  b: {entry}\n")
    assert main(["profile", "--model", "ds_cnn_s", "--targets", str(path), "--target", "b"]) == 2
    err = capsys.readouterr().err
    assert "target 'b' sets no limit, so every model would pass with nothing checked" in err
    assert "flash_bytes, sram_bytes, memory_bytes, max_ops (> 0), or inferences_per_second" in err


def test_a_rate_with_a_core_is_a_limit(tmp_path):
    path = _targets_file(tmp_path)  # flash_bytes and a timed core
    path.write_text(path.read_text().replace("    flash_bytes: 65536\n", ""))
    assert load_target("board", path).core is not None


def test_a_runtime_for_a_target_without_a_core_is_refused(tmp_path):
    """The runtime picks a core's latency model; on a coreless target it was ignored."""
    with pytest.raises(UserError, match="target 'hello-edge-small' has no core, so it has no"):
        load_target("hello-edge-small", runtime="vendor")
    path = _targets_file(tmp_path, target="    runtime: vendor\n")
    with pytest.raises(UserError, match="runtime 'vendor' picks a core's latency model, but"):
        load_target("board", path)
    assert load_target("hello-edge-small").core is None  # no runtime asked: fine


def test_numbers_written_like_1e6_are_numbers_as_in_recipes(tmp_path, capsys):
    """`clock_hz: 1e6` (text to YAML 1.1: no dot) was refused as "must be a number"; recipes
    read such text as the number, so targets files do too."""
    path = _targets_file(
        tmp_path,
        target="    core: slow-core\n    clock_hz: 48e6\n    sram_bytes: 16e3\n"
        "    reserve_fraction: '0.1'\n",
        core="      cycles_per_mac: {conv: 1e1, pointwise: 10, depthwise: 10, linear: 10}\n"
        "      cycles_per_layer: 2e2\n",
    )
    board = load_target("board", path)
    assert board.clock_hz == 48e6 and board.sram_bytes == 16000 and board.reserve_fraction == 0.1
    assert board.core.cycles_per_mac["conv"] == 10.0 and board.core.cycles_per_layer == 200.0
    assert main(["profile", "--model", "ds_cnn_s", "--targets", str(path), "--target", "board",
                 "--json"]) in (0, 1)  # fmt: skip
    assert json.loads(capsys.readouterr().out)["target"]["clock_hz"] == 48e6
    for bad, named in (("1e6x", "clock_hz='1e6x' must be a number"), ("nan", "clock_hz='nan'")):
        path = _targets_file(tmp_path, target=f"    core: slow-core\n    clock_hz: {bad}\n")
        with pytest.raises(UserError, match=named):
            load_target("board", path)
