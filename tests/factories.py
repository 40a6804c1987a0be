"""Builders shared by the tests: rows as the API and the worker leave them, for tests that start
mid-story; a phone that makes the API calls a phone makes; a worker that processes what is queued
in this process; audio cut into phone-sized chunks.

Why not ``bench.stack.PhoneClient``: it needs a running ``Stack`` (it records job ids for the
stack's clean-up), opens its own ``httpx.Client`` and raises ``BenchError``; tests talk to a
``TestClient`` as often as to a live server, and want the response back to assert on."""

from __future__ import annotations

import io
import json
import subprocess
import threading
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import redis
from rq import Queue
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session as DbSession
from sqlalchemy.orm import sessionmaker

import processor
from config import Settings
from db import create_session_factory
from models import (
    Group,
    GroupMember,
    Profile,
    Segment,
    Session,
    SessionSpeaker,
    SessionStatus,
    WordOccurrence,
)
from queueing.jobs import chunk_queue
from queueing.webhooks import webhook_queue
from services.singlish.text import tokenize
from services.singlish.words import TARGET_WORDS
from storage import clip_key, create_storage
from worker import LahStatsWorker

CONTENT_TYPES = {".m4a": "audio/mp4", ".ogg": "audio/ogg", ".wav": "audio/wav"}
FAKE_CLIP = b"OggS fake clip"


def group_session(db: DbSession, status: SessionStatus, **fields: Any) -> Session:
    """A new user, their group, and an ended session of that group in ``status`` (flushed)."""
    user = Profile(id=uuid.uuid4())
    db.add(user)
    db.flush()  # no ORM relationship orders these inserts, so flush in dependency order
    group = Group(name="g", created_by=user.id)
    db.add(group)
    db.flush()
    db.add(GroupMember(group_id=group.id, user_id=user.id))
    fields.setdefault("ended_at", datetime.now(UTC))
    session = Session(group_id=group.id, started_by=user.id, status=status, **fields)
    db.add(session)
    db.flush()
    return session


def stored_session(
    session_factory: sessionmaker[DbSession], status: SessionStatus, **fields: Any
) -> uuid.UUID:
    """:func:`group_session`, committed, so that the code under test sees it: its id."""
    with session_factory() as db:
        session = group_session(db, status, **fields)
        db.commit()
        return session.id


@dataclass(frozen=True)
class Phone:
    """The calls a phone makes, as the user whose ``headers`` it carries, over ``http``: a
    ``TestClient`` or an ``httpx.Client`` with a ``base_url``. Setup calls (group, start)
    assert their success; upload and end return the response for the test to judge."""

    http: Any
    headers: dict[str, str]

    def group(self, members: Iterable[uuid.UUID] = ()) -> str:
        """A new group of this user's, with ``members`` added: its id."""
        created = self.http.post("/groups", json={"name": "g"}, headers=self.headers)
        assert created.status_code == 201, created.text
        group_id = str(created.json()["id"])
        for member in members:
            added = self.http.post(
                f"/groups/{group_id}/members", json={"user_id": str(member)}, headers=self.headers
            )
            assert added.status_code == 201, added.text
        return group_id

    def start(self, group_id: str) -> str:
        """A recording session in the group: its id."""
        started = self.http.post(
            "/sessions/start", json={"group_id": group_id}, headers=self.headers
        )
        assert started.status_code == 201, started.text
        assert started.json()["status"] == "recording"
        return str(started.json()["session_id"])

    def session(self) -> tuple[str, str]:
        """A new group and a recording session in it: (group id, session id)."""
        group_id = self.group()
        return group_id, self.start(group_id)

    def upload(
        self, session_id: str, number: int | str, path: Path, content_type: str | None = None
    ) -> Any:
        """POST one chunk as the phone does (multipart ``file`` + ``chunk_number``); the
        content type follows the file's suffix unless given."""
        content_type = content_type or CONTENT_TYPES.get(path.suffix, "audio/wav")
        return self.http.post(
            f"/sessions/{session_id}/upload",
            files={"file": (path.name, path.read_bytes(), content_type)},
            data={"chunk_number": str(number)},
            headers=self.headers,
        )

    def end(self, session_id: str, **body: Any) -> Any:
        """End the recording; ``body`` holds the hints (``num_speakers``, ``webhook_url``...),
        and no body at all is sent without them."""
        return self.http.post(
            f"/sessions/{session_id}/end", json=body or None, headers=self.headers
        )

    def record(self, chunks: Iterable[Path], **end: Any) -> str:
        """A new group and session, ``chunks`` uploaded in order, then ended (so queued):
        the session id."""
        _, session_id = self.session()
        for number, path in enumerate(chunks):
            uploaded = self.upload(session_id, number, path)
            assert uploaded.status_code == 201, uploaded.text
        ended = self.end(session_id, **end)
        assert ended.status_code == 202, ended.text
        return session_id


