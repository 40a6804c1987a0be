"""``lahstats``: the command line. ``process`` runs the whole pipeline on local files with the
embedded defaults (SQLite + local storage, no Redis); the rest serve and operate the backend."""

from __future__ import annotations

import hashlib
import json
import threading
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import redis
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import select
from sqlalchemy.orm import Session as DbSession
from sqlalchemy.orm import sessionmaker

from backend import crud
from config import Settings
from db import create_db_engine, create_session_factory
from migrations.runner import upgrade
from models import (
    AudioChunk,
    Group,
    GroupMember,
    Profile,
    Segment,
    Session,
    SessionStatus,
    WordOccurrence,
)
from observability import configure_logging
from processing import operations
from processing.reconcile import reconcile
from processing.sweep import SWEEP_WINDOW, sweep_orphan_chunks
from services.corrections import load_corrections
from storage import LocalStorage, Storage, chunk_key, create_storage

app = typer.Typer(
    help="LahStats backend: who said 'lah', how often, in what mood.", no_args_is_help=True
)
console = Console(stderr=True)
LOCAL_USER = uuid.UUID("00000000-0000-4000-8000-000000000001")


@app.command()
def token(user_id: uuid.UUID, ttl_hours: int = 24 * 7) -> None:
    """Print a valid bearer token for USER_ID (local development and tests)."""
    from backend.auth import issue_token

    print(issue_token(Settings(), user_id, ttl_hours * 3600))


@app.command()
def migrate() -> None:
    """Bring the database to the newest schema (alembic upgrade head)."""
    settings = Settings()
    upgrade(settings.sqlalchemy_url)
    console.print(f"migrated {settings.sqlalchemy_url.split('@')[-1]}")


@app.command()
def api(host: str = "127.0.0.1", port: int = 8000, workers: int = 1) -> None:
    """Serve the HTTP API with uvicorn."""
    import uvicorn

    uvicorn.run("backend.main:app", host=host, port=port, workers=workers)


@app.command()
def worker(burst: bool = False) -> None:
    """Run a processing worker (loads every model once, then takes jobs)."""
    from worker import run_worker

    run_worker(Settings(), burst=burst)


def _operator_context() -> tuple[Settings, sessionmaker[DbSession], redis.Redis]:
    settings = Settings()
    factory = create_session_factory(create_db_engine(settings))
    return settings, factory, redis.Redis.from_url(settings.redis_url)


@app.command()
def status() -> None:
    """Queue depths, workers and their models, sessions by status, stuck sessions."""
    settings, factory, connection = _operator_context()
    report = operations.system_status(factory, connection, settings)
    console.print(
        f"queue {settings.queue_name!r}: {report.queued} waiting, {report.started} running, "
        f"{report.failed_jobs} failed jobs"
    )
    workers = Table("worker", "state", "device", "diarization", "asr", "emotion")
    for w in report.workers:
        workers.add_row(
            w["name"],
            w["state"],
            w.get("device", "?"),
            w.get("diarization", "?"),
            w.get("asr", "?"),
            w.get("emotion", "?"),
        )
    Console().print(workers)
    sessions = Table("status", "sessions")
    for name, count in sorted(report.sessions.items()):
        sessions.add_row(name, str(count))
    Console().print(sessions)
    for session_id in report.stuck:
        console.print(f"[yellow]stuck[/yellow] {session_id} (lease expired; reconcile acts)")


@app.command("requeue-failed")
def requeue_failed(
    since: Annotated[datetime | None, typer.Option(help="Only sessions ended since (UTC)")] = None,
) -> None:
    """Give failed sessions fresh attempts and put them back on the queue."""
    settings, factory, connection = _operator_context()
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    requeued = operations.requeue_failed(factory, connection, settings, since)
    console.print(f"requeued {len(requeued)} failed sessions")
    for session_id in requeued:
        console.print(f"  {session_id}")


@app.command()
def reprocess(
    session_id: uuid.UUID,
    num_speakers: Annotated[int | None, typer.Option(min=1, max=20)] = None,
) -> None:
    """Run SESSION again, e.g. with a fixed speaker count (the usual fix for diarization)."""
    settings, factory, connection = _operator_context()
    try:
        operations.reprocess(factory, connection, settings, session_id, num_speakers)
    except operations.OperationError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    console.print(f"queued {session_id} for reprocessing")


