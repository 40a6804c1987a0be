"""``python -m bench live``: issue 16's goals for live sessions, measured through the real
API and one real ``lahstats worker``.

For each session length (``--minutes``, default 5) a fresh backend is started
(``bench.stack``), one short untimed session warms the worker up, then a built session
(``bench.inputs.built_session``: 30 s m4a chunks of corpus speech) is uploaded as a phone
would, at one of two paces:

* ``realtime``: chunk n is uploaded when the phone would have finished recording it
  (``(n + 1) x 30 s`` after the start), ``end`` right after the last chunk;
* ``keep-up``: chunk n + 1 is uploaded once the status says chunk n is heard
  (``chunks_heard >= n + 1``); where the status has no ``chunks_heard`` (the batch path)
  or it has not moved within ``--keep-up-cap`` seconds, the next chunk goes at once.

Measured, with the goals the issue sets:

* ``end`` -> ``ready_for_claiming`` (or ``completed``) wall seconds (<= 10 s at 5 min,
  <= 30 s at 60 min);
* the worker's peak resident set (``VmHWM``; the worker runs jobs in its own process),
  for its whole life and since the warm-up (60 min <= 1.2 x 5 min and <= 1.5 GiB);
* the worker's CPU seconds (user + system, waited-for children included) from the first
  upload to ready, per audio hour, against faster-whisper alone on the same chunks and
  model (``bench.probe`` in ``baseline`` mode, in its own process after the stack is gone):
  ratio <= 1.10;
* ``POST /sessions/{id}/reprocess`` with another speaker count: seconds until ready again
  (<= 10 s at 60 min) and whether the transcript's text is unchanged; "not available" where
  the route answers 404/405.

``--batch`` starts the stack with ``LIVE_PROCESSING=false``: today's path, the "before".
"""

from __future__ import annotations

import argparse
import difflib
import time
from dataclasses import dataclass, field
from typing import Any

from bench.inputs import CHUNK_S, SessionInput, built_session
from bench.pipeline_speed import run_probe
from bench.report import BenchError, console, load_average, proc_cpu_seconds, table
from bench.stack import PhoneClient, Stack, add_stack_arguments, running_stack
from bench.throughput import WARMUP_CHUNK

END_GOAL_S = {5.0: 10.0, 60.0: 30.0}
RSS_GROWTH_GOAL = 1.2  # peak at the longest session / peak at the shortest
RSS_CEILING_MIB = 1536.0
CPU_RATIO_GOAL = 1.10
REPROCESS_GOAL_S = 10.0
READY = ("ready_for_claiming", "completed")
SETTLE_S = 3.0  # a reprocess that never shows `processing`: its last change, held this long


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--minutes", type=float, nargs="+", default=[5.0], help="session lengths (e.g. 5 60)"
    )
    parser.add_argument("--pace", choices=["keep-up", "realtime"], default="keep-up")
    parser.add_argument(
        "--batch",
        action="store_true",
        help="LIVE_PROCESSING=false for the stack: today's batch path (the 'before')",
    )
    parser.add_argument("--chunk-format", default="m4a", choices=["m4a", "ogg", "wav"])
    parser.add_argument(
        "--keep-up-cap",
        type=float,
        default=120.0,
        help="keep-up: seconds to wait for a chunk to be heard before uploading the next anyway",
    )
    parser.add_argument(
        "--reprocess-speakers",
        type=int,
        help="speaker count for the reprocess (default: one more than the session found)",
    )
    parser.add_argument("--no-reprocess", action="store_true", help="skip the reprocess")
    parser.add_argument(
        "--no-baseline", action="store_true", help="skip faster-whisper alone (no CPU ratio)"
    )
    parser.add_argument(
        "--no-warmup", action="store_true", help="no untimed warm-up session before the timed one"
    )
    parser.add_argument("--poll-ms", type=float, default=200.0, help="status poll interval")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds per wait")
    add_stack_arguments(parser)


def run(args: argparse.Namespace) -> dict[str, Any]:
    sessions = [built_session(m, args.chunk_format) for m in args.minutes]  # before any stack
    runs = []
    for minutes, session in zip(args.minutes, sessions, strict=True):
        console.print(f"[bold]{session.name}[/bold], {args.pace}: load {load_average()}")
        measured = _measure(session, args)
        measured["minutes"] = minutes
        measured["end_goal_s"] = END_GOAL_S.get(minutes)
        if not args.no_baseline:
            measured["baseline"] = _baseline(session)
            measured["cpu_ratio"] = _ratio(measured["worker_cpu_s"], measured["baseline"]["cpu_s"])
        runs.append(measured)
    return {
        "path": "batch (LIVE_PROCESSING=false)"
        if args.batch
        else "default (LIVE_PROCESSING unset)",
        "pace": args.pace,
        "chunk_format": args.chunk_format,
        "goals": {
            "end_to_ready_s": END_GOAL_S,
            "rss_growth": RSS_GROWTH_GOAL,
            "rss_ceiling_mib": RSS_CEILING_MIB,
            "cpu_ratio": CPU_RATIO_GOAL,
            "reprocess_s": REPROCESS_GOAL_S,
        },
        "runs": runs,
        "growth": _growth(runs),
    }


