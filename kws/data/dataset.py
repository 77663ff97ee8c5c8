"""Dataset stage: index a GSC-layout folder, choose examples per split, decode once, batch.

Every clip is decoded once into an int16 bank `(clips, samples)` cached on disk under
`data.cache_dir`, keyed by a fingerprint of the file list (relative path, size, mtime) and the
audio format; epochs never re-read WAV files. On CUDA the bank, the noise and all augmentation
live on the GPU. Example selection follows TensorFlow's `input_data.py` (REFERENCE.md):
silence and unknown examples each number a percentage of a split's wanted-word examples.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import sys
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from kws.config import DataConfig, FeatureConfig, RecipeConfig
from kws.data import augment as aug
from kws.data.audio import AudioError, decode_clip, load_audio
from kws.data.gsc import (
    SILENCE_LABEL,
    UNKNOWN_LABEL,
    Clip,
    background_files,
    index_clips,
    labels_for,
    task_words,
)
from kws.errors import UserError
from kws.io import atomic_write_bytes, atomic_write_json

SPLIT_NAMES = ("training", "validation", "testing", "holdout")


@dataclass
class SplitExamples:
    bank_rows: np.ndarray  # (examples,) int64 row in the bank, -1 for silence
    labels: np.ndarray  # (examples,) int64


@dataclass
class AudioBank:
    audio: np.ndarray  # (clips, samples) int16
    issues: Counter = field(default_factory=Counter)
    failed: list[str] = field(default_factory=list)


def select_examples(clips: list[Clip], cfg: DataConfig, labels: list[str]) -> dict:
    """Per split, which clips (by index into `clips`, -1 for silence) with which label."""
    rng = random.Random(cfg.seed)
    label_index = {name: i for i, name in enumerate(labels)}
    held = tuple(cfg.exclude_speakers)
    per_word: Counter = Counter()
    wanted: dict[str, list] = {s: [] for s in SPLIT_NAMES}
    unknown: dict[str, list] = {s: [] for s in SPLIT_NAMES}
    for i, clip in enumerate(clips):
        if cfg.max_clips_per_word and per_word[clip.word] >= cfg.max_clips_per_word:
            continue
        per_word[clip.word] += 1
        split = "holdout" if held and clip.speaker.startswith(held) else clip.split
        if clip.word in label_index:
            wanted[split].append((i, label_index[clip.word]))
        elif UNKNOWN_LABEL in label_index:
            unknown[split].append((i, label_index[UNKNOWN_LABEL]))
    result = {}
    for split in SPLIT_NAMES:
        examples = list(wanted[split])
        if UNKNOWN_LABEL in label_index:
            count = math.ceil(len(examples) * cfg.unknown_percent / 100)
            rng.shuffle(unknown[split])
            examples += unknown[split][:count]
        if SILENCE_LABEL in label_index:
            count = math.ceil(len(wanted[split]) * cfg.silence_percent / 100)
            examples += [(-1, label_index[SILENCE_LABEL])] * count
        rng.shuffle(examples)
        rows = np.array([e[0] for e in examples], dtype=np.int64)
        result[split] = SplitExamples(rows, np.array([e[1] for e in examples], dtype=np.int64))
    return result


def _fingerprint(clips: list[Clip], root: Path, feature_cfg: FeatureConfig) -> str:
    digest = hashlib.sha1(f"{feature_cfg.sample_rate_hz}:{feature_cfg.clip_samples}".encode())
    for clip in clips:
        stat = clip.path.stat()
        rel = clip.path.relative_to(root) if clip.path.is_relative_to(root) else clip.path
        digest.update(f"{rel}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:20]


def decode_bank(
    clips: list[Clip],
    feature_cfg: FeatureConfig,
    cache_dir: Path | None,
    root: Path,
    progress: bool = True,
) -> AudioBank:
    """Decode every clip into an int16 bank, from the on-disk cache when it matches."""
    key = _fingerprint(clips, root, feature_cfg)
    cache = Path(cache_dir) / f"bank-{key}.npy" if cache_dir else None
    meta = cache.with_suffix(".json") if cache else None
    if cache and cache.is_file() and meta.is_file():
        info = json.loads(meta.read_text())
        return AudioBank(np.load(cache), Counter(info["issues"]), info["failed"])
    samples = feature_cfg.clip_samples
    audio = np.zeros((len(clips), samples), dtype=np.int16)
    bank = AudioBank(audio)

    def work(i: int) -> None:
        try:
            audio[i], issues = decode_clip(clips[i].path, feature_cfg.sample_rate_hz, samples)
            bank.issues.update(issues)
        except AudioError:
            bank.failed.append(str(clips[i].path))

    from rich.progress import Progress

    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task(f"decoding {len(clips)} clips", total=len(clips))
        with ThreadPoolExecutor(max_workers=4) as pool:
            for _ in pool.map(work, range(len(clips))):
                bar.advance(task)
    bank.failed.sort()
    if cache:
        cache.parent.mkdir(parents=True, exist_ok=True)
        import io

        buffer = io.BytesIO()
        np.save(buffer, audio)
        atomic_write_bytes(cache, buffer.getvalue())
        atomic_write_json(meta, {"issues": dict(bank.issues), "failed": bank.failed})
    return bank


def report_bank_issues(bank: AudioBank, stream=None) -> None:
    """One counted warning per kind of problem (never one per file)."""
    stream = stream or sys.stderr
    fixes = {
        "resampled": "resampled to the front end's rate",
        "downmixed": "down-mixed to mono",
        "trimmed": "longer than a clip, trimmed to the loudest window",
    }
    for issue, count in sorted(bank.issues.items()):
        print(f"warning: {count} clip(s) {fixes.get(issue, issue)}", file=stream)
    if bank.failed:
        print(
            f"warning: {len(bank.failed)} unreadable clip(s) skipped (first: {bank.failed[0]})",
            file=stream,
        )


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
    ):
        from kws.features import TorchFrontEnd

        self.cfg, self.device, self.labels, self.clips = cfg, device, list(labels), clips or []
        self.feature_cfg = cfg.features
        self.bank = torch.from_numpy(bank).to(device)  # (clips, samples) int16
        self.examples = examples
        self.noise = torch.from_numpy(noise).to(device)  # (files, max_len) float32
        self.noise_lengths = torch.tensor(noise_lengths, dtype=torch.long, device=device)
        self.front_end = TorchFrontEnd(self.feature_cfg).to(device)
        self._eval_cache: dict = {}

    def num_examples(self, split: str) -> int:
        return len(self.examples[split].labels)

    def class_counts(self, split: str) -> dict[str, int]:
        counts = np.bincount(self.examples[split].labels, minlength=len(self.labels))
        return {name: int(c) for name, c in zip(self.labels, counts)}

    def _audio(self, rows: torch.Tensor, augmenting: bool, generator) -> torch.Tensor:
        """Audio `(batch, samples)` float32 in [-1, 1] for bank rows (-1 = silence)."""
        d = self.cfg.data
        is_silence = rows < 0
        audio = self.bank[rows.clamp(min=0)].float() / 32768.0
        if augmenting:
            audio = aug.speed_perturb(audio, d.speed_perturb, generator)
            shift = int(d.time_shift_ms * self.feature_cfg.sample_rate_hz / 1000)
            audio = aug.time_shift(audio, shift, generator)
            prob, vol = d.background_probability, d.background_volume
        else:
            prob, vol = 0.0, 0.0  # evaluation: clean words; silence still gets noise
        return aug.mix_background(
            audio,
            is_silence,
            self.noise,
            self.noise_lengths,
            prob,
            vol,
            d.silence_volume,
            generator,
        )

    def audio_batches(
        self,
        split: str,
        batch_size: int,
        shuffle: bool = False,
        augment: bool = False,
        seed: int = 0,
    ) -> Iterator:
        """Yield `(audio (batch, samples), labels (batch,))` on the data's device.

        Without augmentation the noise of silence examples is drawn from a generator seeded by
        `seed`, so evaluation is repeatable.
        """
        if split not in self.examples:
            raise UserError(f"unknown split '{split}'; choose one of {', '.join(SPLIT_NAMES)}")
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
            yield self._audio(rows_all[idx], augment, generator), labels_all[idx]

    def batches(
        self,
        split: str,
        batch_size: int,
        shuffle: bool = False,
        augment: bool = False,
        seed: int = 0,
    ) -> Iterator:
        """Yield `(features (batch, frames, coeffs), labels (batch,))` on the data's device."""
        d = self.cfg.data
        if not shuffle and not augment:
            # Evaluation batches are deterministic: compute their features once per run.
            key = (split, batch_size, seed)
            if key not in self._eval_cache:
                self._eval_cache[key] = [
                    (self.front_end(a), y)
                    for a, y in self.audio_batches(split, batch_size, seed=seed)
                ]
            yield from self._eval_cache[key]
            return
        generator = torch.Generator(device=self.device).manual_seed(seed + 1)
        for audio, labels in self.audio_batches(split, batch_size, shuffle, augment, seed):
            features = self.front_end(audio)
            if augment and d.spec_augment:
                features = aug.spec_augment(
                    features,
                    d.spec_time_masks,
                    d.spec_time_mask_frames,
                    d.spec_freq_masks,
                    d.spec_freq_mask_bins,
                    generator,
                )
            yield features, labels


