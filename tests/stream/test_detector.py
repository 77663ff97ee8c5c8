"""StreamingDetector: streamed features equal batch features, posteriors equal batch inference,
keyword events on synthesized streams come out right, in order, without duplicates — also for
words repeated after short pauses, a word at the very end of a stream and a lone 1 s clip
(flush) — and NaN/inf audio does not deafen it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kws.config import ConfigError, FeatureConfig, StreamConfig
from kws.errors import UserError
from kws.features import NumpyFrontEnd, compute_features
from kws.stream.backends import Backend, load_backend
from kws.stream.detector import StreamingDetector, frame_levels_db, run_detector
from kws.stream.recognize import StreamWarning
from tests.stream.tones import (
    LABELS,
    RATE_HZ,
    WORD_MS,
    make_dataset,
    noise,
    synth_stream,
    trained_tone_model,
    training_clip,
    word,
)


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
    levels = [i.level_db for chunk in random_chunks(stream, rng) for i in detector.push(chunk)]
    batch = NumpyFrontEnd(FeatureConfig()).features(audio)  # (frames, coeffs)
    assert detector.frames_done == batch.shape[0]
    assert len(windows) == batch.shape[0] - 49 + 1  # stride = one hop: every window position
    for start, window in enumerate(windows):
        np.testing.assert_allclose(window, batch[start : start + 49], rtol=1e-5, atol=1e-5)
    # Each inference carries the loudest frame level since the previous one: all 49 frames for
    # the first, then the newest frame (stride = one hop).
    frame_db = frame_levels_db(np.lib.stride_tricks.sliding_window_view(audio, 640)[::320])
    np.testing.assert_allclose(levels, [frame_db[:49].max(), *frame_db[49:]], atol=1e-3)
    # The end of the stream pads silence: the tail's windows are those of the padded audio.
    detector.flush()
    padded = np.concatenate([audio, np.zeros(int(1.5 * RATE_HZ), np.float32)])
    batch = NumpyFrontEnd(FeatureConfig()).features(padded)
    assert detector.frames_done == batch.shape[0]
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
    # A stream may go on after a flush (a microphone restarted): the same words again.
    again = [i.event for i in run_detector(detector, np.array_split(resampled, 7)) if i.event]
    assert [e.label for e in again] == words


@pytest.mark.parametrize("rate_hz", [0, 1, -16000])
def test_an_input_rate_no_recording_has_is_refused(torch_backend, rate_hz):
    """0 Hz (a damaged header) used to be taken silently as the model's 16 kHz."""
    with pytest.raises(UserError, match=f"sample rate of {rate_hz} Hz"):
        StreamingDetector(torch_backend, input_sample_rate_hz=rate_hz)
    assert StreamingDetector(torch_backend).input_rate_hz == RATE_HZ  # None: the model's


def test_settings_are_validated_against_the_front_end(torch_backend):
    with pytest.raises(ConfigError, match="multiple of features.hop_ms"):
        StreamingDetector(torch_backend, stream_cfg=StreamConfig(stride_ms=30))
    with pytest.raises(ConfigError, match="no keyword can ever fire"):
        StreamingDetector(torch_backend, stream_cfg=StreamConfig(stride_ms=200))
    with pytest.raises(ConfigError, match="detection_threshold"):
        StreamingDetector(torch_backend, stream_cfg=StreamConfig(detection_threshold=1.2))


