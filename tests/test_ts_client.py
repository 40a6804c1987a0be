"""The TypeScript client of ``clients/typescript`` (issue 18): its generated types match the app's
OpenAPI document, it type-checks with ``tsc``, and its flow example, compiled and run under Node,
takes one whole session through a real API (uvicorn on a free port, real Postgres and Redis) and a
real worker with the embedded models, on a generated three-voice Singlish conversation.

Node, npm and the client's ``node_modules`` come from ``LAHSTATS_INSTALL_TEST_TOOLS=1 bash
scripts/install.sh`` (the test command runs it); without them these tests fail saying so."""

from __future__ import annotations

import hashlib
import json
import os
import queue
import shutil
import subprocess
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import select

from models import SessionSpeaker, WordOccurrence
from scripts.gen_client import CLIENT_DIR, SCHEMA_JSON, SCHEMA_TS, generate
from tests.factories import drain_queues, wav_chunks

TSC = CLIENT_DIR / "node_modules" / ".bin" / "tsc"


@pytest.fixture(scope="module")
def node() -> str:
    """The node binary, once the client's packages are installed."""
    binary = shutil.which("node")
    assert binary and TSC.exists(), (
        "node or the client's packages are missing: LAHSTATS_INSTALL_TEST_TOOLS=1 bash "
        "scripts/install.sh (apt nodejs npm, then npm ci in clients/typescript)"
    )
    return binary


def test_the_committed_client_matches_the_apps_schema(node, tmp_path):
    generate(tmp_path)
    for name in (SCHEMA_JSON, SCHEMA_TS):
        fresh = (tmp_path / name).read_text(encoding="utf-8")
        assert (CLIENT_DIR / name).read_text(encoding="utf-8") == fresh, (
            f"clients/typescript/{name} is stale: run `python -m scripts.gen_client`"
        )


