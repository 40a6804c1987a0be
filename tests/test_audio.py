"""Decoding real speech in the formats phones and browsers upload, joining chunks, and the
speaker sample clip."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

import numpy as np
import pytest

from services.audio import (
    AudioDecodeError,
    AudioSpool,
    decode_audio,
    encode_clip,
    find_gaps,
    sample_clip_window,
)
from services.domain import SAMPLE_RATE, Audio, SpeakerTurn
from tests.paths import CORPUS

SAMPLE_WAV = CORPUS / "diarization" / "pyannote_sample" / "sample.wav"  # 30 s, 16 kHz mono

# Each upload format as a phone or browser records it: native rate, stereo where usual. The
# stereo copies duplicate the channel at full level (ffmpeg's own "-ac 2" upmix lowers it 3 dB).
STEREO = ["-af", "pan=stereo|c0=c0|c1=c0"]
TRANSCODINGS = {
    "m4a": ["-ar", "44100", *STEREO, "-c:a", "aac"],
    "ogg": ["-ar", "48000", "-c:a", "libopus"],
    "webm": ["-ar", "48000", *STEREO, "-c:a", "libopus"],
    "mp3": ["-ar", "22050", "-c:a", "libmp3lame"],
}


@pytest.fixture(scope="module")
def reference() -> Audio:
    return decode_audio(SAMPLE_WAV)


def _transcode(source: Path, target: Path, options: list[str]) -> None:
    command = ["ffmpeg", "-loglevel", "error", "-y", "-i", str(source), *options, str(target)]
    subprocess.run(command, check=True)


def test_decodes_wav_file_to_16k_mono_float32(reference: Audio) -> None:
    assert reference.sample_rate == SAMPLE_RATE
    assert reference.samples.dtype == np.float32
    assert reference.samples.ndim == 1
    assert reference.duration == pytest.approx(30.0, abs=0.01)
    assert 0.01 < float(np.abs(reference.samples).max()) <= 1.0


@pytest.mark.parametrize("fmt", sorted(TRANSCODINGS))
def test_decodes_transcoded_upload_bytes(tmp_path: Path, reference: Audio, fmt: str) -> None:
    encoded = tmp_path / f"sample.{fmt}"
    _transcode(SAMPLE_WAV, encoded, TRANSCODINGS[fmt])

    audio = decode_audio(encoded.read_bytes())

    assert audio.sample_rate == SAMPLE_RATE
    assert audio.samples.dtype == np.float32
    # Lossy codecs add encoder padding (tens of ms) at the edges.
    assert audio.duration == pytest.approx(reference.duration, abs=0.1)
    # Same waveform, same time alignment and same loudness as the original: catches wrong
    # resampling, channel handling, offsets or scaling.
    n = min(len(audio.samples), len(reference.samples))
    decoded, original = audio.samples[:n], reference.samples[:n]
    assert np.corrcoef(decoded, original)[0, 1] > 0.99
    assert np.std(decoded) == pytest.approx(np.std(original), rel=0.1)


def test_decodes_file_object_with_hint(tmp_path: Path) -> None:
    encoded = tmp_path / "sample.webm"
    _transcode(SAMPLE_WAV, encoded, TRANSCODINGS["webm"])
    with encoded.open("rb") as upload:
        assert decode_audio(upload, format_hint="webm").duration == pytest.approx(30.0, abs=0.1)


@pytest.mark.parametrize("junk", [b"", b"not audio at all" * 100, b"RIFF\x00\x00\x00\x00WAVEfmt "])
def test_undecodable_bytes_raise_decode_error(junk: bytes) -> None:
    with pytest.raises(AudioDecodeError) as raised:
        decode_audio(junk)
    assert raised.value.__cause__ is not None or "no samples" in str(raised.value)


def test_truncated_m4a_raises_decode_error(tmp_path: Path) -> None:
    encoded = tmp_path / "sample.m4a"
    _transcode(SAMPLE_WAV, encoded, TRANSCODINGS["m4a"])
    # An interrupted upload: without its index an MP4 file cannot be read.
    with pytest.raises(AudioDecodeError):
        decode_audio(encoded.read_bytes()[:2000], format_hint="m4a")


def test_spool_joins_in_order_without_touching_parts(tmp_path) -> None:
    first = Audio(np.ones(3, dtype=np.float32))
    second = Audio(np.full(2, 0.5, dtype=np.float32))

    with AudioSpool(tmp_path) as spool:
        spool.append(first)
        spool.append(second)
        joined = spool.audio()
        np.testing.assert_array_equal(joined.samples, [1, 1, 1, 0.5, 0.5])
        assert joined.samples.dtype == np.float32
        assert not joined.samples.flags.writeable  # read-only map: no stage can mutate it
    assert first.samples[0] == 1
    assert list(tmp_path.iterdir()) == []  # the spool file goes with the spool


def test_spool_edge_cases(tmp_path) -> None:
    with AudioSpool(tmp_path) as spool:
        assert spool.audio().duration == 0
        with pytest.raises(ValueError, match="Hz"):
            spool.append(Audio(np.zeros(1, np.float32), 8_000))


@pytest.mark.parametrize(
    ("numbers", "gaps"),
    [([], []), ([0], []), ([0, 1, 2], []), ([2, 0], [1]), ([5, 1, 3], [0, 2, 4]), ([0, 0, 2], [1])],
)
def test_find_gaps(numbers: list[int], gaps: list[int]) -> None:
    assert find_gaps(iter(numbers)) == gaps


def test_find_gaps_refuses_negative_numbers() -> None:
    with pytest.raises(ValueError):
        find_gaps([-1, 0])


def test_clip_window_prefers_longest_clean_stretch() -> None:
    turns = [
        SpeakerTurn(0.0, 10.0, "A"),  # 10 s but B talks over 2-9: clean only 0-2, 9-10
        SpeakerTurn(2.0, 9.0, "B"),
        SpeakerTurn(12.0, 16.0, "A"),  # 4 s clean
    ]
    assert sample_clip_window(turns, "A", 5.0) == (12.0, 16.0)
    assert sample_clip_window(turns, "A", 2.0) == (13.0, 15.0)
    assert sample_clip_window(turns, "B", 5.0) == (3.0, 8.0)
    assert sample_clip_window(turns, "C", 5.0) is None


def test_clip_window_joins_touching_turns_and_falls_back_when_always_overlapped() -> None:
    touching = [SpeakerTurn(0.0, 3.0, "A"), SpeakerTurn(3.0, 6.0, "A"), SpeakerTurn(7, 9, "B")]
    assert sample_clip_window(touching, "A", 4.0) == (1.0, 5.0)
    overlapped = [SpeakerTurn(0.0, 4.0, "A"), SpeakerTurn(0.0, 4.0, "B")]
    assert sample_clip_window(overlapped, "A", 5.0) == (0.0, 4.0)


def test_clip_encodes_to_ogg_opus_and_decodes_back(reference: Audio) -> None:
    clip = reference.slice(10.0, 15.0)

    encoded = encode_clip(clip)

    assert encoded[:4] == b"OggS"
    assert b"OpusHead" in encoded[:200]
    assert len(encoded) < 40_000  # 5 s at 32 kbit/s is about 20 kB
    assert decode_audio(io.BytesIO(encoded)).duration == pytest.approx(5.0, abs=0.05)


def test_clip_refuses_unknown_format(reference: Audio) -> None:
    with pytest.raises(ValueError, match="unknown clip format"):
        encode_clip(reference.slice(0, 1), fmt="flac")
