"""Vocabularies of the synthesized sets: GSC's words, confusable negatives and common words.

Most transfer errors in our trials were unknown <-> command (ARCHITECTURE.md, Data), so the
unknown pool gets many negatives: near-rhymes and same-onset words of each command (minimal
pairs such as no/note, right/light, stop/step), GSC's own confusable pairs (dog/down, one/on,
off/up, no/go, three/tree, bed/bird are all GSC words), and common words for variety. Exact
homophones of a command ("know" for no, "write" for right, "four" for for) are left out on
purpose: a TTS engine says them identically, so they would be label noise.

`GSC_V2_COUNTS` are the per-word clip counts of Speech Commands v0.02 (105,829 clips), which the
`full` size reproduces.
"""

from __future__ import annotations

from kws.config import GSC12_WORDS
from kws.data.gsc import GSC_V2_WORDS

COMMAND_WORDS = list(GSC12_WORDS)
GSC_OTHER_WORDS = [w for w in GSC_V2_WORDS if w not in COMMAND_WORDS]

# Near words of the commands (onset or rhyme shared, one phoneme changed, added or dropped),
# chosen from espeak-ng pronunciations of common English words, grouped by command.
_CONFUSABLE_BY_COMMAND = {
    "yes": "yet guess mess yeah",
    "no": "nope snow note low new",
    "up": "cup pup upper",
    "down": "town dawn doubt brown done doll",
    "left": "lift laughed theft",
    "right": "light ride bright white rice",
    "on": "own gone in",
    "off": "cough of if",
    "stop": "step stock shop top drop",
    "go": "goat grow",
    # Neighbours of GSC's number words, for the 35-word task: zero, seven, nine, three, five.
    "numbers": "hero heaven mine free fine",
}
CONFUSABLE_WORDS = [w for group in _CONFUSABLE_BY_COMMAND.values() for w in group.split()]

# Everyday words with no command inside them: variety for the unknown class and a general
# negative vocabulary for custom keywords.
COMMON_WORDS = (
    "apple water music paper window money table garden summer yellow kitchen morning pencil "
    "button camera doctor letter number people animal bottle blanket chicken dinner family "
    "finger island jacket ladder market monkey picture rabbit silver turtle village weather "
    "zebra banana chair cloud bread fish milk road ship sand game hand face ball horse moon star"
).split()

DEFAULT_WORDS = COMMAND_WORDS + GSC_OTHER_WORDS + CONFUSABLE_WORDS + COMMON_WORDS

# Speech Commands v0.02: clips per word (Warden 2018; counted from the released archive).
GSC_V2_COUNTS = {
    "yes": 4044, "no": 3941, "up": 3723, "down": 3917, "left": 3801, "right": 3778,
    "on": 3845, "off": 3745, "stop": 3872, "go": 3880, "zero": 4052, "one": 3890,
    "two": 3880, "three": 3727, "four": 3728, "five": 4052, "six": 3860, "seven": 3998,
    "eight": 3787, "nine": 3934, "bed": 2014, "bird": 2064, "cat": 2031, "dog": 2128,
    "happy": 2054, "house": 2113, "marvin": 2100, "sheila": 2022, "tree": 1759, "wow": 2123,
    "backward": 1664, "forward": 1557, "follow": 1579, "learn": 1575, "visual": 1592,
}  # fmt: skip
