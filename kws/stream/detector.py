"""Streaming stage: the keyword detector every source (microphone, WAV, stdin) feeds.

Audio chunks of any length and sample rate go in; non-finite samples are replaced by silence
(counted, warned once); the detector resamples to the model's rate (soxr's streaming
resampler), computes only the feature frames the new samples complete (numpy front end; the same
per-frame math as the batch features, the new frames of a chunk in one call) and each frame's
level (dBFS), and every `stride_ms` runs the model on the latest window `(1, frames, coeffs)`.
Posteriors and levels go through `RecognizeCommands` (smoothing, hysteresis, word segmentation;
recognize.py) and keyword firings come out as `KeywordEvent`s. At the end of a stream `flush`
pads the tail with silence, so the last word is decided like any other.
"""

from __future__ import annotations

import time
import warnings
from collections import deque
from dataclasses import dataclass

import numpy as np
import soxr

from kws.config import FeatureConfig, StreamConfig
from kws.data.audio import check_sample_rate
from kws.features import NumpyFrontEnd
from kws.stream.backends import Backend
from kws.stream.recognize import Decision, RecognizeCommands, StreamWarning, is_keyword, recognize

LATENCY_HISTORY = 10_000
SILENCE_DB = -100.0  # level of digital silence (the floor of `frame_levels_db`)


@dataclass
class KeywordEvent:
    """A keyword fired at stream time `time_ms` (end of the analysed window)."""

    label: str
    time_ms: float
    score: float


@dataclass
class Inference:
    """One model run: posteriors `(classes,)` of the window ending at `time_ms`."""

    time_ms: float
    probabilities: np.ndarray
    latency_ms: float
    decision: Decision
    event: KeywordEvent | None
    level_db: float = float("nan")  # loudest frame since the previous inference (dBFS)


@dataclass
class DetectorStats:
    """Throughput so far. `speed_x_realtime` = audio seconds / compute seconds (> 1 is good).

    The mean covers every inference; the percentiles the last `LATENCY_HISTORY` of them (a live
    session runs for hours). `nonfinite_samples` counts NaN/inf input samples replaced by 0,
    `skipped_posteriors` the model outputs with NaN/inf the decisions skipped.
    """

    audio_s: float
    compute_s: float
    inferences: int
    model_s: float
    latency_mean_ms: float
    latency_p50_ms: float
    latency_p95_ms: float
    nonfinite_samples: int = 0
    skipped_posteriors: int = 0

    @property
    def real_time_factor(self) -> float:
        """Compute time / audio time (< 1 keeps up with real time)."""
        return self.compute_s / self.audio_s if self.audio_s else float("nan")

    @property
    def speed_x_realtime(self) -> float:
        return self.audio_s / self.compute_s if self.compute_s else float("inf")


def to_mono_float(chunk: np.ndarray) -> np.ndarray:
    """Any PCM chunk `(samples,)` or `(samples, channels)` -> mono float32 in [-1, 1].

    Raises:
        ValueError: a chunk that is not `(samples,)` or `(samples, channels)`.
    """
    chunk = np.asarray(chunk)
    if np.issubdtype(chunk.dtype, np.integer):
        info = np.iinfo(chunk.dtype)
        chunk = chunk.astype(np.float32) / float(-info.min if info.min < 0 else info.max)
    chunk = chunk.astype(np.float32, copy=False)
    if chunk.ndim == 2:
        chunk = chunk.mean(axis=1)  # (samples, channels) -> (samples,)
    if chunk.ndim != 1:
        raise ValueError(
            f"audio chunk must be (samples,) or (samples, channels), got {chunk.shape}"
        )
    return chunk


def frame_levels_db(frames: np.ndarray) -> np.ndarray:
    """Level of each frame `(frames, window_samples)` in dBFS `(frames,)`: 10 log10(mean x^2).

    A full-scale sine is -3 dB; digital silence is `SILENCE_DB`.
    """
    power = np.mean(np.square(frames, dtype=np.float64), axis=-1)
    return 10.0 * np.log10(power + 10.0 ** (SILENCE_DB / 10))


def stride_frames(stream_cfg: StreamConfig, feature_cfg: FeatureConfig) -> int:
    """Inference stride in feature frames (validates the stream settings first).

    Raises:
        ConfigError: settings out of range, a stride that is not a whole number of hops, or
            settings under which no keyword could ever fire.
    """
    stream_cfg.validate(feature_cfg)
    return int(round(stream_cfg.stride_ms / feature_cfg.hop_ms))


def window_span_ms(cfg: FeatureConfig) -> float:
    """Audio span of one model window: `(frames - 1) * hop + window` (1000 ms by default)."""
    samples = (cfg.num_frames - 1) * cfg.hop_samples + cfg.window_samples
    return 1000.0 * samples / cfg.sample_rate_hz


