"""English words as Japanese loanwords: espeak-ng's English IPA rewritten in katakana, for
MBROLA's Japanese diphone voices (jp1, jp2, jp3) to read (the opt-in `katakana` engine).

Kokoro's speakers in kws are blends of Japanese style vectors, and its English comes out with a
Japanese accent that no other engine says. This engine says English the way Japanese
loanwords do (Quackenbush 1977; Irwin 2011, "Loanwords in Japanese"): every syllable opens on
one consonant and ends on a vowel or the moraic nasal, so a vowel follows each consonant that
had none ("stop" -> sutoppu: o after t and d, i after ch and j, u elsewhere), a short vowel
before a word's final p, t, k, ch, sh, d or g doubles it (the small tsu: "dog" -> doggu; not
inside a word: "happy" -> hapii), l and r merge into r, th becomes s or z, v becomes b, the r
after a vowel lengthens it ("bird" -> baado), and English vowels fold onto the five Japanese
ones. espeak-ng's Japanese MBROLA voices then read the
katakana with Japanese diphones cut from recordings of Japanese speakers.

This is a strong, textbook loanword accent, not a measured model of any one speaker. A text
espeak-ng's Japanese rules read as English either way is refused (`katakana_pho`) and counts as a
failed clip: one of 1,000 random words of the 12,000-word lexicon ("naive"), measured with jp1.
"""

from __future__ import annotations

from pathlib import Path

from kws.data.synth.engines import MBROLA_DATA_DIR, SynthesisError, _fresh, _read_wav, _run
from kws.data.synth.kokoro import phonemize

# English IPA vowels (espeak-ng en-us, diphthongs tied with ^) -> Japanese vowels; a trailing
# ":" lengthens (the long-vowel mark). ɑ is "o" as in loanwords spelled with o (stop, on, dog).
VOWELS = {
    "i": "i:", "ɪ": "i", "ᵻ": "i", "e": "e", "ɛ": "e", "æ": "a", "a": "a", "ɑ": "o", "ɐ": "a",
    "ʌ": "a", "ə": "a", "ɚ": "a:", "ɜ": "a:", "ɔ": "o", "o": "o", "ʊ": "u", "u": "u:",
    "e^ɪ": "ei", "a^ɪ": "ai", "ɔ^ɪ": "oi", "a^ʊ": "au", "o^ʊ": "o:", "i^ə": "ia", "e^ə": "ea",
    "ʊ^ə": "ua",
}  # fmt: skip
# English consonants -> Japanese ones (the glottal stop of "button" is the t it stands for; ŋ,
# l and r are handled in `_coda` where no vowel follows them).
CONSONANTS = {
    "p": "p", "b": "b", "t": "t", "d": "d", "k": "k", "ɡ": "g", "g": "g", "f": "f", "v": "b",
    "θ": "s", "ð": "z", "s": "s", "z": "z", "ʃ": "sh", "ʒ": "j", "h": "h", "t^ʃ": "ch",
    "d^ʒ": "j", "m": "m", "n": "n", "ŋ": "ng", "l": "l", "ɹ": "r", "ɾ": "t", "w": "w", "j": "y",
    "ʔ": "t", "x": "h",
}  # fmt: skip
_VOWEL_ORDER = "aiueo"
# Katakana per consonant for the vowels a, i, u, e, o (foreign-sound spellings such as ティ
# and フォ, as loanwords write them).
_KANA = {
    "": "ア イ ウ エ オ", "k": "カ キ ク ケ コ", "g": "ガ ギ グ ゲ ゴ", "s": "サ シ ス セ ソ",
    "z": "ザ ジ ズ ゼ ゾ", "t": "タ ティ トゥ テ ト", "d": "ダ ディ ドゥ デ ド",
    "n": "ナ ニ ヌ ネ ノ", "h": "ハ ヒ フ ヘ ホ", "b": "バ ビ ブ ベ ボ", "p": "パ ピ プ ペ ポ",
    "m": "マ ミ ム メ モ", "r": "ラ リ ル レ ロ", "w": "ワ ウイ ウ ウエ ウオ",
    "y": "ヤ イ ユ イエ ヨ", "f": "ファ フィ フ フェ フォ", "sh": "シャ シ シュ シェ ショ",
    "j": "ジャ ジ ジュ ジェ ジョ", "ch": "チャ チ チュ チェ チョ",
}  # fmt: skip
_KANA["l"] = _KANA["r"]  # one liquid: l and r merge
# wi, we, wo are the older spellings ウイ, ウエ, ウオ: after a mora ending in u, espeak-ng's
# Japanese rules read ウィ as the English words "Japanese letter" (quick, swim)
KANA = {c: dict(zip(_VOWEL_ORDER, row.split(), strict=True)) for c, row in _KANA.items()}
_SMALL_Y = {"a": "ャ", "u": "ュ", "o": "ョ"}  # kya, kyu, kyo
_EPENTHETIC = {"t": "o", "d": "o", "ch": "i", "j": "i"}  # else "u"
_GEMINATE = ("p", "t", "k", "ch", "sh", "d", "g")  # doubled after a short vowel at a word's end
LONG, SOKUON, MORAIC_N = "ー", "ッ", "ン"


