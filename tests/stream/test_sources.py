"""Sources: WAV files (and folders given by mistake), stdin (raw PCM or a WAV stream), and
microphones through a fake sounddevice module (mono, stereo-only and 4-channel devices, a device
that refuses everything) and the real one's error paths."""

from __future__ import annotations

import io
import struct
import sys
import warnings

import numpy as np
import pytest
import soundfile

from kws.cli import main
from kws.errors import UserError
from kws.stream.recognize import StreamWarning
from kws.stream.sources import stdin_source, wav_source
from tests.stream.tones import RATE_HZ


def test_wav_source_yields_the_whole_file(stream_wav, tmp_path):
    path, audio = stream_wav
    source = wav_source(path, chunk_ms=64)
    chunks = list(source.chunks)
    assert source.sample_rate_hz == RATE_HZ
    assert {len(c) for c in chunks[:-1]} == {1024}
    np.testing.assert_allclose(np.concatenate(chunks), audio, atol=1 / 32768)
    stereo = tmp_path / "stereo.wav"
    soundfile.write(stereo, np.stack([audio, audio], axis=1), 22050)
    source = wav_source(stereo)
    assert source.sample_rate_hz == 22050 and next(source.chunks).ndim == 1
    with pytest.raises(UserError, match="does not exist"):
        wav_source(tmp_path / "missing.wav")


def test_wav_source_refuses_a_cut_off_wav_and_repairs_a_zero_length_header(stream_wav, tmp_path):
    """A truncated WAV used to stream silently (training skips it, naming the fault)."""
    path, audio = stream_wav
    data = path.read_bytes()
    cut = tmp_path / "cut.wav"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match="holds .* of the .* samples its header promises"):
        wav_source(cut)
    size_at = data.index(b"data") + 4
    zero = tmp_path / "zero.wav"
    zero.write_bytes(data[:size_at] + b"\0\0\0\0" + data[size_at + 4 :])
    streamed = np.concatenate(list(wav_source(zero).chunks))
    np.testing.assert_allclose(streamed, audio, atol=1 / 32768)


def test_wav_source_given_a_folder_says_so_and_what_to_pass(stream_wav, tmp_path):
    """Fault 7: a folder used to be reported as 'does not exist'."""
    folder = stream_wav[0].parent
    with pytest.raises(
        UserError, match=rf"is a folder, not an audio file; .*--wav {folder / 'stream.wav'}"
    ):
        wav_source(folder)
    with pytest.raises(UserError, match="is a folder.*holds no audio files"):
        wav_source(tmp_path)


