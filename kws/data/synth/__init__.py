"""TTS-synthesized stand-in for Google Speech Commands (`kws data synth`).

Offline engines (espeak-ng, flite, festival, and with the `tts` extra Kokoro-82M's neural
voices and, when named, Piper's US voice) say every word with many synthetic speakers; a
simulated room, microphone and noise give each speaker its own acoustics; the result has
GSC's exact layout, hash split lists and background-noise folder, so the whole toolkit runs
on it unchanged. `--negatives-minutes` adds long keyword-free speech for false-accept
measurement.
"""

from kws.data.synth.build import SynthReport, available_engines, synthesize
from kws.data.synth.jobs import write_split_lists
from kws.data.synth.negatives import NegativesReport, synthesize_negatives
from kws.data.synth.plan import SIZES
from kws.data.synth.words import COMMAND_WORDS, CONFUSABLE_WORDS, DEFAULT_WORDS, GSC_OTHER_WORDS

__all__ = [
    "COMMAND_WORDS",
    "CONFUSABLE_WORDS",
    "DEFAULT_WORDS",
    "GSC_OTHER_WORDS",
    "SIZES",
    "NegativesReport",
    "SynthReport",
    "available_engines",
    "synthesize",
    "synthesize_negatives",
    "write_split_lists",
]