def _tokens(ipa: str) -> list[str]:
    """IPA phones of one word: stress marks dropped, tied pairs (^) kept whole, length (ː)
    attached to its vowel, a syllabic mark (̩) read as a schwa before its consonant."""
    text = ipa.replace("ˈ", "").replace("ˌ", "").replace("ː^", "ː")
    out: list[str] = []
    i = 0
    while i < len(text):
        if text[i] == "̩" and out:  # button -> bat-n: a vowel before the syllabic consonant
            out.insert(len(out) - 1, "ə")
            i += 1
            continue
        token = text[i]
        if i + 2 < len(text) and text[i + 1] == "^" and text[i : i + 3] in {**VOWELS, **CONSONANTS}:
            token = text[i : i + 3]
        elif i + 1 < len(text) and text[i + 1] == "^":  # a tie we do not keep: two phones
            out.append(token)
            i += 2
            continue
        i += len(token)
        if i < len(text) and text[i] == "ː":
            token += "ː"
            i += 1
        out.append(token)
    return out


def _vowel(token: str) -> str | None:
    """The Japanese vowel(s) of an IPA vowel token ("ː" lengthens all but ɑ), else None."""
    base = token.removesuffix("ː")
    if base not in VOWELS:
        return None
    japanese = VOWELS[base]
    if token.endswith("ː") and base != "ɑ" and not japanese.endswith(":"):
        japanese += ":"
    return japanese


def _kana(consonant: str, vowel: str) -> str:
    """One mora: a consonant (possibly "" or C + "y") and one of a, i, u, e, o."""
    if consonant.endswith("y") and len(consonant) > 1:  # kyu: the i-kana and a small ya/yu/yo
        base = consonant[:-1]
        if vowel in _SMALL_Y and base in KANA:
            return KANA[base]["i"] + _SMALL_Y[vowel]
        return KANA[base]["i"] + KANA["y"][vowel]
    if consonant == "ng":  # singer: the moraic nasal, then g opens the vowel
        return MORAIC_N + KANA["g"][vowel]
    if consonant not in KANA:
        raise ValueError(f"no kana for the consonant {consonant!r}")
    return KANA[consonant][vowel]


def _at(tokens: list[str], k: int) -> str:
    return tokens[k] if k < len(tokens) else ""


def word_katakana(ipa: str) -> str:
    """One English word's espeak-ng IPA (en-us, `--tie=^`) as katakana, e.g. "stˈɑːp" ->
    "ストップ", "jˈɛs" -> "イエス", "lˈɛft" -> "レフト", "ɡˈo^ʊ" -> "ゴー".

    Phones it does not know are dropped, so any IPA gives some katakana (empty only for a word
    with no phone it knows)."""
    phones: list[tuple[str, str]] = []  # ("C", consonant) or ("V", japanese vowels)
    tokens = _tokens(ipa)
    for k, token in enumerate(tokens):
        vowel = _vowel(token)
        r_coda = tokens[k + 1 : k + 2] == ["ɹ"] and _vowel(_at(tokens, k + 2)) is None
        if vowel is not None and token.startswith("ɑ") and r_coda:
            phones.append(("V", "a"))  # car, star: kaa, sutaa (the r lengthens it)
        elif vowel is not None:
            phones.append(("V", vowel))
        elif token.removesuffix("ː") in CONSONANTS:
            phones.append(("C", CONSONANTS[token.removesuffix("ː")]))
    out: list[str] = []
    i = 0
    while i < len(phones):
        kind, value = phones[i]
        nxt = phones[i + 1] if i + 1 < len(phones) else None
        if kind == "V":
            out.append(_vowels(value))
            i += 1
            continue
        if nxt and nxt[0] == "V":  # CV: the consonant opens the vowel's mora
            out.append(_kana(value, nxt[1][0]) + _vowels(nxt[1][1:]))
            i += 2
            continue
        after = phones[i + 2] if i + 2 < len(phones) else None
        if nxt == ("C", "y") and after and after[0] == "V" and value in KANA and value != "y":
            out.append(_kana(value + "y", after[1][0]) + _vowels(after[1][1:]))  # cute: kyu
            i += 3
            continue
        out.append(_coda(value, phones, i))
        i += 1
    return "".join(out)


