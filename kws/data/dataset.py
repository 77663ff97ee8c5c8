"""Dataset stage: index a data root, choose examples per split, check them, decode once, batch.

Every clip is decoded once into an int16 bank `(clips, samples)` (`kws.data.bank`, cached on
disk); epochs never re-read WAV files. On CUDA the bank, the noise and all augmentation live on
the GPU. Example selection follows TensorFlow's speech_commands `input_data.py`: silence and
unknown examples each number a percentage of a split's wanted-word examples. An official GSC
test set (`_silence_/`, `_unknown_/` folders) is used as it ships instead: every clip is a test
example of its folder's label. Before anything trains, `kws.data.checks` refuses data that
would train a model silently unable to do its job.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from kws.config import DataConfig, RecipeConfig
from kws.data import augment as aug
from kws.data.audio import AudioReport
from kws.data.bank import decode_bank, load_noise
from kws.data.checks import check_keyword_folders, check_training_examples, check_training_index
from kws.data.gsc import (
    LAYOUT_FOLDERS,
    LAYOUT_TEST_SET,
    SILENCE_LABEL,
    UNKNOWN_LABEL,
    Clip,
    ClipIndex,
    index_folder,
    labels_for,
    task_words,
)
from kws.data.stream_aug import load_hard_negatives, speech_extents, stream_windows
from kws.distributed import shard_bounds
from kws.errors import UserError
from kws.features import TorchFrontEnd

SPLIT_NAMES = ("training", "validation", "testing", "holdout")


@dataclass
class SplitExamples:
    """One split's examples: bank rows `(examples,)` (-1 = silence) and labels `(examples,)`."""

    bank_rows: np.ndarray  # (examples,) int64 row in the bank, -1 for silence
    labels: np.ndarray  # (examples,) int64


def _split_of(clip: Clip, held: tuple[str, ...]) -> str:
    return "holdout" if held and clip.speaker.startswith(held) else clip.split


def select_examples(
    clips: list[Clip], cfg: DataConfig, labels: list[str], layout: str = LAYOUT_FOLDERS
) -> dict:
    """Per split, which clips (by index into `clips`, -1 for silence) with which label.

    In the official test-set layout every clip is used under its folder's label (folders that
    are not a class count as `_unknown_`) and no silence is invented; otherwise silence and
    unknown examples are added per TensorFlow's `input_data.py`.
    """
    rng = random.Random(cfg.seed)
    label_index = {name: i for i, name in enumerate(labels)}
    held = tuple(cfg.exclude_speakers)
    per_word: Counter = Counter()
    wanted: dict[str, list] = {s: [] for s in SPLIT_NAMES}
    unknown: dict[str, list] = {s: [] for s in SPLIT_NAMES}
    as_shipped = layout == LAYOUT_TEST_SET
    for i, clip in enumerate(clips):
        if cfg.max_clips_per_word and per_word[clip.word] >= cfg.max_clips_per_word:
            continue
        per_word[clip.word] += 1
        split = _split_of(clip, held)
        if clip.word in label_index:
            wanted[split].append((i, label_index[clip.word]))
        elif UNKNOWN_LABEL in label_index:
            target = wanted if as_shipped else unknown
            target[split].append((i, label_index[UNKNOWN_LABEL]))
    result = {}
    for split in SPLIT_NAMES:
        examples = list(wanted[split])
        if UNKNOWN_LABEL in label_index and not as_shipped:
            count = math.ceil(len(examples) * cfg.unknown_percent / 100)
            rng.shuffle(unknown[split])
            examples += unknown[split][:count]
        if SILENCE_LABEL in label_index and not as_shipped:
            count = math.ceil(len(wanted[split]) * cfg.silence_percent / 100)
            examples += [(-1, label_index[SILENCE_LABEL])] * count
        rng.shuffle(examples)
        rows = np.array([e[0] for e in examples], dtype=np.int64)
        result[split] = SplitExamples(rows, np.array([e[1] for e in examples], dtype=np.int64))
    return result