def test_wav_source_realtime_is_paced(stream_wav, tmp_path):
    short = tmp_path / "short.wav"
    soundfile.write(short, stream_wav[1][: RATE_HZ // 2], RATE_HZ)  # 0.5 s
    start = __import__("time").monotonic()
    list(wav_source(short, chunk_ms=100, realtime=True).chunks)
    assert __import__("time").monotonic() - start >= 0.35  # last chunk is sent at 0.4 s


class Trickle(io.RawIOBase):
    """A pipe that hands out at most 333 bytes per read."""

    def __init__(self, raw: bytes):
        self.raw, self.pos = raw, 0

    def read(self, n=-1):
        size = min(n if n >= 0 else len(self.raw), 333, len(self.raw) - self.pos)
        data = self.raw[self.pos : self.pos + size]
        self.pos += size
        return data


def test_stdin_source_reassembles_samples_split_across_reads():
    pcm = (np.arange(-5000, 5000, 7) % 30000 - 15000).astype("<i2")
    got = np.concatenate(list(stdin_source(Trickle(pcm.tobytes()), chunk_ms=10).chunks))
    np.testing.assert_array_equal(got, pcm)


def wav_bytes(audio: np.ndarray, rate_hz: int, subtype: str = "PCM_16") -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, audio, rate_hz, format="WAV", subtype=subtype)
    return buffer.getvalue()


@pytest.mark.parametrize(("rate_hz", "channels"), [(16000, 1), (44100, 2)])
def test_stdin_wav_stream_uses_its_header(rate_hz, channels):
    """`arecord` without `-t raw` sends a WAV header: read it instead of playing it as samples."""
    rng = np.random.default_rng(channels)
    audio = np.round(rng.uniform(-0.5, 0.5, (rate_hz // 3, channels)) * 32767) / 32768
    raw = wav_bytes(audio if channels > 1 else audio[:, 0], rate_hz)
    raw = raw[:4] + b"\xff\xff\xff\xff" + raw[8:40] + b"\xff\xff\xff\xff" + raw[44:]  # pipe sizes
    source = stdin_source(Trickle(raw), chunk_ms=10)
    assert source.sample_rate_hz == rate_hz and str(channels) in source.name
    got = np.concatenate(list(source.chunks)).astype(np.float64) / 32768
    np.testing.assert_allclose(got, audio.mean(axis=1), atol=1 / 32768)


def test_stdin_wav_stream_stops_at_its_data_size():
    """A LIST chunk after the audio (20 KB after 2 s) used to be played as 0.6 s more audio."""
    pcm = (np.arange(32000) % 2000 - 1000).astype("<i2")
    raw = wav_bytes(pcm, 16000)
    trailer = b"LIST" + struct.pack("<I", 20000) + b"INFO" + bytes(19996)
    source = stdin_source(Trickle(raw + trailer), chunk_ms=10)
    np.testing.assert_array_equal(np.concatenate(list(source.chunks)), pcm)
    # a streaming writer's 0 ("length unknown"): the audio runs to the end of the stream
    size_at = raw.index(b"data") + 4
    zero = raw[:size_at] + bytes(4) + raw[size_at + 4 :]
    assert len(np.concatenate(list(stdin_source(io.BytesIO(zero)).chunks))) == len(pcm)


def test_stdin_wav_stream_cut_short_is_said(run_dir, monkeypatch, capsys):
    """A WAV stream whose header declares 2 s but that ends after 0.5 s (a killed writer) played
    the 0.5 s without a word; it still plays it, and says the rest never came."""
    pcm = (np.arange(32000) % 2000 - 1000).astype("<i2")
    raw = wav_bytes(pcm, 16000)[: 44 + 16000]
    with pytest.warns(StreamWarning, match=r"ended after 0.50 s of the 2.00 s its header declares"):
        got = np.concatenate(list(stdin_source(io.BytesIO(raw)).chunks))
    np.testing.assert_array_equal(got, pcm[:8000])
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(raw)))
    assert main(["demo", str(run_dir), "--stdin", "--json"]) == 0
    err = capsys.readouterr().err
    assert "warning: the WAV stream on stdin ended after 0.50 s of the 2.00 s its header" in err
    assert "StreamWarning" not in err
    with warnings.catch_warnings():  # whole streams and unknown sizes: nothing to say
        warnings.simplefilter("error")
        list(stdin_source(io.BytesIO(wav_bytes(pcm, 16000))).chunks)
        for unknown in (b"\xff\xff\xff\xff", struct.pack("<I", 0x80000000)):  # arecord's 2 GiB
            list(stdin_source(io.BytesIO(raw[:40] + unknown + raw[44:])).chunks)
        stereo = wav_bytes(np.zeros((16000, 2)), 16000)  # short of a whole frame: nothing lost
        list(stdin_source(io.BytesIO(stereo[:-2])).chunks)


def test_stdin_wav_stream_of_another_format_is_refused():
    raw = wav_bytes(np.zeros(1600, np.float32), 16000, subtype="FLOAT")
    with pytest.raises(UserError, match=r"32-bit samples .*arecord -t raw -f S16_LE"):
        stdin_source(io.BytesIO(raw))


@pytest.mark.parametrize(
    ("kind", "fmt"),
    [("FLAC", "FLAC"), ("Ogg", "OGG"), ("RF64", "RF64"), ("AIFF", "AIFF"), ("MP3", "MP3")],
)
def test_stdin_refuses_containers_it_cannot_decode(kind, fmt):
    """FLAC, Ogg, RF64, MP3 on stdin were played as raw s16le noise, exit 0."""
    buffer = io.BytesIO()
    tone = 0.3 * np.sin(np.arange(16000) / 3)
    soundfile.write(buffer, tone, 16000, format=fmt)
    message = rf"stdin holds {kind} audio, .*--wav FILE .*sox in\.\w+ -t raw -r 16000"
    with pytest.raises(UserError, match=message):
        stdin_source(Trickle(buffer.getvalue()))
    if kind == "MP3":  # with an ID3 tag in front, as most MP3 files start
        with pytest.raises(UserError, match="stdin holds MP3 audio"):
            stdin_source(io.BytesIO(b"ID3\x04\0\0\0\0\0\0" + buffer.getvalue()))


def test_stdin_plays_raw_pcm_that_starts_like_an_mp3_frame():
    """Raw samples -1025, 25744 are the bytes of an MP3 frame header: still raw PCM, since no
    second frame header follows where that frame would end."""
    pcm = np.concatenate([[-1025, 25744], np.arange(4000) % 300]).astype("<i2")
    assert pcm.tobytes()[:4] == bytes([0xFF, 0xFB, 0x90, 0x64])
    got = np.concatenate(list(stdin_source(Trickle(pcm.tobytes()), chunk_ms=10).chunks))
    np.testing.assert_array_equal(got, pcm)


@pytest.mark.parametrize("header_only", [False, True])
def test_stdin_without_audio_is_an_error(run_dir, monkeypatch, capsys, header_only):
    """An empty stdin or a header-only WAV stream said "0.0 s of audio" and exited 0."""
    raw = wav_bytes(np.zeros(0, np.float32), 16000) if header_only else b""
    with pytest.raises(UserError, match="no audio was read: .*stdin ended before its first"):
        list(stdin_source(io.BytesIO(raw)).chunks)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(raw)))
    assert main(["demo", str(run_dir), "--stdin", "--json"]) == 2
    assert "no audio was read" in capsys.readouterr().err