class ReadySession(NamedTuple):
    group_id: str
    session_id: str
    speaker_ids: list[str]  # in label order


def ready_session(
    phone: Phone,
    settings: Settings,
    counts: Mapping[str, Mapping[str, int]],
    members: Iterable[uuid.UUID] = (),
    group_id: str | None = None,
) -> ReadySession:
    """A session of a new group (of the phone's user and ``members``; or of ``group_id``),
    made through the API, then left as the worker leaves it: ``ready_for_claiming``, a
    speaker per label of ``counts`` with a sample clip in storage (:data:`FAKE_CLIP`), and an
    occurrence of each counted word."""
    group_id = group_id or phone.group(members)
    session_id = phone.start(group_id)
    storage = create_storage(settings)
    engine = create_engine(settings.sqlalchemy_url)
    with DbSession(engine) as db:
        session = db.get(Session, uuid.UUID(session_id))
        assert session is not None
        session.status = SessionStatus.READY_FOR_CLAIMING
        for label, words in counts.items():
            key = clip_key(session.id, label)
            storage.put(key, io.BytesIO(FAKE_CLIP), "audio/ogg")
            speaker = SessionSpeaker(
                session_id=session.id,
                label=label,
                sample_clip_key=key,
                segment_count=2,
                total_duration_s=10.0,
            )
            db.add(speaker)
            db.flush()
            db.add_all(_occurrences(speaker, words))
        db.commit()
        ids = db.scalars(
            select(SessionSpeaker.id)
            .where(SessionSpeaker.session_id == session.id)
            .order_by(SessionSpeaker.label)
        )
        speaker_ids = [str(i) for i in ids]
    engine.dispose()
    return ReadySession(group_id, session_id, speaker_ids)


def _occurrences(speaker: SessionSpeaker, words: Mapping[str, int]) -> list[WordOccurrence]:
    return [
        WordOccurrence(
            session_id=speaker.session_id,
            speaker_id=speaker.id,
            word=word,
            start_s=float(i),
            end_s=i + 0.4,
            heard=word,
            source="asr",
            score=0.9,
        )
        for word, count in words.items()
        for i in range(count)
    ]


def spoken_session(
    phone: Phone,
    settings: Settings,
    lines: Iterable[tuple[str, str, float]],
    group_id: str | None = None,
) -> ReadySession:
    """A ``ready_for_claiming`` session (of a new group unless ``group_id``) whose evidence
    is as the worker stores it, with no occurrences yet: one segment per (speaker label,
    text, the recogniser's probability of each word) of ``lines``, 2 s apart, its words
    timed 0.3 s each. A recount (``processing.operations.recount``) then detects and rates
    the occurrences from it, exactly as it re-reads a processed session."""
    group_id = group_id or phone.group()
    session_id = phone.start(group_id)
    engine = create_engine(settings.sqlalchemy_url)
    with DbSession(engine) as db:
        session = db.get(Session, uuid.UUID(session_id))
        assert session is not None
        session.status = SessionStatus.READY_FOR_CLAIMING
        speakers: dict[str, SessionSpeaker] = {}
        for n, (label, text, probability) in enumerate(lines):
            if label not in speakers:
                speakers[label] = SessionSpeaker(session_id=session.id, label=label)
                db.add(speakers[label])
                db.flush()
            start = 2.0 * n
            words = [
                [start + 0.3 * i, start + 0.3 * (i + 1), f" {w}", probability]
                for i, w in enumerate(text.split())
            ]
            db.add(
                Segment(
                    session_id=session.id,
                    speaker_id=speakers[label].id,
                    start_s=start,
                    end_s=words[-1][1],
                    text=text,
                    corrected_text=text,
                    words=words,
                    verdicts=[],
                )
            )
        db.commit()
        speaker_ids = [str(speakers[label].id) for label in sorted(speakers)]
    engine.dispose()
    return ReadySession(group_id, session_id, speaker_ids)


@contextmanager
def burst_worker(
    settings: Settings,
    connection: redis.Redis,
    models: processor.Engines | None = None,
    *,
    webhooks: bool = True,
) -> Iterator[LahStatsWorker]:
    """The worker ``lahstats worker`` runs, in this process, on the processing and webhook
    queues (``webhooks=False``: events stay queued, for a test to read); with ``models``, the
    pipeline is installed for ``processor.process_session`` (without them it can deliver
    webhooks only). Unlike ``worker.build_worker`` it loads no
    models (the run's are handed in) and runs no reconciler between jobs: tests that want
    one call it themselves."""
    engine = create_engine(settings.sqlalchemy_url)
    if models is not None:
        factory, storage = create_session_factory(engine), create_storage(settings)
        processor.install(processor.Pipeline(settings, factory, storage, models, connection))
    queues = [Queue(settings.queue_name, connection=connection), chunk_queue(connection, settings)]
    if webhooks:
        queues.append(webhook_queue(connection, settings))
    try:
        yield LahStatsWorker(queues, connection=connection)
    finally:
        engine.dispose()


