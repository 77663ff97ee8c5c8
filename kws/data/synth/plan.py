"""Size presets and the clip plan: which synthetic speaker says which word how many times.

As in Speech Commands (Warden 2018), a speaker says only some of the words, some of them more
than once (`<speaker>_nohash_0.wav`, `_nohash_1`, ...), and GSC's hash split keeps all of a
speaker's clips in one split. Speakers are assigned to engines by a smooth weighted round robin
and each engine's k-th speaker to a split by `SPLIT_PATTERN` (its id is then salted until GSC's
hash rule agrees), so every split count is known before anything is synthesized: `split_counts`
turns a plan into the numbers a training run will see.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from kws.data.synth.words import (
    COMMAND_WORDS,
    COMMON_WORDS,
    CONFUSABLE_WORDS,
    GSC_OTHER_WORDS,
    GSC_V2_COUNTS,
)
from kws.errors import UserError

# Split of each engine's k-th speaker (k mod 10) at GSC's default 10% / 10%: a small set still
# has every engine in every split, and a large one gets exactly 80/10/10 of the speakers.
SPLIT_PATTERN = ("training", "validation", "testing") + ("training",) * 7
# Share of speakers per engine; kokoro's share is set per size (it costs ~10x per clip). Piper
# has one voice (its speakers differ in rate, prosody noise and acoustics only): a small share.
# MBROLA has twenty voices (three US, one British, sixteen accented), RHVoice six: like flite's.
# Pico has two (en-US, en-GB): a smaller share, like Piper's; katakana three (MBROLA's jp1-3).
BASE_ENGINE_WEIGHTS = {"espeak": 0.4, "flite": 0.3, "festival": 0.3, "piper": 0.15, "mbrola": 0.3,
                       "rhvoice": 0.3, "pico": 0.15, "katakana": 0.15}  # fmt: skip
DEFAULT_KOKORO_SHARE = 0.1


@dataclass(frozen=True)
class SizePreset:
    """How big a set `--size` makes; counts are clips per word."""

    name: str
    speakers: int
    keyword_clips: int  # each command word (or custom keyword)
    gsc_other_clips: int  # each of GSC's other words (bed, bird, ...)
    negative_clips: int  # each confusable / common / neighbour word
    repeat_probability: float  # chance a speaker says a word once more (geometric)
    kokoro_share: float  # share of speakers given to Kokoro blends when it is installed
    noise_seconds: float
    gsc_counts: bool = False  # full: GSC v2's 35 words with their exact per-word counts


SIZES = {
    # What `make quickstart` uses: about as many command clips as before (150 per word).
    "quick": SizePreset("quick", 150, 150, 40, 20, 0.25, 0.1, 60.0),
    # >= 10,000 training / 1,500 test examples on the 12-class task at 40% unknown, 10% silence.
    "medium": SizePreset("medium", 1000, 1160, 100, 45, 0.3, 0.1, 60.0),
    # GSC v2's word list and per-word counts; ~2,600 speakers like GSC v2 (2,618).
    "full": SizePreset("full", 2600, 3800, 2000, 1000, 0.35, 0.15, 60.0, gsc_counts=True),
}


@dataclass
class Plan:
    """Per speaker index: engine, split and the `(word, n)` clips it says."""

    engines: list[str]
    splits: list[str]
    clips: list[list[tuple[str, int]]]
    word_counts: dict[str, int]
    keywords: list[str] = field(default_factory=list)

    @property
    def num_clips(self) -> int:
        return sum(len(c) for c in self.clips)


def engine_weights(names: list[str], kokoro_share: float) -> dict[str, float]:
    """Speaker share per engine: kokoro gets `kokoro_share`, the rest keep their base ratios."""
    others = [n for n in names if n != "kokoro"]
    if not others:
        return {"kokoro": 1.0} if names else {}
    share = kokoro_share if "kokoro" in names else 0.0
    base = {n: BASE_ENGINE_WEIGHTS.get(n, 0.3) for n in others}
    total = sum(base.values())
    weights = {n: (1 - share) * w / total for n, w in base.items()}
    if share:
        weights["kokoro"] = share
    return weights


def engine_schedule(weights: dict[str, float], count: int) -> list[str]:
    """Smooth weighted round robin: every engine appears within the first few speakers."""
    names = sorted(weights)
    share = np.array([weights[n] for n in names], dtype=float)
    share = share / share.sum()
    credit = np.zeros(len(names))
    order = []
    for _ in range(count):
        credit += share
        pick = int(np.argmax(credit))
        credit[pick] -= 1.0
        order.append(names[pick])
    return order


def split_schedule(engines: list[str]) -> list[str]:
    """Split of each speaker: its engine's k-th speaker gets `SPLIT_PATTERN[k % 10]`."""
    seen: dict[str, int] = {}
    splits = []
    for engine in engines:
        k = seen.get(engine, 0)
        seen[engine] = k + 1
        splits.append(SPLIT_PATTERN[k % len(SPLIT_PATTERN)])
    return splits


