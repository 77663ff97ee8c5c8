"""The one decoding policy (kws/data/audio.py): every fault kind is skipped or repaired with a
named, counted warning, the same through every entry point."""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest
import soundfile as sf

from kws.data.audio import (
    AudioError,
    AudioReport,
    check_sample_rate,
    decode_clip,
    load_audio,
    read_audio,
    sanitize_samples,
)

RATE = 16000


def _tone(samples: int = RATE, freq_hz: float = 440.0) -> np.ndarray:
    return (0.5 * np.sin(2 * np.pi * freq_hz * np.arange(samples) / RATE)).astype(np.float32)


def _wav_bytes(audio: np.ndarray, subtype: str = "PCM_16", rate: int = RATE) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, audio, rate, subtype=subtype, format="WAV")
    return buffer.getvalue()


def _data_size_at(data: bytes) -> int:
    """Byte offset of the `data` chunk's size field in a WAV written by soundfile."""
    return data.index(b"data") + 4


def _with_data_size(data: bytes, size: int) -> bytes:
    out = bytearray(data)
    struct.pack_into("<I", out, _data_size_at(data), size)
    return bytes(out)


@pytest.fixture
def faulty(tmp_path):
    """One file per skipped kind, as a user's data set might hold them."""
    good = _wav_bytes(_tone())
    files = {
        # cut off after 0.1 s: libsndfile would silently return 1,600 samples
        "truncated": good[: _data_size_at(good) + 4 + 3200],
        "empty": _with_data_size(good[: _data_size_at(good) + 4], 0),  # header only, says 0
        "unreadable": b"RIFF\x00\x00garbage",
        "non_finite": _wav_bytes(np.where(np.arange(RATE) == 5, np.nan, _tone()), "FLOAT"),
    }
    paths = {}
    for kind, data in files.items():
        paths[kind] = tmp_path / f"{kind}_nohash_0.wav"
        paths[kind].write_bytes(data)
    return paths


@pytest.mark.parametrize("kind", ["truncated", "empty", "unreadable", "non_finite"])
def test_every_entry_point_skips_the_same_kinds(faulty, kind):
    path = faulty[kind]
    for decode in (
        lambda: read_audio(path),
        lambda: load_audio(path, RATE),
        lambda: decode_clip(path, RATE, RATE),
    ):
        with pytest.raises(AudioError) as caught:
            decode()
        assert caught.value.kind == kind and caught.value.path == str(path)
        assert str(path) in str(caught.value)  # the message names the file


def test_truncated_clip_is_not_a_padded_example(faulty):
    # Today's failure: the cut-off clip became 1,600 samples of its word plus 14,400 zeros.
    with pytest.raises(AudioError, match="holds 1600 of the 16000 samples .*sox --ignore-length"):
        decode_clip(faulty["truncated"], RATE, RATE)


def test_missing_file_and_folder_are_unreadable(tmp_path):
    with pytest.raises(AudioError, match="does not exist") as caught:
        read_audio(tmp_path / "nope.wav")
    assert caught.value.kind == "unreadable"
    with pytest.raises(AudioError, match="is a folder"):
        read_audio(tmp_path)


def test_zero_length_header_is_repaired_from_the_file(tmp_path):
    audio = _tone(8000)
    path = tmp_path / "streamed.wav"
    path.write_bytes(_with_data_size(_wav_bytes(audio), 0))
    decoded = read_audio(path)
    assert decoded.tags == ("zero_length_header",)
    np.testing.assert_allclose(decoded.audio, audio, atol=1 / 32768)
    pcm, tags = decode_clip(path, RATE, RATE)
    assert tags == ("zero_length_header", "padded") and pcm.shape == (RATE,)


def test_unknown_length_header_reads_to_the_end_without_a_tag(tmp_path):
    data = bytearray(_with_data_size(_wav_bytes(_tone()), 0xFFFFFFFF))
    struct.pack_into("<I", data, 4, 0xFFFFFFFF)  # RIFF size too, as pipes leave it
    path = tmp_path / "pipe.wav"
    path.write_bytes(bytes(data))
    decoded = read_audio(path)
    assert decoded.tags == () and decoded.audio.shape == (RATE,)


def test_chunks_around_data_are_walked(tmp_path):
    """A JUNK chunk before `data` and a LIST/INFO chunk after it: neither is truncation."""
    good = _wav_bytes(_tone())
    start = good.index(b"data")
    junk = b"JUNK" + struct.pack("<I", 28) + bytes(28)
    info = b"INFO" + b"ISFT" + struct.pack("<I", 4) + b"kws\0"
    listing = b"LIST" + struct.pack("<I", len(info)) + info
    path = tmp_path / "chunks.wav"
    data = bytearray(good[:start] + junk + good[start:] + listing)
    struct.pack_into("<I", data, 4, len(data) - 8)  # the RIFF size covers every chunk
    path.write_bytes(bytes(data))
    decoded = read_audio(path)
    assert decoded.tags == () and decoded.audio.shape == (RATE,)


