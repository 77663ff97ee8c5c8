"""BC-ResNet export: Keras / TFLite / ONNX float parity, int8 under LiteRT and TFLite Micro.

TensorFlow's conversion is slow, so one BC-ResNet-1 at the paper's 40 log-mel x 101 frames is
trained for a few steps on separable synthetic features and exported once per module. Its BN
and SubSpectralNorm statistics are then re-estimated from data (cumulative average), which puts
them far from the identity (running means up to ~15, variances from ~1e-3 to ~30), so BN
folding and the SSN constants are exercised while the logits still separate the classes.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from kws.config import FeatureConfig, preset_config
from kws.export import export_model
from kws.export.keras_bc_resnet import fold_sub_spectral_norm
from kws.models import ModelSpec, build_model
from tests.helpers import randomize_batchnorm


def create_model(cfg, input_shape, classes):
    return build_model(ModelSpec(cfg, tuple(input_shape), classes))


FRAMES, COEFFS = 101, 40
LABELS = ["a", "b", "c", "d"]
# Every op TFLite Micro must register for BC-ResNet; each has a MicroMutableOpResolver method.
BC_RESNET_OPS = {
    "CONV_2D", "DEPTHWISE_CONV_2D", "MUL", "ADD", "MEAN", "LOGISTIC", "PAD", "FULLY_CONNECTED",
}  # fmt: skip


def logmel_like(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Features `(n, 101, 40)` in log-mel ranges with a class pattern at a random time shift."""
    templates = np.random.default_rng(123).normal(0, 3, (len(LABELS), FRAMES, COEFFS))
    labels = rng.integers(0, len(LABELS), n)
    x = rng.normal(-8.0, 2.0, (n, FRAMES, COEFFS))
    shift = rng.integers(-5, 6, n)
    for i in range(n):
        x[i] += np.roll(templates[labels[i]], shift[i], axis=0)
    return x.astype(np.float32), labels


def estimate_norm_statistics(model: torch.nn.Module, batches: list[np.ndarray]) -> None:
    """Replace every BN's (SSN's included) running statistics by their average over `batches`."""
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative moving average
    model.train()
    with torch.no_grad():
        for batch in batches:
            model(torch.from_numpy(batch))
    model.eval()


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = create_model(preset_config("bc_resnet_1"), (FRAMES, COEFFS), len(LABELS)).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    rng = np.random.default_rng(0)
    for _ in range(25):
        x, y = logmel_like(32, rng)
        loss = torch.nn.functional.cross_entropy(model(torch.from_numpy(x)), torch.from_numpy(y))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    calibration = [logmel_like(40, np.random.default_rng(s))[0] for s in (1, 2, 3)]
    estimate_norm_statistics(model, calibration)
    features = FeatureConfig(kind="logmel", window_ms=30.0, hop_ms=10.0, num_mel=40)
    out = tmp_path_factory.mktemp("export") / "bc_resnet_1"
    art = export_model(model, LABELS, features, calibration, out, name="bc_resnet_1")
    x, y = logmel_like(100, np.random.default_rng(99))
    yield model, art, x, y
    torch.set_num_threads(threads)


def torch_logits(model, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(x)).numpy()


def test_model_learned_the_task_and_its_norms_are_far_from_identity(exported):
    model, _, x, y = exported
    assert (torch_logits(model, x).argmax(1) == y).mean() >= 0.9
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert max(norm.running_mean.abs().max().item() for norm in norms) > 2.0
    assert min(norm.running_var.min().item() for norm in norms) < 0.1


def test_keras_rebuild_matches_torch(exported):
    from kws.export.keras_bc_resnet import build_keras

    model, _, x, _ = exported
    keras_logits = build_keras(model)(x[..., None]).numpy()
    np.testing.assert_allclose(keras_logits, torch_logits(model, x), atol=1e-4, rtol=0)


def test_tflite_float_matches_torch(exported):
    from kws.export.tflite_export import litert_interpreter, litert_logits

    model, art, x, _ = exported
    interpreter = litert_interpreter(art.files["tflite_float"].read_bytes())
    np.testing.assert_allclose(litert_logits(interpreter, x), torch_logits(model, x), atol=1e-4)


def test_onnx_float_matches_torch_with_dynamic_batch(exported):
    from kws.export.onnx_export import onnx_logits, onnx_session

    model, art, x, _ = exported
    session = onnx_session(art.files["onnx_float"])
    ref = torch_logits(model, x)
    np.testing.assert_allclose(onnx_logits(session, x), ref, atol=1e-4, rtol=0)
    np.testing.assert_allclose(onnx_logits(session, x[:1]), ref[:1], atol=1e-4, rtol=0)


def test_int8_models_agree_with_float_top1(exported):
    from kws.export.onnx_export import onnx_logits, onnx_session
    from kws.export.tflite_export import litert_interpreter, litert_logits

    model, art, x, _ = exported
    ref = torch_logits(model, x).argmax(1)
    tfl = litert_logits(litert_interpreter(art.files["tflite_int8"].read_bytes()), x)
    onx = onnx_logits(onnx_session(art.files["onnx_int8"]), x)
    assert (tfl.argmax(1) == ref).mean() >= 0.95
    assert (onx.argmax(1) == ref).mean() >= 0.95
    assert art.quantization["input"]["dtype"] == art.quantization["output"]["dtype"] == "int8"