@app.command()
def recount(
    session_id: Annotated[uuid.UUID | None, typer.Argument()] = None,
    all_sessions: Annotated[bool, typer.Option("--all", help="Every processed session")] = False,
) -> None:
    """Re-derive every count from stored evidence (recognised words, verdicts) with the
    corrections dictionary as it is now, without re-running ASR."""
    if (session_id is None) == (not all_sessions):
        console.print("[red]give a SESSION id or --all[/red]")
        raise typer.Exit(2)
    settings = Settings()
    factory = create_session_factory(create_db_engine(settings))
    corrections = load_corrections(settings.corrections_file)
    with console.status("recounting..."):
        ids = None if session_id is None else [session_id]
        totals = operations.recount(factory, create_storage(settings), settings, corrections, ids)
    console.print(f"recounted {len(totals)} sessions with corrections {corrections.version}")
    for sid, total in totals.items():
        console.print(f"  {sid}: {total} target words")


@app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    add_help_option=False,
)
def bench(ctx: typer.Context) -> None:
    """Benchmarks and quality evaluation: lahstats bench {pipeline,throughput,api,...}."""
    import bench as benchmarks

    raise typer.Exit(benchmarks.main(ctx.args) or 0)


@app.command("reconcile")
def reconcile_command() -> None:
    """Re-enqueue processing sessions that lost their job (or fail those out of attempts)."""
    settings, factory, connection = _operator_context()
    report = reconcile(factory, connection, settings)
    console.print(
        f"requeued {len(report.requeued)}, failed {len(report.failed)}, "
        f"still running {report.alive}"
    )
    for session_id in report.requeued:
        console.print(f"  requeued {session_id}")
    for session_id in report.failed:
        console.print(f"  failed   {session_id}")


@app.command()
def sweep(
    all_sessions: Annotated[
        bool, typer.Option("--all", help="every session, not only those ended in the last day")
    ] = False,
) -> None:
    """Delete chunk objects in storage that no row names (uploads that died mid-way)."""
    settings, factory, _ = _operator_context()
    since = None if all_sessions else datetime.now(UTC) - SWEEP_WINDOW
    deleted = sweep_orphan_chunks(factory, create_storage(settings), since)
    console.print(f"deleted {len(deleted)} orphaned chunk objects")
    for key in deleted:
        console.print(f"  {key}")


@app.command()
def process(
    files: Annotated[
        list[Path],
        typer.Argument(exists=True, dir_okay=False, help="One session's chunks, in order"),
    ],
    num_speakers: Annotated[int | None, typer.Option(min=1, max=20)] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the result here")] = None,
) -> None:
    """Process FILES as one session's chunks, in-process, and print who said what."""
    import processor

    settings = Settings()
    configure_logging(settings.model_copy(update={"log_level": "WARNING"}))
    upgrade(settings.sqlalchemy_url)
    factory = create_session_factory(create_db_engine(settings))
    storage = create_storage(settings)
    with console.status("loading models..."):
        pipeline = processor.Pipeline(settings, factory, storage, processor.load_models(settings))
    session_id = _queue_local_session(factory, storage, files, num_speakers)
    with _progress_bar(factory, session_id):
        processor.run(session_id, pipeline)
    result = _result(factory, storage, session_id)
    _print_table(result)
    if json_out:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(result, indent=2, ensure_ascii=False))
        console.print(f"wrote {json_out}")


def _queue_local_session(
    factory: sessionmaker[DbSession], storage: Storage, files: list[Path], num_speakers: int | None
) -> uuid.UUID:
    """Store the files as chunks of a new session of a local user, ready for processing."""
    with factory() as db:
        if db.get(Profile, LOCAL_USER) is None:
            db.add(Profile(id=LOCAL_USER, display_name="local"))
            db.flush()
        group = Group(name="local", created_by=LOCAL_USER)
        db.add(group)
        db.flush()
        db.add(GroupMember(group_id=group.id, user_id=LOCAL_USER))
        session = Session(
            group_id=group.id,
            started_by=LOCAL_USER,
            status=SessionStatus.PROCESSING,
            num_speakers=num_speakers,
        )
        db.add(session)
        db.flush()
        for number, path in enumerate(files):
            data = path.read_bytes()
            digest = hashlib.sha256(data).hexdigest()
            key = chunk_key(session.id, number, digest)
            with path.open("rb") as stream:
                storage.put(key, stream)
            db.add(
                AudioChunk(
                    session_id=session.id,
                    chunk_number=number,
                    storage_key=key,
                    sha256=digest,
                    size_bytes=len(data),
                    content_type=None,
                )
            )
        db.commit()
        return session.id


