"""A short sample clip per speaker, from their longest clean stretch, written to storage."""

from __future__ import annotations

import io
import uuid
from collections.abc import Sequence

from services.audio import encode_clip, sample_clip_window
from services.domain import Audio, SpeakerTurn
from storage import Storage, clip_key


def store_clips(
    audio: Audio,
    turns: Sequence[SpeakerTurn],
    session_id: uuid.UUID,
    storage: Storage,
    seconds: float,
) -> dict[str, str]:
    """Speaker label → storage key of their clip (Ogg/Opus), for every speaker in ``turns``."""
    keys: dict[str, str] = {}
    for speaker in sorted({t.speaker for t in turns}):
        window = sample_clip_window(turns, speaker, seconds)
        if window is None:
            continue
        key = clip_key(session_id, speaker)
        data = encode_clip(audio.slice(*window))
        storage.put(key, io.BytesIO(data), "audio/ogg")
        keys[speaker] = key
    return keys