def drain_queues(
    settings: Settings,
    connection: redis.Redis,
    models: processor.Engines | None = None,
    *,
    webhooks: bool = True,
) -> None:
    """Process everything queued (sessions, webhook deliveries) in this process, then return."""
    with burst_worker(settings, connection, models, webhooks=webhooks) as worker:
        worker.work(burst=True)


def wav_chunks(recording: Path, out_dir: Path, seconds: int = 30) -> list[Path]:
    """``recording`` (a WAV file) cut into phone-sized WAV chunks of ``seconds`` in
    ``out_dir``, in order."""
    pattern = out_dir / "chunk_%03d.wav"
    command = ["ffmpeg", "-loglevel", "error", "-i", str(recording), "-f", "segment"]
    command += ["-segment_time", str(seconds), "-c", "copy", str(pattern)]
    subprocess.run(command, check=True)
    return sorted(out_dir.glob("chunk_*.wav"))


def count_targets(text: str, targets: Iterable[str] = TARGET_WORDS) -> Counter[str]:
    """The spec's counting, as an oracle for the tests: how often each target word occurs in
    ``text`` as a whole word (absent words omitted). The product counts occurrences instead."""
    wanted = set(targets)
    return Counter(word for word in tokenize(text) if word in wanted)


TEST_EMBEDDER = "campplus-3dspeaker@test"


def voice_vectors(people: int, seed: int = 0) -> list[list[float]]:
    """``people`` unit vectors of 192 dimensions, near-orthogonal: distinct voices as an
    embedder's space holds them (real voices are scored in test_voiceprints' model test)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((people, 192))
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).tolist()


def heard_again(vector: list[float], noise: float = 0.3, seed: int = 1) -> list[float]:
    """The same voice in another session: ``vector`` plus noise, unit length again."""
    import numpy as np

    rng = np.random.default_rng(seed)
    moved = np.asarray(vector) + noise * rng.standard_normal(len(vector)) / np.sqrt(len(vector))
    return (moved / np.linalg.norm(moved)).tolist()


def give_voices(
    settings: Settings,
    session_id: str,
    voices: Mapping[str, list[float]],
    embedder: str = TEST_EMBEDDER,
    seconds: float = 30.0,
) -> None:
    """Each labelled speaker of the session gets ``voices[label]`` as the job stores it."""
    from models import SpeakerVoiceRow

    engine = create_engine(settings.sqlalchemy_url)
    with DbSession(engine) as db:
        speakers = db.scalars(
            select(SessionSpeaker).where(SessionSpeaker.session_id == uuid.UUID(session_id))
        )
        for speaker in speakers:
            if speaker.label in voices:
                db.add(
                    SpeakerVoiceRow(
                        speaker_id=speaker.id,
                        embedder=embedder,
                        session_id=speaker.session_id,
                        embedding=voices[speaker.label],
                        seconds=seconds,
                    )
                )
        db.commit()
    engine.dispose()


def remember_self(client: Any, user: Any, session_id: str, speaker_id: str) -> None:
    """``user`` claims the speaker as themselves with consent to keep their voice (the app's
    one tap), as a voiceprint test's history is built."""
    answer = client.post(
        f"/sessions/{session_id}/claim",
        json={"speaker_id": speaker_id, "claim_type": "self", "remember_voice": True},
        headers=user.headers,
    )
    assert answer.status_code == 200, answer.text


def suggest(settings: Settings, session_id: str, embedder: str = TEST_EMBEDDER) -> int:
    """The job's suggestion step on a session's stored voices (what ``rows.save`` runs and
    a reprocess calls), committed: how many suggestions it made."""
    from processing.suggestions import Matching, refresh_suggestions

    engine = create_engine(settings.sqlalchemy_url)
    with DbSession(engine) as db:
        session = db.get(Session, uuid.UUID(session_id), with_for_update=True)
        assert session is not None
        made = refresh_suggestions(db, session, Matching.of(settings, embedder))
        db.commit()
    engine.dispose()
    return made


def follow_events(
    url: str,
    headers: Mapping[str, str],
    events: list[tuple[str, Any]],
    opened: threading.Event | None = None,
) -> None:
    """Read the server-sent events of ``url`` until the stream ends: (event name, data) of
    each appended to ``events``; ``opened`` is set at the first (for a follower thread)."""
    import httpx

    with httpx.stream("GET", url, headers=dict(headers), timeout=300) as response:
        assert response.status_code == 200, response.read()
        name = ""
        for line in response.iter_lines():
            if line.startswith("event: "):
                name = line.removeprefix("event: ")
            elif line.startswith("data: "):
                events.append((name, json.loads(line.removeprefix("data: "))))
                if opened is not None:
                    opened.set()


def statuses(events: Iterable[tuple[str, Any]]) -> list[Any]:
    """The ``status`` events' bodies of :func:`follow_events`' list (the app skips others)."""
    return [data for name, data in events if name == "status"]