def _measure(session: SessionInput, args: argparse.Namespace) -> dict[str, Any]:
    extra_env = {"LIVE_PROCESSING": "false"} if args.batch else None
    with running_stack(
        api_workers=1,
        workers=1,
        pg_admin=args.pg_admin,
        redis_url=args.redis_url,
        extra_env=extra_env,
    ) as stack:
        phone = PhoneClient(stack)
        try:
            return _measure_on(stack, phone, session, args)
        finally:
            phone.close()


def _measure_on(
    stack: Stack, phone: PhoneClient, session: SessionInput, args: argparse.Namespace
) -> dict[str, Any]:
    worker = stack.workers[0].pid
    group = phone.group()
    poll_s = args.poll_ms / 1000
    if not args.no_warmup:
        _warm_up(phone, group, args.timeout)
    peak_before_mib = _peak_rss_mib(stack)
    peak_reset = _reset_peak(worker)
    counters_start = stack.worker_counters()
    cpu_start = _cpu(worker)
    api_cpu_start = _cpu(stack.api.pid)
    recording = Recording(phone, phone.start(group), poll_s)
    stack.job_ids.append(recording.session_id)  # chunk jobs name the session too
    recording.upload_all(session, args.pace, args.keep_up_cap)
    phases = {"recording": _phase_peak_mib(stack, peak_reset)}
    ended = recording.end_and_wait(args.timeout)
    phases["finish"] = _phase_peak_mib(stack, peak_reset)
    measured = {
        "session": session.name,
        "audio_s": session.duration_s,
        "chunks": len(session.chunks),
        **ended,
        **recording.summary(),
        "worker_cpu_s": round(_cpu(worker) - cpu_start, 2),
        "worker_cpu_by_job_s": _cpu_by(stack, counters_start),
        "api_cpu_s": round(_cpu(stack.api.pid) - api_cpu_start, 2),
        "worker_peak_rss_mib": max(peak_before_mib, *phases.values()),
        "worker_peak_rss_since_warmup_mib": max(phases.values()) if peak_reset else None,
        "worker_peak_phases_mib": phases if peak_reset else None,
        "worker_peak_before_session_mib": peak_before_mib,
        "load_average": load_average(),
    }
    measured["worker_cpu_s_per_audio_h"] = round(
        measured["worker_cpu_s"] * 3600 / session.duration_s, 1
    )
    if not args.no_reprocess:
        measured["reprocess"] = _reprocess(phone, recording.session_id, args, poll_s)
        measured["reprocess"]["worker_peak_rss_mib"] = _phase_peak_mib(stack, peak_reset)
    return measured


def _warm_up(phone: PhoneClient, group: str, timeout: float) -> None:
    """One short session, untimed: the worker pays its one-off first-call costs here."""
    session_id = phone.start(group)
    phone.stack.job_ids.append(session_id)
    phone.upload(session_id, 0, WARMUP_CHUNK)
    phone.end(session_id)
    phone.wait_until_processed(session_id, timeout)


