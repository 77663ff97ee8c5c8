"""Offline TTS engines for the synthesized GSC stand-in: espeak-ng, flite, festival, kokoro, piper,
mbrola, rhvoice, pico.

The Debian engines are driven through `subprocess` with argument lists (never a shell string),
write a WAV into a private temporary folder, and are read back with soundfile. Discovery asks the
engines themselves which voices they have, so the report names exactly what this machine can
speak. Kokoro-82M (neural, `kws.data.synth.kokoro`) and Piper's US voice (neural,
`kws.data.synth.piper`) are found when the `tts` extra is installed. MBROLA (Dutoit et al.
1996: diphones cut from recordings of real speakers, driven by espeak-ng's `mb-*` voices) gives
three US, one British and sixteen foreign-accented English voices (German, French, Greek, ...)
when Debian's contrib/non-free `mbrola` packages are installed. Piper and MBROLA are opt-in
(`OPT_IN_ENGINES`): they join a set only when named, so the default sets stay as they were on
every machine (espeak-ng's `mb-*` voices never count as espeak voices). RHVoice (Yakovleva;
statistical parametric synthesis in the HTS tradition) is opt-in too, from Debian's non-free
`rhvoice-english`: alan, bdl, clb and slt (the last three CMU ARCTIC's US speakers) and two
Russian-accented voices, evgeniy-eng and lyubov; voices are found by their `voice.info`. SVOX
Pico (the Android TTS of 2009; HMM-based statistical parametric synthesis) is opt-in, from
Debian's non-free `libttspico-utils`: its two English voices, en-US and en-GB (its German,
Spanish, French and Italian voices would read English spelling by their own language's rules,
so they are not offered). `katakana` (opt-in; Debian's `mbrola-jp1`, `-jp2`, `-jp3`) reads
English as Japanese loanwords with MBROLA's Japanese voices (`kws.data.synth.katakana`).
"""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import soundfile as sf

from kws.data.synth.kokoro import ACCENTS, missing, version, voices
from kws.data.synth.piper import VOICE as PIPER_VOICE
from kws.data.synth.piper import missing as piper_missing
from kws.data.synth.piper import version as piper_version
from kws.errors import UserError

ENGINES = ("espeak", "flite", "festival", "kokoro", "piper", "mbrola", "rhvoice", "pico",
           "katakana")  # fmt: skip
# used only when named (`--engines ... piper`)
OPT_IN_ENGINES = ("piper", "mbrola", "rhvoice", "pico", "katakana")
ENGINE_ALIASES = {"espeak-ng": "espeak"}
INSTALL_HINT = (
    "install them with `sudo apt-get install espeak-ng flite festival festvox-kallpc16k "
    "festvox-kdlpc16k festvox-us-slt-hts`"
)
MBROLA_HINT = (
    "MBROLA needs Debian's contrib and non-free components: `sudo apt-get install mbrola "
    "mbrola-us1 mbrola-us2 mbrola-us3 mbrola-en1 mbrola-de2 mbrola-fr1 ...` (any of the voices "
    "`espeak-ng --voices=en` lists under mb/)"
)
MBROLA_DATA_DIR = Path("/usr/share/mbrola")
KATAKANA_VOICES = ("mb-jp1", "mb-jp2", "mb-jp3")  # espeak-ng's Japanese MBROLA voices
KATAKANA_HINT = (
    "the katakana engine reads English as Japanese loanwords with MBROLA's Japanese voices, "
    "from Debian's contrib and non-free components: `sudo apt-get install mbrola mbrola-jp1 "
    "mbrola-jp2 mbrola-jp3` (any of the three)"
)
RHVOICE_HINT = (
    "RHVoice's English voices are in Debian's non-free component: `sudo apt-get install rhvoice "
    "rhvoice-english` (voices alan, bdl, clb, slt, evgeniy-eng, lyubov)"
)
RHVOICE_DATA_DIR = Path("/usr/share/RHVoice/voices")
RHVOICE_PROGRAM = "RHVoice-test"  # the standalone synthesizer (no speech-dispatcher service)
PICO_HINT = (
    "SVOX Pico is in Debian's non-free component: `sudo apt-get install libttspico-utils` "
    "(voices en-US, en-GB)"
)
PICO_LANG_DIR = Path("/usr/share/pico/lang")
PICO_VOICES = ("en-US", "en-GB")  # English text analysis; the other languages' would misread it
_TIMEOUT_S = 120
# espeak-ng variants that are sound effects rather than voices (whisper, robot, demon, buzzing
# "RicishayMax", announcer, croak, sped-up test voice): nothing like a command-word recording.
_ODD_VARIANT_TAGS = (
    "whisper",
    "robo",
    "demonic",
    "ricishay",
    "announcer",
    "croak",
    "tweaky",
    "fast",
)

