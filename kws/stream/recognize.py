"""Streaming stage: turning a stream of posteriors into keyword events.

The rule (README 'Streaming semantics'; the same rule, step for step, runs on a device as
deploy/tflm/recognize_commands.cc, and tests/stream/test_recognize_commands_cc.py checks that
both emit identical events):

1. Smoothing, as TensorFlow's `RecognizeCommands` (speech_commands/recognize_commands.py):
   average the posteriors of the windows that ended within the last `average_window_ms`; decide
   nothing with fewer than `minimum_count` of them or when they span less than a quarter of it.
2. Firing: a keyword fires when it is the top label of the smoothed posteriors, its smoothed
   score exceeds `detection_threshold`, it is armed, and at least `suppression_ms` (a short
   refractory time) have passed since the last keyword event. Silence and unknown never fire;
   they only compete for the top.
3. Hysteresis: a keyword disarms when it fires and re-arms when its smoothed score falls below
   `release_fraction` x threshold, or once the model's window has left the word it fired on.
   Words come from a frame-level voice activity detector (level vs a tracked noise floor):
   speech after a pause of at least `word_gap_ms` starts a new word. An event is credited to
   the newest word that began at least half an averaging window before it (or, if newer, to
   the word that a restart of the smoothing less than an averaging window earlier began with).
   When the window no longer holds any audio from before a new word's pause, the keywords
   credited to older words re-arm and the smoothing restarts, so a repeat is judged only on
   windows that cannot contain the previous word.

Why not TensorFlow's rule (fire on a label change *and* after the suppression time): the same
keyword then fires again only after another label fired in between, and with a 1 s window the
posterior of a word repeated 0.3 s later never drops, so repeats merge into one event; a 500 ms
suppression also lets a wrong label that fired first block the right one. Why not micro_speech's
(label change *or* suppression passed): a word keeps its posterior high for about a second, so
one word fires every suppression time (three words, six events).
"""

from __future__ import annotations

import contextlib
import dataclasses
import sys
import warnings
from collections import deque
from dataclasses import dataclass

import numpy as np

from kws.config import StreamConfig
from kws.config.schema import check_fields

MAX_PENDING_WORDS = 8  # word starts awaiting their cutoff (the C++ twin has the same bound)


class StreamWarning(UserWarning):
    """Bad data in a stream that was repaired or decided anyway: non-finite audio or posteriors,
    a WAV stream on stdin that ends before the size its header declares."""


@contextlib.contextmanager
def plain_stream_warnings():
    """Show `StreamWarning`s (repaired NaN/inf audio or posteriors) as "warning: ..." lines on
    stderr, like the rest of the CLI's notes (`kws demo`, `kws stream-eval`), not as Python's
    "demo.py:203: StreamWarning:" with a source line; other warnings keep Python's format."""
    with warnings.catch_warnings():
        shown = warnings.showwarning

        def show(message, category, filename, lineno, file=None, line=None):
            if not issubclass(category, StreamWarning):
                return shown(message, category, filename, lineno, file, line)
            print(f"warning: {message}", file=file or sys.stderr, flush=True)

        warnings.showwarning = show
        yield


@dataclass
class Decision:
    """One step of `RecognizeCommands`.

    Attributes:
        label: top label of the smoothed posteriors (the last fired keyword, or `_silence_`,
            while undecided).
        score: its smoothed score (0.0 while undecided).
        is_new_command: True when this step fires `label` (always a keyword).
        time_ms: stream time of the step.
    """

    label: str
    score: float
    is_new_command: bool
    time_ms: float


def is_keyword(label: str) -> bool:
    """Silence and unknown (`_silence_`, `_unknown_`, any `_name_`) are never keywords."""
    return not (label.startswith("_") and label.endswith("_"))