def words_audio(labels: list[str], gap_ms: int, lead_ms: int = 1000, tail_ms: int = 1000, seed=0):
    """Tone words with `gap_ms` of pause between them; returns audio and word onsets (ms)."""
    rng = np.random.default_rng(seed)
    length = RATE_HZ * WORD_MS // 1000
    total_ms = lead_ms + len(labels) * (WORD_MS + gap_ms) - gap_ms + tail_ms
    audio = noise(RATE_HZ * total_ms // 1000, rng)
    onsets = []
    for i, label in enumerate(labels):
        onset_ms = lead_ms + i * (WORD_MS + gap_ms)
        start = RATE_HZ * onset_ms // 1000
        audio[start : start + length] += word(label, rng)
        onsets.append(onset_ms)
    return audio, onsets


def events_of(detector: StreamingDetector, audio: np.ndarray, pieces: int = 17):
    return [i.event for i in run_detector(detector, np.array_split(audio, pieces)) if i.event]


@pytest.mark.parametrize("gap_ms", [300, 600, 1000])
@pytest.mark.parametrize("labels", [["yes"] * 3, ["no", "yes", "no"], ["yes", "_unknown_", "yes"]])
@pytest.mark.parametrize("tail_ms", [1000, 0])
def test_each_keyword_reported_when_close_and_at_the_end(torch_backend, labels, gap_ms, tail_ms):
    """Faults 1 and 3 on audio: words 0.3-1 s apart, the last one at the very end of the file."""
    audio, onsets = words_audio(labels, gap_ms, tail_ms=tail_ms, seed=gap_ms + tail_ms)
    events = events_of(StreamingDetector(torch_backend), audio)
    keywords = [
        (label, on) for label, on in zip(labels, onsets, strict=True) if label != "_unknown_"
    ]
    assert [e.label for e in events] == [label for label, _ in keywords]
    for event, (_, onset_ms) in zip(events, keywords, strict=True):
        assert onset_ms < event.time_ms < onset_ms + WORD_MS + 1500


def test_a_lone_one_second_clip_fires(torch_backend):
    """Fault 1: the only full window said p(yes)~1, but no decision was ever taken."""
    for seed, label in enumerate(["yes", "no", "yes"]):
        clip = training_clip(label, np.random.default_rng(seed))
        detector = StreamingDetector(torch_backend)
        assert [e.label for e in events_of(detector, clip, 3)] == [label]
        assert detector.stats().audio_s == pytest.approx(1.0)  # the padding is not audio
        assert detector.flush() == []  # a second flush without new audio does nothing


def test_nonfinite_audio_is_replaced_and_counted(torch_backend):
    """Fault 5: NaN/inf samples used to poison the features and the running sum for good."""
    audio, onsets = words_audio(["yes", "no", "yes"], 1000, seed=4)
    audio[RATE_HZ // 2 : RATE_HZ // 2 + 100] = np.nan  # before the first word
    audio[RATE_HZ * 3] = np.inf  # inside the gap after "no"
    detector = StreamingDetector(torch_backend)
    with pytest.warns(StreamWarning, match="NaN/inf audio sample"):
        events = events_of(detector, audio)
    assert [e.label for e in events] == ["yes", "no", "yes"]
    assert detector.stats().nonfinite_samples == 101
    assert detector.stats().skipped_posteriors == 0


@pytest.mark.parametrize("rate_hz", [RATE_HZ, 48000])
def test_nonfinite_audio_warning_names_the_first_bad_sample_s_time(torch_backend, rate_hz):
    """The warning gave the time of the chunk holding the bad samples (1.20 s), not theirs."""
    audio = np.zeros(rate_hz * 2, np.float32)
    audio[rate_hz * 5 // 4 : rate_hz * 5 // 4 + 10] = np.nan  # at 1.25 s, inside a chunk
    detector = StreamingDetector(torch_backend, input_sample_rate_hz=rate_hz)
    with pytest.warns(StreamWarning, match="the first at 1.25 s") as caught:
        for start in range(0, len(audio), rate_hz // 5):  # 0.2 s chunks: one starts at 1.2 s
            detector.push(audio[start : start + rate_hz // 5])
    assert len(caught) == 1 and detector.stats().nonfinite_samples == 10


def test_nonfinite_posteriors_are_skipped(torch_backend):
    """A model that returns NaN now and then: skipped, counted, and the stream still works."""
    calls = [0]

    def flaky(features: np.ndarray) -> np.ndarray:
        calls[0] += 1
        probs = torch_backend.predict(features)
        return np.full_like(probs, np.nan) if calls[0] % 10 == 0 else probs

    backend = Backend("torch", torch_backend.labels, torch_backend.feature_cfg, None, flaky)
    audio, _ = words_audio(["yes", "no"], 1000, seed=6)
    detector = StreamingDetector(backend)
    with pytest.warns(StreamWarning, match="NaN/inf values"):
        assert [e.label for e in events_of(detector, audio)] == ["yes", "no"]
    assert detector.stats().skipped_posteriors == calls[0] // 10


def test_labels_come_from_the_checkpoint(torch_backend):
    assert torch_backend.labels == LABELS
    assert torch_backend.feature_cfg == FeatureConfig()


def test_the_shared_tone_model_classifies_held_out_clips():
    model = trained_tone_model().build_model()
    xs, ys = make_dataset(120, seed=7)
    with torch.no_grad():
        predicted = model(torch.from_numpy(xs)).argmax(-1).numpy()
    assert (predicted == ys).mean() >= 0.95