# Median F0 of each flite voice, measured once with librosa.pyin on a test sentence on the dev
# box; speaker pitch is set as a factor of this so female and male voices stay plausible.
_FLITE_BASE_F0_HZ = {"kal": 93.0, "kal16": 93.0, "awb": 132.0, "rms": 100.0, "slt": 171.0}
_FLITE_DEFAULT_F0_HZ = 110.0


class SynthesisError(RuntimeError):
    """One engine call failed; the clip is counted as failed and the run goes on."""


@dataclass(frozen=True)
class EngineInfo:
    """One TTS engine found on this machine: its voices, variants and version line."""

    name: str
    voices: tuple[str, ...]
    variants: tuple[str, ...] = ()  # espeak-ng voice variants (+m3, +f2, +klatt, ...)
    version: str = ""  # the engine's own version line, for the dataset README


def canonical_engine(name: str) -> str:
    """Engine name as used in speaker ids (`espeak-ng` -> `espeak`); unknown names raise."""
    name = ENGINE_ALIASES.get(name.strip().lower(), name.strip().lower())
    if name not in ENGINES:
        raise UserError(
            f"unknown TTS engine '{name}'; choose from {', '.join(ENGINES)} (or espeak-ng)"
        )
    return name


def _run(args: list[str], timeout_s: float = _TIMEOUT_S) -> str:
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=timeout_s, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SynthesisError(f"{args[0]} failed: {exc}") from None
    if done.returncode != 0:
        raise SynthesisError(f"{args[0]} exited {done.returncode}: {done.stderr.strip()[:300]}")
    return done.stdout


def _espeak_voice_table() -> list[tuple[str, str]]:
    """(voice name, voice file) of espeak-ng's English voices, in its listing order."""
    rows = []
    for line in _run(["espeak-ng", "--voices=en"]).splitlines()[1:]:
        cols = line.split()
        if len(cols) >= 5 and cols[1] != "variant":
            rows.append((cols[1], cols[4]))
    return rows


def _espeak_info() -> EngineInfo | None:
    if shutil.which("espeak-ng") is None:
        return None
    # MBROLA voices (file mb/...) are the `mbrola` engine, whether or not mbrola is installed.
    table = _espeak_voice_table()
    voices = list(dict.fromkeys(voice for voice, file in table if not file.startswith("mb/")))
    variants = []
    for line in _run(["espeak-ng", "--voices=variant"]).splitlines()[1:]:
        match = re.search(r"!v/(\S+)\s*(\(|$)", line)
        if match and not any(tag in match.group(1).lower() for tag in _ODD_VARIANT_TAGS):
            variants.append(match.group(1))
    return EngineInfo("espeak", tuple(voices), tuple(sorted(set(variants))))


def _mbrola_info() -> EngineInfo | None:
    """espeak-ng's English `mb-*` voices whose MBROLA diphone database is installed.

    The voice file `mb/mb-de2-en` speaks English through the database `de2`, found by mbrola
    in `/usr/share/mbrola/de2/`."""
    if shutil.which("espeak-ng") is None or shutil.which("mbrola") is None:
        return None
    voices = []
    for _, file in _espeak_voice_table():
        name = file.removeprefix("mb/")
        database = name.split("-")[1] if name.startswith("mb-") else ""
        if file.startswith("mb/") and database and (MBROLA_DATA_DIR / database).is_dir():
            voices.append(name)
    return EngineInfo("mbrola", tuple(dict.fromkeys(voices)))


def _katakana_info() -> EngineInfo | None:
    """espeak-ng's Japanese MBROLA voices whose diphone database is installed
    (`kws.data.synth.katakana`)."""
    if shutil.which("espeak-ng") is None or shutil.which("mbrola") is None:
        return None
    voices = [v for v in KATAKANA_VOICES if (MBROLA_DATA_DIR / v.removeprefix("mb-")).is_dir()]
    return EngineInfo("katakana", tuple(voices))