class _progress_bar:
    """A rich progress bar fed by polling the session's stored progress and stage."""

    def __init__(self, factory: sessionmaker[DbSession], session_id: uuid.UUID) -> None:
        self._factory, self._session_id = factory, session_id
        self._stop = threading.Event()
        self._bar = Progress(
            TextColumn("{task.description:<16}"),
            BarColumn(),
            TextColumn("{task.completed:>3.0f}%"),
            TimeElapsedColumn(),
            console=console,
        )
        self._task = self._bar.add_task("queued", total=100)
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def __enter__(self) -> None:
        self._bar.start()
        self._thread.start()

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._refresh()
        self._bar.stop()

    def _poll(self) -> None:
        while not self._stop.wait(0.3):
            self._refresh()

    def _refresh(self) -> None:
        with self._factory() as db:
            session = db.get(Session, self._session_id)
            if session is not None:
                self._bar.update(
                    self._task, completed=session.progress, description=session.stage or ""
                )


def _result(factory: sessionmaker[DbSession], storage: Storage, session_id: uuid.UUID) -> dict:
    """The session's results in the shape of API_CONTRACT.md's ``lahstats process`` JSON."""
    with factory() as db:
        session = db.get(Session, session_id)
        assert session is not None
        speakers = {s.id: s for s in session.speakers}
        counts = crud.speaker_word_counts(db, list(speakers))
        occurrences = db.scalars(
            select(WordOccurrence)
            .where(WordOccurrence.session_id == session_id)
            .order_by(WordOccurrence.start_s)
        )
        segments = db.scalars(
            select(Segment).where(Segment.session_id == session_id).order_by(Segment.start_s)
        )
        return {
            "duration_s": round(session.duration_s or 0.0, 3),
            "warnings": list(session.warnings or []),
            "speakers": [
                _speaker_json(s, counts.get(s.id, {}), storage) for s in speakers.values()
            ],
            "segments": [
                {
                    "start": round(g.start_s, 3),
                    "end": round(g.end_s, 3),
                    "speaker": speakers[g.speaker_id].label,
                    "text": g.text,
                    "corrected_text": g.corrected_text,
                    "emotion": g.emotion,
                    "emotion_score": round(g.emotion_score or 0.0, 4),
                }
                for g in segments
            ],
            "occurrences": [
                {
                    "speaker": speakers[o.speaker_id].label,
                    "word": o.word,
                    "start": o.start_s,
                    "end": o.end_s,
                    "heard": o.heard,
                    "source": o.source,
                    "rule": o.rule,
                    "dictionary_version": o.dictionary_version,
                    "score": o.score,
                    "clip": _local_path(o.clip_key, storage),
                }
                for o in occurrences
            ],
        }


def _local_path(key: str | None, storage: Storage) -> str | None:
    """A stored clip's file path when storage is the local disk, else its key."""
    if key and isinstance(storage, LocalStorage):
        return str(storage.root / key)
    return key


def _speaker_json(speaker: Any, counts: dict[str, int], storage: Storage) -> dict:
    clip = _local_path(speaker.sample_clip_key, storage)
    return {
        "label": speaker.label,
        "talk_time_s": round(speaker.total_duration_s, 2),
        "segment_count": speaker.segment_count,
        "word_counts": counts,
        "dominant_emotion": speaker.dominant_emotion,
        "sample_clip": clip,
    }


def _print_table(result: dict) -> None:
    table = Table(title=f"{result['duration_s']:.1f} s of conversation")
    for column in ("speaker", "talk time", "segments", "target words", "mood"):
        table.add_column(column)
    for s in result["speakers"]:
        words = ", ".join(f"{w} x{n}" for w, n in s["word_counts"].items()) or "-"
        table.add_row(
            s["label"],
            f"{s['talk_time_s']:.1f} s",
            str(s["segment_count"]),
            words,
            s["dominant_emotion"] or "-",
        )
    Console().print(table)
    for warning in result["warnings"]:
        console.print(f"[yellow]warning:[/yellow] {warning}")


if __name__ == "__main__":
    app()
