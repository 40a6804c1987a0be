"""Rooms: a recording that sounds distant goes to the diarizer built for it (the default,
``auto``), and a session processed by one that was not (``DIARIZATION_BACKEND=resemblyzer``)
says so in its status, through the real API, worker and models; clean speech gets neither."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from services.audio import decode_audio
from services.bundled_diarizer import BundledDiarizer
from services.diarization import (
    FAR_FIELD_WARNING,
    ResemblyzerDiarizer,
    RoomAwareDiarizer,
    sounds_distant,
)
from services.domain import Audio
from tests.factories import Phone, drain_queues
from tests.paths import CORPUS, REPO

AMI = CORPUS / "diarization" / "ami_excerpts_pyannote_debug"
HELD_OUT = REPO / "bench" / "data" / "ami_heldout"
CLEAN = CORPUS / "diarization" / "pyannote_sample" / "sample.wav"
LEOPARD = (
    CORPUS / "diarization" / "picovoice_leopard_diarization_test" / "leopard_diarization_test.wav"
)


@pytest.mark.parametrize(
    ("path", "distant"),
    [
        (AMI / "dev00_16k.wav", True),
        (HELD_OUT / "tst00.flac", True),
        (CLEAN, False),
        (LEOPARD, False),
        (REPO / "samples" / "singlish" / "hawker_supper.flac", False),
    ],
    ids=lambda v: v.name if isinstance(v, Path) else str(v),
)
def test_sounds_distant(path: Path, distant: bool) -> None:
    assert sounds_distant(decode_audio(path)) is distant


def test_too_little_speech_is_not_judged() -> None:
    assert not sounds_distant(Audio(np.zeros(16_000 * 30, np.float32)))
    assert not sounds_distant(Audio(np.zeros(100, np.float32)))


def test_the_default_sends_each_room_to_its_diarizer(models) -> None:
    default = models.diarizer
    assert isinstance(default, RoomAwareDiarizer) and default.hears_far_field
    assert isinstance(default.choose(decode_audio(AMI / "dev00_16k.wav")), BundledDiarizer)
    assert isinstance(default.choose(decode_audio(CLEAN)), ResemblyzerDiarizer)


def _status_after_processing(client, make_user, settings, redis_conn, engines, recording):
    user = make_user()
    phone = Phone(client, user.headers)
    _, session_id = phone.session()
    assert phone.upload(session_id, 0, recording).status_code == 201
    phone.end(session_id)
    drain_queues(settings, redis_conn, engines)
    status = client.get(f"/sessions/{session_id}/status", headers=user.headers).json()
    assert status["status"] in ("ready_for_claiming", "completed"), status
    return status


@pytest.mark.slow
@pytest.mark.parametrize(("recording", "warned"), [(AMI / "dev00_16k.wav", True), (CLEAN, False)])
def test_a_diarizer_not_built_for_rooms_warns_through_the_worker(
    client, make_user, settings, redis_conn, models, recording: Path, warned: bool
) -> None:
    close_only = dataclasses.replace(models, diarizer=models.diarizer.close)
    assert not close_only.diarizer.hears_far_field
    status = _status_after_processing(
        client, make_user, settings, redis_conn, close_only, recording
    )
    assert (FAR_FIELD_WARNING in status["warnings"]) is warned


@pytest.mark.slow
def test_the_default_processes_a_far_field_session_without_the_warning(
    client, make_user, settings, redis_conn, models
) -> None:
    status = _status_after_processing(
        client, make_user, settings, redis_conn, models, AMI / "dev00_16k.wav"
    )
    assert FAR_FIELD_WARNING not in status["warnings"]