class StreamingDetector:
    """Keyword detection on an open-ended audio stream.

    Args:
        backend: model behind `Backend.__call__` (features `(1, frames, coeffs)` -> probs).
        feature_cfg: front end (default: the backend's).
        labels: class names (default: the backend's).
        stream_cfg: stride and decision settings (validated against the front end).
        input_sample_rate_hz: rate of the chunks pushed (default: the model's rate).

    Raises:
        ConfigError: stream settings out of range or under which no keyword could fire.
        UserError: an input sample rate no recording has (0 Hz, 1 Hz, ...).
    """

    def __init__(
        self,
        backend: Backend,
        feature_cfg: FeatureConfig | None = None,
        labels: list[str] | None = None,
        stream_cfg: StreamConfig | None = None,
        input_sample_rate_hz: int | None = None,
    ):
        self.backend = backend
        self.feature_cfg = feature_cfg or backend.feature_cfg
        self.labels = list(labels or backend.labels)
        self.stream_cfg = stream_cfg or StreamConfig()
        self.stride_frames = stride_frames(self.stream_cfg, self.feature_cfg)
        self.front_end = NumpyFrontEnd(self.feature_cfg)
        self.recognizer = RecognizeCommands.from_config(
            self.labels, self.stream_cfg, window_span_ms(self.feature_cfg)
        )
        cfg = self.feature_cfg
        self.rate_hz = cfg.sample_rate_hz
        # `is None`, not `or`: a header's 0 Hz used to pass silently as the model's 16 kHz
        self.input_rate_hz = (
            cfg.sample_rate_hz
            if input_sample_rate_hz is None
            else check_sample_rate(int(input_sample_rate_hz), "the input audio")
        )
        self._resampler = self._new_resampler()
        self._pending = np.zeros(0, np.float32)  # samples from the next frame's start on
        self._ring = np.zeros((cfg.num_frames, cfg.num_coeffs), np.float32)
        self.frames_done = 0
        self._audio_samples = 0  # at the model's rate, after resampling
        self._input_samples = 0  # at the input rate: where in the input a bad sample was
        self._compute_s = 0.0
        self._latencies_ms: deque[float] = deque(maxlen=LATENCY_HISTORY)
        self._model_s = 0.0
        self._inferences = 0
        self._step_level_db = -np.inf  # loudest frame since the last inference
        self._nonfinite_samples = 0
        self._flushed = False
        self.last: Inference | None = None

    def _new_resampler(self):
        """soxr's streaming resampler input rate -> model rate (None when they are equal)."""
        if self.input_rate_hz == self.rate_hz:
            return None
        return soxr.ResampleStream(
            self.input_rate_hz, self.rate_hz, 1, dtype="float32", quality="HQ"
        )

    def push(self, chunk: np.ndarray) -> list[Inference]:
        """Feed a chunk (int16 or float, `(samples,)` or `(samples, channels)`) at the input rate.

        Returns:
            The inferences the chunk completed, oldest first (possibly none).
        """
        start = time.perf_counter()
        audio = self._sanitized(to_mono_float(chunk))
        self._input_samples += audio.shape[0]
        if self._resampler is not None:
            audio = self._resampler.resample_chunk(audio, last=False)
        self._flushed = False
        results = self._consume(audio)
        self._compute_s += time.perf_counter() - start
        return results

    def flush(self) -> list[Inference]:
        """End of stream (file, stdin, stopped microphone): decide the last words.

        Drains the resampler, then pads `window_span_ms + average_window_ms` of silence, so every
        real sample is seen by every window that covers it and the smoothing of those windows
        completes. A second call without new audio does nothing; audio pushed afterwards
        continues the stream after the padding.

        Returns:
            The inferences of the tail, oldest first.
        """
        if self._flushed:
            return []
        start = time.perf_counter()
        results = []
        if self._resampler is not None:
            tail = self._resampler.resample_chunk(np.zeros(0, np.float32), last=True)
            results += self._consume(tail)
            self._resampler = self._new_resampler()  # a drained stream takes no more input
        pad_ms = window_span_ms(self.feature_cfg) + self.stream_cfg.average_window_ms
        pad = np.zeros(int(np.ceil(pad_ms * self.rate_hz / 1000)), np.float32)
        results += self._consume(pad, count_audio=False)
        self._flushed = True
        self._compute_s += time.perf_counter() - start
        return results

    def _sanitized(self, audio: np.ndarray) -> np.ndarray:
        """Replace NaN/inf samples by 0: one bad sample would poison every later feature."""
        bad = ~np.isfinite(audio)
        if not bad.any():
            return audio
        if self._nonfinite_samples == 0:  # the first bad sample's time, not its chunk's
            at_s = (self._input_samples + int(np.argmax(bad))) / self.input_rate_hz
            warnings.warn(
                f"NaN/inf audio sample(s) replaced by silence, the first at {at_s:.2f} s (a "
                "broken file or driver?); the detector's stats count them all",
                StreamWarning,
                stacklevel=3,
            )
        self._nonfinite_samples += int(bad.sum())
        return np.where(bad, np.float32(0.0), audio)

    def _consume(self, audio: np.ndarray, count_audio: bool = True) -> list[Inference]:
        cfg = self.feature_cfg
        hop, window, size = cfg.hop_samples, cfg.window_samples, cfg.num_frames
        if count_audio:
            self._audio_samples += audio.shape[0]
        self._pending = np.concatenate([self._pending, audio.astype(np.float32, copy=False)])
        # `_pending` starts at the next frame's first sample; frames it completes: n.
        n = 0 if self._pending.shape[0] < window else 1 + (self._pending.shape[0] - window) // hop
        if n == 0:
            return []
        # Only the new frames, in one numpy call (the same per-frame math as batch features).
        used = self._pending[: (n - 1) * hop + window]
        frames = self.front_end.features(used)
        levels = frame_levels_db(np.lib.stride_tricks.sliding_window_view(used, window)[::hop])
        self._pending = self._pending[n * hop :]  # drop samples no future frame needs
        results = []
        for frame, level in zip(frames, levels, strict=True):  # run the model every stride
            self._ring[self.frames_done % size] = frame
            self._step_level_db = max(self._step_level_db, float(level))
            self.frames_done += 1
            ready = self.frames_done - size
            if ready >= 0 and ready % self.stride_frames == 0:
                results.append(self._infer())
        return results

    def window(self) -> np.ndarray:
        """The latest feature window `(frames, coeffs)`, oldest frame first."""
        oldest = self.frames_done % self.feature_cfg.num_frames
        return np.concatenate([self._ring[oldest:], self._ring[:oldest]])

    def _infer(self) -> Inference:
        cfg = self.feature_cfg
        end_sample = (self.frames_done - 1) * cfg.hop_samples + cfg.window_samples
        time_ms = 1000.0 * end_sample / self.rate_hz
        start = time.perf_counter()
        probabilities = self.backend(self.window()[None])  # (1, frames, coeffs)
        latency_ms = 1000.0 * (time.perf_counter() - start)
        self._latencies_ms.append(latency_ms)
        self._model_s += latency_ms / 1000.0
        self._inferences += 1
        level_db, self._step_level_db = self._step_level_db, -np.inf
        decision = self.recognizer.process(time_ms, probabilities, level_db)
        event = None
        if decision.is_new_command and is_keyword(decision.label):
            event = KeywordEvent(decision.label, time_ms, decision.score)
        self.last = Inference(time_ms, probabilities, latency_ms, decision, event, level_db)
        return self.last

    def stats(self) -> DetectorStats:
        lat = np.asarray(self._latencies_ms) if self._latencies_ms else np.full(1, np.nan)
        count = self._inferences
        return DetectorStats(
            audio_s=self._audio_samples / self.rate_hz,
            compute_s=self._compute_s,
            inferences=count,
            model_s=self._model_s,
            latency_mean_ms=1000.0 * self._model_s / count if count else float("nan"),
            latency_p50_ms=float(np.median(lat)),
            latency_p95_ms=float(np.percentile(lat, 95)),
            nonfinite_samples=self._nonfinite_samples,
            skipped_posteriors=self.recognizer.skipped_results,
        )


