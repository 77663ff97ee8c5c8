"""StreamingDetector: streamed features equal batch features, posteriors equal batch inference,
and keyword events on a synthesized stream come out right, in order, without duplicates."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kws.config import FeatureConfig, StreamConfig
from kws.errors import UserError
from kws.features import NumpyFrontEnd, compute_features
from kws.stream.backends import Backend, load_backend
from kws.stream.detector import StreamingDetector, run_detector
from tests.test_stream_tones import LABELS, RATE_HZ, synth_stream, write_run


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return write_run(tmp_path_factory.mktemp("tone_run"))


@pytest.fixture(scope="module")
def torch_backend(run_dir) -> Backend:
    return load_backend("torch", run_dir)


def recording(backend: Backend, windows: list) -> Backend:
    """The same backend, also keeping every feature window it is given."""

    def predict(features: np.ndarray) -> np.ndarray:
        windows.append(features[0].copy())
        return backend.predict(features)

    return Backend(backend.kind, backend.labels, backend.feature_cfg, backend.path, predict)


def random_chunks(audio: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
    cuts = np.sort(rng.choice(np.arange(1, len(audio)), size=len(audio) // 700, replace=False))
    return [c for c in np.split(audio, cuts) if len(c)] + [audio[:0]]  # an empty one too


@pytest.mark.parametrize("dtype", ["int16", "float32"])
def test_streamed_features_equal_batch_features(torch_backend, dtype):
    rng = np.random.default_rng(3)
    audio = np.clip(0.3 * rng.standard_normal(RATE_HZ * 2 + 777), -1, 1).astype(np.float32)
    if dtype == "int16":
        pcm = np.round(audio * 32767).astype(np.int16)
        audio, stream = pcm.astype(np.float32) / 32768.0, pcm
    else:
        stream = audio
    windows: list = []
    detector = StreamingDetector(recording(torch_backend, windows))
    run_detector(detector, random_chunks(stream, rng))
    batch = NumpyFrontEnd(FeatureConfig()).features(audio)  # (frames, coeffs)
    assert detector.frames_done == batch.shape[0]
    assert len(windows) == batch.shape[0] - 49 + 1  # stride = one hop: every window position
    for start, window in enumerate(windows):
        np.testing.assert_allclose(window, batch[start : start + 49], rtol=1e-5, atol=1e-5)


def test_posteriors_match_batch_inference_on_aligned_clip(torch_backend, run_dir):
    audio, truth = synth_stream(["yes", "no"], seed=5)
    model = torch_backend  # posteriors from the streaming path
    detector = StreamingDetector(model, stream_cfg=StreamConfig(stride_ms=40))
    inferences = run_detector(detector, np.array_split(audio, 37))
    by_time = {round(inf.time_ms): inf.probabilities for inf in inferences}
    from kws.run import Run

    net = Run(run_dir).checkpoint().build_model()
    hop = FeatureConfig().hop_samples
    for offset in (0, 40 * hop, 64 * hop, 100 * hop):  # multiples of the 2-hop stride
        clip = torch.from_numpy(audio[offset : offset + RATE_HZ])[None]
        with torch.no_grad():
            batch = torch.softmax(net(compute_features(clip, FeatureConfig())), -1)[0].numpy()
        streamed = by_time[round(1000 * (offset + RATE_HZ) / RATE_HZ)]
        np.testing.assert_allclose(streamed, batch, atol=1e-4)


def test_events_on_synthesized_stream(torch_backend):
    words = ["yes", "no", "_unknown_", "no", "yes", "yes"]
    audio, truth = synth_stream(words, seed=11)
    cfg = StreamConfig(stride_ms=20, suppression_ms=500)
    detector = StreamingDetector(torch_backend, stream_cfg=cfg)
    events = [inf.event for inf in run_detector(detector, np.array_split(audio, 200)) if inf.event]
    keywords = [(label, start) for label, start in truth if label in ("yes", "no")]
    assert [e.label for e in events] == [label for label, _ in keywords]
    for event, (_, start_ms) in zip(events, keywords, strict=True):
        assert start_ms < event.time_ms < start_ms + 1500  # heard during/just after the word
        assert event.score > cfg.detection_threshold
    times = [e.time_ms for e in events]
    assert all(b - a > cfg.suppression_ms for a, b in zip(times, times[1:], strict=False))
    stats = detector.stats()
    assert stats.inferences == detector.frames_done - 48
    assert stats.audio_s == pytest.approx(len(audio) / RATE_HZ)
    assert stats.latency_mean_ms > 0 and stats.speed_x_realtime > 0


@pytest.mark.parametrize("rate_hz", [8000, 44100])
def test_other_sample_rates_are_resampled(torch_backend, rate_hz):
    import soxr

    words = ["no", "yes"]
    audio, truth = synth_stream(words, seed=2)
    resampled = soxr.resample(audio, RATE_HZ, rate_hz)
    detector = StreamingDetector(torch_backend, input_sample_rate_hz=rate_hz)
    events = [i.event for i in run_detector(detector, np.array_split(resampled, 50)) if i.event]
    assert [e.label for e in events] == words
    assert detector.stats().audio_s == pytest.approx(len(audio) / RATE_HZ, abs=0.01)


def test_stride_must_be_a_multiple_of_the_hop(torch_backend):
    with pytest.raises(UserError, match="multiple of features.hop_ms"):
        StreamingDetector(torch_backend, stream_cfg=StreamConfig(stride_ms=30))
    with pytest.raises(UserError, match="multiple"):
        StreamingDetector(torch_backend, stream_cfg=StreamConfig(stride_ms=10))


def test_labels_come_from_the_checkpoint(torch_backend):
    assert torch_backend.labels == LABELS
    assert torch_backend.feature_cfg == FeatureConfig()