def _flite_info() -> EngineInfo | None:
    if shutil.which("flite") is None:
        return None
    text = _run(["flite", "-lv"])
    names = text.split(":", 1)[-1].split()
    # `*_time` voices are limited-domain (they can only read out clock times).
    return EngineInfo("flite", tuple(v for v in names if not v.endswith("_time")))


def _festival_info() -> EngineInfo | None:
    if shutil.which("festival") is None:
        return None
    with tempfile.TemporaryDirectory(prefix="kws-festival-") as tmp:
        script = Path(tmp) / "voices.scm"
        script.write_text("(print (voice.list))\n")
        text = _run(["festival", "-b", str(script)])
    voices = tuple(re.findall(r"[A-Za-z0-9_]+", text))
    return EngineInfo("festival", voices)


def _rhvoice_info() -> EngineInfo | None:
    """RHVoice's installed voices whose `voice.info` says `language=English`."""
    if shutil.which(RHVOICE_PROGRAM) is None or not RHVOICE_DATA_DIR.is_dir():
        return None
    voices = []
    for info in sorted(RHVOICE_DATA_DIR.glob("*/voice.info")):
        fields = dict(
            line.split("=", 1)
            for line in info.read_text(errors="replace").splitlines()
            if "=" in line
        )
        if fields.get("language", "").strip().lower() == "english":
            voices.append(info.parent.name)
    return EngineInfo("rhvoice", tuple(voices))


def _pico_info() -> EngineInfo | None:
    """Pico's English voices whose text-analysis file (`<voice>_ta.bin`) is installed."""
    if shutil.which("pico2wave") is None:
        return None
    voices = tuple(v for v in PICO_VOICES if (PICO_LANG_DIR / f"{v}_ta.bin").is_file())
    return EngineInfo("pico", voices)


def _kokoro_info() -> EngineInfo | None:
    """Kokoro when the `tts` extra is installed; its variants are the shipped style vectors."""
    if missing() or shutil.which("espeak-ng") is None:  # espeak-ng gives it phonemes
        return None
    return EngineInfo("kokoro", ACCENTS, tuple(sorted(voices())), version())


def _piper_info() -> EngineInfo | None:
    """Piper's one US voice when the `tts` extra is installed (espeak-ng gives it phonemes)."""
    if piper_missing() or shutil.which("espeak-ng") is None:
        return None
    return EngineInfo("piper", (PIPER_VOICE,), (), piper_version())


