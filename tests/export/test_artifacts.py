"""Export: ONNX / TFLite parity with torch, int8 agreement, TFLite Micro, C array, manifest.

TensorFlow's import and conversion are slow, so one tiny DS-CNN is trained for a few steps on
separable synthetic MFCC-like features and exported once per module; the tests share it.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from kws.config import DSCNNConfig, FeatureConfig
from kws.errors import MissingExtraError, UserError
from kws.export import export_model
from kws.models import ModelSpec, build_model
from tests.helpers import preset_spec, randomize_batchnorm

ROOT = Path(__file__).resolve().parents[2]
LABELS = ["a", "b", "c", "d"]
DSCNN_OPS = {"CONV_2D", "DEPTHWISE_CONV_2D", "MEAN", "FULLY_CONNECTED"}


def mfcc_like(n: int, rng: np.random.Generator, classes: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Features `(n, 49, 10)` in real MFCC ranges (c0 strongly negative) with a class pattern."""
    templates = np.random.default_rng(123).normal(0, 6, (classes, 49, 10))
    labels = rng.integers(0, classes, n)
    x = rng.normal(0, 4, (n, 49, 10))
    x[..., 0] -= 60.0
    shift = rng.integers(-4, 5, n)
    for i in range(n):
        x[i] += np.roll(templates[labels[i]], shift[i], axis=0)
    return x.astype(np.float32), labels