@dataclass
class Recording:
    """One session as the phone records it: uploads at a pace, the status polled meanwhile
    (``chunks_uploaded`` / ``chunks_heard`` when the API reports them)."""

    phone: PhoneClient
    session_id: str
    poll_s: float
    started: float = field(default_factory=time.monotonic)
    uploaded_at: list[float] = field(default_factory=list)  # seconds since start, per chunk
    heard_at: dict[int, float] = field(default_factory=dict)  # chunks_heard value -> first seen
    has_chunk_fields: bool = False
    cap_hits: int = 0
    last_status: dict[str, Any] = field(default_factory=dict)

    def upload_all(self, session: SessionInput, pace: str, cap_s: float) -> None:
        for number, chunk in enumerate(session.chunks):
            if pace == "realtime":
                self._poll_until(lambda: False, self._chunk_end_s(session, number))
            self.phone.upload(self.session_id, number, chunk)
            self.uploaded_at.append(self._now())
            if pace == "keep-up" and number + 1 < len(session.chunks):
                self._keep_up(number, cap_s)
        self.poll()

    def _keep_up(self, number: int, cap_s: float) -> None:
        self.poll()
        if not self.has_chunk_fields:
            return  # the batch path: nothing to keep up with, upload as fast as possible
        if not self._poll_until(lambda: self._heard() >= number + 1, self._now() + cap_s):
            self.cap_hits += 1

    @staticmethod
    def _chunk_end_s(session: SessionInput, number: int) -> float:
        return min((number + 1) * CHUNK_S, session.duration_s)

    def end_and_wait(self, timeout: float) -> dict[str, Any]:
        """``end``, then poll until the session is ready; the wall seconds in between."""
        heard_at_end = self._heard() if self.has_chunk_fields else None
        sent = time.monotonic()
        self.phone.end(self.session_id)
        end_request_s = time.monotonic() - sent
        status = self.phone.wait_until_processed(self.session_id, timeout, self.poll_s)
        return {
            "end_to_ready_s": round(time.monotonic() - sent, 2),
            "end_request_s": round(end_request_s, 3),
            "final_status": status["status"],
            "chunks_heard_at_end": heard_at_end,
            "recording_s": round(sent - self.started, 1),
        }

    def poll(self) -> None:
        status = self.phone.status(self.session_id)
        self.last_status = status
        if "chunks_heard" in status:
            self.has_chunk_fields = True
            self.heard_at.setdefault(int(status["chunks_heard"]), self._now())

    def _poll_until(self, done: Any, until_s: float) -> bool:
        """Poll until ``done()`` or ``until_s`` (seconds since start); whether it was done."""
        while not done():
            if self._now() >= until_s:
                return False
            time.sleep(min(self.poll_s, max(0.0, until_s - self._now())))
            self.poll()
        return True

    def _heard(self) -> int:
        return int(self.last_status.get("chunks_heard") or 0)

    def _now(self) -> float:
        return time.monotonic() - self.started

    def summary(self) -> dict[str, Any]:
        """How far behind the recording the hearing ran: for chunk n, seconds from its
        upload to the first poll showing ``chunks_heard >= n + 1`` (polled while uploading)."""
        lags = []
        for number, uploaded in enumerate(self.uploaded_at):
            seen = [t for heard, t in self.heard_at.items() if heard >= number + 1]
            if seen:
                lags.append(round(max(0.0, min(seen) - uploaded), 2))
        return {
            "chunk_fields": self.has_chunk_fields,
            "chunks_uploaded_reported": self.last_status.get("chunks_uploaded"),
            "heard_lag_s": _summary(lags),
            "keep_up_cap_hits": self.cap_hits,
        }


def _cpu_by(
    stack: Stack, before: dict[tuple[str, tuple[tuple[str, str], ...]], float]
) -> dict[str, float]:
    """Where the worker's CPU went since ``before``, as the worker counts it: each job
    function's seconds (``lahstats_job_cpu_seconds``) and, inside the finish, each stage's
    (``stage:<name>``, ``lahstats_stage_cpu_seconds``)."""
    names = {"lahstats_job_cpu_seconds_total": "", "lahstats_stage_cpu_seconds_total": "stage:"}
    spent: dict[str, float] = {}
    for (name, labels), value in stack.worker_counters().items():
        if name in names and value > before.get((name, labels), 0.0):
            key = names[name] + ",".join(v for _, v in labels)
            spent[key] = round(value - before.get((name, labels), 0.0), 2)
    return spent


def _reprocess(
    phone: PhoneClient, session_id: str, args: argparse.Namespace, poll_s: float
) -> dict[str, Any]:
    """``POST /sessions/{id}/reprocess`` with another speaker count, timed to ready again,
    and the transcript's text compared before and after."""
    before_text = transcript_text(phone.transcript(session_id))
    found = len(phone.speakers(session_id))
    speakers = args.reprocess_speakers or found + 1
    version = _status_version(phone, session_id)[1]
    worker = phone.stack.workers[0].pid
    cpu_start = _cpu(worker)
    sent = time.monotonic()
    resp = phone.http.post(f"/sessions/{session_id}/reprocess", json={"num_speakers": speakers})
    if resp.status_code in (404, 405):
        return {"available": False, "http_status": resp.status_code, "body": resp.text[:200]}
    if resp.status_code >= 300:
        raise BenchError(f"POST /sessions/{session_id}/reprocess: {resp.status_code} {resp.text}")
    ready_s, how = _wait_reprocessed(phone, session_id, version, sent, poll_s, args.timeout)
    worker_cpu_s = round(_cpu(worker) - cpu_start, 2)
    after_text = transcript_text(phone.transcript(session_id))
    return {
        "available": True,
        "http_status": resp.status_code,
        "speakers_before": found,
        "num_speakers": speakers,
        "speakers_after": len(phone.speakers(session_id)),
        "to_ready_s": ready_s,
        "timed_by": how,
        "worker_cpu_s": worker_cpu_s,
        "transcript_unchanged": before_text == after_text,
        "transcript_words_changed": words_changed(before_text, after_text),
        "transcript_words": len(before_text.split()),
    }


