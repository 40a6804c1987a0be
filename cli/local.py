"""``lahstats process``: one session's chunk files through the whole pipeline in this process
(SQLite + local storage under ``DATA_DIR``, no Redis), a table per speaker, and the result
JSON of API_CONTRACT.md."""

from __future__ import annotations

import hashlib
import json
import threading
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy.orm import Session as DbSession
from sqlalchemy.orm import sessionmaker

import lifecycle
from config import Settings
from db import create_db_engine, create_session_factory
from migrations.runner import upgrade
from models import AudioChunk, Group, GroupMember, Profile, Session, SessionStatus
from observability import configure_logging
from processing.results import stored_result
from storage import Storage, chunk_key, create_storage

app = typer.Typer()
console = Console(stderr=True)
LOCAL_USER = uuid.UUID("00000000-0000-4000-8000-000000000001")


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
        pipeline = processor.Pipeline(settings, factory, storage, processor.load_engines(settings))
    session_id = _queue_local_session(factory, storage, files, num_speakers)
    with _progress_bar(factory, session_id):
        processor.run(session_id, pipeline)
    with factory() as db:
        result = stored_result(db, storage, session_id)
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
        session = Session(group_id=group.id, started_by=LOCAL_USER, status=SessionStatus.RECORDING)
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
        lifecycle.end_recording(
            session,
            num_speakers=num_speakers,
            min_speakers=None,
            max_speakers=None,
            webhook_url=None,
            now=datetime.now(UTC),
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