class KwsData:
    """Examples of every split over one int16 audio bank, batched as features on `device`.

    Build it from a folder with `build_data`; the constructor takes arrays so benchmarks and
    tests can feed any bank (e.g. random audio at GSC scale).
    """

    def __init__(
        self,
        cfg: RecipeConfig,
        device: torch.device,
        labels: list[str],
        bank: np.ndarray,
        examples: dict,
        noise: np.ndarray,
        noise_lengths: list[int],
        clips: list[Clip] | None = None,
        layout: str = LAYOUT_FOLDERS,
        audio_report: AudioReport | None = None,
    ):
        self.cfg, self.device, self.labels, self.clips = cfg, device, list(labels), clips or []
        self.layout = layout  # see kws.data.gsc.detect_layout; `kws evaluate` prints it
        self.audio_report = audio_report or AudioReport()  # skipped / repaired files
        self.feature_cfg = cfg.features
        self.bank = torch.from_numpy(bank).to(device)  # (clips, samples) int16
        self.examples = examples
        self.noise = torch.from_numpy(noise).to(device)  # (files, max_len) float32
        self.noise_lengths = torch.tensor(noise_lengths, dtype=torch.long, device=device)
        self.front_end = TorchFrontEnd(self.feature_cfg).to(device)
        self._eval_cache: dict = {}
        self._stream = None  # speech extents and class facts for stream windows, built lazily

    def _stream_facts(self):
        """Speech extents of the bank and which classes are keywords (stream windows)."""
        if self._stream is None:
            start, end = speech_extents(self.bank.cpu().numpy())
            keyword = torch.tensor(
                [not (name.startswith("_") and name.endswith("_")) for name in self.labels],
                device=self.device,
            )
            training = torch.from_numpy(self.examples["training"].bank_rows).to(self.device)
            self._stream = (
                torch.from_numpy(start).to(self.device),
                torch.from_numpy(end).to(self.device),
                keyword,
                training[training >= 0],
            )
        return self._stream

    def require_examples(self, split: str) -> None:
        """Raise a UserError when `split` is unknown or empty (never report 0% of 0 examples)."""
        if split not in self.examples:
            raise UserError(f"unknown split '{split}'; choose one of {', '.join(SPLIT_NAMES)}")
        if len(self.examples[split].labels):
            return
        root = self.cfg.data.root
        if split == "holdout":
            held = self.cfg.data.exclude_speakers
            why = (
                f"data.exclude_speakers={list(held)} matches no speaker there"
                if held
                else "no speakers are held out: train with data.exclude_speakers=[PREFIX] "
                "(e.g. [flite-]) to hold some out"
            )
        elif self.layout == LAYOUT_TEST_SET:
            why = "an official test set has only the testing split: use --split testing"
        else:
            why = "its speakers all landed in other splits; add clips from more speakers"
        raise UserError(f"the {split} split of '{root}' has no examples: {why}")

    def num_examples(self, split: str) -> int:
        return len(self.examples[split].labels)

    def class_counts(self, split: str) -> dict[str, int]:
        counts = np.bincount(self.examples[split].labels, minlength=len(self.labels))
        return {name: int(c) for name, c in zip(self.labels, counts)}

    def _audio(self, rows: torch.Tensor, labels: torch.Tensor, augmenting: bool, generator):
        """Audio `(batch, samples)` float32 in [-1, 1] for bank rows (-1 = silence), and the
        labels (stream windows relabel keywords cut at the window's edge)."""
        d = self.cfg.data
        is_silence = rows < 0
        audio = self.bank[rows.clamp(min=0)].float() / 32768.0
        if augmenting and d.stream_fraction > 0 and UNKNOWN_LABEL in self.labels:
            audio, labels = self._stream_windows(audio, rows, labels, is_silence, generator)
        if augmenting:
            audio = aug.speed_perturb(audio, d.speed_perturb, generator)
            rate = self.feature_cfg.sample_rate_hz
            audio = aug.time_shift(audio, int(d.time_shift_ms * rate / 1000), generator)
            audio = aug.random_eq(audio, d.eq_tilt_db, d.eq_peak_db, rate, generator)
            prob, vol = d.background_probability, d.background_volume
        else:
            prob, vol = 0.0, 0.0  # evaluation: clean words; silence still gets noise
        audio = aug.mix_background(
            audio, is_silence, self.noise, self.noise_lengths, prob, vol, d.silence_volume,
            generator, tuple(d.background_snr_db) or None,
        )  # fmt: skip
        return audio, labels

    def _stream_windows(self, audio, rows, labels, is_silence, generator):
        """Rebuild some training examples as a sliding window sees them (`stream_aug`)."""
        d = self.cfg.data
        start, end, keyword, pool = self._stream_facts()
        safe = rows.clamp(min=0)
        pick = aug.integers(generator, 0, len(pool), len(rows), device=self.device)
        n_rows = pool[pick]
        neighbours = (self.bank[n_rows].float() / 32768.0, start[n_rows], end[n_rows])
        rate = self.feature_cfg.sample_rate_hz
        settings = (
            d.stream_fraction, int(d.stream_shift_ms * rate / 1000), d.min_keyword_fraction,
            d.neighbour_probability,
        )  # fmt: skip
        return stream_windows(
            audio, labels, ~is_silence, (start[safe], end[safe]), neighbours, keyword,
            self.labels.index(UNKNOWN_LABEL), settings, generator,
        )  # fmt: skip

    def _features(self, rows: torch.Tensor, labels: torch.Tensor, augment: bool, draws, spec):
        """Features `(batch, frames, coeffs)` of bank rows and their labels: audio,
        augmentation, front end, SpecAugment (`compile_pipeline` fuses this)."""
        d = self.cfg.data
        audio, labels = self._audio(rows, labels, augment, draws)
        warp = aug.vtlp_factors(spec, len(rows), d.vtlp_warp if augment else 0.0, audio.device)
        features = self.front_end(audio, warp)
        if augment and d.spec_augment:
            masks = (d.spec_time_masks, d.spec_time_mask_frames, d.spec_freq_masks)
            features = aug.spec_augment(features, *masks, d.spec_freq_mask_bins, spec)
        return features, labels

    def compile_pipeline(self, enabled: bool = True) -> None:
        """Fuse augmentation and the front end of training batches into a few kernels
        (torch.compile; `train.compile_data`), or go back to eager with `enabled=False`. The
        random draws stay the generators' own, so batches hold the same numbers to float
        rounding."""
        eager = KwsData._features.__get__(self)
        self._features = torch.compile(eager, dynamic=False) if enabled else eager

    def audio_batches(
        self,
        split: str,
        batch_size: int,
        shuffle: bool = False,
        augment: bool = False,
        seed: int = 0,
        shard: tuple[int, int] = (0, 1),
    ) -> Iterator:
        """Yield `(audio (batch, samples), labels (batch,))` on the data's device.

        Without augmentation the noise of silence examples is drawn from a generator seeded by
        `seed`, so evaluation is repeatable. With `shard=(rank, world)` each yielded batch is
        this rank's contiguous part of the global batch of `batch_size` (kws.distributed),
        drawn exactly as one process draws it; a last training batch smaller than the world is
        dropped (every rank must step).
        """
        for rows, labels, draws, _ in self._parts(split, batch_size, shuffle, augment, seed, shard):
            yield self._audio(rows, labels, augment, draws)

    def _parts(self, split, batch_size, shuffle, augment, seed, shard) -> Iterator:
        """(bank rows, labels, draws, (total, lo, hi)) of this rank's part of every batch."""
        self.require_examples(split)
        ex = self.examples[split]
        generator = torch.Generator(device=self.device).manual_seed(seed)
        order = (
            torch.randperm(len(ex.labels), generator=torch.Generator().manual_seed(seed))
            if shuffle
            else torch.arange(len(ex.labels))
        )
        rows_all = torch.from_numpy(ex.bank_rows).to(self.device)
        labels_all = torch.from_numpy(ex.labels).to(self.device)
        order = order.to(self.device)
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            total, (lo, hi), draws = len(idx), (0, len(idx)), generator
            if shard[1] > 1:
                if augment and total < shard[1]:
                    return  # a last batch some ranks get nothing of: dropped on every rank
                lo, hi = shard_bounds(total, shard)
                if lo == hi:
                    continue  # evaluation: the ranks that got rows of the last batch count them
                draws, idx = aug.RowDraws(generator, total, lo, hi), idx[lo:hi]
            yield rows_all[idx], labels_all[idx], draws, (total, lo, hi)

    def batches(
        self,
        split: str,
        batch_size: int,
        shuffle: bool = False,
        augment: bool = False,
        seed: int = 0,
        shard: tuple[int, int] = (0, 1),
        with_rows: bool = False,
    ) -> Iterator:
        """Yield `(features (batch, frames, coeffs), labels (batch,))` on the data's device.

        `shard=(rank, world)`: this rank's part of every global batch (see `audio_batches`).
        `with_rows` (augmented batches only, else ValueError) adds each example's bank row
        `(batch,)`, -1 = silence, for per-clip soft targets (kws.train.distill)."""
        if with_rows and not augment:
            raise ValueError("with_rows is for training batches (augment=True)")
        if not shuffle and not augment:
            # Evaluation batches are deterministic: compute their features once per run.
            key = (split, batch_size, seed, shard)
            if key not in self._eval_cache:
                self._eval_cache[key] = [
                    (self.front_end(a), y)
                    for a, y in self.audio_batches(split, batch_size, seed=seed, shard=shard)
                ]
            yield from self._eval_cache[key]
            return
        generator = torch.Generator(device=self.device).manual_seed(seed + 1)
        parts = self._parts(split, batch_size, shuffle, augment, seed, shard)
        for rows, labels, draws, (total, lo, hi) in parts:
            spec = generator if shard[1] == 1 else aug.RowDraws(generator, total, lo, hi)
            features, labels = self._features(rows, labels, augment, draws, spec)
            yield (features, labels, rows) if with_rows else (features, labels)


