"""TTS-synthesized stand-in for Google Speech Commands (`kws data synth`).

Offline engines (espeak-ng, flite, festival) say every word with many synthetic speakers; a
signal chain adds room, microphone and level diversity; the result has GSC's exact layout, hash
split lists and background-noise folder, so the whole toolkit runs on it unchanged.
"""

from kws.data.synth.build import SynthReport, available_engines, synthesize, write_split_lists
from kws.data.synth.words import COMMAND_WORDS, CONFUSABLE_WORDS, DEFAULT_WORDS, GSC_OTHER_WORDS

__all__ = [
    "COMMAND_WORDS",
    "CONFUSABLE_WORDS",
    "DEFAULT_WORDS",
    "GSC_OTHER_WORDS",
    "SynthReport",
    "available_engines",
    "synthesize",
    "write_split_lists",
]