def load_noise(root: Path, feature_cfg: FeatureConfig) -> tuple[np.ndarray, list[int]]:
    """Background files as a zero-padded `(files, max_len)` float32 matrix plus lengths."""
    samples = feature_cfg.clip_samples
    noises = [load_audio(p, feature_cfg.sample_rate_hz) for p in background_files(root)]
    noises = [n for n in noises if len(n) >= samples]
    if not noises:
        print(
            f"warning: no usable {root}/_background_noise_/*.wav: silence examples are "
            "digital zeros and no noise augmentation is applied",
            file=sys.stderr,
        )
        return np.zeros((0, samples), dtype=np.float32), []
    noise = np.zeros((len(noises), max(len(n) for n in noises)), dtype=np.float32)
    for i, n in enumerate(noises):
        noise[i, : len(n)] = n
    return noise, [len(n) for n in noises]


def build_data(
    cfg: RecipeConfig, device: torch.device | str = "cpu", progress: bool = True
) -> KwsData:
    """Index a GSC-layout folder, select examples, decode (or load the cached bank), and move
    everything to `device`."""
    root = Path(cfg.data.root)
    clips = index_clips(root, cfg.data.validation_percent, cfg.data.testing_percent)
    if not clips:
        raise UserError(
            f"no '<word>/*.wav' clips under '{root}'; is data.root right? Make data "
            f"with `kws data synth --out {root}` or `kws data download`"
        )
    available = sorted({c.word for c in clips})
    wanted = task_words(cfg.data.task, cfg.data.words, available)
    missing = [w for w in wanted if w not in available]
    if missing:
        raise UserError(
            f"keyword(s) {missing} have no folder under '{root}'; synthesize "
            f"them (kws data synth --words ...) or change data.words"
        )
    labels = labels_for(cfg.data.task, wanted)
    bank = decode_bank(clips, cfg.features, Path(cfg.data.cache_dir), root, progress)
    report_bank_issues(bank)
    failed = set(bank.failed)
    keep = [i for i, c in enumerate(clips) if str(c.path) not in failed]
    clips = [clips[i] for i in keep]
    examples = select_examples(clips, cfg.data, labels)
    noise, lengths = load_noise(root, cfg.features)
    return KwsData(
        cfg, torch.device(device), labels, bank.audio[keep], examples, noise, lengths, clips
    )