def train_few_steps(model: torch.nn.Module, steps: int = 80) -> None:
    rng = np.random.default_rng(0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(steps):
        x, y = mfcc_like(64, rng)
        loss = torch.nn.functional.cross_entropy(model(torch.from_numpy(x)), torch.from_numpy(y))
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()


def ds_cnn(widths, block_strides, classes=12, activation="relu"):
    config = DSCNNConfig(widths=widths, block_strides=block_strides, activation=activation)
    return build_model(ModelSpec(config, (49, 10), classes))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    torch.manual_seed(0)
    model = ds_cnn([8, 8, 8], [[1, 1], [1, 1]], classes=4)
    train_few_steps(model)
    calibration = [mfcc_like(50, np.random.default_rng(s))[0] for s in (1, 2, 3)]
    out = tmp_path_factory.mktemp("export") / "tiny"
    art = export_model(model, LABELS, FeatureConfig(), calibration, out, name="tiny")
    x, y = mfcc_like(200, np.random.default_rng(99))
    return model, art, x, y


def torch_logits(model, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(x)).numpy()


def test_tiny_model_learned_the_task(tiny):
    model, _, x, y = tiny
    assert (torch_logits(model, x).argmax(1) == y).mean() >= 0.9


def test_onnx_float_matches_torch_with_dynamic_batch(tiny):
    from kws.export.onnx_export import onnx_logits, onnx_session

    model, art, x, _ = tiny
    session = onnx_session(art.files["onnx_float"])
    ref = torch_logits(model, x)
    np.testing.assert_allclose(onnx_logits(session, x), ref, atol=1e-4, rtol=0)
    np.testing.assert_allclose(onnx_logits(session, x[:1]), ref[:1], atol=1e-4, rtol=0)


def test_tflite_float_matches_torch(tiny):
    from kws.export.tflite_export import litert_interpreter, litert_logits

    model, art, x, _ = tiny
    interpreter = litert_interpreter(art.files["tflite_float"].read_bytes())
    np.testing.assert_allclose(litert_logits(interpreter, x), torch_logits(model, x), atol=1e-4)


def test_int8_models_agree_with_float_top1(tiny):
    from kws.export.onnx_export import onnx_logits, onnx_session
    from kws.export.tflite_export import litert_interpreter, litert_logits

    model, art, x, _ = tiny
    ref = torch_logits(model, x).argmax(1)
    tfl = litert_logits(litert_interpreter(art.files["tflite_int8"].read_bytes()), x)
    onx = onnx_logits(onnx_session(art.files["onnx_int8"]), x)
    assert (tfl.argmax(1) == ref).mean() >= 0.9
    assert (onx.argmax(1) == ref).mean() >= 0.9
    assert art.quantization["input"]["dtype"] == "int8"
    assert art.quantization["output"]["dtype"] == "int8"


def test_tflm_matches_litert_int8_and_reports_arena(tiny):
    from kws.export.keras_rebuild import to_nhwc
    from kws.export.tflite_export import Quantization, litert_interpreter, litert_run
    from kws.export.tflm import tflm_interpreter, tflm_run

    _, art, x, _ = tiny
    data = art.files["tflite_int8"].read_bytes()
    q = art.quantization["input"]
    x_q = Quantization(q["scale"], q["zero_point"]).quantize(to_nhwc(x[:40]))
    micro = tflm_run(tflm_interpreter(data, art.arena_bytes), x_q).astype(int)
    lite = litert_run(litert_interpreter(data), x[:40]).astype(int)
    assert np.abs(micro - lite).max() <= 1
    assert art.arena_bytes is not None and art.arena_bytes > 0


@pytest.mark.skipif(shutil.which("g++") is None, reason="g++ not installed (apt install g++)")
def test_c_array_compiles_and_reproduces_tflite_bytes(tiny, tmp_path):
    _, art, _, _ = tiny
    tflm = art.out_dir / "tflm"
    binary, dumped = tmp_path / "model_data_test", tmp_path / "dumped.tflite"
    subprocess.run(
        ["g++", "-std=c++17", "-Wall", "-Werror", f"-I{tflm}",
         f"-DKWS_MODEL_DATA={art.manifest['c_array']}",
         str(ROOT / "deploy" / "tflm" / "model_data_test.cc"), str(tflm / "model_data.cc"),
         "-o", str(binary)],
        check=True, capture_output=True,
    )  # fmt: skip
    subprocess.run([str(binary), str(dumped)], check=True)
    assert dumped.read_bytes() == art.files["tflite_int8"].read_bytes()
    assert "extern const unsigned char g_tiny_model_data[];" in (tflm / "model_data.h").read_text()


def test_manifest_has_every_field(tiny):
    _, art, _, _ = tiny
    manifest = json.loads((art.out_dir / "manifest.json").read_text())
    assert manifest == json.loads((art.out_dir / "tflm" / "manifest.json").read_text())
    for key in ("labels", "features", "feature_shape", "input", "output", "ops", "arena_bytes",
                "versions", "sha256", "tflite_int8_bytes", "c_array", "model"):  # fmt: skip
        assert key in manifest, key
    assert manifest["labels"] == LABELS
    assert manifest["features"]["num_mfcc"] == 10 and manifest["feature_shape"] == [49, 10]
    assert manifest["input"]["shape"] == [1, 49, 10, 1]
    assert manifest["input"]["scale"] > 0 and -128 <= manifest["input"]["zero_point"] <= 127
    assert manifest["output"]["shape"] == [1, 4]
    data = art.files["tflite_int8"].read_bytes()
    assert manifest["sha256"] == hashlib.sha256(data).hexdigest()
    assert manifest["arena_bytes"] == art.arena_bytes
    assert set(manifest["ops"]) == DSCNN_OPS
    assert manifest["versions"]["tflite-micro"] != "not installed"
    resolver = (art.out_dir / "tflm" / "op_resolver.h").read_text()
    assert resolver.count("resolver.Add") == len(manifest["ops"])
    for method in ("AddConv2D", "AddDepthwiseConv2D", "AddMean", "AddFullyConnected"):
        assert f"resolver.{method}()" in resolver


def test_grown_model_with_uneven_widths_exports(tmp_path):
    from kws.export.tflite_export import litert_interpreter, litert_logits, litert_run
    from kws.export.tflm import tflm_interpreter

    torch.manual_seed(1)
    model = ds_cnn([8, 12, 6, 10], [[1, 1], [2, 2], [1, 1]]).eval()
    randomize_batchnorm(model, 1)
    x, _ = mfcc_like(32, np.random.default_rng(5))
    art = export_model(model, [str(i) for i in range(12)], FeatureConfig(), [x], tmp_path,
                       formats=("tflite", "tflm"), name="grown")  # fmt: skip
    interpreter = litert_interpreter(art.files["tflite_float"].read_bytes())
    np.testing.assert_allclose(litert_logits(interpreter, x), torch_logits(model, x), atol=1e-4)
    assert litert_run(litert_interpreter(art.files["tflite_int8"].read_bytes()), x).shape == (
        32, 12)  # fmt: skip
    assert art.arena_bytes > 0 and tflm_interpreter(art.files["tflite_int8"].read_bytes())
    assert "onnx_float" not in art.files


def test_ds_cnn_s_fits_flash_and_reports_arena(tmp_path):
    torch.manual_seed(2)
    model = build_model(preset_spec("ds_cnn_s")).eval()
    randomize_batchnorm(model, 2)
    calibration = [mfcc_like(32, np.random.default_rng(7), classes=4)[0]]
    art = export_model(model, [str(i) for i in range(12)], FeatureConfig(), calibration,
                       tmp_path, formats=("tflm",), name="ds_cnn_s")  # fmt: skip
    flash = art.size_bytes("tflite_int8")
    assert flash <= 60 * 1024, flash
    # DS-CNN-S's largest int8 activation pair is 2 x 64 x 25 x 5 = 16,000 bytes; the arena holds
    # at least that and, with persistent data, stays well under 64 KB.
    assert 16_000 <= art.arena_bytes <= 64 * 1024, art.arena_bytes
    assert set(art.ops) == DSCNN_OPS


def test_missing_tensorflow_names_the_extra(monkeypatch):
    from kws.export.tflite_export import convert_float

    monkeypatch.setitem(sys.modules, "tensorflow", None)
    with pytest.raises(MissingExtraError, match=r"kws\[export\]"):
        convert_float(ds_cnn([4, 4], [[1, 1]]))


def test_missing_tflite_micro_names_the_extra(monkeypatch):
    from kws.export.tflm import tflm_interpreter

    monkeypatch.setitem(sys.modules, "tflite_micro", None)
    with pytest.raises(MissingExtraError, match=r"kws\[export\].*|tflite-micro"):
        tflm_interpreter(b"\0" * 16)


def test_smooth_activation_without_int8_kernel_is_refused():
    from kws.export.keras_rebuild import build_keras

    with pytest.raises(UserError, match="softplus"):
        build_keras(ds_cnn([4, 4], [[1, 1]], activation="softplus"))


def test_silu_exports_as_logistic_times_input_and_keeps_int8_accuracy(tmp_path):
    """SiLU (exact splitting theory) lowers to LOGISTIC + MUL, both with int8 TFLM kernels."""
    from kws.export.onnx_export import onnx_logits, onnx_session
    from kws.export.tflite_export import litert_interpreter, litert_logits

    torch.manual_seed(3)
    model = ds_cnn([8, 8, 8], [[1, 1], [1, 1]], classes=4, activation="silu")
    train_few_steps(model)
    calibration = [mfcc_like(50, np.random.default_rng(s))[0] for s in (1, 2, 3)]
    art = export_model(model, LABELS, FeatureConfig(), calibration, tmp_path, name="silu")
    assert {"LOGISTIC", "MUL"} <= set(art.ops) and set(art.ops) - {"LOGISTIC", "MUL"} == DSCNN_OPS
    x, y = mfcc_like(200, np.random.default_rng(99))
    ref = torch_logits(model, x)
    assert (ref.argmax(1) == y).mean() >= 0.9
    float_tfl = litert_logits(litert_interpreter(art.files["tflite_float"].read_bytes()), x)
    np.testing.assert_allclose(float_tfl, ref, atol=1e-4)
    np.testing.assert_allclose(onnx_logits(onnx_session(art.files["onnx_float"]), x), ref,
                               atol=1e-4)  # fmt: skip
    int8 = litert_logits(litert_interpreter(art.files["tflite_int8"].read_bytes()), x)
    assert (int8.argmax(1) == ref.argmax(1)).mean() >= 0.9
    assert art.arena_bytes > 0