def test_tflite_micro_runs_the_int8_model(exported):
    from ai_edge_litert import interpreter as litert

    from kws.export.keras_rebuild import to_nhwc
    from kws.export.tflite_export import Quantization, litert_run
    from kws.export.tflm import tflm_interpreter, tflm_run

    model, art, x, _ = exported
    data = art.files["tflite_int8"].read_bytes()
    q_in, q_out = art.quantization["input"], art.quantization["output"]
    x_q = Quantization(q_in["scale"], q_in["zero_point"]).quantize(to_nhwc(x[:30]))
    micro = tflm_run(tflm_interpreter(data, art.arena_bytes), x_q)
    # TFLite Micro runs TFLite's reference kernels; LiteRT's default optimized and XNNPACK
    # kernels requantize differently (up to ~20 output LSB measured on this model).
    lite = litert.Interpreter(
        model_content=data, experimental_op_resolver_type=litert.OpResolverType.BUILTIN_REF
    )
    lite.allocate_tensors()
    reference = litert_run(lite, x[:30])
    assert np.abs(micro.astype(int) - reference.astype(int)).max() <= 1
    logits = Quantization(q_out["scale"], q_out["zero_point"]).dequantize(micro)
    assert (logits.argmax(1) == torch_logits(model, x[:30]).argmax(1)).mean() >= 0.9
    # The stem's int8 output alone is 16 x 20 x 101 = 32,320 bytes; the arena holds more.
    assert 32_320 < art.arena_bytes < 256 * 1024, art.arena_bytes


def test_graph_uses_only_ops_tflite_micro_registers_and_keeps_dilation(exported):
    from ai_edge_litert import schema_py_generated as schema

    _, art, _, _ = exported
    assert set(art.ops) == BC_RESNET_OPS
    resolver = (art.out_dir / "tflm" / "op_resolver.h").read_text()
    for method in ("AddConv2D", "AddDepthwiseConv2D", "AddMul", "AddAdd", "AddMean",
                   "AddLogistic", "AddPad", "AddFullyConnected"):  # fmt: skip
        assert f"resolver.{method}()" in resolver
    graph = schema.Model.GetRootAs(art.files["tflite_int8"].read_bytes(), 0).Subgraphs(0)
    dilations = []
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        if op.BuiltinOptionsType() == schema.BuiltinOptions.DepthwiseConv2DOptions:
            options = schema.DepthwiseConv2DOptions()
            options.Init(op.BuiltinOptions().Bytes, op.BuiltinOptions().Pos)
            dilations.append((options.DilationHFactor(), options.DilationWFactor()))
    # 12 frequency + 12 temporal depthwise convs + the head's; temporal ones dilate in time.
    assert len(dilations) == 25
    assert sorted(set(dilations)) == [(1, 1), (2, 1), (4, 1), (8, 1)]


def test_manifest_describes_the_bc_resnet(exported):
    _, art, _, _ = exported
    manifest = json.loads((art.out_dir / "manifest.json").read_text())
    assert manifest["feature_shape"] == [FRAMES, COEFFS]
    assert manifest["input"]["shape"] == [1, FRAMES, COEFFS, 1]
    assert manifest["output"]["shape"] == [1, len(LABELS)]
    assert manifest["model"]["width_multiplier"] == 1.0
    assert manifest["features"]["kind"] == "logmel"
    assert manifest["arena_bytes"] == art.arena_bytes


def test_folded_sub_spectral_norm_reproduces_conv_and_ssn():
    torch.manual_seed(3)
    model = create_model(preset_config("bc_resnet_1"), (FRAMES, COEFFS), 4).eval()
    randomize_batchnorm(model, 3)
    block = model.stages[1][0]  # 12 channels, 20 -> 10 frequency rows
    kernel, bias, scale, shift = fold_sub_spectral_norm(block, 10)
    assert kernel.shape == (1, 3, 12, 1) and bias.shape == (12,)
    assert scale.shape == shift.shape == (1, 1, 10, 12)
    x = torch.randn(2, 12, 20, 7)  # (batch, channels, freq, time)
    with torch.no_grad():
        ref = block.ssn(block.freq_conv(block.freq_pad(x)))
        conv = torch.nn.functional.conv2d(
            block.freq_pad(x), torch.from_numpy(kernel.transpose(2, 3, 1, 0)),
            torch.from_numpy(bias), stride=(2, 1), groups=12,
        )  # fmt: skip
    scale_nchw, shift_nchw = (torch.from_numpy(v).permute(0, 3, 2, 1) for v in (scale, shift))
    torch.testing.assert_close(conv * scale_nchw + shift_nchw, ref, atol=1e-5, rtol=1e-5)
    # Only the spread between one channel's sub-bands is left in the MUL constant.
    r = scale[0, 0, ::2]  # (sub_bands, channels)
    np.testing.assert_allclose(np.abs(r).mean(axis=0), 1.0, rtol=1e-5)