def _vowels(japanese: str) -> str:
    """Bare vowels ("ai", "o:") as kana: ":" is the long-vowel mark."""
    return "".join(LONG if v == ":" else KANA[""][v] for v in japanese)


def _coda(consonant: str, phones: list[tuple[str, str]], i: int) -> str:
    """A consonant no vowel follows: the moraic nasal, a lengthened vowel (r), or the consonant
    with an inserted vowel (and the small tsu before it at the word's end)."""
    nxt = phones[i + 1] if i + 1 < len(phones) else None
    prev = phones[i - 1] if i > 0 else None
    after_vowel = prev is not None and prev[0] == "V"
    if consonant == "n" or (consonant == "m" and nxt in (("C", "p"), ("C", "b"), ("C", "m"))):
        return MORAIC_N
    if consonant == "ng":
        return MORAIC_N + ("" if nxt in (("C", "k"), ("C", "g")) else KANA["g"]["u"])
    if consonant == "r" and after_vowel:  # non-rhotic: the r lengthens its vowel
        return "" if prev[1].endswith(":") else LONG
    if consonant == "y":
        return KANA[""]["i"]
    if consonant == "h":  # "yeah": no syllable of its own
        return ""
    short = after_vowel and len(prev[1]) == 1
    double = SOKUON if nxt is None and short and consonant in _GEMINATE else ""
    return double + _kana(consonant, _EPENTHETIC.get(consonant, "u"))


def katakana_texts(texts: list[str], voice: str = "en-us") -> list[str]:
    """Each English text as katakana, word by word (words joined by spaces), from one espeak-ng
    call for all of them.

    Raises:
        ValueError: an unknown espeak-ng accent; OSError / subprocess.SubprocessError: espeak-ng
            failed.
    """
    return [" ".join(word_katakana(w) for w in ipa.split()) for ipa in phonemize(texts, voice, "^")]


def katakana_pho(kana: str, voice: str, pitch: int = 50, speed_wpm: int = 175) -> list[list[str]]:
    """The `.pho` rows (phone, duration ms, pitch points...) an MBROLA Japanese voice (`mb-jp1`
    ...) says `kana` with: espeak-ng's Japanese front end writes phones, durations and pitch
    (`--pho`; `-p` pitch 0-99, `-s` words per minute), `fit_phones` names them as the database
    does.

    espeak-ng's Japanese rules turn the f of foreign words (fa, fu, ...) into p ("left" would
    come out "reputo"), though all three databases have the f the loanwords need; so f is
    written with the v-kana, which nothing else here uses, and renamed back to f on the way
    (h before u, as in "who", is the same kana and becomes f too: Japanese fu is bilabial).
    After a mora ending in u, espeak-ng reads a v-kana as the English words "Japanese letter";
    such a text is read again as written, its f as p.

    Raises:
        SynthesisError: espeak-ng failed, or read the text as English either way.
    """
    args = ["espeak-ng", "-v", voice, "-p", str(pitch), "-s", str(speed_wpm), "-q", "--pho"]
    for text in (kana.replace("フ", "ヴ"), kana):  # f: see above
        rows = [line.split() for line in _run([*args, text]).splitlines() if line.strip()]
        if all(row[0] in ESPEAK_JAPANESE_PHONES for row in rows):
            return fit_phones(rows, voice.removeprefix("mb-"))
    raise SynthesisError(f"espeak-ng read {kana!r} as English, not as Japanese")