def _version(engine: str) -> str:
    if engine == "kokoro":
        return version()
    if engine == "piper":
        return piper_version()
    if engine == "rhvoice":  # RHVoice-test has no version of its own: the package's
        return _package_version("rhvoice-english")
    if engine == "pico":  # pico2wave has no --version either
        return _package_version("libttspico-utils")
    program = {"espeak": "espeak-ng", "mbrola": "espeak-ng", "katakana": "espeak-ng"}.get(
        engine, engine
    )
    try:  # flite prints its version and exits 1, so the exit status is ignored here
        done = subprocess.run([program, "--version"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    lines = [line.strip() for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    tagged = [line for line in lines if "version" in line.lower()]
    return ((tagged or lines or ["unknown"])[0])[:120]


def _package_version(package: str) -> str:
    try:
        done = subprocess.run(["dpkg-query", "-W", "-f=${Version}", package],
                              capture_output=True, text=True, timeout=10)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return f"{package} {done.stdout.strip()}" if done.returncode == 0 else "unknown"


@functools.cache
def discover() -> dict[str, EngineInfo]:
    """Engines on this machine that have at least one voice, keyed by canonical name."""
    found = {}
    probes = (_espeak_info, _flite_info, _festival_info, _kokoro_info, _piper_info, _mbrola_info,
              _rhvoice_info, _pico_info, _katakana_info)  # fmt: skip
    for probe in probes:
        try:
            info = probe()
        except SynthesisError:
            info = None
        if info is not None and info.voices:
            found[info.name] = replace(info, version=_version(info.name))
    return found


def _fresh(path: Path) -> Path:
    """`path` with any earlier call's file removed: engines reuse one output name per speaker,
    and a call that exits 0 without writing (RHVoice does on text it cannot say) must not hand
    back the previous word's audio."""
    path.unlink(missing_ok=True)
    return path


def _read_wav(path: Path) -> tuple[np.ndarray, int]:
    if not path.is_file() or path.stat().st_size <= 44:
        raise SynthesisError(f"engine wrote no audio to {path.name}")
    audio, rate = sf.read(path, dtype="float32", always_2d=True)
    audio = audio.mean(axis=1)
    if audio.size == 0 or not np.any(audio):
        raise SynthesisError(f"engine wrote silent audio to {path.name}")
    return audio, int(rate)


def espeak(text: str, voice: str, variant: str, pitch: int, speed_wpm: int, tmp: Path):
    """espeak-ng: `-p` pitch 0-99 (default 50), `-s` speed in words per minute (default 175)."""
    out = _fresh(tmp / "espeak.wav")
    name = f"{voice}+{variant}" if variant else voice
    _run(["espeak-ng", "-v", name, "-p", str(pitch), "-s", str(speed_wpm), "-w", str(out), text])
    return _read_wav(out)


def flite(text: str, voice: str, f0_factor: float, f0_spread: float, stretch: float, tmp: Path):
    """flite: duration stretch and intonation target mean/spread set per speaker."""
    out = _fresh(tmp / "flite.wav")
    base_hz = _FLITE_BASE_F0_HZ.get(voice, _FLITE_DEFAULT_F0_HZ)
    args = ["flite", "-voice", voice, "--setf", f"duration_stretch={stretch:.3f}"]
    args += ["--setf", f"int_f0_target_mean={base_hz * f0_factor:.1f}"]
    args += ["--setf", f"int_f0_target_stddev={base_hz * 0.12 * f0_spread:.1f}"]
    _run([*args, "-t", text, "-o", str(out)])
    return _read_wav(out)


def rhvoice(text: str, voice: str, pitch: float, stretch: float, tmp: Path):
    """RHVoice: pitch as a factor on the voice's own (`-t` percent), duration stretch as the
    inverse of its rate (`-r` percent); the text goes in a file, never on a command line."""
    out, source = _fresh(tmp / "rhvoice.wav"), tmp / "rhvoice.txt"
    source.write_text(text + "\n")
    args = [RHVOICE_PROGRAM, "-p", voice, "-t", str(round(100 * pitch)), "-r"]
    _run([*args, str(round(100 / stretch)), "-i", str(source), "-o", str(out)])
    return _read_wav(out)


_PICO_PLAIN = re.compile(r"[<>&]")


def _pico_plain(match: re.Match) -> str:
    return " and " if match.group(0) == "&" else " "


def pico(text: str, voice: str, pitch: float, stretch: float, tmp: Path):
    """SVOX Pico: pitch as a factor on the voice's own and duration stretch as the inverse of
    its speed, both as Pico's markup levels (percent). Pico decodes no XML entities, so the
    text's `<` and `>` become spaces and `&` "and": it can only be spoken, never read as
    markup."""
    out = _fresh(tmp / "pico.wav")  # pico2wave picks its output format by the .wav suffix
    markup = (f"<pitch level='{round(100 * pitch)}'><speed level='{round(100 / stretch)}'>"
              f"{_PICO_PLAIN.sub(_pico_plain, text)}</speed></pitch>")  # fmt: skip
    _run(["pico2wave", "-l", voice, "-w", str(out), markup])
    return _read_wav(out)


def _scheme_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def festival_batch(texts: list[str], voice: str, stretch: float, tmp: Path):
    """festival: one process per speaker says every text (startup costs ~0.4 s, a word ~0.07 s).

    Returns one `(audio, rate)` or a `SynthesisError` per text, in order.

    Raises:
        SynthesisError: festival failed for every text (single failures come back in the
        list).
    """
    if not re.fullmatch(r"[A-Za-z0-9_]+", voice):
        raise SynthesisError(f"bad festival voice name {voice!r}")
    lines = [f"(voice_{voice})", f"(Parameter.set 'Duration_Stretch {stretch:.3f})"]
    outs = [_fresh(tmp / f"festival_{i}.wav") for i in range(len(texts))]
    for text, out in zip(texts, outs, strict=True):
        utt = f"(utt.synth (Utterance Text {_scheme_string(text)}))"
        lines.append(f"(utt.save.wave {utt} {_scheme_string(str(out))} 'riff)")
    script = tmp / "festival.scm"
    script.write_text("\n".join(lines) + "\n")
    _run(["festival", "-b", str(script)], timeout_s=_TIMEOUT_S + 5 * len(texts))
    results: list = []
    for out in outs:
        try:
            results.append(_read_wav(out))
        except SynthesisError as exc:
            results.append(exc)
    return results
