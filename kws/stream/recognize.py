"""Streaming stage: turning a stream of posteriors into keyword decisions.

Semantics of TensorFlow's `RecognizeCommands` (speech_commands/recognize_commands.py and its
C++ twin; REFERENCE.md 'Streaming decisions'): keep the `(time, posteriors)` pairs of the last
`average_window_ms`; with fewer than `minimum_count` of them, or when they span less than a
quarter of the window, decide nothing; otherwise average them and fire the top label when its
averaged score exceeds `detection_threshold`, it differs from the last fired label, and more than
`suppression_ms` have passed since that one fired (after `_silence_` the wait counts as infinite).

This is the conjunction TensorFlow's Python `RecognizeCommands` (used by its streaming-accuracy
tool) implements: one spoken word fires once however long its posteriors stay high, and the same
keyword fires again only after some other label (usually silence) fired in between. Every label,
silence and unknown included, is tracked as "last fired"; whether a fired label counts as a
keyword is the caller's business (`is_keyword`).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from kws.config import StreamConfig
from kws.errors import UserError


@dataclass
class Decision:
    """One step of `RecognizeCommands`.

    Attributes:
        label: top label of the averaged posteriors (the last fired label while undecided).
        score: its averaged score (0.0 while undecided).
        is_new_command: True when this step fires `label`.
        time_ms: stream time of the step.
    """

    label: str
    score: float
    is_new_command: bool
    time_ms: float


class RecognizeCommands:
    """Averages posteriors over a sliding window and fires labels with suppression.

    Args:
        labels: class names, in the model's output order.
        average_window_ms: length of the averaging window.
        detection_threshold: averaged score a label must exceed to fire.
        suppression_ms: time after a firing during which no label can fire.
        minimum_count: fewest results in the window for a decision.
    """

    def __init__(
        self,
        labels: list[str],
        average_window_ms: float = 500.0,
        detection_threshold: float = 0.7,
        suppression_ms: float = 500.0,
        minimum_count: int = 4,
    ):
        if average_window_ms <= 0 or minimum_count < 1:
            raise UserError(
                f"stream.average_window_ms ({average_window_ms}) must be > 0 and "
                f"stream.minimum_count ({minimum_count}) >= 1"
            )
        self.labels = list(labels)
        self.average_window_ms = float(average_window_ms)
        self.detection_threshold = float(detection_threshold)
        self.suppression_ms = float(suppression_ms)
        self.minimum_count = int(minimum_count)
        self._results: deque[tuple[float, np.ndarray]] = deque()
        self._sum = np.zeros(len(self.labels))
        self._last_label = "_silence_"
        self._last_time_ms = -np.inf

    @classmethod
    def from_config(cls, labels: list[str], cfg: StreamConfig) -> RecognizeCommands:
        return cls(
            labels,
            average_window_ms=cfg.average_window_ms,
            detection_threshold=cfg.detection_threshold,
            suppression_ms=cfg.suppression_ms,
            minimum_count=cfg.minimum_count,
        )

    def reset(self) -> None:
        self._results.clear()
        self._sum = np.zeros(len(self.labels))
        self._last_label = "_silence_"
        self._last_time_ms = -np.inf

    def process(self, time_ms: float, scores: np.ndarray) -> Decision:
        """Add the posteriors `(classes,)` observed at `time_ms` and decide.

        Raises:
            ValueError: when `scores` has the wrong length or time goes backwards.
        """
        scores = np.asarray(scores, dtype=np.float64).reshape(-1)
        if scores.shape[0] != len(self.labels):
            raise ValueError(f"got {scores.shape[0]} scores for {len(self.labels)} labels")
        if self._results and time_ms < self._results[-1][0]:
            raise ValueError(f"time went backwards: {time_ms} ms after {self._results[-1][0]} ms")
        self._results.append((float(time_ms), scores))
        self._sum += scores
        # Keep results no older than the window (inclusive, as TensorFlow does).
        while self._results[0][0] < time_ms - self.average_window_ms:
            self._sum -= self._results.popleft()[1]
        span_ms = time_ms - self._results[0][0]
        if len(self._results) < self.minimum_count or span_ms < self.average_window_ms / 4:
            return Decision(self._last_label, 0.0, False, float(time_ms))
        average = self._sum / len(self._results)  # running sum: O(classes) per step
        top = int(np.argmax(average))
        label, score = self.labels[top], float(average[top])
        # After silence (or before anything fired) suppression does not apply.
        if self._last_label == "_silence_" or not np.isfinite(self._last_time_ms):
            since_last_ms = np.inf
        else:
            since_last_ms = time_ms - self._last_time_ms
        fires = (
            score > self.detection_threshold
            and label != self._last_label
            and since_last_ms > self.suppression_ms
        )
        if fires:
            self._last_label, self._last_time_ms = label, float(time_ms)
        return Decision(label, score, fires, float(time_ms))


def is_keyword(label: str) -> bool:
    """Silence and unknown (`_silence_`, `_unknown_`, any `_name_`) are never keywords."""
    return not (label.startswith("_") and label.endswith("_"))


def recognize(
    times_ms: np.ndarray,
    posteriors: np.ndarray,
    labels: list[str],
    cfg: StreamConfig,
    threshold: float | None = None,
) -> list[tuple[str, float, float]]:
    """Run `RecognizeCommands` over a recorded posterior track; return keyword firings.

    Args:
        times_ms: `(steps,)` stream times of the inferences.
        posteriors: `(steps, classes)` probabilities.
        labels: class names.
        cfg: averaging window, threshold, suppression and minimum count.
        threshold: overrides `cfg.detection_threshold` (threshold sweeps).

    Returns:
        `(label, time_ms, score)` for every firing of a keyword label, in time order.
    """
    recognizer = RecognizeCommands.from_config(labels, cfg)
    if threshold is not None:
        recognizer.detection_threshold = float(threshold)
    events = []
    for time_ms, scores in zip(times_ms, posteriors, strict=True):
        decision = recognizer.process(float(time_ms), scores)
        if decision.is_new_command and is_keyword(decision.label):
            events.append((decision.label, decision.time_ms, decision.score))
    return events
