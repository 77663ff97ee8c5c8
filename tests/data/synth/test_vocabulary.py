"""Negative vocabularies: confusable neighbours of custom keywords, keyword-free sentences."""

from __future__ import annotations

import numpy as np

from kws.data.synth.lexicon import (
    contains,
    edit_distance,
    lexicon,
    onset,
    parse_phones,
    plain,
    pronounce,
    rhyme,
    syllables,
)
from kws.data.synth.negatives import make_sentences, negative_vocabulary
from kws.data.synth.vocabulary import choose_negatives
from kws.data.synth.words import COMMAND_WORDS, CONFUSABLE_WORDS, GSC_OTHER_WORDS


def test_espeak_phonemes_parse_into_onset_rhyme_and_syllables():
    phones = parse_phones("m_'A@_v_I_n")
    assert phones == ("m", "'A@", "v", "I", "n")
    assert onset(phones) == ("m", "A@") and rhyme(phones) == ("A@", "v", "I", "n")
    assert syllables(phones) == 2 and syllables(parse_phones("a#_s_,oU_s_I2_;_'eI_S_@_n")) == 5
    assert pronounce(["marvin"]) == {"marvin": phones}
    assert contains(pronounce(["known"])["known"], pronounce(["no"])["no"])
    assert (
        edit_distance(phones, phones) == 0
        and edit_distance(("b", "E", "d"), ("b", "3:", "d")) == 0.6
    )


def test_marvin_and_sheila_get_confusable_neighbours():
    choice = choose_negatives(["marvin", "sheila"])
    keywords = pronounce(["marvin", "sheila"])
    marvin, sheila = choice.neighbours
    assert len(marvin.onset) == len(marvin.rhyme) == len(marvin.syllables) == 4
    lex = lexicon(4000)
    phones = {**lex, **pronounce(marvin.words + sheila.words)}
    assert all(onset(phones[w]) == ("m", "A@") for w in marvin.onset)  # market, martin, ...
    assert all(
        plain(phones[w])[-2:] == ("I", "n") or rhyme(phones[w]) == rhyme(keywords["marvin"])
        for w in marvin.rhyme
    )
    assert all(syllables(phones[w]) == 2 for w in marvin.syllables)
    assert all(onset(phones[w]) == ("S", "i:") for w in sheila.onset)  # sheet, sheep, ...
    words = choice.words
    assert len(words) == len(set(words)) >= 40  # neighbours plus common words, no repeats
    assert "marvin" not in words and "sheila" not in words
    for word in words:  # never a homophone or a word that contains a keyword
        assert not any(
            contains(phones.get(word) or pronounce([word])[word], k) for k in keywords.values()
        )


def test_default_confusables_are_not_homophones_of_commands():
    said = pronounce(COMMAND_WORDS + CONFUSABLE_WORDS)
    commands = {plain(said[w]) for w in COMMAND_WORDS}
    assert not [w for w in CONFUSABLE_WORDS if plain(said[w]) in commands]
    assert not set(CONFUSABLE_WORDS) & set(COMMAND_WORDS + GSC_OTHER_WORDS)


def test_negative_sentences_contain_no_keyword():
    keywords = COMMAND_WORDS + GSC_OTHER_WORDS
    allowed, excluded = negative_vocabulary(keywords, size=3000)
    assert len(allowed) > 1500
    assert {"yesterday", "known", "one", "upon", "write", "for", "to"} <= set(excluded)
    sentences = make_sentences(np.random.default_rng(0), allowed, 300)
    said = pronounce(keywords)
    lex = lexicon(4000)
    for sentence in sentences:
        words = sentence.split()
        assert 4 <= len(words) <= 14
        for word in words:
            assert not any(k in word for k in keywords), (word, sentence)
            assert not any(contains(lex[word], p) for p in said.values()), (word, sentence)