def _wait_reprocessed(
    phone: PhoneClient,
    session_id: str,
    version: int | None,
    sent: float,
    poll_s: float,
    timeout: float,
) -> tuple[float, str]:
    """Seconds from the call until the session is ready again. Ready again means: ready
    after having shown another status since the call; or, where it never does (the route
    may leave the status alone), ready at a newer status version that then holds for
    ``SETTLE_S`` (the time is that version's first sighting)."""
    left_ready = False
    newest: tuple[int | None, float] = (version, sent)
    while time.monotonic() - sent < timeout:
        status, now_version = _status_version(phone, session_id)
        seen = time.monotonic()
        if status["status"] == "failed":
            raise BenchError(f"reprocess of {session_id} failed: {status['error_message']}")
        if status["status"] not in READY:
            left_ready = True
        elif left_ready:
            return round(seen - sent, 2), "status left ready and came back"
        elif now_version != newest[0]:
            newest = (now_version, seen)
        elif newest[0] != version and seen - newest[1] >= SETTLE_S:
            return round(newest[1] - sent, 2), "status version changed (never left ready)"
        time.sleep(poll_s)
    raise BenchError(f"reprocess of {session_id} not ready within {timeout:.0f} s")


def _status_version(phone: PhoneClient, session_id: str) -> tuple[dict[str, Any], int | None]:
    """The status and its version, read from the ``ETag`` (``"<session hex>.<version>"``)."""
    resp = phone.http.get(f"/sessions/{session_id}/status")
    if resp.status_code >= 300:
        raise BenchError(f"GET /sessions/{session_id}/status: {resp.text}")
    tag = resp.headers.get("etag", "").strip('"').rpartition(".")[2]
    body: dict[str, Any] = resp.json()
    return body, int(tag) if tag.isdigit() else None


def transcript_text(segments: list[dict[str, Any]]) -> str:
    """The transcript's words in time order, whitespace normalised: what a reprocess that
    only re-assigns speakers must leave as it was, however it re-cuts the segments."""
    ordered = sorted(segments, key=lambda s: (s["start"], s["end"]))
    return " ".join(word for s in ordered for word in s["text"].split())


def words_changed(before: str, after: str) -> int:
    """Words inserted, deleted or replaced from ``before`` to ``after``."""
    matcher = difflib.SequenceMatcher(a=before.split(), b=after.split(), autojunk=False)
    return sum(
        max(i2 - i1, j2 - j1) for tag, i1, i2, j1, j2 in matcher.get_opcodes() if tag != "equal"
    )


def _baseline(session: SessionInput) -> dict[str, Any]:
    """faster-whisper alone on the same chunks with the worker's model and options, in a
    fresh process (``bench.probe``), warmed up as the worker was."""
    console.print(f"baseline (faster-whisper alone) on {session.name}: load {load_average()}")
    spec = {"name": session.name, "chunks": [str(c) for c in session.chunks]}
    probe = run_probe({"mode": "baseline", "settings": {}, "warmup": True, "sessions": [spec]})
    (result,) = probe["sessions"]
    return {
        "wall_s": result["total_s"],
        "cpu_s": result["cpu_s"],
        "cpu_s_per_audio_h": round(result["cpu_s"] * 3600 / result["audio_s"], 1),
        "peak_rss_mib": result["peak_rss_mib"],
        "load_average_after": load_average(),
    }


def _growth(runs: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Peak RSS from the shortest session to the longest (goal: flat)."""
    if len(runs) < 2:
        return None
    short, long = min(runs, key=lambda r: r["audio_s"]), max(runs, key=lambda r: r["audio_s"])
    return {
        "from": short["session"],
        "to": long["session"],
        "peak_rss_mib": [short["worker_peak_rss_mib"], long["worker_peak_rss_mib"]],
        "peak_rss_ratio": _ratio(long["worker_peak_rss_mib"], short["worker_peak_rss_mib"]),
    }


def _cpu(pid: int) -> float:
    seconds = proc_cpu_seconds(pid)
    if seconds is None:
        raise BenchError(f"process {pid} is gone (see the stack's logs)")
    return seconds


def _peak_rss_mib(stack: Stack) -> float:
    (peak,) = stack.worker_peak_rss_mib()
    if peak is None:
        raise BenchError("cannot read the worker's VmHWM from /proc")
    return peak


def _phase_peak_mib(stack: Stack, resettable: bool) -> float:
    """The worker's peak since the last reset (or since it started, where the kernel does
    not allow resets), and a reset, so that the next phase's peak is read apart from it."""
    peak = _peak_rss_mib(stack)
    if resettable:
        _reset_peak(stack.workers[0].pid)
    return peak