def build_data(
    cfg: RecipeConfig,
    device: torch.device | str = "cpu",
    progress: bool = True,
    check_training: bool = True,
) -> KwsData:
    """Index a data root, select and check examples, decode (or load the cached bank), and move
    everything to `device`.

    Args:
        cfg: the recipe (its `data` and `features` sections are used).
        device: where the bank and batches live.
        progress: show a decoding progress bar.
        check_training: refuse data that cannot train (`check_training_examples`); False for
            evaluation only (`kws evaluate`), where only the evaluated split must be non-empty.

    Raises:
        UserError: no clips, missing keywords, data that cannot train.
    """
    root, d = Path(cfg.data.root), cfg.data
    words = f" --words {' '.join(d.words)}" if d.task == "custom" and d.words else ""
    make = f"make it with `kws data synth --out {root}{words}` or `kws data download`"
    if not root.is_dir():
        why = "is a file, not a folder" if root.exists() else "does not exist"
        raise UserError(f"data folder '{root}' {why}; is data.root right? Or {make}")
    index = index_folder(root, d.validation_percent, d.testing_percent)
    if not index.clips:
        raise UserError(f"no '<word>/*.wav' clips under '{root}'; is data.root right? Or {make}")
    wanted = task_words(cfg.data.task, cfg.data.words, index.words)
    check_keyword_folders(wanted, index, root)
    labels = labels_for(cfg.data.task, wanted)
    if index.layout == LAYOUT_TEST_SET and UNKNOWN_LABEL not in labels:
        raise UserError(
            f"'{root}' is an official Speech Commands test set, labelled for the 12-class task "
            f"(_silence_, _unknown_ and 10 commands), but data.task={cfg.data.task} has no "
            "_unknown_ class; evaluate a gsc12 or custom-task model on it"
        )
    if check_training:
        check_training_index(index, cfg.data, root)
    bank = decode_bank(index.clips, cfg.features, cfg.data.cache_dir or None, root, progress)
    bank.report.warn(what="clip")
    keep = bank.kept_rows()
    index = ClipIndex(index.layout, [index.clips[i] for i in keep])
    examples = select_examples(index.clips, cfg.data, labels, index.layout)
    if check_training:
        check_training_examples(examples, labels, wanted, index, cfg.data)
    noise, lengths = load_noise(root, cfg.features, warn_missing=index.layout != LAYOUT_TEST_SET)
    audio = bank.audio[keep]
    if cfg.data.hard_negatives:
        audio, examples = add_hard_negatives(audio, examples, labels, cfg)
    return KwsData(
        cfg,
        torch.device(device),
        labels,
        audio,
        examples,
        noise,
        lengths,
        index.clips,
        layout=index.layout,
        audio_report=bank.report,
    )


def add_hard_negatives(audio: np.ndarray, examples: dict, labels: list[str], cfg: RecipeConfig):
    """Append mined hard-negative windows (`data.hard_negatives`: one .npy or a list, see
    `load_hard_negatives`) to the bank as `_unknown_` training examples.

    Raises:
        UserError: a missing or malformed file, or a task without an `_unknown_` class.
    """
    windows = load_hard_negatives(cfg.data.hard_negatives, audio.shape[1], labels)
    first = len(audio)
    train = examples["training"]
    rows = np.concatenate([train.bank_rows, np.arange(first, first + len(windows))])
    ys = np.concatenate([train.labels, np.full(len(windows), labels.index(UNKNOWN_LABEL))])
    order = np.random.default_rng(cfg.data.seed).permutation(len(rows))
    examples = {**examples, "training": SplitExamples(rows[order], ys[order])}
    return np.concatenate([audio, windows]), examples