def test_the_client_and_its_flow_example_type_check(node):
    checked = subprocess.run(
        [str(TSC), "--noEmit", "-p", str(CLIENT_DIR)], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def _compiled_flow(out: Path) -> Path:
    """``examples/flow.ts`` compiled into ``out`` (an ES module package that sees the
    client's ``node_modules``), so the test writes nothing into the checkout."""
    out.mkdir()
    (out / "package.json").write_text('{"type": "module"}')
    (out / "node_modules").symlink_to(CLIENT_DIR / "node_modules")
    compiled = subprocess.run(
        [str(TSC), "-p", str(CLIENT_DIR), "--outDir", str(out / "dist")],
        capture_output=True,
        text=True,
    )
    assert compiled.returncode == 0, compiled.stdout + compiled.stderr
    return out / "dist" / "examples" / "flow.js"


class _Program:
    """A program under test whose stderr is read as it comes (its progress lines), killed
    when the test leaves, however it leaves."""

    def __init__(self, command: list[str], env: dict[str, str], stdout: Path) -> None:
        with stdout.open("w") as out:
            self.process = subprocess.Popen(
                command, env=env, stdout=out, stderr=subprocess.PIPE, text=True
            )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.put(line)

    def wait_for_line(self, prefix: str, timeout_s: float) -> None:
        """Until the program writes a line starting with ``prefix`` (other lines, such as
        Node's warnings, are kept for the log)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                self.seen.append(line := self.lines.get(timeout=1))
            except queue.Empty:
                if self.process.poll() is not None:
                    break
                continue
            if line.startswith(prefix):
                return
        pytest.fail(f"no line starting {prefix!r}:\n{self.log()}")

    def wait(self, timeout_s: float) -> int:
        try:
            return self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            pytest.fail(f"still running after {timeout_s} s:\n{self.log()}")

    def log(self) -> str:
        self.seen += [self.lines.get() for _ in range(self.lines.qsize())]
        return "".join(self.seen)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


@pytest.mark.slow
def test_the_apps_flow_runs_through_the_typescript_client(
    node,
    live_server,
    make_user,
    settings,
    redis_conn,
    models,
    singlish_dev,
    session_factory,
    tmp_path,
):
    flow = _compiled_flow(tmp_path / "client")
    chunks = wav_chunks(singlish_dev / "d1_bto_renovation.wav", tmp_path)  # 3 voices, 15 words
    user = make_user()
    env = {
        **os.environ,
        "LAHSTATS_URL": live_server,
        "LAHSTATS_TOKEN": user.headers["Authorization"].removeprefix("Bearer "),
    }
    command = [node, str(flow), "--speakers", "3", *map(str, chunks)]
    answers = tmp_path / "flow.json"
    flow_run = _Program(command, env, answers)
    try:
        # The client has uploaded, ended and opened the events stream when the first event
        # arrives: only then does the worker run, so the stream sees the processing from start.
        flow_run.wait_for_line("processing ", timeout_s=60)
        drain_queues(settings, redis_conn, models)
        returncode = flow_run.wait(timeout_s=120)
    finally:
        flow_run.kill()
    assert returncode == 0, f"the flow failed:\n{flow_run.log()}"
    seen = json.loads(answers.read_text())
    _check_uploads_and_events(seen, chunks)
    _check_speakers_claims_and_counts(seen, user.id, session_factory)


def _check_uploads_and_events(seen: dict, chunks: list[Path]) -> None:
    assert seen["started"]["status"] == "recording"
    assert [u["chunk_number"] for u in seen["uploads"]] == list(range(len(chunks)))
    for upload, path in zip(seen["uploads"], chunks, strict=True):
        assert upload["size_bytes"] == path.stat().st_size
        assert upload["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert seen["ended"] == {"status": "processing"}
    events = seen["events"]
    progress = [e["progress"] for e in events]
    assert progress == sorted(progress), "progress went backwards"
    assert [e["status"] for e in events[:-1]] == ["processing"] * (len(events) - 1)
    assert events[-1]["status"] == "ready_for_claiming" and progress[-1] == 100
    assert {"hearing", "sample_clips"} <= {e["stage"] for e in events}


def _check_speakers_claims_and_counts(seen: dict, user_id: uuid.UUID, session_factory) -> None:
    session_id = uuid.UUID(seen["started"]["session_id"])
    with session_factory() as db:
        speaker_rows = select(SessionSpeaker).where(SessionSpeaker.session_id == session_id)
        rows = {str(s.id): s for s in db.scalars(speaker_rows)}
        occurrence_rows = select(WordOccurrence).where(
            WordOccurrence.session_id == session_id, WordOccurrence.counted.is_(True)
        )
        counted = Counter((str(o.speaker_id), o.word) for o in db.scalars(occurrence_rows))
    speakers = {s["id"]: s for s in seen["speakers"]}
    assert speakers.keys() == rows.keys() and len(rows) == 3
    for speaker_id, speaker in speakers.items():
        assert speaker["speaker_label"] == rows[speaker_id].label
        assert speaker["word_counts"] == {w: n for (s, w), n in counted.items() if s == speaker_id}
    assert seen["sample"]["status"] == 200 and seen["sample"]["content_type"] == "audio/ogg"
    assert seen["sample"]["bytes"] > 1000

    mine, guest = rows[seen["claimed"]["self"]], rows[seen["claimed"]["guest"]]
    assert mine.claimed_by == user_id and mine.claim_type == "self"
    assert guest.claimed_by == user_id and guest.guest_name == "Uncle Tan"
    assert seen["refused"]["status"] == 409 and seen["refused"]["code"] == "already_claimed"

    my_counts = speakers[str(mine.id)]["word_counts"]
    assert sum(my_counts.values()) > 0, "the chattiest voice of d1 said no target word"
    (entry,) = seen["leaderboard"]["members"]
    assert entry["user_id"] == str(user_id) == seen["me"]["user_id"]
    assert entry["word_counts"] == dict(sorted(my_counts.items()))
    assert entry["total"] == sum(my_counts.values())

    occurrences = seen["occurrences"]  # counted and possible ones: the counts are the first
    assert Counter(o["word"] for o in occurrences if o["counted"]) == Counter(my_counts)
    assert {o["speaker_id"] for o in occurrences} == {str(mine.id)}
    assert seen["evidence"]["status"] == 200 and seen["evidence"]["bytes"] > 100