def _reset_peak(pid: int) -> bool:
    """Reset the worker's ``VmHWM`` so that its peak since then can be read apart from the
    model load's; False where the kernel does not allow it."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as refs:
            refs.write("5")
    except OSError:
        return False
    return True


def _ratio(top: float | None, bottom: float | None) -> float | None:
    return round(top / bottom, 3) if top is not None and bottom else None


def _summary(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    ordered = sorted(values)
    return {
        "n": len(ordered),
        "median": ordered[len(ordered) // 2],
        "max": ordered[-1],
    }


def render(result: dict[str, Any]) -> None:
    runs = result["runs"]
    console.print(
        table(
            f"Live sessions, {result['path']}, {result['pace']} pace, "
            f"{result['chunk_format']} chunks, 1 worker",
            [
                "session",
                "end→ready s",
                "goal s",
                "heard at end",
                "peak RSS MiB",
                "since warm-up MiB",
                "peak recording / finish / reprocess MiB",
                "worker CPU s/audio h",
                "fw alone CPU s/audio h",
                f"CPU ratio (goal ≤ {CPU_RATIO_GOAL})",
                "load avg",
            ],
            [
                [
                    r["session"],
                    r["end_to_ready_s"],
                    r["end_goal_s"],
                    _heard_cell(r),
                    r["worker_peak_rss_mib"],
                    r["worker_peak_rss_since_warmup_mib"],
                    _phases_cell(r),
                    r["worker_cpu_s_per_audio_h"],
                    (r.get("baseline") or {}).get("cpu_s_per_audio_h"),
                    r.get("cpu_ratio"),
                    r["load_average"][0],
                ]
                for r in runs
            ],
        )
    )
    console.print(
        table(
            f"Reprocess with another speaker count (goal ≤ {REPROCESS_GOAL_S:.0f} s, "
            "transcript unchanged)",
            ["session", "available", "speakers", "to ready s", "text unchanged", "words changed"],
            [_reprocess_row(r) for r in runs],
        )
    )
    for r in runs:
        spent = r.get("worker_cpu_by_job_s") or {}
        jobs = sum(v for k, v in spent.items() if not k.startswith("stage:"))
        parts = ", ".join(f"{k} {v}" for k, v in sorted(spent.items(), key=lambda kv: -kv[1]))
        console.print(
            f"{r['session']}: worker CPU {r['worker_cpu_s']} s = in jobs {jobs:.2f} "
            f"({parts}) + outside them {r['worker_cpu_s'] - jobs:.2f}"
        )
    growth = result["growth"]
    if growth:
        console.print(
            f"peak RSS {growth['from']} → {growth['to']}: "
            f"{' → '.join(f'{x:.0f}' for x in growth['peak_rss_mib'])} MiB, "
            f"x{growth['peak_rss_ratio']} (goal ≤ {RSS_GROWTH_GOAL}, ≤ {RSS_CEILING_MIB:.0f} MiB)"
        )


def _phases_cell(run: dict[str, Any]) -> str | None:
    phases = run.get("worker_peak_phases_mib")
    if not phases:
        return None
    reprocess = (run.get("reprocess") or {}).get("worker_peak_rss_mib")
    peaks = [phases["recording"], phases["finish"], reprocess]
    return " / ".join("-" if p is None else f"{p:.0f}" for p in peaks)


def _heard_cell(run: dict[str, Any]) -> str:
    if not run["chunk_fields"]:
        return "n/a"
    return f"{run['chunks_heard_at_end']}/{run['chunks']}"


def _reprocess_row(run: dict[str, Any]) -> list[Any]:
    rep = run.get("reprocess")
    if rep is None:
        return [run["session"], "skipped", None, None, None, None]
    if not rep["available"]:
        return [run["session"], f"no ({rep['http_status']})", None, None, None, None]
    return [
        run["session"],
        True,
        f"{rep['speakers_before']} → {rep['num_speakers']} ({rep['speakers_after']})",
        rep["to_ready_s"],
        rep["transcript_unchanged"],
        rep["transcript_words_changed"],
    ]