class RecognizeCommands:
    """Smoothed posteriors -> keyword events with hysteresis and word segmentation.

    Args:
        labels: class names, in the model's output order.
        average_window_ms: posteriors of windows ending this recently are averaged.
        detection_threshold: smoothed score a keyword must exceed to fire, in (0, 1).
        suppression_ms: refractory time after a keyword event.
        minimum_count: fewest posteriors in the averaging window for any decision.
        release_fraction: a fired keyword re-arms below this fraction of the threshold.
        word_gap_ms: a pause this long before speech starts a new word (0: no segmentation).
        vad_margin_db: a step is speech when its level is this far above the noise floor.
        noise_floor_rise_db_per_s: how fast the noise floor may rise (it falls at once).
        input_window_ms: the audio span of one model window (1000 ms for the defaults).

    Raises:
        ConfigError: for values out of range (the rules of `StreamConfig`'s fields).
    """

    def __init__(
        self,
        labels: list[str],
        average_window_ms: float = 500.0,
        detection_threshold: float = 0.7,
        suppression_ms: float = 200.0,
        minimum_count: int = 4,
        release_fraction: float = 0.5,
        word_gap_ms: float = 150.0,
        vad_margin_db: float = 6.0,
        noise_floor_rise_db_per_s: float = 5.0,
        input_window_ms: float = 1000.0,
    ):
        cfg = StreamConfig(
            average_window_ms=float(average_window_ms),
            detection_threshold=float(detection_threshold),
            suppression_ms=float(suppression_ms),
            minimum_count=int(minimum_count),
            release_fraction=float(release_fraction),
            word_gap_ms=float(word_gap_ms),
            vad_margin_db=float(vad_margin_db),
            noise_floor_rise_db_per_s=float(noise_floor_rise_db_per_s),
        )
        check_fields(cfg, "stream")  # each value's range, as at recipe load
        self.labels = list(labels)
        self.average_window_ms = cfg.average_window_ms
        self.detection_threshold = cfg.detection_threshold
        self.suppression_ms = cfg.suppression_ms
        self.minimum_count = cfg.minimum_count
        self.release_fraction = cfg.release_fraction
        self.word_gap_ms = cfg.word_gap_ms
        self.vad_margin_db = cfg.vad_margin_db
        self.noise_floor_rise_db_per_s = cfg.noise_floor_rise_db_per_s
        self.input_window_ms = float(input_window_ms)
        self._keyword = np.array([is_keyword(label) for label in self.labels])
        self.reset()

    @classmethod
    def from_config(
        cls, labels: list[str], cfg: StreamConfig, input_window_ms: float = 1000.0
    ) -> RecognizeCommands:
        return cls(
            labels,
            average_window_ms=cfg.average_window_ms,
            detection_threshold=cfg.detection_threshold,
            suppression_ms=cfg.suppression_ms,
            minimum_count=cfg.minimum_count,
            release_fraction=cfg.release_fraction,
            word_gap_ms=cfg.word_gap_ms,
            vad_margin_db=cfg.vad_margin_db,
            noise_floor_rise_db_per_s=cfg.noise_floor_rise_db_per_s,
            input_window_ms=input_window_ms,
        )

    def reset(self) -> None:
        """Forget the stream: empty smoothing, every keyword armed, no word seen."""
        self._results: deque[tuple[float, np.ndarray]] = deque()
        self._sum = np.zeros(len(self.labels))
        self._armed = np.ones(len(self.labels), dtype=bool)
        self._last_label = "_silence_"
        self._last_fire_ms = -np.inf
        self._last_time_ms: float | None = None
        self._floor_db: float | None = None
        self._floor_time_ms = 0.0
        self._in_speech = False
        self._last_speech_ms: float | None = None
        self._words = 0  # words started so far (index of the next one)
        self._onsets: deque[tuple[int, float]] = deque(maxlen=MAX_PENDING_WORDS)  # (word, ms)
        # (time_ms, word): from then on the window holds nothing from before that word's pause.
        self._cutoffs: deque[tuple[float, int]] = deque(maxlen=MAX_PENDING_WORDS)
        self._credit = np.full(len(self.labels), -1)  # word each keyword last fired on
        self._restart: tuple[float, int] | None = None  # (time_ms, word) of the last restart
        self.skipped_results = 0

    @property
    def release_level(self) -> float:
        return self.release_fraction * self.detection_threshold

    def process(
        self, time_ms: float, scores: np.ndarray, level_db: float | None = None
    ) -> Decision:
        """Add the posteriors `(classes,)` of the window ending at `time_ms` and decide.

        Args:
            time_ms: stream time of the window's end; never decreasing.
            scores: `(classes,)` probabilities; a step with a NaN/inf score is skipped (counted
                in `skipped_results`, warned once).
            level_db: loudest frame level (dBFS) since the previous step, for word
                segmentation; None or NaN: no level this step.

        Raises:
            ValueError: when `scores` has the wrong length or time goes backwards.
        """
        time_ms = float(time_ms)
        scores = np.array(scores, dtype=np.float64).reshape(-1)  # a copy: callers reuse buffers
        if scores.shape[0] != len(self.labels):
            raise ValueError(f"got {scores.shape[0]} scores for {len(self.labels)} labels")
        if self._last_time_ms is not None and time_ms < self._last_time_ms:
            raise ValueError(f"time went backwards: {time_ms} ms after {self._last_time_ms} ms")
        self._last_time_ms = time_ms
        if level_db is not None and np.isfinite(level_db) and self.word_gap_ms > 0:
            self._track_words(time_ms, float(level_db))
        while self._cutoffs and self._cutoffs[0][0] <= time_ms:
            word = self._cutoffs.popleft()[1]
            rearm = self._keyword & ~self._armed & (self._credit < word)
            if rearm.any():  # the window has left their words: judge the next on fresh windows
                self._armed |= rearm
                self._results.clear()
                self._sum[:] = 0.0
                self._restart = (time_ms, word)
        undecided = Decision(self._last_label, 0.0, False, time_ms)
        if not np.isfinite(scores).all():
            self.skipped_results += 1
            if self.skipped_results == 1:
                warnings.warn(
                    f"skipped posteriors with NaN/inf values at {time_ms / 1000:.2f} s (the "
                    "model produced non-finite scores); later ones are counted, not shown",
                    StreamWarning,
                    stacklevel=2,
                )
            return undecided
        self._results.append((time_ms, scores))
        self._sum += scores
        # Keep results no older than the window (inclusive, as TensorFlow does).
        while self._results[0][0] < time_ms - self.average_window_ms:
            self._sum -= self._results.popleft()[1]
        span_ms = time_ms - self._results[0][0]
        if len(self._results) < self.minimum_count or span_ms < self.average_window_ms / 4:
            return undecided
        average = self._sum / len(self._results)  # running sum: O(classes) per step
        self._armed |= average < self.release_level
        top = int(np.argmax(average))
        label, score = self.labels[top], float(average[top])
        fires = bool(
            self._keyword[top]
            and score > self.detection_threshold
            and self._armed[top]
            and time_ms - self._last_fire_ms >= self.suppression_ms
        )
        if fires:
            self._armed[top] = False
            self._credit[top] = self._word_for_event(time_ms)
            self._last_label, self._last_fire_ms = label, time_ms
        return Decision(label, score, fires, time_ms)

    def _word_for_event(self, time_ms: float) -> int:
        """The word an event at `time_ms` is credited to (-1: none known): the newest word heard
        for at least half an averaging window (long enough to carry the smoothed score), or,
        when newer, the word a recent restart began with (no window since holds older words)."""
        word = -1
        for index, onset_ms in reversed(self._onsets):
            if onset_ms <= time_ms - self.average_window_ms / 2:
                word = index
                break
        if self._restart is not None and time_ms - self._restart[0] <= self.average_window_ms:
            word = max(word, self._restart[1])
        return word

    def _track_words(self, time_ms: float, level_db: float) -> None:
        """Voice activity on frame levels; a new word after a pause schedules a re-arm."""
        if self._floor_db is None:
            self._floor_db = level_db
        else:
            rise_db = self.noise_floor_rise_db_per_s * (time_ms - self._floor_time_ms) / 1000.0
            self._floor_db = min(level_db, self._floor_db + rise_db)
        self._floor_time_ms = time_ms
        if level_db <= self._floor_db + self.vad_margin_db:
            self._in_speech = False
            return
        if not self._in_speech and (
            self._last_speech_ms is None or time_ms - self._last_speech_ms >= self.word_gap_ms
        ):
            self._onsets.append((self._words, time_ms))
            if self._last_speech_ms is not None:
                # The first window holding nothing from before the pause ends here:
                self._cutoffs.append((self._last_speech_ms + self.input_window_ms, self._words))
            self._words += 1
        self._in_speech = True
        self._last_speech_ms = time_ms