def speak_katakana(kana: str, voice: str, pitch: int, speed_wpm: int, tmp: Path):
    """Katakana said by an MBROLA Japanese voice (`katakana_pho`, then mbrola).

    Returns `(audio (samples,) float32, rate_hz)`.

    Raises:
        SynthesisError: espeak-ng or mbrola failed or wrote no audio, or espeak-ng read the
            text as English.
    """
    rows = katakana_pho(kana, voice, pitch, speed_wpm)
    pho, out = _fresh(tmp / "katakana.pho"), _fresh(tmp / "katakana.wav")
    pho.write_text("".join(" ".join(row) + "\n" for row in rows))
    database = voice.removeprefix("mb-")
    # -e: a diphone a database still lacks is bridged with silence rather than failing the clip
    _run(["mbrola", "-e", str(MBROLA_DATA_DIR / database / database), str(pho), str(out)])
    return _read_wav(out)


# What espeak-ng's Japanese MBROLA voices write (`--pho`); anything else ("@", "l", "i:", "?")
# is English, which they switch to on text their Japanese rules cannot read.
ESPEAK_JAPANESE_PHONES = frozenset(
    "_ a i u e o U k g s z t d n h b p m r w j v S tS ts dZ N c".split()
)
_JP_VOWELS = set("aiueo")
# A geminate as one phone, "Q" + the consonant, where the database has its diphones (mbrola -e
# over a-Q?-u, measured); otherwise a stop's first half is its closure (silence) and any other
# consonant one longer phone.
_Q_PHONES = {"jp1": ("p", "t", "k", "S"), "jp3": ("p", "t", "k", "S")}
_STOPS = ("p", "t", "k", "tS", "ts")


def _rename(name: str, database: str) -> str:
    jp2 = database == "jp2"
    if name == "r" and not jp2:
        return "rr"
    return {"v": "f", "U": "u", "c": "C" if jp2 else "h"}.get(name, name)  # f: speak_katakana


def fit_phones(rows: list[list[str]], database: str) -> list[list[str]]:
    """espeak-ng's `--pho` rows (phone, duration ms, pitch points...) renamed into what the
    Japanese database has (a new list; `rows` is left as it is): espeak-ng writes one symbol
    set for all three, and jp1 and jp3 call r "rr" and the moraic nasal "N", while jp2 has the
    moraic nasal per place ("N:", "n:", "m:", "G:") and "n1" and "C" before i; a geminate is
    one "Qp"-style phone where the database has it (`_Q_PHONES`). mbrola says silence for each
    diphone it lacks: 147 over the default words with jp1 before this, none after.
    """
    jp2 = database == "jp2"
    named = [[_rename(row[0], database), *row[1:]] for row in rows]
    out: list[list[str]] = []
    for i, row in enumerate(named):
        name, nxt = row[0], named[i + 1][0] if i + 1 < len(named) else "_"
        if (name == nxt or (name, nxt) == ("t", "tS")) and name not in _JP_VOWELS | {"_"}:
            if nxt in _Q_PHONES.get(database, ()) or nxt not in _STOPS:
                # one phone for both halves: Qp, or a longer fricative, nasal or voiced consonant
                second = named[i + 1]
                q = "Q" if nxt in _Q_PHONES.get(database, ()) else ""
                named[i + 1] = [q + nxt, str(int(second[1]) + int(row[1])), *second[2:]]
                continue
            name = "_"  # the stop's closure
        elif name in ("n", "N") and nxt not in _JP_VOWELS and nxt not in ("j", "w"):
            name = _moraic_nasal(nxt) if jp2 else "N"
        elif jp2 and nxt == "i" and name in ("n", "h"):
            name = {"n": "n1", "h": "C"}[name]
        elif name == "dZ" and jp2 and out and out[-1][0] in _JP_VOWELS:
            name = "Z"  # jp2's j between vowels
        out.append([name, *row[1:]])
    return out


def _moraic_nasal(nxt: str) -> str:
    """jp2's moraic nasal before `nxt`: bilabial, alveolar, velar or (at a pause) uvular."""
    if nxt in ("p", "b", "m"):
        return "m:"
    if nxt in ("t", "d", "n", "ts", "tS", "dZ", "z", "s", "r"):
        return "n:"
    return "G:" if nxt in ("k", "g") else "N:"