def run_detector(detector: StreamingDetector, chunks) -> list[Inference]:
    """Push every chunk of an iterable, flush, and return all inferences."""
    results = []
    for chunk in chunks:
        results += detector.push(chunk)
    return results + detector.flush()


@dataclass
class Track:
    """A recorded posterior track: what the decision rule needs to be re-run offline.

    `times_ms (steps,)`, `posteriors (steps, classes)`, `levels_db (steps,)` (loudest frame
    since the previous step, for word segmentation) and the audio span of one model window.
    """

    times_ms: np.ndarray
    posteriors: np.ndarray
    levels_db: np.ndarray
    input_window_ms: float

    def events(self, labels: list[str], cfg: StreamConfig, threshold: float | None = None):
        """Keyword events `(label, time_ms, score)` of the decision rule over this track,
        exactly as the live detector makes them (threshold sweeps re-run only this)."""
        return recognize(self.times_ms, self.posteriors, labels, cfg, threshold, self.levels_db,
                         self.input_window_ms)  # fmt: skip


def record_track(detector: StreamingDetector, audio: np.ndarray, chunk_ms: float = 200.0):
    """Push `audio (samples,)` through the detector in chunks, flush its end: a `Track`."""
    step = max(1, int(detector.input_rate_hz * chunk_ms / 1000))
    inferences = []
    for start in range(0, len(audio), step):
        inferences += detector.push(audio[start : start + step])
    inferences += detector.flush()
    if not inferences:
        classes = len(detector.labels)
        return Track(np.zeros(0), np.zeros((0, classes)), np.zeros(0),
                     window_span_ms(detector.feature_cfg))  # fmt: skip
    return Track(
        np.array([i.time_ms for i in inferences]),
        np.stack([i.probabilities for i in inferences]),
        np.array([i.level_db for i in inferences]),
        window_span_ms(detector.feature_cfg),
    )
