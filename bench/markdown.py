"""``python -m bench markdown RESULT.json...``: the tables of ``BENCHMARKS.md``, in
Markdown, from result files the other subcommands wrote (so that a re-run on another
machine updates the document by copy and paste, not by hand)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench.quality import DER_GROUP_COLUMNS, der_group_rows, per_word_rows, singlish_rows
from bench.report import fmt

WRITES_RESULT = False  # this subcommand reads results; it writes none of its own


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("results", type=Path, nargs="+", help="JSON files from bench/results")


def run(args: argparse.Namespace) -> dict[str, Any]:
    sections = []
    for path in args.results:
        payload = json.loads(path.read_text())
        render_section = SECTIONS.get(payload["command"])
        if render_section is not None:
            sections.append(_header(path, payload) + render_section(payload["results"]))
    return {"markdown": "\n\n".join(sections)}


def render(result: dict[str, Any]) -> None:
    print(result["markdown"])


def _header(path: Path, payload: dict[str, Any]) -> str:
    machine = payload["machine"]
    load = ", ".join(str(x) for x in machine["load_average"])
    return (
        f"`python -m bench {' '.join(payload['argv'])}` — finished {payload['finished']}, "
        f"load average at the end {load} ({machine['nproc']} cores), commit "
        f"{machine.get('git_commit') or '?'}, `{path.name}`\n\n"
    )


def md_table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _pipeline(r: dict[str, Any]) -> str:
    stages = list(r["sets"][0]["stages_s"])
    out = md_table(
        ["set", "audio s", *[f"{s} s" for s in stages], "total s", "RTF", "warm-up s"],
        [
            [
                s["set"],
                s["audio_s"],
                *[s["stages_s"][x] for x in stages],
                s["pipeline_s"],
                s["pipeline_rtf"],
                s["pipeline"]["warmup_s"],
            ]
            for s in r["sets"]
        ],
    )
    out += "\n\n" + md_table(
        [
            "set",
            "pipeline s",
            "faster-whisper alone s",
            "ratio (goal ≤ 1.25)",
            "ratio, same ASR time",
            "model load s",
            "baseline load s",
            "peak RSS MiB",
            "baseline peak RSS MiB",
            "load avg after",
        ],
        [
            [
                s["set"],
                s["pipeline_s"],
                s["baseline_s"],
                s["ratio"],
                s.get("ratio_same_asr_time"),
                s["load_s"],
                s["baseline_load_s"],
                s["peak_rss_mib"],
                s["baseline_peak_rss_mib"],
                s["load_average_after"][0],
            ]
            for s in r["sets"]
        ],
    )
    growth = r.get("growth")
    if growth:
        out += "\n\n" + md_table(
            ["growth", "audio x", "pipeline time x", "baseline time x", "RTF", "peak RSS MiB"],
            [
                [
                    f"{growth['from']} → {growth['to']}",
                    growth["audio_ratio"],
                    growth["time_ratio"],
                    growth["baseline_time_ratio"],
                    " → ".join(fmt(x) for x in growth["rtf"]),
                    " → ".join(fmt(x) for x in growth["peak_rss_mib"]),
                ]
            ],
        )
    return out


def _throughput(r: dict[str, Any]) -> str:
    return md_table(
        ["workers", "sessions", "drain s", "sessions/h", "audio h/h", "mean job s", "load avg"],
        [
            [
                w["workers"],
                r["sessions"],
                w["span_s"],
                w["sessions_per_hour"],
                w["audio_hours_per_hour"],
                w["mean_job_s"],
                w["load_average"][0],
            ]
            for w in r["runs"]
        ],
    )


def _queue_latency(r: dict[str, Any]) -> str:
    rows = [
        ("end sent → worker started the job", r["end_to_started_s"]),
        ("enqueued → worker started the job", r["enqueue_to_started_s"]),
        ("end sent → status past 'queued'", r["end_to_stage_change_s"]),
        ("the end request", r["end_request_s"]),
    ]
    return md_table(
        ["measure (s)", "p50", "p95", "max", "mean"],
        [[name, s["p50"], s["p95"], s["max"], s["mean"]] for name, s in rows],
    )


def _api(r: dict[str, Any]) -> str:
    return md_table(
        [
            "request",
            "generator",
            "conns",
            "requests",
            "errors",
            "req/s",
            "p50 ms",
            "p99 ms",
            "goal met",
        ],
        [
            [
                kind,
                t["generator"],
                t["connections"],
                t["requests"],
                t["errors"],
                t["requests_per_s"],
                t["p50_ms"],
                t["p99_ms"],
                t["meets_goal"],
            ]
            for kind, t in r["tests"].items()
        ],
    )


def _quality(r: dict[str, Any]) -> str:
    parts = []
    if "der" in r and "groups" in r["der"]:
        parts.append(md_table(DER_GROUP_COLUMNS, der_group_rows(r["der"])))
    elif "der" in r:  # a result from before the groups
        names = list(r["der"]["total"]["oracle"])
        parts.append(
            md_table(
                ["speaker count", *names],
                [[c, *[r["der"]["total"][c][n] for n in names]] for c in ("oracle", "auto")],
            )
        )
    if "wer" in r:
        wer = r["wer"]
        rows = [[k, v["files"], v["ref_words"], v["wer"]] for k, v in wer["folders"].items()]
        rows.append(["all", wer["total"]["files"], wer["total"]["ref_words"], wer["total"]["wer"]])
        parts.append(md_table(["asr_en folder", "files", "words", "WER"], rows))
    if "emotion" in r:
        e = r["emotion"]
        parts.append(
            md_table(
                ["GoEmotions dev rows", "accuracy", "macro F1", f"always '{e['majority_class']}'"],
                [[e["rows"], e["accuracy"], e["macro_f1"], e["majority_accuracy"]]],
            )
        )
    if "singlish" in r:
        columns = ["Singlish set", "speaker count", "ref", "hyp", "precision", "recall", "F1"]
        columns += ["speaker-agnostic F1", "audio s", "seconds"]
        parts.append(md_table(columns, singlish_rows(r["singlish"])))
        for name, result in r["singlish"]["sets"].items():
            header = [f"{name}: word (automatic count)", "ref", "hyp", "tp", "P", "R", "F1"]
            parts.append(md_table(header, per_word_rows(result["by_count"]["auto"])))
    return "\n\n".join(parts)


SECTIONS: dict[str, Callable[[dict[str, Any]], str]] = {
    "pipeline": _pipeline,
    "throughput": _throughput,
    "queue-latency": _queue_latency,
    "api": _api,
    "quality": _quality,
}
