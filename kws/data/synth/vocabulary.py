"""Negative vocabulary for custom keywords: confusable neighbours plus common words.

A keyword model needs an unknown class that has heard both ordinary speech and words close to
each keyword, or it fires on anything that starts or ends like one. For each keyword this picks
same-onset, same-rhyme and same-syllable-count words by phoneme edit distance
(`kws.data.synth.lexicon`), and adds `COMMON_WORDS` minus any that contain a keyword.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kws.data.synth.lexicon import (
    Neighbours,
    confusable_neighbours,
    lexicon,
    mentions_keyword,
    pronounce,
)
from kws.data.synth.words import COMMON_WORDS

LEXICON_WORDS = 12000  # candidates: the most frequent English words (wordfreq)


@dataclass
class NegativeChoice:
    """The negative words chosen for a set of keywords, and why."""

    keywords: list[str]
    neighbours: list[Neighbours] = field(default_factory=list)
    common: list[str] = field(default_factory=list)

    @property
    def words(self) -> list[str]:
        out: list[str] = []
        for word in [w for n in self.neighbours for w in n.words] + self.common:
            if word not in out and word not in self.keywords:
                out.append(word)
        return out


def choose_negatives(
    keywords: list[str], per_relation: int = 4, lexicon_words: int | None = None
) -> NegativeChoice:
    """Confusable neighbours of every keyword plus the common words that contain none."""
    lex = lexicon(lexicon_words or LEXICON_WORDS)
    phones = {k: lex[k] if k in lex else None for k in keywords}
    unknown = [k for k, p in phones.items() if p is None]
    phones.update(pronounce(unknown))
    common_phones = {w: lex[w] if w in lex else None for w in COMMON_WORDS}
    common_phones.update(pronounce([w for w, p in common_phones.items() if p is None]))
    choice = NegativeChoice(list(keywords))
    taken: set[str] = set()
    for keyword in keywords:
        found = confusable_neighbours(keyword, phones, lex, per_relation, taken)
        taken |= set(found.words)
        choice.neighbours.append(found)
    choice.common = [
        w
        for w, p in common_phones.items()
        if w not in taken and w not in keywords and not mentions_keyword(w, p, phones)
    ]
    return choice
