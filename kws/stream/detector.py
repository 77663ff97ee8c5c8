"""Streaming stage: the keyword detector every source (microphone, WAV, stdin) feeds.

Audio chunks of any length and sample rate go in; the detector resamples them to the model's
rate (soxr's streaming resampler), computes only the feature frames the new samples complete
(numpy front end; the same per-frame math as the batch features, the new frames of a chunk in
one call), and every `stride_ms` runs
the model on the latest window `(1, frames, coeffs)`. Posteriors go through `RecognizeCommands`
(TensorFlow's smoothing and suppression) and keyword firings come out as `KeywordEvent`s.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass

import numpy as np

from kws.config import FeatureConfig, StreamConfig
from kws.errors import UserError
from kws.stream.backends import Backend
from kws.stream.recognize import Decision, RecognizeCommands, is_keyword

LATENCY_HISTORY = 10_000


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


@dataclass
class DetectorStats:
    """Throughput so far. `speed_x_realtime` = audio seconds / compute seconds (> 1 is good).

    The mean covers every inference; the percentiles the last `LATENCY_HISTORY` of them (a live
    session runs for hours).
    """

    audio_s: float
    compute_s: float
    inferences: int
    model_s: float
    latency_mean_ms: float
    latency_p50_ms: float
    latency_p95_ms: float

    @property
    def real_time_factor(self) -> float:
        """Compute time / audio time (< 1 keeps up with real time)."""
        return self.compute_s / self.audio_s if self.audio_s else float("nan")

    @property
    def speed_x_realtime(self) -> float:
        return self.audio_s / self.compute_s if self.compute_s else float("inf")


def to_mono_float(chunk: np.ndarray) -> np.ndarray:
    """Any PCM chunk `(samples,)` or `(samples, channels)` -> mono float32 in [-1, 1]."""
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


def stride_frames(stream_cfg: StreamConfig, feature_cfg: FeatureConfig) -> int:
    """Inference stride in feature frames; the stride must be a whole number of hops."""
    ratio = stream_cfg.stride_ms / feature_cfg.hop_ms
    if ratio < 1 - 1e-9 or abs(ratio - round(ratio)) > 1e-6:
        raise UserError(
            f"stream.stride_ms={stream_cfg.stride_ms:g} must be a positive multiple of "
            f"features.hop_ms={feature_cfg.hop_ms:g} (e.g. stream.stride_ms="
            f"{feature_cfg.hop_ms:g} or {2 * feature_cfg.hop_ms:g})"
        )
    return int(round(ratio))


class StreamingDetector:
    """Keyword detection on an open-ended audio stream.

    Args:
        backend: model behind `Backend.__call__` (features `(1, frames, coeffs)` -> probs).
        feature_cfg: front end (default: the backend's).
        labels: class names (default: the backend's).
        stream_cfg: stride, averaging window, threshold, suppression, minimum count.
        input_sample_rate_hz: rate of the chunks pushed (default: the model's rate).
    """

    def __init__(
        self,
        backend: Backend,
        feature_cfg: FeatureConfig | None = None,
        labels: list[str] | None = None,
        stream_cfg: StreamConfig | None = None,
        input_sample_rate_hz: int | None = None,
    ):
        from kws.features import NumpyFrontEnd

        self.backend = backend
        self.feature_cfg = feature_cfg or backend.feature_cfg
        self.labels = list(labels or backend.labels)
        self.stream_cfg = stream_cfg or StreamConfig()
        self.stride_frames = stride_frames(self.stream_cfg, self.feature_cfg)
        self.front_end = NumpyFrontEnd(self.feature_cfg)
        self.recognizer = RecognizeCommands.from_config(self.labels, self.stream_cfg)
        cfg = self.feature_cfg
        self.rate_hz = cfg.sample_rate_hz
        self.input_rate_hz = int(input_sample_rate_hz or cfg.sample_rate_hz)
        self._resampler = None
        if self.input_rate_hz != self.rate_hz:
            import soxr

            self._resampler = soxr.ResampleStream(
                self.input_rate_hz, self.rate_hz, 1, dtype="float32", quality="HQ"
            )
        self._pending = np.zeros(0, np.float32)  # samples from the next frame's start on
        self._ring = np.zeros((cfg.num_frames, cfg.num_coeffs), np.float32)
        self.frames_done = 0
        self._audio_samples = 0
        self._compute_s = 0.0
        self._latencies_ms: deque[float] = deque(maxlen=LATENCY_HISTORY)
        self._model_s = 0.0
        self._inferences = 0
        self.last: Inference | None = None

    def push(self, chunk: np.ndarray) -> list[Inference]:
        """Feed a chunk (int16 or float, `(samples,)` or `(samples, channels)`) at the input rate.

        Returns:
            The inferences the chunk completed, oldest first (possibly none).
        """
        start = time.perf_counter()
        audio = to_mono_float(chunk)
        if self._resampler is not None:
            audio = self._resampler.resample_chunk(audio, last=False)
        results = self._consume(audio)
        self._compute_s += time.perf_counter() - start
        return results

    def flush(self) -> list[Inference]:
        """End of stream: drain the resampler's tail (no-op without resampling)."""
        if self._resampler is None:
            return []
        start = time.perf_counter()
        results = self._consume(self._resampler.resample_chunk(np.zeros(0, np.float32), last=True))
        self._compute_s += time.perf_counter() - start
        return results

    def _consume(self, audio: np.ndarray) -> list[Inference]:
        cfg = self.feature_cfg
        hop, window, size = cfg.hop_samples, cfg.window_samples, cfg.num_frames
        self._audio_samples += audio.shape[0]
        self._pending = np.concatenate([self._pending, audio.astype(np.float32, copy=False)])
        # `_pending` starts at the next frame's first sample; frames it completes: n.
        n = 0 if self._pending.shape[0] < window else 1 + (self._pending.shape[0] - window) // hop
        if n == 0:
            return []
        # Only the new frames, in one numpy call (the same per-frame math as batch features).
        frames = self.front_end.features(self._pending[: (n - 1) * hop + window])
        self._pending = self._pending[n * hop :]  # drop samples no future frame needs
        results = []
        for frame in frames:  # (coeffs,) each; run the model whenever a stride completes
            self._ring[self.frames_done % size] = frame
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
        decision = self.recognizer.process(time_ms, probabilities)
        event = None
        if decision.is_new_command and is_keyword(decision.label):
            event = KeywordEvent(decision.label, time_ms, decision.score)
        self.last = Inference(time_ms, probabilities, latency_ms, decision, event)
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
        )


def run_detector(detector: StreamingDetector, chunks) -> list[Inference]:
    """Push every chunk of an iterable, flush, and return all inferences."""
    results = []
    for chunk in chunks:
        results += detector.push(chunk)
    return results + detector.flush()
