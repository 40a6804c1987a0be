"""A session that sounds distant, processed by a diarizer not built for it, says so: the
warning reaches the session's status through the real API, worker and models; clean close
speech gets none."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from services.audio import decode_audio
from services.diarization import FAR_FIELD_WARNING, sounds_distant
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


@pytest.mark.slow
@pytest.mark.parametrize(("recording", "warned"), [(AMI / "dev00_16k.wav", True), (CLEAN, False)])
def test_the_session_is_warned_through_the_worker(
    client, make_user, settings, redis_conn, models, recording: Path, warned: bool
) -> None:
    assert not models.diarizer.hears_far_field  # the default (resemblyzer) backend
    user = make_user()
    phone = Phone(client, user.headers)
    _, session_id = phone.session()
    assert phone.upload(session_id, 0, recording).status_code == 201
    phone.end(session_id)
    drain_queues(settings, redis_conn, models)
    status = client.get(f"/sessions/{session_id}/status", headers=user.headers).json()
    assert status["status"] in ("ready_for_claiming", "completed"), status
    assert (FAR_FIELD_WARNING in status["warnings"]) is warned
