"""Is an upload audio? Sniff the container from its first bytes; never trust the declared
content type alone."""

from __future__ import annotations

# Content types a phone or browser may declare for a recording.
_ACCEPTED_DECLARED = ("audio/", "video/webm", "video/mp4", "video/ogg", "video/3gpp")
_GENERIC_DECLARED = {"application/octet-stream", "binary/octet-stream", ""}

SNIFF_BYTES = 64


def sniff_audio_format(head: bytes) -> str | None:
    """The container of an audio file from its first :data:`SNIFF_BYTES` bytes, or None."""
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "wav"
    if head[:4] == b"OggS":
        return "ogg"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "webm"
    if head[4:8] == b"ftyp":
        return "mp4"
    if head[:4] == b"fLaC":
        return "flac"
    if head[:4] == b"caff":
        return "caf"
    if head[:5] == b"#!AMR":
        return "amr"
    if head[:3] == b"ID3":
        return "mp3"
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xF6 == 0xF0:
        return "aac"  # ADTS
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:
        return "mp3"  # MPEG audio frame sync
    return None


def declared_type_acceptable(content_type: str | None) -> bool:
    declared = (content_type or "").split(";")[0].strip().lower()
    return declared in _GENERIC_DECLARED or declared.startswith(_ACCEPTED_DECLARED)