def word_counts(
    preset: SizePreset, keywords: list[str] | None = None, negatives: list[str] | None = None
) -> dict[str, int]:
    """Clips per word: keywords get `keyword_clips`, GSC's other words and negatives fewer.

    Without `keywords` the default vocabulary is used: the 10 commands, GSC's other 25 words,
    confusable and common words (`full`: GSC v2's 35 words with their published counts).
    """
    if keywords is None:
        if preset.gsc_counts:
            return dict(GSC_V2_COUNTS)
        keywords = list(COMMAND_WORDS)
        negatives = GSC_OTHER_WORDS + CONFUSABLE_WORDS + COMMON_WORDS
    counts = {word: preset.keyword_clips for word in keywords}
    for word in negatives or []:
        if word not in counts:
            gsc = word in GSC_OTHER_WORDS
            counts[word] = preset.gsc_other_clips if gsc else preset.negative_clips
    return counts


def _repeats(rng: np.random.Generator, probability: float, cap: int) -> int:
    reps = 1
    while reps < cap and rng.random() < probability:
        reps += 1
    return reps


def plan_clips(
    counts: dict[str, int],
    speakers: int,
    engine_weights_: dict[str, float],
    seed: int,
    repeat_probability: float,
    max_repeats: int = 5,
    keywords: list[str] | None = None,
) -> Plan:
    """Deal each word's clips over speakers in a seeded order, some speakers repeating it.

    With `repeat_probability` 0 and `counts[w] == speakers` every speaker says every word once
    (the `--clips-per-word` layout). Raises `UserError` when a count cannot be met.
    """
    engines = engine_schedule(engine_weights_, speakers)
    clips: list[list[tuple[str, int]]] = [[] for _ in range(speakers)]
    for word, count in counts.items():
        if count > speakers * max_repeats:
            raise UserError(
                f"{count} clips of '{word}' need more than {speakers} speakers x {max_repeats} "
                f"repeats; use fewer clips per word or more speakers"
            )
        rng = np.random.default_rng([seed, *word.encode()])
        taken = np.zeros(speakers, dtype=int)
        left = count
        for _round in range(max_repeats):
            for index in rng.permutation(speakers):
                if left == 0:
                    break
                room = max_repeats - taken[index]
                want = _repeats(rng, repeat_probability, max_repeats) if not _round else 1
                reps = min(want, room, left)
                taken[index] += reps
                left -= reps
            if left == 0:
                break
        for index in np.flatnonzero(taken):
            clips[index].extend((word, n) for n in range(int(taken[index])))
    return Plan(engines, split_schedule(engines), clips, dict(counts), list(keywords or []))


def split_counts(plan: Plan) -> dict[str, dict[str, int]]:
    """Clips per split and word."""
    out: dict[str, dict[str, int]] = {"training": {}, "validation": {}, "testing": {}}
    for split, said in zip(plan.splits, plan.clips, strict=True):
        for word, _ in said:
            out[split][word] = out[split].get(word, 0) + 1
    return out


def task_examples(
    plan: Plan, wanted: list[str], unknown_percent: float, silence_percent: float
) -> dict[str, int]:
    """Examples per split on a keyword task (as `kws.data.dataset.select_examples` draws them).

    Wanted-word clips, plus unknown examples numbering `unknown_percent` of them (as many as the
    split's other words can give), plus silence numbering `silence_percent`.
    """
    result = {}
    for split, per_word in split_counts(plan).items():
        commands = sum(n for w, n in per_word.items() if w in wanted)
        others = sum(n for w, n in per_word.items() if w not in wanted)
        unknown = min(others, math.ceil(commands * unknown_percent / 100))
        result[split] = commands + unknown + math.ceil(commands * silence_percent / 100)
    return result