def recognize(
    times_ms: np.ndarray,
    posteriors: np.ndarray,
    labels: list[str],
    cfg: StreamConfig,
    threshold: float | None = None,
    levels_db: np.ndarray | None = None,
    input_window_ms: float = 1000.0,
) -> list[tuple[str, float, float]]:
    """Run `RecognizeCommands` over a recorded posterior track; return keyword firings.

    Args:
        times_ms: `(steps,)` stream times of the inferences.
        posteriors: `(steps, classes)` probabilities.
        labels: class names.
        cfg: the decision settings.
        threshold: overrides `cfg.detection_threshold` (threshold sweeps).
        levels_db: `(steps,)` frame levels (`Inference.level_db`); None: no word segmentation,
            so a word repeated without its score falling below the release level fires once.
        input_window_ms: audio span of one model window.

    Returns:
        `(label, time_ms, score)` for every keyword event, in time order.
    """
    if threshold is not None:
        cfg = dataclasses.replace(cfg, detection_threshold=float(threshold))
    recognizer = RecognizeCommands.from_config(labels, cfg, input_window_ms)
    levels = [None] * len(times_ms) if levels_db is None else levels_db
    events = []
    for time_ms, scores, level in zip(times_ms, posteriors, levels, strict=True):
        decision = recognizer.process(float(time_ms), scores, level)
        if decision.is_new_command:
            events.append((decision.label, decision.time_ms, decision.score))
    return events
