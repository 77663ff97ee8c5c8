"""Default vocabulary of the synthesized set: GSC's words plus confusable negatives.

Most transfer errors in our trials were unknown <-> command (ARCHITECTURE.md, Data), so the
unknown pool gets near-rhymes of the commands. Exact homophones ("know" for no, "write" for
right) are left out on purpose: a TTS engine says them identically, so they would be label noise.
"""

from __future__ import annotations

from kws.config import GSC12_WORDS
from kws.data.gsc import GSC_V2_WORDS

COMMAND_WORDS = list(GSC12_WORDS)
GSC_OTHER_WORDS = [w for w in GSC_V2_WORDS if w not in COMMAND_WORDS]
# Near words of the commands: down (doll, town, dawn), on (own), off (of), up (cup),
# no (snow, note), go (gone), yes (yet), left (lift), right (light, ride), stop (stock, shop).
CONFUSABLE_WORDS = "doll town dawn own of cup snow note gone yet lift light ride stock shop".split()
DEFAULT_WORDS = COMMAND_WORDS + GSC_OTHER_WORDS + CONFUSABLE_WORDS
