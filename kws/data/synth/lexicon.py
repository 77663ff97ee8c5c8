"""Pronunciations and word lists for negative vocabularies (custom keywords, negative speech).

Words come from `wordfreq` (common English words, Apache-2.0 code, data used only to choose
words); pronunciations from Debian's espeak-ng (`-x --sep=_`, run as a separate process like the
TTS engines, so no GPL code is imported). A pronunciation is a tuple of espeak phoneme names
with the primary stress kept as a leading `'` on its vowel, e.g. marvin -> m 'A@ v I n.

Confusable neighbours of a keyword (same onset, same rhyme, same syllable count) are ranked by
phoneme edit distance (vowel-for-vowel and consonant-for-consonant swaps cost less), a simple
stand-in for acoustic confusability.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from kws.errors import UserError, require
from kws.io import atomic_write_text

_WORD = re.compile(r"[a-z]+")
_VOWEL_START = set("aAeEiIoOuUV@30")  # 0: the LOT vowel (stop, on)
Phones = tuple[str, ...]


def _clean(token: str) -> str:
    token = token.replace(",", "")  # secondary stress: not used for matching
    body = token.lstrip("'")
    if len(body) > 1 and body[-1] in "#2":  # espeak's allophone marks (t# flap, I2 reduced)
        body = body[:-1]
    return ("'" if token.startswith("'") else "") + body


def _tokens(line: str) -> Phones:
    """espeak-ng `-x --sep=_` output -> its tokens as printed (word breaks dropped)."""
    tokens = line.strip().replace(" ", "_").split("_")
    return tuple(t for t in tokens if t and t not in {";", "'", ","})


def parse_phones(line: str) -> Phones:
    """espeak-ng `-x --sep=_` output -> phoneme names (`'` marks the primary-stressed vowel)."""
    return tuple(_clean(t) for t in _tokens(line))


# espeak-ng keeps some vowels apart that most US speakers merge (for / four: O@ / o@).
_MERGED = {"o@": "O@"}


def plain(phones: Phones) -> Phones:
    """Phonemes without stress marks, near-merged vowels merged."""
    return tuple(_MERGED.get(p.lstrip("'"), p.lstrip("'")) for p in phones)


def is_vowel(phone: str) -> bool:
    """Whether an espeak-ng phone is a vowel (stress marks ignored)."""
    return phone.lstrip("'")[:1] in _VOWEL_START


def pronounce(words: list[str], voice: str = "en-us", raw: bool = False) -> dict[str, Phones]:
    """espeak-ng pronunciations of `words` (one process for all of them).

    `raw`: espeak-ng's tokens as printed (stress marks and allophone marks kept, e.g. "t2"),
    which it reads back as phoneme input; otherwise cleaned for matching (`parse_phones`).

    Raises:
        UserError: espeak-ng is missing; RuntimeError: it answered something unexpected.
    """
    if not words:
        return {}
    with tempfile.TemporaryDirectory(prefix="kws-lexicon-") as tmp:
        path = Path(tmp) / "words.txt"
        # One word per sentence, so espeak-ng prints one line per word.
        path.write_text("".join(f"{w.replace('-', ' ')}.\n" for w in words))
        try:
            done = subprocess.run(
                ["espeak-ng", "-q", "-x", "--sep=_", "-v", voice, "-f", str(path)],
                capture_output=True,
                text=True,
                timeout=600,
                check=True,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            raise UserError(
                f"espeak-ng could not give pronunciations ({exc}); install it with "
                "`sudo apt-get install espeak-ng`"
            ) from None
    lines = done.stdout.splitlines()
    if len(lines) != len(words):
        raise RuntimeError(f"espeak-ng returned {len(lines)} lines for {len(words)} words")
    parse = _tokens if raw else parse_phones
    return {w: parse(line) for w, line in zip(words, lines, strict=True)}


def common_words(count: int) -> list[str]:
    """The `count` most frequent lowercase alphabetic English words (wordfreq)."""
    wordfreq = require("wordfreq", "tts")
    words = [w for w in wordfreq.top_n_list("en", int(count * 1.3) + 100) if _WORD.fullmatch(w)]
    return words[:count]


def _cache_dir() -> Path:
    return Path(os.environ.get("KWS_CACHE_DIR") or Path.home() / ".cache" / "kws")


@functools.cache
def lexicon(count: int = 12000) -> dict[str, Phones]:
    """Pronunciations of the `count` most common words, cached on disk (espeak takes ~4 s/10k)."""
    words = common_words(count)
    # Keyed by the words and the espeak-ng version, so a new wordfreq or espeak never reuses it.
    key = hashlib.sha1("\n".join([_espeak_version(), *words]).encode()).hexdigest()[:16]
    path = _cache_dir() / f"lexicon-{count}-{key}.json"
    if path.is_file():
        try:
            return {w: tuple(p) for w, p in json.loads(path.read_text()).items()}
        except (OSError, ValueError):
            pass
    result = pronounce(words)
    try:
        atomic_write_text(path, json.dumps(result))
    except OSError:
        pass  # a read-only home only costs the next call another espeak run
    return result


def _espeak_version() -> str:
    try:
        done = subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True)
    except OSError:
        return "none"
    return done.stdout.split("Data")[0].strip()


def contains(phones: Phones, part: Phones) -> bool:
    """Whether `part` occurs contiguously in `phones` (stress ignored)."""
    whole, piece = plain(phones), plain(part)
    n = len(piece)
    return n > 0 and any(whole[i : i + n] == piece for i in range(len(whole) - n + 1))


def mentions_keyword(word: str, phones: Phones, keywords: dict[str, Phones]) -> bool:
    """True when `word` spells or pronounces any keyword inside it (yesterday, known, write)."""
    for keyword, keyword_phones in keywords.items():
        if keyword.replace("-", "") in word or contains(phones, keyword_phones):
            return True
    return False


def edit_distance(a: Phones, b: Phones) -> float:
    """Levenshtein distance over phonemes; vowel<->vowel or consonant<->consonant costs 0.6."""
    a, b = plain(a), plain(b)
    row = [float(j) for j in range(len(b) + 1)]
    for i, x in enumerate(a, 1):
        prev, row[0] = row[0], float(i)
        for j, y in enumerate(b, 1):
            cost = 0.0 if x == y else 0.6 if is_vowel(x) == is_vowel(y) else 1.0
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + cost)
    return row[-1]


def onset(phones: Phones) -> Phones:
    """Consonants before the first vowel plus that vowel (marvin -> m A@)."""
    bare = plain(phones)
    for i, p in enumerate(bare):
        if is_vowel(p):
            return bare[: i + 1]
    return bare


def rhyme(phones: Phones) -> Phones:
    """From the primary-stressed vowel to the end (marvin -> A@ v I n); last vowel if none."""
    stressed = [i for i, p in enumerate(phones) if p.startswith("'")]
    vowels = [i for i, p in enumerate(phones) if is_vowel(p)]
    start = stressed[-1] if stressed else (vowels[-1] if vowels else 0)
    return plain(phones[start:])


def syllables(phones: Phones) -> int:
    """Syllables of a pronunciation: its vowels."""
    return sum(is_vowel(p) for p in phones)


@dataclass(frozen=True)
class Neighbours:
    """Confusable words of one keyword, by the relation that made them neighbours."""

    keyword: str
    onset: list[str]
    rhyme: list[str]
    syllables: list[str]

    @property
    def words(self) -> list[str]:
        return [*self.onset, *self.rhyme, *self.syllables]


def _rank(keyword_phones: Phones, candidates: dict[str, Phones], order: list[str]):
    position = {w: i for i, w in enumerate(order)}  # frequency rank breaks distance ties
    return sorted(
        candidates, key=lambda w: (edit_distance(keyword_phones, candidates[w]), position[w])
    )


def confusable_neighbours(
    keyword: str,
    keywords: dict[str, Phones],
    lex: dict[str, Phones],
    per_relation: int = 4,
    taken: set[str] | None = None,
) -> Neighbours:
    """Same-onset, same-rhyme and same-syllable-count words nearest to `keyword` by phonemes.

    Words that spell or pronounce any keyword inside them, and homophones of a keyword, are
    never chosen (they would be label noise); `taken` words are skipped so lists don't overlap.
    """
    phones = keywords[keyword]
    taken = set(taken or ()) | set(keywords)
    pool = {
        w: p
        for w, p in lex.items()
        if w not in taken
        and len(w) > 2
        and not mentions_keyword(w, p, keywords)
        and plain(p) not in {plain(k) for k in keywords.values()}
    }
    order = list(lex)
    chosen: dict[str, list[str]] = {}
    tests = {
        "onset": lambda p: onset(p) == onset(phones),
        "rhyme": lambda p: rhyme(p) == rhyme(phones) or plain(p)[-2:] == plain(phones)[-2:],
        "syllables": lambda p: syllables(p) == syllables(phones),
    }
    for relation, test in tests.items():
        group = {w: p for w, p in pool.items() if test(p)}
        picked = _rank(phones, group, order)[:per_relation]
        chosen[relation] = picked
        for w in picked:
            pool.pop(w)
    return Neighbours(keyword, chosen["onset"], chosen["rhyme"], chosen["syllables"])
