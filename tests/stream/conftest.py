"""Fixtures of the streaming tests: a tone model's run on a GSC-layout tone set."""

import numpy as np
import pytest
import soundfile as sf

from kws.config import save_yaml
from tests.stream.tones import (
    RATE_HZ,
    STREAM_WORDS,
    noise,
    synth_stream,
    trained_tone_model,
    word,
    write_run,
)


def tone_set(root, per_word=60, seed=0):
    """A GSC-layout tone set the tone model knows, with keyword-free negatives."""
    rng = np.random.default_rng(seed)
    for label, folder in (("yes", "yes"), ("no", "no"), ("_unknown_", "other")):
        (root / folder).mkdir(parents=True)
        for i in range(per_word):
            clip = noise(RATE_HZ, rng)
            start = rng.integers(0, RATE_HZ // 2)
            clip[start : start + RATE_HZ // 2] += word(label, rng)
            sf.write(root / folder / f"{rng.integers(2**32):08x}_nohash_{i % 2}.wav", clip,
                     RATE_HZ, subtype="PCM_16")  # fmt: skip
    (root / "_background_noise_").mkdir()
    sf.write(root / "_background_noise_" / "white.wav", noise(RATE_HZ * 5, rng, 0.3), RATE_HZ)
    (root / "_negatives_").mkdir()
    for i in range(5):  # unknown-word tones only: nothing a keyword detector may fire on
        audio = noise(RATE_HZ * 20, rng)
        for k in range(8):
            start = RATE_HZ * (1 + 2 * k)
            audio[start : start + RATE_HZ // 2] += word("_unknown_", rng)
        sf.write(root / "_negatives_" / f"neg_{i:03d}.wav", audio, RATE_HZ, subtype="PCM_16")
    return root


@pytest.fixture(scope="module")
def tone_run(tmp_path_factory):
    return make_tone_run(tmp_path_factory.mktemp("bench"))


def make_tone_run(tmp):
    """`tmp/run`: the tone model's run folder, trained on the tone set `tmp/data`."""
    root = tone_set(tmp / "data")
    ckpt = trained_tone_model()
    cfg = ckpt.config
    cfg.data.root, cfg.data.task, cfg.data.words = str(root), "custom", ["yes", "no"]
    ckpt.config = cfg
    run = tmp / "run"
    ckpt.save(run / "checkpoints" / "best.pt")
    save_yaml(cfg, run / "config.yaml")
    return run


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A run folder holding the tone model as checkpoints/best.pt (tones.write_run)."""
    return write_run(tmp_path_factory.mktemp("tone_run"))


@pytest.fixture(scope="module")
def stream_wav(tmp_path_factory):
    """`(path, audio)`: STREAM_WORDS as a 16-bit WAV over noise (tones.synth_stream, seed 8)."""
    folder = tmp_path_factory.mktemp("demo")
    audio, _ = synth_stream(STREAM_WORDS, seed=8)
    sf.write(folder / "stream.wav", audio, RATE_HZ, subtype="PCM_16")
    return folder / "stream.wav", audio
