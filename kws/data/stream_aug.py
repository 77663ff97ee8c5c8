"""Stream-aware training windows: what a sliding 1 s window sees in continuous speech.

A streaming detector runs the model on every window of the stream, so most windows hold a
word at an offset clip training never shows: cut at the window's edge, next to the tail of the
previous word or the head of the next one. For a share `data.stream_fraction` of the training
examples, a training batch is rebuilt like that (all on the batch's device):

1. the clip moves by an offset uniform in +-`data.stream_shift_ms` (zero fill), so its speech
   may leave the window;
2. a keyword with less than `data.min_keyword_fraction` of its speech inside becomes
   `_unknown_` (a detector must not fire on half a word);
3. with probability `data.neighbour_probability` a neighbouring clip (any training word) fills
   the side the shift exposed, with at most 80% of `min_keyword_fraction` of its speech inside,
   so it is never a detectable keyword itself.

Where the speech of a clip lies (`speech_extents`) is measured once per bank: the span of
10 ms frames within 30 dB of the clip's loudest frame.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from kws.data.augment import integers, uniform
from kws.data.gsc import UNKNOWN_LABEL
from kws.errors import UserError

FRAME_SAMPLES = 160  # 10 ms at 16 kHz
SPEECH_RANGE_DB = 30.0


def speech_extents(bank: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and end sample of the speech in each clip of an int16 bank `(clips, samples)`.

    Returns:
        `(start, end)`, each `(clips,)` int64, `end > start` (a silent clip spans the whole clip).
    """
    clips, samples = bank.shape
    frames = samples // FRAME_SAMPLES
    out_start = np.zeros(clips, np.int64)
    out_end = np.full(clips, samples, np.int64)
    for lo in range(0, clips, 4096):  # bounded memory: ~4096 x 100 frames at a time
        chunk = bank[lo : lo + 4096, : frames * FRAME_SAMPLES].astype(np.float32)
        energy = (chunk.reshape(len(chunk), frames, FRAME_SAMPLES) ** 2).mean(axis=2) + 1e-6
        loud = energy >= energy.max(axis=1, keepdims=True) * 10 ** (-SPEECH_RANGE_DB / 10)
        first = loud.argmax(axis=1)
        last = frames - 1 - loud[:, ::-1].argmax(axis=1)
        out_start[lo : lo + len(chunk)] = first * FRAME_SAMPLES
        out_end[lo : lo + len(chunk)] = (last + 1) * FRAME_SAMPLES
    return out_start, out_end


def shift_by(audio: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Move each row of `(batch, samples)` right by `shift (batch,)` samples, zero-filled."""
    samples = audio.shape[1]
    src = torch.arange(samples, device=audio.device).unsqueeze(0) - shift.unsqueeze(1)
    valid = (src >= 0) & (src < samples)
    return torch.gather(audio, 1, src.clamp(0, samples - 1)) * valid


def visible_fraction(start, end, shift, samples: int) -> torch.Tensor:
    """Share of the speech `[start, end)` inside `[0, samples)` after moving it by `shift`."""
    inside = (torch.clamp(end + shift, max=samples) - torch.clamp(start + shift, min=0)).clamp(0)
    return inside / (end - start).clamp(min=1)


def stream_windows(
    audio: torch.Tensor,
    labels: torch.Tensor,
    eligible: torch.Tensor,
    extents: tuple[torch.Tensor, torch.Tensor],
    neighbours: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    keyword: torch.Tensor,
    unknown: int,
    settings: tuple[float, int, float, float],
    generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rebuild some examples of a training batch as stream windows (see the module docstring).

    Args:
        audio: `(batch, samples)` float clips.
        labels: `(batch,)` class indices.
        eligible: `(batch,)` bool, the examples that hold a word (not silence).
        extents: `(start, end)` `(batch,)` speech extents of the batch's clips.
        neighbours: `(audio (batch, samples), start (batch,), end (batch,))` of random other
            training clips, one candidate neighbour per example.
        keyword: `(classes,)` bool, which classes are keywords.
        unknown: index of `_unknown_`.
        settings: `(stream_fraction, max_shift_samples, min_keyword_fraction,
            neighbour_probability)`.
        generator: the batch's random generator (on the batch's device), or a
            `kws.data.augment.RowDraws` for this process's rows of it.

    Returns:
        `(audio, labels)` with the chosen examples rebuilt and relabelled.
    """
    fraction, max_shift, min_inside, p_neighbour = settings
    batch, samples = audio.shape
    dev = audio.device
    start, end = extents
    chosen = (uniform(generator, batch, device=dev) < fraction) & eligible
    shift = integers(generator, -max_shift, max_shift + 1, batch, device=dev)
    shift = shift * chosen
    out = shift_by(audio, shift)
    inside = visible_fraction(start, end, shift, samples)
    cut = chosen & keyword[labels] & (inside < min_inside)
    labels = torch.where(cut, torch.full_like(labels, unknown), labels)
    n_audio, n_start, n_end = neighbours
    with_neighbour = chosen & (uniform(generator, batch, device=dev) < p_neighbour)
    part = uniform(generator, batch, device=dev) * 0.8 * min_inside
    length = (n_end - n_start).clamp(min=1)
    inside_samples = (part * length).long()
    # the exposed side: a word moved right leaves room on the left, and the other way round
    left = shift > 0
    n_shift = torch.where(left, inside_samples - n_end, samples - inside_samples - n_start)
    gain = 0.5 + 0.5 * uniform(generator, batch, 1, device=dev)
    neighbour = shift_by(n_audio, n_shift) * gain * with_neighbour.unsqueeze(1)
    return (out + neighbour).clamp(-1.0, 1.0), labels


def load_hard_negatives(
    paths: str | Path | list, clip_samples: int, labels: list[str]
) -> np.ndarray:
    """Mined hard-negative windows (`kws stream-eval RUN --benchmark --mine N`): int16
    `(windows, clip_samples)` from one .npy file or a list of them (mining rounds, joined in
    order), to be trained as `_unknown_`.

    Raises:
        UserError: a missing or malformed file, an entry that is not a path, or `labels`
            without an `_unknown_` class.
    """
    if UNKNOWN_LABEL not in labels:
        raise UserError("data.hard_negatives needs a task with an _unknown_ class")
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    files = [_hard_negative_file(p, clip_samples) for p in paths if p]
    return np.concatenate(files) if files else np.zeros((0, clip_samples), np.int16)


def _hard_negative_file(path, clip_samples: int) -> np.ndarray:
    if not isinstance(path, (str, Path)):
        raise UserError(
            f"data.hard_negatives holds {path!r}; give file paths, e.g. "
            '"data.hard_negatives=[round1.npy,round2.npy]"'
        )
    path = Path(path)
    if not path.is_file():
        raise UserError(
            f"data.hard_negatives='{path}' does not exist; mine it with "
            "`kws stream-eval RUN --benchmark --mine N` or clear data.hard_negatives"
        )
    windows = np.load(path, allow_pickle=False)
    if windows.dtype != np.int16 or windows.ndim != 2 or windows.shape[1] != clip_samples:
        raise UserError(
            f"'{path}' holds {windows.dtype} {windows.shape}; expected int16 (windows, "
            f"{clip_samples}) clips of the front end's length"
        )
    return windows
