"""Posterior and level tracks for testing keyword decisions without a model.

`word_track` emulates what a detector with a 1 s window reports: a window's top label is the
word most of whose audio it holds (at least half of it), else silence, so the posterior of a
word repeated 0.3 s later never drops (as the trained tone model's does not); a step's level
is loud while a 40 ms frame overlaps a word.
"""

from __future__ import annotations

import numpy as np

LABELS = ["_silence_", "_unknown_", "yes", "no"]
STRIDE_MS = 20.0
WINDOW_MS = 1000.0
FRAME_MS = 40.0


def onehot(label: str, score: float = 1.0, labels: list[str] = LABELS) -> np.ndarray:
    """`(classes,)` with `score` on `label` and the rest spread evenly."""
    scores = np.full(len(labels), (1.0 - score) / (len(labels) - 1))
    scores[labels.index(label)] = score
    return scores


def word_track(
    words: list[tuple[str, float, float]],
    total_ms: float,
    rng: np.random.Generator | None = None,
    peak: float = 0.9,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A stream of `(label, onset_ms, duration_ms)` words as the detector would see it.

    Returns:
        times_ms `(steps,)` (window ends every 20 ms from 1 s on), posteriors
        `(steps, classes)` float32, levels_db `(steps,)`.
    """
    times = np.arange(WINDOW_MS, total_ms + 1e-9, STRIDE_MS)
    posteriors, levels = [], []
    for t in times:
        inside = [
            (max(0.0, min(t, onset + length) - max(t - WINDOW_MS, onset)) / length, label)
            for label, onset, length in words
        ]
        fraction, label = max(inside, default=(0.0, "_silence_"))
        scores = onehot(label if fraction >= 0.5 else "_silence_", peak)
        loud = any(t - STRIDE_MS - FRAME_MS < onset + length and t > onset
                   for _, onset, length in words)  # fmt: skip
        level = -15.0 if loud else -50.0
        if rng is not None:
            scores = scores + rng.uniform(0, 0.15, scores.shape)
            scores /= scores.sum()
            level += rng.normal(0, 1.0)
        posteriors.append(scores)
        levels.append(level)
    return times, np.asarray(posteriors, np.float32), np.asarray(levels)


def spaced(
    label_list: list[str], gap_ms: float, length_ms: float = 500.0, start_ms: float = 1200.0
):
    """Words of `length_ms` with `gap_ms` of pause between them: `(label, onset, length)`."""
    return [(label, start_ms + i * (length_ms + gap_ms), length_ms)
            for i, label in enumerate(label_list)]  # fmt: skip
