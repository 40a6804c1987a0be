"""The commands that serve and operate the backend: the API, workers, migrations, and the
operator's look at and fixes for the queue and the sessions (README, "Operating it")."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated

import redis
import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.orm import Session as DbSession
from sqlalchemy.orm import sessionmaker

import lifecycle
from config import Settings
from db import create_db_engine, create_session_factory
from migrations.runner import upgrade
from processing import operations
from processing.reconcile import reconcile
from processing.retention import apply_retention, retention_due
from processing.sweep import SWEEP_WINDOW, sweep_orphan_chunks
from services.singlish import load_rating
from services.singlish.dictionary import load_corrections
from storage import create_storage

app = typer.Typer()
console = Console(stderr=True)


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
    connection = redis.Redis.from_url(settings.redis_url)
    lifecycle.publish_status(factory, connection, settings.status_cache_ttl_s)
    return settings, factory, connection


@app.command()
def status() -> None:
    """Queue depths, workers and their models, sessions by status, stuck sessions."""
    settings, factory, connection = _operator_context()
    report = operations.system_status(factory, connection, settings)
    console.print(
        f"queue {settings.queue_name!r}: {report.queued} waiting, {report.started} running, "
        f"{report.failed_jobs} failed jobs; chunk jobs: {report.chunks_queued} waiting, "
        f"{report.chunks_started} running"
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
    due = retention_due(factory, settings, datetime.now(UTC))
    console.print(
        f"retention due: raw audio of {len(due.chunks)} sessions "
        f"(AUDIO_RETENTION_DAYS={settings.audio_retention_days}), clips of {len(due.clips)} "
        f"(CLIP_RETENTION_DAYS={settings.clip_retention_days})"
    )


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
    """Run SESSION again, e.g. with a fixed speaker count (the usual fix for diarization). A
    live session's words are kept (its stored embeddings are clustered anew, no chunk heard
    again); claims on speakers still in the same place are kept, the others released."""
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
    min_confidence: Annotated[
        float | None,
        typer.Option(min=0.0, max=1.0, help="The operating point; default COUNT_MIN_CONFIDENCE"),
    ] = None,
) -> None:
    """Re-derive every count from stored evidence (recognised words, verdicts) with the
    corrections dictionary, the confidence calibration, each group's disputes and
    confirmations and the threshold as they are now, without re-running ASR. Human
    decisions are kept."""
    if (session_id is None) == (not all_sessions):
        console.print("[red]give a SESSION id or --all[/red]")
        raise typer.Exit(2)
    settings = Settings()
    if min_confidence is not None:
        settings = settings.model_copy(update={"count_min_confidence": min_confidence})
    factory = create_session_factory(create_db_engine(settings))
    corrections = load_corrections(settings.corrections_file)
    rating = load_rating(settings)
    with console.status("recounting..."):
        ids = None if session_id is None else [session_id]
        totals = operations.recount(
            factory, create_storage(settings), settings, corrections, ids, rating
        )
    console.print(
        f"recounted {len(totals)} sessions with corrections {corrections.version}, "
        f"confidence {rating.calibration.version} at {rating.min_confidence}"
    )
    for sid, total in totals.items():
        console.print(f"  {sid}: {total} target words counted")


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
def retention(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="only say what is due")] = False,
) -> None:
    """Delete raw audio and clips past AUDIO_RETENTION_DAYS / CLIP_RETENTION_DAYS after
    processing (text, counts and occurrences stay). The workers also do this hourly."""
    settings, factory, _ = _operator_context()
    now = datetime.now(UTC)
    if dry_run:
        due = retention_due(factory, settings, now)
    else:
        due = apply_retention(factory, create_storage(settings), settings, now)
    verb = "due" if dry_run else "deleted"
    console.print(f"raw audio {verb}: {len(due.chunks)} sessions; clips {verb}: {len(due.clips)}")
    for session_id in due.chunks:
        console.print(f"  audio {session_id}")
    for session_id in due.clips:
        console.print(f"  clips {session_id}")
