"""Budget stage: analytic profile of any model family as an int8 microcontroller model.

Counts come from the family's `layer_costs` (`kws.models.registry`); memory figures model the
int8 TFLite graph that `kws export` produces from the Keras rebuild: NHWC int8 input
`(1, frames, coeffs, 1)`, one op per conv, "same" padding fused into the conv, BatchNorm
folded into an int32 bias per output channel, per-channel weight quantization; for a DS-CNN

    CONV_2D -> (DEPTHWISE_CONV_2D -> CONV_2D) x blocks -> MEAN -> FULLY_CONNECTED

Every number not read from a real file is an estimate and is labelled so. The constants below
were fitted against real int8 .tflite files and TFLite Micro arena reports (see comments).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from kws.budget.targets import Target
from kws.errors import UserError
from kws.models import ModelSpec, layer_costs
from kws.models.layers import same_padding

# --- int8 .tflite size model --------------------------------------------------------------
# A per-channel quantized tensor stores one float32 scale and one int64 zero point per channel;
# TFLite quantizes conv / depthwise weights and their int32 biases per output channel, so each
# output channel costs 2 x 12 bytes of quantization parameters. FULLY_CONNECTED is per-tensor.
QUANT_BYTES_PER_CHANNEL = 24
# Flatbuffer overhead: tensor tables, shapes, names, op codes, signature and metadata; it grows
# by about 637 bytes per op (a depthwise-separable block is 2 ops, 5 tensors). Fitted on the
# int8 files
# `kws.export.tflite_export.convert_int8` (TensorFlow 2.21) wrote for random weights with
# randomized BatchNorm statistics (so folded biases are distinct, as after training; identical
# all-zero biases would be deduplicated): DS-CNN-S 45,840 bytes, M 184,512, L 501,632, the
# growth seed 27,048 and the seed grown to widths [40,48,32,64,56,72] 42,168. The estimate is
# within 10 bytes of each; other exporters name tensors differently (our first Keras rebuild,
# with long auto-generated names and an input RESHAPE, was 2-3 KB larger).
# (Fitted per block as 2552 + 1274 per block; a DS-CNN has 3 + 2 x blocks ops, hence 637 per
# op.) Ops without weights (MEAN, ADD, MUL, LOGISTIC, PAD) carry fewer tensors: 281 bytes each,
# fitted on BC-ResNet-1 and -2 exports (98 x 40 input: 76,528 and 113,064 bytes, 126 ops,
# 44 with weights); the fixed part absorbs DS-CNN's one MEAN so its estimates are unchanged.
FLASH_OVERHEAD_FIXED_BYTES = 997
FLASH_OVERHEAD_PER_OP_BYTES = 637
FLASH_OVERHEAD_PER_ELEMENTWISE_OP_BYTES = 281

# --- TFLite Micro arena model ------------------------------------------------------------
# The arena's "head" (non-persistent) holds the activation tensors: with TFLM's greedy planner
# on a sequential graph it is the largest input + output pair, each tensor rounded up to 16
# bytes (16,000 bytes for DS-CNN-S). The "tail" holds persistent data: per output channel an
# int32 multiplier and an int32 shift for conv and depthwise ops, per op a node/registration
# struct, op data and eval tensors, plus a fixed part. Fitted on the allocation reports of the
# tflite-micro PyPI interpreter (reference kernels) for the five files above: exact on all five
# (S 24,064 bytes, M 70,032, L 115,200, seed 16,848, grown 20,976). CMSIS-NN kernels may add
# scratch buffers; `kws export` measures the real arena.
ARENA_ALIGNMENT_BYTES = 16
ARENA_BYTES_PER_CHANNEL = 8
ARENA_OVERHEAD_FIXED_BYTES = 728
ARENA_OVERHEAD_PER_OP_BYTES = 248

WEIGHTED_KINDS = ("conv", "depthwise", "pointwise", "linear")


@dataclass
class LayerProfile:
    """One op of the int8 graph. `out_shape` is (channels, time, freq)."""

    name: str
    kind: str  # conv | depthwise | pointwise | pool | linear | pad
    out_shape: tuple[int, int, int]
    params: int
    macs: int
    activation_bytes: int  # int8 output tensor
    live_bytes: int  # int8 input + output tensors (+ waiting residuals) alive while it runs
    latency_ms: float | None = None  # estimate, filled when a target with a core is given
    extra_live_bytes: int = 0  # other tensors kept alive meanwhile (a residual's input)


@dataclass
class Profile:
    """Size, compute and memory of one model config as an int8 microcontroller model."""

    model: str
    params: int
    macs: int
    ops: int  # 2 x MACs (Hello Edge convention)
    layers: list[LayerProfile]
    weight_bytes: int  # int8 kernels + int32 biases (BatchNorm folded)
    flash_bytes: int
    flash_source: str  # "tflite" (size of a real file) | "estimate"
    peak_activation_bytes: int
    peak_layer: str
    arena_estimate_bytes: int  # estimate of TFLite Micro's arena (activations + persistent)
    hello_edge_memory_bytes: int  # params at 8 bits + peak activations (Hello Edge "memory")
    target: str = ""
    latency_ms: float | None = None  # estimate on `target`'s core and clock
    latency_runtime: str = ""  # which runtime's cycle model the latency assumes
    latency_calibration: str = ""  # the published measurement that model was scaled to
    assumptions: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _prod(shape: tuple[int, ...]) -> int:
    out = 1
    for size in shape:
        out *= size
    return out


def _graph_layers(spec: ModelSpec, separate_padding: bool) -> list[LayerProfile]:
    """The int8 graph's ops in order with output sizes and live bytes (input + output).

    BatchNorm ops fold into the conv before them; with `separate_padding`, a conv with "same"
    padding that needs any is preceded by a PAD op holding the padded input.
    """
    layers: list[LayerProfile] = []
    for op in layer_costs(spec):
        if op.kind == "bn":
            continue
        in_shape = op.in_shape
        if separate_padding and op.kernel is not None and op.padding == "same":
            pt = sum(same_padding(in_shape[1], op.kernel[0], op.stride[0]))
            pf = sum(same_padding(in_shape[2], op.kernel[1], op.stride[1]))
            if pt or pf:
                padded = (in_shape[0], in_shape[1] + pt, in_shape[2] + pf)
                layers.append(
                    LayerProfile(op.name.replace("_conv", "_pad"), "pad", padded, 0, 0,
                                 _prod(padded), _prod(in_shape) + _prod(padded))
                )  # fmt: skip
                in_shape = padded
        out_bytes = _prod(op.out_shape)
        layers.append(
            LayerProfile(op.name, op.kind, op.out_shape, op.params, op.macs, out_bytes,
                         _prod(in_shape) + out_bytes + op.live_extra_bytes,
                         extra_live_bytes=op.live_extra_bytes)
        )  # fmt: skip
    return layers


def _weight_bytes(layers: list[LayerProfile]) -> tuple[int, int]:
    """(int8 kernel bytes + int32 bias bytes, output channels quantized per channel)."""
    total, channels = 0, 0
    for layer in layers:
        if layer.kind not in WEIGHTED_KINDS:
            continue
        out_channels = layer.out_shape[0]
        kernel = layer.params - (out_channels if layer.kind == "linear" else 0)
        total += kernel + 4 * out_channels  # every op gets an int32 bias (BN folded into it)
        if layer.kind != "linear":
            channels += out_channels
    return total, channels


def _align(size: int) -> int:
    return -(-size // ARENA_ALIGNMENT_BYTES) * ARENA_ALIGNMENT_BYTES


def estimate_flash_bytes(spec: ModelSpec) -> int:
    """Estimated size of the int8 .tflite: weights, biases, quantization params, graph overhead."""
    layers = _graph_layers(spec, separate_padding=False)
    weights, channels = _weight_bytes(layers)
    weighted = sum(layer.kind in WEIGHTED_KINDS for layer in layers)
    overhead = (
        FLASH_OVERHEAD_FIXED_BYTES
        + FLASH_OVERHEAD_PER_OP_BYTES * weighted
        + FLASH_OVERHEAD_PER_ELEMENTWISE_OP_BYTES * (len(layers) - weighted)
    )
    return weights + QUANT_BYTES_PER_CHANNEL * channels + overhead


def estimate_arena_bytes(spec: ModelSpec) -> int:
    """Estimated TFLite Micro arena: 16-byte aligned activation head plus persistent tail."""
    layers = _graph_layers(spec, separate_padding=False)
    head, prev = 0, _prod(spec.input_shape)
    for layer in layers:
        head = max(
            head,
            _align(prev) + _align(layer.activation_bytes) + _align(layer.extra_live_bytes),
        )
        prev = layer.activation_bytes
    _, channels = _weight_bytes(layers)
    tail = (
        ARENA_BYTES_PER_CHANNEL * channels
        + ARENA_OVERHEAD_FIXED_BYTES
        + ARENA_OVERHEAD_PER_OP_BYTES * len(layers)
    )
    return head + tail


def layer_latency_ms(layer: LayerProfile, target: Target) -> float:
    """Estimated latency of one op on `target` (cycles-per-MAC model of its core).

    Raises:
        UserError: the target has no core or clock.
    """
    core = target.core
    if core is None or not target.clock_hz:
        raise UserError(f"target '{target.name}' has no core/clock_hz; no latency estimate")
    cycles = core.cycles_per_mac.get(layer.kind, 0.0) * layer.macs + core.cycles_per_layer
    return 1000.0 * cycles / target.clock_hz


def profile(
    spec: ModelSpec,
    *,
    tflite_path: Path | None = None,
    target: Target | None = None,
    separate_padding: bool = False,
) -> Profile:
    """Profile a model as an int8 microcontroller model; pure (reads only `tflite_path`).

    Args:
        spec: the model (any family, any widths, e.g. a grown one) with its input and classes.
        tflite_path: exported int8 .tflite; its size replaces the flash estimate.
        target: when it has a core and clock, fills the (estimated) latency per layer and total.
        separate_padding: model "same" padding as separate PAD ops (then the padded input is
            alive too). Our exporter fuses padding into the convs, so the default is False.

    Raises:
        UserError: `tflite_path` given but missing.
    """
    layers = _graph_layers(spec, separate_padding)
    peak = max(layers, key=lambda layer: layer.live_bytes)
    params = sum(layer.params for layer in layer_costs(spec))
    macs = sum(layer.macs for layer in layers)
    weights, _ = _weight_bytes(layers)
    if tflite_path is not None:
        if not Path(tflite_path).is_file():
            raise UserError(f"tflite file '{tflite_path}' not found; run `kws export` first")
        flash, source = Path(tflite_path).stat().st_size, "tflite"
    else:
        flash, source = estimate_flash_bytes(spec), "estimate"
    result = Profile(
        model=spec.config.preset or f"{spec.config.family} (custom)",
        params=params,
        macs=macs,
        ops=2 * macs,
        layers=layers,
        weight_bytes=weights,
        flash_bytes=flash,
        flash_source=source,
        peak_activation_bytes=peak.live_bytes,
        peak_layer=peak.name,
        arena_estimate_bytes=estimate_arena_bytes(spec),
        hello_edge_memory_bytes=params + peak.live_bytes,
        assumptions=[
            "int8 activations; padding "
            + (
                "as separate PAD ops"
                if separate_padding
                else "fused into the convs (TFLite 'SAME')"
            ),
            "peak activation = largest input + output pair of one op (sequential graph)",
            "arena, flash (unless read from a .tflite) and latency are estimates",
        ],
    )
    if target is not None:
        result.target = target.name
        if target.core is not None and target.clock_hz:
            for layer in layers:
                layer.latency_ms = layer_latency_ms(layer, target)
            result.latency_ms = sum(layer.latency_ms or 0.0 for layer in layers)
            result.latency_runtime = target.core.runtime
            result.latency_calibration = target.core.calibration
    return result