def test_wav_source_without_samples_is_an_error(tmp_path):
    """A sample-less AIFF (a WAV's empty data chunk was refused already) ran as 0.0 s, exit 0."""
    soundfile.write(tmp_path / "empty.aiff", np.zeros(0, np.float32), 16000)
    with pytest.raises(UserError, match="no audio was read: '.*empty.aiff' holds no samples"):
        wav_source(tmp_path / "empty.aiff")


def _with_fmt(raw: bytes, channels: int, rate_hz: int) -> bytes:
    """`raw` (a WAV) with the 'fmt ' chunk's channel count and sample rate replaced."""
    out = bytearray(raw)
    struct.pack_into("<HI", out, raw.index(b"fmt ") + 10, channels, rate_hz)
    return bytes(out)


@pytest.mark.parametrize(
    ("channels", "rate_hz", "message"),
    [(0, 16000, "0 channels"), (1, 0, "sample rate of 0 Hz"), (1, 1, "sample rate of 1 Hz"),
     (2, 10**9, "sample rate of 1000000000 Hz")],
)  # fmt: skip
def test_stdin_wav_stream_with_a_damaged_header_is_refused(channels, rate_hz, message):
    """0 channels gave '0.0 s of audio' and exit 0; 0 Hz was taken as 16 kHz, 1 Hz as 1 Hz."""
    raw = _with_fmt(wav_bytes(np.zeros(1600, np.float32), 16000), channels, rate_hz)
    with pytest.raises(UserError, match=f"WAV stream on stdin .*{message}"):
        stdin_source(io.BytesIO(raw))


def test_wav_source_refuses_a_sample_rate_no_recording_has(tmp_path):
    """A 1 Hz WAV was streamed as 1,600 s of audio (80,026 inferences), exit 0."""
    path = tmp_path / "rate1.wav"
    path.write_bytes(_with_fmt(wav_bytes(np.zeros(1600, np.float32), 16000), 1, 1))
    with pytest.raises(UserError, match=r"'.*rate1.wav' gives a sample rate of 1 Hz; .*4000-"):
        wav_source(path)
