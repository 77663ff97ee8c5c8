"""Foreign accents for espeak-ng and MBROLA speakers: phoneme rules of second-language English.

The engines otherwise say every word the one way their lexicon spells it, so a model trained on
them learns those pronunciations as the word (issue 10: an unheard, accented engine's commands
are taken for unknown words). An accented speaker keeps 1 to `max_rules` (default 4) rules
drawn from `RULES`, patterns that second-language English is known for: vowel mergers and
monophthongs (strut -> "ah", kit -> fleece), consonant mergers (l / r, th -> t or s, w -> v),
final devoicing, vowel epenthesis after a final consonant or inside a cluster ("stop" ->
"stoppu", "sutop") and prothesis before s + consonant ("estop"). The word's espeak-ng phonemes
(`-x`) are rewritten and fed back as phoneme input (`[[...]]`), so the same speaker says every
word, command or not, with the same accent.
"""

from __future__ import annotations

import numpy as np

from kws.data.synth.lexicon import is_vowel, pronounce

# name -> (kind, argument). "sub": phoneme -> replacement ("" deletes); "final": like sub, at
# the end of the word only; "coda": vowel added after a final consonant; "cluster": vowel
# between two consonants; "prothesis": vowel before a word-initial s + consonant.
RULES: dict[str, tuple[str, object]] = {
    "strut-ah": ("sub", {"V": "a"}),  # up -> "ap"
    "strut-lot": ("sub", {"V": "0"}),  # up -> "op"
    "lot-thought": ("sub", {"0": "O:", "O": "O:"}),  # stop -> "stawp"
    "kit-fleece": ("sub", {"I": "i:"}),
    "dress-trap": ("sub", {"E": "a"}),  # left -> "laft", yes -> "yas"
    "trap-dress": ("sub", {"a": "E"}),
    "goat-thought": ("sub", {"oU": "O:"}),  # go -> "gaw", no monophthong glide
    "face-dress": ("sub", {"eI": "E"}),
    "price-ah": ("sub", {"aI": "A:"}),  # right -> "raht"
    "mouth-ah": ("sub", {"aU": "A:"}),  # down -> "dahn"
    "full-schwa": ("sub", {"@": "a"}),  # unreduced vowels
    "l-to-r": ("sub", {"l": "r"}),
    "r-to-l": ("sub", {"r": "l"}),
    "th-stopping": ("sub", {"T": "t", "D": "d"}),
    "th-fronting": ("sub", {"T": "s", "D": "z"}),
    "w-to-v": ("sub", {"w": "v"}),
    "v-to-b": ("sub", {"v": "b"}),
    "y-to-j": ("sub", {"j": "dZ"}),  # yes -> "jes"
    "p-to-b": ("sub", {"p": "b"}),
    "h-dropping": ("sub", {"h": ""}),
    "final-devoicing": ("final", {"b": "p", "d": "t", "g": "k", "z": "s", "v": "f", "dZ": "tS"}),
    # Inserted vowels carry secondary stress: unstressed, espeak-ng says them for ~10 ms.
    "coda-u": ("coda", ",U"),  # stop -> "stoppu"
    "coda-schwa": ("coda", ",@"),
    "cluster-u": ("cluster", ",U"),  # stop -> "sutop", left -> "lefut"
    "prothesis-e": ("prothesis", "E"),  # stop -> "estop"
}
MAX_RULES = 4  # per speaker by default; real second-language accents often show more at once


def draw_accent(rng: np.random.Generator, max_rules: int = MAX_RULES) -> tuple[str, ...]:
    """1 to `max_rules` rule names of `RULES`, uniformly many (sorted; of rules on the same
    phoneme the first drawn wins, so a speaker may keep fewer).

    Raises:
        ValueError: `max_rules` outside 1 to len(RULES).
    """
    if not 1 <= max_rules <= len(RULES):
        raise ValueError(f"max_rules must be 1 to {len(RULES)} (got {max_rules})")
    count = int(rng.integers(1, max_rules + 1))
    names = [str(n) for n in rng.choice(sorted(RULES), size=count, replace=False)]
    kept, taken = [], set()
    for name in names:
        kind, arg = RULES[name]
        keys = set(arg) if isinstance(arg, dict) else {kind}
        if not keys & taken:
            kept.append(name)
            taken |= keys
    return tuple(sorted(kept))


def _split(token: str) -> tuple[str, str, str]:
    """espeak token -> (stress marks, phoneme name, allophone mark): "'0" -> ("'", "0", "")."""
    marks = token[: len(token) - len(token.lstrip("',"))]
    body = token[len(marks) :]
    tail = body[-1] if len(body) > 1 and body[-1] in "#2" else ""
    return marks, body[: len(body) - len(tail)], tail


def apply_accent(tokens: tuple[str, ...], accent: tuple[str, ...]) -> str:
    """espeak-ng `-x --sep=_` tokens of one word -> phoneme input `[[...]]` with `accent`.

    Example: ("s", "t2", "'0", "p") with ("coda-u", "prothesis-e") -> "[[Est2'0p,U]]".

    Raises:
        KeyError: a rule name not in `RULES`.
    """
    rules = [RULES[name] for name in accent]
    out = [list(_split(t)) for t in tokens if t]
    last = len(out) - 1
    # Substitutions all read the word as espeak-ng said it (no chains: l -> r, r -> l swaps).
    anywhere = {k: v for kind, arg in rules if kind == "sub" for k, v in arg.items()}
    at_end = {k: v for kind, arg in rules if kind == "final" for k, v in arg.items()}
    for i, (_, name, _) in enumerate(out):
        new = at_end.get(name, anywhere.get(name)) if i == last else anywhere.get(name)
        if new is not None:
            out[i][1], out[i][2] = new, ""
    names = [name for _, name, _ in out]
    consonant = [bool(n) and not is_vowel(n) for n in names]
    inserts: dict[int, str] = {}  # index -> vowel inserted before that token
    for kind, arg in rules:
        if kind == "coda" and consonant and consonant[-1]:
            inserts[len(out)] = str(arg)
        elif kind == "cluster":
            for i in range(1, len(out)):
                if consonant[i - 1] and consonant[i] and names[i - 1] not in ("m", "n", "N"):
                    inserts.setdefault(i, str(arg))
                    break  # one vowel per word: "sutop", not "sutopu"
        elif kind == "prothesis" and len(names) > 1 and names[0] == "s" and consonant[1]:
            inserts[0] = str(arg)
    parts = []
    for i, (marks, name, tail) in enumerate(out):
        parts.append(inserts.get(i, "") + marks + name + tail)
    return "[[" + "".join(parts) + inserts.get(len(out), "") + "]]"


def accented_texts(texts: list[str], voice: str, accent: tuple[str, ...]) -> list[str]:
    """Each text as espeak-ng phoneme input in `voice`'s phonemes with `accent` applied.

    Raises:
        UserError: espeak-ng is missing; RuntimeError: it answered something unexpected.
    """
    said = pronounce(texts, voice=voice, raw=True)
    return [apply_accent(said[text], accent) for text in texts]