def test_repair_tags_padded_trimmed_downmixed_resampled(tmp_path):
    short, stereo, other_rate = tmp_path / "s.wav", tmp_path / "st.wav", tmp_path / "r.wav"
    sf.write(short, _tone(4000), RATE)
    sf.write(stereo, np.stack([_tone(), _tone()], 1), RATE)
    sf.write(other_rate, _tone(44100), 44100)
    pcm, tags = decode_clip(short, RATE, RATE)
    assert tags == ("padded",) and not pcm[4000:].any() and pcm[:4000].any()
    assert decode_clip(stereo, RATE, RATE)[1] == ("downmixed",)
    assert decode_clip(other_rate, RATE, RATE)[1] == ("resampled",)


def test_multi_word_file_keeps_its_loudest_second_and_is_named(tmp_path):
    audio = np.zeros(3 * RATE, np.float32)
    audio[RATE // 4 : RATE // 2] = 0.05 * _tone(RATE // 4)  # a quiet word
    audio[2 * RATE : 2 * RATE + RATE // 2] = 0.8 * _tone(RATE // 2)  # the loud one
    path = tmp_path / "yes" / "three_words_nohash_0.wav"
    path.parent.mkdir()
    sf.write(path, audio, RATE)
    report = AudioReport()
    pcm = report.decode(path, RATE, RATE)
    assert np.abs(pcm.astype(np.float32) / 32768).max() == pytest.approx(0.4, abs=0.01)
    assert report.repairs == {"trimmed": 1}
    (line,) = report.lines("clip")
    assert line.startswith("warning: 1 clip(s) repaired, trimmed (") and str(path) in line


def test_report_counts_one_line_per_kind_with_an_example(faulty, tmp_path):
    second = tmp_path / "truncated2_nohash_0.wav"
    second.write_bytes(faulty["truncated"].read_bytes())
    short = tmp_path / "short.wav"
    sf.write(short, _tone(100), RATE)
    report = AudioReport()
    paths = [*faulty.values(), second, short]
    results = [report.decode(p, RATE, RATE) for p in paths]
    assert [r is None for r in results] == [True] * 5 + [False]
    assert report.skips == {"truncated": 2, "empty": 1, "unreadable": 1, "non_finite": 1}
    assert report.examples["truncated"] == str(faulty["truncated"])
    lines = report.lines("clip")
    assert len(lines) == 5
    # sorted by kind: empty, non_finite, truncated, unreadable, then the repairs
    assert lines[2].startswith("warning: 2 clip(s) skipped, truncated (less audio than the")
    assert lines[2].endswith(f"e.g. {faulty['truncated']}")
    assert lines[-1].startswith("note: 1 clip(s) repaired, padded")
    assert sorted(report.skipped) == sorted(str(p) for p in paths[:5])
    again = AudioReport.from_json(report.to_json())
    assert again.lines("clip") == lines


def test_load_audio_warns_at_once_without_a_report(tmp_path, capsys):
    path = tmp_path / "r.wav"
    sf.write(path, _tone(22050), 22050)
    audio = load_audio(path, RATE)
    assert audio.shape == (RATE,)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "resampled" in err and str(path) in err


@pytest.mark.parametrize("rate_hz", [1, 3999, 384_001])
def test_a_sample_rate_no_recording_has_is_unreadable(tmp_path, rate_hz):
    """A 1 Hz header made 0.1 s of audio into 1,600 s of near-silence, without a word."""
    data = bytearray(_wav_bytes(_tone(1600)))
    struct.pack_into("<II", data, 24, rate_hz, 2 * rate_hz)  # fmt: rate, byte rate
    path = tmp_path / "odd_rate.wav"
    path.write_bytes(bytes(data))
    with pytest.raises(AudioError, match=rf"sample rate of {rate_hz} Hz; .* 4000-384000 Hz"):
        load_audio(path, RATE)
    report = AudioReport()
    assert report.load(path, RATE) is None and report.skips == {"unreadable": 1}
    assert [check_sample_rate(r, "x") for r in (4000, 8000, 384_000)] == [4000, 8000, 384_000]


def test_sanitize_samples_zeroes_and_counts():
    report = AudioReport()
    chunk = np.array([0.1, np.nan, np.inf, -0.2], np.float32)
    out = sanitize_samples(chunk, report, "mic")
    np.testing.assert_array_equal(out, np.array([0.1, 0.0, 0.0, -0.2], np.float32))
    assert report.repairs == {"non_finite": 2} and "2 sample(s) repaired" in report.lines()[0]
    clean = np.ones(3, np.float32)
    assert sanitize_samples(clean, report) is clean
