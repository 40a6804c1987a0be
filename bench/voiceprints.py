"""Claim suggestions from voiceprints: precision and coverage on sessions a group holds week
after week (``python -m bench voiceprints``).

Six groups with disjoint voices, each of 8 members (espeak-ng voices and real speakers from
``../shared/corpus``), plus, in later sessions, one member who never claimed (no voiceprint)
and one outsider of the group. Every session lasts at least ``--minutes`` and holds a subset of
the voices taking turns, each turn a fresh utterance (new generated text; for a real speaker,
recordings from the half of theirs that the claim sessions never used). In the first
``--claim-sessions`` sessions every member present claims themselves (their voiceprint: the
product's centroid of those voices); the later sessions are then matched by the product
(``services.voiceprints.embed_speakers`` and ``match_voices``).

The threshold and margin are chosen on the two **tune** groups pooled (the highest coverage
with precision >= 99 %, the middle of the flat optimum: :func:`choose`) and reported on the
**report** group (voices, texts and recordings the choice never used) and the **holdout**
groups (generated voices: holdout-3 the one no run had heard before session 5 fixed the voices
espeak-ng had been ignoring; BENCHMARKS.md tells the runs). With ``--turns diarized`` (the
default) the later sessions' speakers are what the product's default diarizer
(``services.diarization.load_diarizer`` with the settings' backend, no speaker-count hint)
hears, as users get them: a hypothesised speaker *is* the reference voice it overlaps most, a
suggestion is right when it names that voice's member, and coverage counts the claimed members'
voices that end with a right suggestion. The diarized speakers first go through the product's
``services.known_voices.separate_known_voices`` with the group's voiceprints (a speaker who is
two members is split; ``--no-separation`` leaves them as the diarizer heard them). ``--turns
reference`` uses the reference turns instead, so the figures measure only the embedder and the
matching. The claim sessions use the reference turns either way (a claim is a person confirming
their own clip). Every group is reported at the product's defaults (``VOICEPRINT_MIN_SCORE`` /
``VOICEPRINT_MIN_MARGIN``) and, where the tune groups ran, at the point they would choose.
Beside the raw cosines every group is scored with AS-norm against a cohort of OTHER groups'
voiceprints (:data:`COHORTS`, never its own): at the settings' normalised thresholds and at the
top k and point the tune groups choose (:func:`normalised`). Each group's heard voices are saved
under ``bench/results/heard``; ``--reuse-heard`` replays them (scoring only)."""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import soundfile as sf
from scipy.signal import resample_poly

from bench.quality import annotation_of
from bench.report import RESULTS_DIR, BenchError, console
from config import Settings
from services.diarization import Diarizer, hear_speakers, load_diarizer
from services.domain import SAMPLE_RATE, Audio, SpeakerTurn, SpeakerVoice
from services.known_voices import KnownVoices, separate_known_voices
from services.voiceprints import (
    CohortNorm,
    FloorRule,
    VoiceEmbedder,
    embed_speakers,
    load_voice_embedder,
    match_voices,
    member_floors,
    own_scores,
)
from voice_library import centroid

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus"
Samples = npt.NDArray[np.float32]

# (name, espeak-ng voice, pitch 0-99, words per minute): distinct generated voices. British
# English variants are "en+<variant>": espeak-ng silently ignores a variant after "en-gb" (and
# one whose name is in the wrong case), and until session 5 nine voices here were plain en-gb
# at another pitch, the report group's m5 and klatt4 among them (:func:`_espeak_voices` now
# refuses a variant espeak-ng does not speak).
TUNE_ESPEAK = [
    ("t-us-m3", "en-us+m3", 45, 165),
    ("t-gb-f2", "en+f2", 60, 170),
    ("t-scot-m1", "en-gb-scotland+m1", 35, 155),
    ("t-029-f4", "en-029+f4", 70, 160),
    ("t-nyc-m7", "en-us-nyc+m7", 40, 175),
    ("t-rp-andy", "en-gb-x-rp+Andy", 50, 160),
    ("t-us-klatt2", "en-us+klatt2", 55, 150),
    ("t-wm-grandma", "en-gb-x-gbcwmd+grandma", 65, 150),
    ("t-us-max", "en-us+max", 30, 170),
]
REPORT_ESPEAK = [
    ("r-gb-m5", "en+m5", 40, 160),
    ("r-us-f1", "en-us+f1", 65, 165),
    ("r-rp-m2", "en-gb-x-rp+m2", 50, 155),
    ("r-029-linda", "en-029+linda", 60, 170),
    ("r-scot-f3", "en-gb-scotland+f3", 70, 160),
    ("r-nyc-paul", "en-us-nyc+paul", 35, 165),
    ("r-lanc-edward", "en-gb-x-gbclan+edward", 45, 150),
    ("r-us-annie", "en-us+Annie", 55, 175),
    ("r-gb-klatt4", "en+klatt4", 50, 160),
]
# a second tune group, generated voices only: one synthesizer's voices sound alike to CAM++,
# the hard impostors the choice of threshold and margin must see (BENCHMARKS.md, runs 1-3)
TUNE_SYNTHETIC_ESPEAK = [
    ("f-us-f5", "en-us+f5", 60, 165),
    ("f-gb-m4", "en+m4", 40, 160),
    ("f-rp-m6", "en-gb-x-rp+m6", 45, 170),
    ("f-029-iven", "en-029+iven", 50, 155),
    ("f-nyc-john", "en-us-nyc+john", 35, 165),
    ("f-scot-belinda", "en-gb-scotland+belinda", 65, 160),
    ("f-lanc-f4", "en-gb-x-gbclan+f4", 70, 150),
    ("f-us-gene", "en-us+Gene", 50, 175),
    ("f-wm-norbert", "en-gb-x-gbcwmd+norbert", 40, 160),
    ("f-us-m2", "en-us+m2", 55, 150),
]
# the group no run had heard before the operating point of run 3 was chosen (generated only:
# the corpus has no further speaker with enough clean speech)
HOLDOUT_ESPEAK = [
    ("h-us-alex", "en-us+Alex", 45, 165),
    ("h-gb-alicia", "en+Alicia", 60, 160),
    ("h-029-andrea", "en-029+Andrea", 65, 170),
    ("h-rp-denis", "en-gb-x-rp+Denis", 40, 155),
    ("h-nyc-hugo", "en-us-nyc+Hugo", 35, 165),
    ("h-scot-jacky", "en-gb-scotland+Jacky", 55, 160),
    ("h-us-lee", "en-us+Lee", 50, 150),
    ("h-gb-michael", "en+Michael", 45, 175),
    ("h-lanc-mike", "en-gb-x-gbclan+Mike", 40, 160),
    ("h-us-aunty", "en-us+aunty", 70, 155),
]
# run 4's never-heard group (run 3's holdout showed the matcher handing a member to the next
# speaker once their own was too unsure; the fix was made after seeing it)
HOLDOUT2_ESPEAK = [
    ("k-us-david", "en-us+david", 40, 165),
    ("k-029-boris", "en-029+boris", 45, 160),
    ("k-gb-f5", "en+f5", 65, 160),
    ("k-rp-annie", "en-gb-x-rp+Annie", 60, 170),
    ("k-nyc-m4", "en-us-nyc+m4", 35, 155),
    ("k-scot-m6", "en-gb-scotland+m6", 45, 165),
    ("k-lanc-iven", "en-gb-x-gbclan+iven", 50, 150),
    ("k-wm-f2", "en-gb-x-gbcwmd+f2", 70, 160),
    ("k-us-benjamin", "en-us+benjamin", 50, 175),
    ("k-gb-caleb", "en+caleb", 40, 160),
]
# session 5's never-heard group: variants no group used, added with the variant check (the
# earlier groups had been heard, the report group included, before their voices were fixed)
HOLDOUT3_ESPEAK = [
    ("n-us-robert", "en-us+robert", 45, 165),
    ("n-en-steph", "en+steph", 65, 160),
    ("n-029-quincy", "en-029+quincy", 40, 170),
    ("n-rp-travis", "en-gb-x-rp+travis", 50, 155),
    ("n-nyc-zac", "en-us-nyc+zac", 45, 165),
    ("n-scot-victor", "en-gb-scotland+victor", 35, 160),
    ("n-lanc-shelby", "en-gb-x-gbclan+shelby", 60, 150),
    ("n-wm-adam", "en-gb-x-gbcwmd+adam", 40, 175),
    ("n-us-anika", "en-us+anika", 70, 160),
    ("n-en-klatt3", "en+klatt3", 50, 165),
]
TUNE_GROUPS = ("tune", "tune-synthetic")
THRESHOLDS = [round(0.30 + 0.05 * i, 2) for i in range(12)]  # 0.30 ... 0.85
MARGINS = [0.0, 0.05, 0.1, 0.15, 0.2]
PRECISION_GOAL = 0.99
# Cohort score normalisation (AS-norm, issue 17): each group's cohort is the voiceprints of
# OTHER groups, never its own, as the product's is other groups' voiceprints. The tune groups
# take each other's and the report group's; every other group takes the tune groups'.
COHORTS = {
    "tune": ("tune-synthetic", "report"),
    "tune-synthetic": ("tune", "report"),
    "report": TUNE_GROUPS,
    "holdout": TUNE_GROUPS,
    "holdout-2": TUNE_GROUPS,
    "holdout-3": TUNE_GROUPS,
}
NORM_TOP_KS = (3, 5, 10)  # the cohort's top k, chosen on the tune groups too
NORM_THRESHOLDS = [round(0.25 * i, 2) for i in range(25)]  # 0.0 ... 6.0 (normalised scale)
NORM_MARGINS = [0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0]
# Per-member floors (issue 17): the slack below a member's lowest own score, chosen on the
# tune groups at the settings' threshold and margin (the highest pooled coverage at precision
# >= 99 %; ties: the smallest slack, the strictest floor)
FLOOR_SLACKS = [round(0.01 * i, 2) for i in range(31)]  # 0.00 ... 0.30
WORDS = [
    "we",
    "went",
    "to",
    "the",
    "market",
    "yesterday",
    "and",
    "bought",
    "some",
    "fish",
    "then",
    "we",
    "had",
    "coffee",
    "at",
    "the",
    "corner",
    "shop",
    "my",
    "cousin",
    "says",
    "the",
    "weather",
    "is",
    "too",
    "hot",
    "this",
    "week",
    "so",
    "we",
    "stay",
    "home",
    "and",
    "watch",
    "the",
    "match",
    "the",
    "bus",
    "was",
    "late",
    "again",
    "and",
    "the",
    "driver",
    "did",
    "not",
    "stop",
    "the",
    "food",
    "there",
    "is",
    "cheap",
    "but",
    "the",
    "queue",
    "is",
    "long",
    "tomorrow",
    "we",
    "meet",
    "after",
    "work",
    "to",
    "plan",
    "the",
    "trip",
    "the",
    "children",
    "want",
    "to",
    "go",
    "swimming",
]


@dataclass(frozen=True)
class Voice:
    """A voice of the benchmark: generated (``espeak``) or recorded (``claim`` and ``later``
    hold its recordings, split so that a later session never replays a claimed one)."""

    name: str
    espeak: tuple[str, int, int] | None = None
    claim: tuple[Samples, ...] = ()
    later: tuple[Samples, ...] = ()


@dataclass(frozen=True)
class Heard:
    """One later session as the matcher sees it: the voices of the speakers heard, which
    reference voice each of them truly is (the one it overlaps most; absent: none), and the
    reference voices present."""

    voices: tuple[SpeakerVoice, ...]
    truth: dict[str, str]
    present: frozenset[str]
    splits: int = 0  # speakers the voiceprints split off a diarized one
    # diarization error (error s, scored s) of the diarizer's speakers, before and after the
    # voiceprints told members apart (DER, collar 0.25 s, overlap scored); empty: reference turns
    der: dict[str, tuple[float, float]] = field(default_factory=dict)


GROUPS = ("tune", "tune-synthetic", "report", "holdout", "holdout-2", "holdout-3")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--minutes", type=float, default=2.0, help="length of each session")
    parser.add_argument("--claim-sessions", type=int, default=2)
    parser.add_argument("--later-sessions", type=int, default=8)
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument(
        "--turns",
        choices=("reference", "diarized"),
        default="diarized",
        help="the later sessions' speakers: the product's default diarizer (as users get "
        "them) or the reference turns (the embedder and the matching alone)",
    )
    parser.add_argument(
        "--no-separation",
        action="store_true",
        help="diarized speakers as the diarizer heard them, without the voiceprints splitting "
        "a speaker who is two members",
    )
    parser.add_argument(
        "--groups", nargs="+", choices=GROUPS, default=list(GROUPS), help="the groups to run"
    )
    parser.add_argument(
        "--reuse-heard",
        action="store_true",
        help="replay the voices a run with the same arguments, settings and embedder heard "
        f"(saved under {HEARD_DIR.relative_to(RESULTS_DIR.parent.parent)}, every run saves "
        "them) instead of hearing the sessions again: only the scoring runs; stale once the "
        "product's hearing (diarizer, known voices, embedder code) changes",
    )


def run(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    # one intra-op thread: on a shared 2-core machine torch's second thread spins and made
    # CAM++ ~10x slower here (measured: 0.55 vs 7 CPU-s for a batch of 8 x 3 s)
    torch.set_num_threads(1)
    settings = Settings(device="cpu")
    embedder = load_voice_embedder(settings)
    diarizer = load_diarizer(settings) if args.turns == "diarized" else None
    every = _groups()
    groups = {name: voices for name, voices in every.items() if name in args.groups}
    scored = {}
    for split, voices in groups.items():
        scored[split] = heard_group(split, voices, embedder, diarizer, args, settings)
        console.print(f"{split}: {len(scored[split]['sessions'])} later sessions embedded")
    prints = {split: scored[split]["voiceprints"] for split in scored}
    for split in sorted({c for s in groups for c in COHORTS[s]} - prints.keys()):
        prints[split] = heard_group(
            split, every[split], embedder, diarizer, args, settings, claims_only=True
        )["voiceprints"]
    for split in groups:
        scored[split]["cohort"] = tuple(
            tuple(vector) for c in COHORTS[split] for vector in prints[c].values()
        )
    curves = {split: curve(scored[split]) for split in groups}
    defaults = (settings.voiceprint_min_score, settings.voiceprint_min_margin)
    tune = [scored[split] for split in TUNE_GROUPS if split in scored]
    chosen = choose(curve(*tune)) if len(tune) == len(TUNE_GROUPS) else None

    def at(point: tuple[float, float]) -> dict[str, Any]:
        return {split: evaluate(scored[split], *point) for split in groups}

    return {
        "embedder": embedder.name,
        "turns": args.turns,
        "diarization_backend": settings.diarization_backend if diarizer else None,
        "separation": diarizer is not None and not args.no_separation,
        "max_seconds_per_speaker": embedder.max_seconds,
        "minutes_per_session": args.minutes,
        "groups": {s: [v.name for v in voices] for s, voices in groups.items()},
        "defaults": {"threshold": defaults[0], "margin": defaults[1]},
        "at_defaults": at(defaults),
        "chosen": None if chosen is None else {"threshold": chosen[0], "margin": chosen[1]},
        "at_chosen": None if chosen is None else at(chosen),
        "curves": curves,
        "as_norm": normalised(scored, chosen, settings),
        "member_floors": floored(scored, settings),
        "scores": {s: _score_summary(scored[s]) for s in scored},
        "splits": {s: scored[s]["splits"] for s in scored},
        "der": {s: _pooled_der(scored[s]["sessions"]) for s in scored},
    }


def _groups() -> dict[str, list[Voice]]:
    real = real_voices()
    generated = espeak_groups()
    recorded = {
        "tune": [real["librivox"], real["sb_spk1"]],
        "report": [real["sb_spk2"], real["diane"], real["sheila"]],
    }
    return {name: [*voices, *recorded.get(name, [])] for name, voices in generated.items()}


def espeak_groups() -> dict[str, list[Voice]]:
    """Each group's generated voices (checked: espeak-ng speaks every variant named)."""
    return {
        "tune": _espeak_voices(TUNE_ESPEAK),
        "tune-synthetic": _espeak_voices(TUNE_SYNTHETIC_ESPEAK),
        "report": _espeak_voices(REPORT_ESPEAK),
        "holdout": _espeak_voices(HOLDOUT_ESPEAK),
        "holdout-2": _espeak_voices(HOLDOUT2_ESPEAK),
        "holdout-3": _espeak_voices(HOLDOUT3_ESPEAK),
    }


def score_group(
    voices: list[Voice],
    embedder: VoiceEmbedder,
    diarizer: Diarizer | None,
    args: argparse.Namespace,
    rng: np.random.Generator,
    settings: Settings,
) -> dict[str, Any]:
    """Claim sessions → voiceprints; later sessions → each speaker's voice, the speakers
    the reference turns' or, with a ``diarizer``, those it hears (told apart by the
    voiceprints unless ``args.no_separation``). The last two voices are the member who never
    claims and the outsider."""
    members, never_claims, outsider = voices[:-2], voices[-2], voices[-1]
    voiceprints, claims = claim_voiceprints(members, embedder, args, rng)
    known = None
    if not args.no_separation:
        known = KnownVoices(
            voiceprints, settings.voiceprint_min_score, settings.voiceprint_min_margin
        )
    sessions = []
    splits = 0
    for _ in range(args.later_sessions):
        picked = rng.choice(len(members), size=min(4, len(members)), replace=False)
        present = [members[i] for i in picked]
        present += [never_claims, outsider]
        audio, reference = build_session(present, args.minutes, rng, phase="later")
        heard = hear(audio, reference, embedder, diarizer, known)
        sessions.append(heard)
        splits += heard.splits
    return {"voiceprints": voiceprints, "claims": claims, "sessions": sessions, "splits": splits}


HEARD_DIR = RESULTS_DIR / "heard"


def heard_group(
    split: str,
    voices: list[Voice],
    embedder: VoiceEmbedder,
    diarizer: Diarizer | None,
    args: argparse.Namespace,
    settings: Settings,
    claims_only: bool = False,
) -> dict[str, Any]:
    """:func:`score_group` for ``split`` (its own seed), replayed from :data:`HEARD_DIR` with
    ``args.reuse_heard`` when a run with the same key saved it; every hearing is saved. With
    ``claims_only`` (a cohort's group) only the voiceprints: its claim sessions, the same as
    the whole group's, are heard when no saved hearing has them."""
    key = {
        "split": split,
        "voices": [_voice_key(v) for v in voices],
        "seed": args.seed + GROUPS.index(split),
        "minutes": args.minutes,
        "claim_sessions": args.claim_sessions,
        "later_sessions": args.later_sessions,
        "turns": args.turns,
        "separation": diarizer is not None and not args.no_separation,
        "embedder": embedder.name,
        "max_seconds": embedder.max_seconds,
        "diarization_backend": settings.diarization_backend if diarizer else None,
        "known_voices": [settings.voiceprint_min_score, settings.voiceprint_min_margin],
    }
    digest = hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    path = HEARD_DIR / f"voiceprints-{split}-{digest}.json"
    saved = json.loads(path.read_text())["scored"] if path.is_file() else {}
    # a hearing saved before the claimed voices were kept cannot give floors: heard again
    if (args.reuse_heard or claims_only) and "claims" in saved:
        console.print(f"{split}: replaying the voices heard in {path.name}")
        return _scored_from_json(saved)
    rng = np.random.default_rng(key["seed"])
    if claims_only:
        voiceprints, claims = claim_voiceprints(voices[:-2], embedder, args, rng)
        return {"voiceprints": voiceprints, "claims": claims, "sessions": [], "splits": 0}
    scored = score_group(voices, embedder, diarizer, args, rng, settings)
    HEARD_DIR.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"key": key, "scored": _scored_to_json(scored)}) + "\n")
    return scored


def _voice_key(voice: Voice) -> list[Any]:
    """A voice as a hearing's key knows it; a recorded voice's claim sessions draw disjoint
    shares of its claim recordings (keyed, so hearings saved before are not replayed)."""
    key: list[Any] = [voice.name, voice.espeak, len(voice.claim), len(voice.later)]
    return key if voice.espeak is not None else [*key, "claim-shares"]


def _scored_to_json(scored: dict[str, Any]) -> dict[str, Any]:
    return {
        "voiceprints": scored["voiceprints"],
        "claims": {
            name: [[v.speaker, list(v.embedding), v.embedder, v.seconds] for v in voices]
            for name, voices in scored["claims"].items()
        },
        "splits": scored["splits"],
        "sessions": [
            {
                "voices": [[v.speaker, list(v.embedding), v.embedder, v.seconds] for v in h.voices],
                "truth": h.truth,
                "present": sorted(h.present),
                "splits": h.splits,
                "der": h.der,
            }
            for h in scored["sessions"]
        ],
    }


def _scored_from_json(saved: dict[str, Any]) -> dict[str, Any]:
    sessions = [
        Heard(
            voices=tuple(
                SpeakerVoice(speaker, tuple(vector), name, seconds)
                for speaker, vector, name, seconds in h["voices"]
            ),
            truth=h["truth"],
            present=frozenset(h["present"]),
            splits=h["splits"],
            der={when: (error, total) for when, (error, total) in h["der"].items()},
        )
        for h in saved["sessions"]
    ]
    claims = {
        name: tuple(
            SpeakerVoice(speaker, tuple(vector), embedder, seconds)
            for speaker, vector, embedder, seconds in voices
        )
        for name, voices in saved["claims"].items()
    }
    return {
        "voiceprints": saved["voiceprints"],
        "claims": claims,
        "sessions": sessions,
        "splits": saved["splits"],
    }


def claim_voiceprints(
    members: list[Voice],
    embedder: VoiceEmbedder,
    args: argparse.Namespace,
    rng: np.random.Generator,
) -> tuple[dict[str, list[float]], dict[str, tuple[SpeakerVoice, ...]]]:
    """The claim sessions: every member claims themselves; their voiceprints (the product's
    centroid of those voices) and the voices claimed, one per claim session, as the product
    keeps them (its per-member floors are computed from these)."""
    claimed: dict[str, list[SpeakerVoice]] = {}
    for number in range(args.claim_sessions):
        share = (number, args.claim_sessions)
        audio, turns = build_session(members, args.minutes, rng, phase="claim", share=share)
        for voice in embed_speakers(audio, turns, embedder):
            claimed.setdefault(voice.speaker, []).append(voice)
    voiceprints = {
        name: list(centroid([v.embedding for v in vs], [v.seconds for v in vs])[0])
        for name, vs in claimed.items()
    }
    return voiceprints, {name: tuple(vs) for name, vs in claimed.items()}


def hear(
    audio: Audio,
    reference: list[SpeakerTurn],
    embedder: VoiceEmbedder,
    diarizer: Diarizer | None,
    known: KnownVoices | None = None,
) -> Heard:
    """The session's voices as the product makes them (its diarizer's turns, told apart by
    the ``known`` voiceprints when given, or the reference turns), each speaker's truth the
    reference voice it overlaps most."""
    der: dict[str, tuple[float, float]] = {}
    if diarizer is None:
        turns, splits = reference, 0
    else:
        diarization = hear_speakers(audio, diarizer)
        der["before"] = _der(reference, diarization.turns)
        found = len({t.speaker for t in diarization.turns})
        if known is not None:
            diarization = separate_known_voices(audio, diarization, embedder, known)
        turns = list(diarization.turns)
        der["after"] = _der(reference, turns)
        splits = len({t.speaker for t in turns}) - found
    return Heard(
        voices=embed_speakers(audio, turns, embedder),
        truth=truly(turns, reference),
        present=frozenset(t.speaker for t in reference),
        splits=splits,
        der=der,
    )


def _der(reference: list[SpeakerTurn], turns: Sequence[SpeakerTurn]) -> tuple[float, float]:
    """(error seconds, scored seconds) of ``turns`` against ``reference``: DER's parts, so
    that a group's sessions pool (collar 0.25 s either side, overlap scored)."""
    from pyannote.metrics.diarization import DiarizationErrorRate

    detail = DiarizationErrorRate(collar=0.5, skip_overlap=False)(
        annotation_of(reference, "ref"), annotation_of(turns, "ref"), detailed=True
    )
    total = float(detail["total"])
    return float(detail["diarization error rate"]) * total, total


def truly(turns: list[SpeakerTurn], reference: list[SpeakerTurn]) -> dict[str, str]:
    """Each hypothesised speaker → the reference speaker whose turns it overlaps most
    (seconds); a speaker overlapping nobody is left out."""
    overlap: dict[str, dict[str, float]] = {}
    for turn in turns:
        for ref in reference:
            shared = min(turn.end, ref.end) - max(turn.start, ref.start)
            if shared > 0:
                by = overlap.setdefault(turn.speaker, {})
                by[ref.speaker] = by.get(ref.speaker, 0.0) + shared
    return {speaker: max(by, key=lambda r: by[r]) for speaker, by in overlap.items()}


def build_session(
    voices: list[Voice],
    minutes: float,
    rng: np.random.Generator,
    phase: str,
    share: tuple[int, int] = (0, 1),
) -> tuple[Audio, list[SpeakerTurn]]:
    """The voices taking turns in a random order, each turn a fresh utterance, until the
    session lasts ``minutes``; the reference turns with it. ``share`` (k, n): the session is
    the k-th of n that draw on one pool, and a recorded voice speaks only its k-th share of
    the pool's recordings (as two real sessions hold different speech)."""
    pieces: list[Samples] = []
    turns: list[SpeakerTurn] = []
    at = 0.0
    used: dict[str, int] = {}
    while at < minutes * 60:
        for voice in rng.permutation(np.array(voices, dtype=object)):
            utterance = _utterance(voice, phase, used, rng, share)
            pause = np.zeros(int(rng.uniform(0.2, 0.6) * SAMPLE_RATE), dtype=np.float32)
            turns.append(SpeakerTurn(at, at + len(utterance) / SAMPLE_RATE, voice.name))
            pieces += [utterance, pause]
            at += (len(utterance) + len(pause)) / SAMPLE_RATE
    return Audio(np.concatenate(pieces)), turns


def _utterance(
    voice: Voice,
    phase: str,
    used: dict[str, int],
    rng: np.random.Generator,
    share: tuple[int, int] = (0, 1),
) -> Samples:
    if voice.espeak is not None:
        text = " ".join(rng.choice(WORDS, size=int(rng.integers(8, 15))))
        return synthesize(text, *voice.espeak)
    pool = voice.claim if phase == "claim" else voice.later
    part, parts = share
    if len(pool) >= parts:
        pool = pool[part::parts]
    n = used.get(voice.name, 0)
    used[voice.name] = n + 1
    return pool[n % len(pool)]


def synthesize(text: str, name: str, pitch: int, speed: int) -> Samples:
    """``text`` spoken by espeak-ng's voice ``name``, 16 kHz mono float32."""
    with tempfile.NamedTemporaryFile(suffix=".wav") as out:
        command = ["espeak-ng", "-v", name, "-p", str(pitch), "-s", str(speed), "-w", out.name]
        try:
            subprocess.run([*command, text], check=True, capture_output=True)
        except (OSError, subprocess.CalledProcessError) as exc:
            raise BenchError(f"espeak-ng could not speak with voice {name}: {exc}") from exc
        samples, rate = sf.read(out.name, dtype="float32")
    return resample_poly(samples, SAMPLE_RATE, rate).astype(np.float32)


def _espeak_voices(specs: list[tuple[str, str, int, int]]) -> list[Voice]:
    for _, voice, _, _ in specs:
        if not variant_spoken(voice):
            raise BenchError(f"espeak-ng does not speak the variant of {voice}: it falls back")
    return [Voice(name, espeak=(voice, pitch, speed)) for name, voice, pitch, speed in specs]


@functools.cache
def variant_spoken(voice: str) -> bool:
    """Whether espeak-ng speaks ``voice``'s variant (``language+variant``), not the bare
    language: it falls back without a word for a variant after "en-gb" or one it cannot find
    (names are case-sensitive)."""
    if "+" not in voice:
        return True

    def speak(name: str) -> bytes:
        command = ["espeak-ng", "-v", name, "--stdout", "the market at noon"]
        try:
            return subprocess.run(command, check=True, capture_output=True).stdout
        except (OSError, subprocess.CalledProcessError) as exc:
            raise BenchError(f"espeak-ng could not speak with voice {name}: {exc}") from exc

    return speak(voice) != speak(voice.split("+")[0])


def real_voices() -> dict[str, Voice]:
    """Recorded speakers of the corpus, each one's recordings split in two halves."""
    if not CORPUS.is_dir():
        raise BenchError(f"no corpus at {CORPUS}")
    librivox = sorted((CORPUS / "asr_en" / "pocketsphinx_librivox").glob("*.wav"))
    harvard = CORPUS / "asr_en" / "speechbrain_harvard"
    voices = {
        "librivox": [_read(p) for p in librivox],
        "sb_spk1": [_read(harvard / f"spk1_snt{i}.wav") for i in range(1, 7)],
        "sb_spk2": [_read(harvard / f"spk2_snt{i}.wav") for i in range(1, 7)],
        **_rttm_voices(CORPUS / "diarization" / "pyannote_sample", "sample"),
    }
    return {
        name: Voice(name, claim=tuple(utts[::2]), later=tuple(utts[1::2]))
        for name, utts in voices.items()
    }


def _rttm_voices(folder: Path, stem: str) -> dict[str, list[Samples]]:
    audio = _read(folder / f"{stem}.wav")
    names = {"speaker90": "diane", "speaker91": "sheila"}
    voices: dict[str, list[Samples]] = {}
    for line in (folder / f"{stem}.rttm").read_text().splitlines():
        fields = line.split()
        start, duration, who = float(fields[3]), float(fields[4]), fields[7]
        lo, hi = int(start * SAMPLE_RATE), int((start + duration) * SAMPLE_RATE)
        voices.setdefault(names[who], []).append(audio[lo:hi])
    return voices


def _read(path: Path) -> Samples:
    samples, rate = sf.read(path, dtype="float32", always_2d=True)
    mono = samples.mean(axis=1)
    if rate != SAMPLE_RATE:
        mono = resample_poly(mono, SAMPLE_RATE, rate)
    return mono.astype(np.float32)


def normalised(
    scored: dict[str, dict[str, Any]], raw_chosen: tuple[float, float] | None, settings: Settings
) -> dict[str, Any]:
    """Every group with AS-norm against its cohort (:data:`COHORTS`): at the settings'
    normalised thresholds, and, where the tune groups ran, at what they choose: for each top k
    of :data:`NORM_TOP_KS` the point :func:`choose` takes on their pooled curve; the k with the
    best pooled coverage (ties: the middle k). ``as_good_as_raw``: that coverage is at least
    the raw choice's on the same pooled tune groups (both at precision >= 99 %)."""
    top_k = settings.voiceprint_cohort_top_k
    at_settings = (settings.voiceprint_norm_min_score, settings.voiceprint_norm_min_margin)
    result: dict[str, Any] = {
        "cohorts": {s: list(COHORTS[s]) for s in scored},
        "cohort_sizes": {s: len(scored[s]["cohort"]) for s in scored},
        "settings": {"top_k": top_k, "threshold": at_settings[0], "margin": at_settings[1]},
        "at_settings": {s: evaluate(g, *at_settings, top_k=top_k) for s, g in scored.items()},
    }
    tune = [scored[s] for s in TUNE_GROUPS if s in scored]
    if len(tune) < len(TUNE_GROUPS) or raw_chosen is None:
        return result
    by_k: dict[int, dict[str, Any]] = {}
    for k in NORM_TOP_KS:
        points = curve(*tune, top_k=k)
        try:
            point = choose(points)
        except BenchError:
            continue
        pooled = next(p for p in points if (p["threshold"], p["margin"]) == point)
        by_k[k] = {"threshold": point[0], "margin": point[1], "tune": pooled, "curve": points}
    raw_tune = _pooled([evaluate(g, *raw_chosen) for g in tune])
    result["raw_tune"] = raw_tune
    if not by_k:
        return result
    best = max(p["tune"]["coverage"] for p in by_k.values())
    tied = sorted(k for k, p in by_k.items() if p["tune"]["coverage"] == best)
    k = tied[(len(tied) - 1) // 2]
    point = (by_k[k]["threshold"], by_k[k]["margin"])
    result |= {
        "by_top_k": by_k,
        "chosen": {"top_k": k, "threshold": point[0], "margin": point[1]},
        "as_good_as_raw": best >= raw_tune["coverage"],
        "at_chosen": {s: evaluate(g, *point, top_k=k) for s, g in scored.items()},
    }
    return result


def floored(scored: dict[str, dict[str, Any]], settings: Settings) -> dict[str, Any]:
    """Every group at the settings' threshold and margin with per-member floors: at the
    settings' slack, and, where the tune groups ran, at the slack they choose on
    :data:`FLOOR_SLACKS` (:func:`choose_slack`). ``as_good_as_raw``: on the tune groups pooled,
    precision and coverage at least raw's at the same threshold and margin. ``own``: the
    spread of each group's members' leave-one-out scores and of their floors."""
    point = (settings.voiceprint_min_score, settings.voiceprint_min_margin)
    slack = settings.voiceprint_member_floor_slack
    result: dict[str, Any] = {
        "threshold": point[0],
        "margin": point[1],
        "own": {s: _own_summary(g["claims"], FloorRule(slack)) for s, g in scored.items()},
        "settings_slack": slack,
        "at_settings": {s: evaluate(g, *point, floors=FloorRule(slack)) for s, g in scored.items()},
    }
    tune = [scored[s] for s in TUNE_GROUPS if s in scored]
    if len(tune) < len(TUNE_GROUPS):
        return result
    points = [
        {"slack": x, **_pooled([evaluate(g, *point, floors=FloorRule(x)) for g in tune])}
        for x in FLOOR_SLACKS
    ]
    raw = _pooled([evaluate(g, *point) for g in tune])
    result |= {"tune_curve": points, "raw_tune": raw}
    try:
        chosen = choose_slack(points)
    except BenchError:
        return result
    pooled = next(p for p in points if p["slack"] == chosen)
    rule = FloorRule(chosen)
    return result | {
        "chosen_slack": chosen,
        "tune": pooled,
        "as_good_as_raw": pooled["precision"] >= raw["precision"]
        and pooled["coverage"] >= raw["coverage"],
        "raw": {s: evaluate(g, *point) for s, g in scored.items()},
        "at_chosen": {s: evaluate(g, *point, floors=rule) for s, g in scored.items()},
    }


def choose_slack(points: list[dict[str, Any]]) -> float:
    """The slack: the best coverage among points with precision >= 99 %; of those, the
    smallest slack (the strictest floors)."""
    safe = [p for p in points if p["precision"] >= PRECISION_GOAL and p["suggestions"]]
    if not safe:
        raise BenchError("no slack reaches 99 % precision on the tune groups")
    best = max(p["coverage"] for p in safe)
    return float(min(p["slack"] for p in safe if p["coverage"] == best))


def _own_summary(claims: dict[str, Any], rule: FloorRule) -> dict[str, Any]:
    scores = [x for voices in claims.values() for x in own_scores(voices)]
    floors = list(member_floors(claims, rule).values())

    def spread(xs: list[float]) -> dict[str, float] | None:
        if not xs:
            return None
        return {"min": round(min(xs), 3), "median": round(float(np.median(xs)), 3)}

    return {"members": len(claims), "own_scores": spread(scores), "floors": spread(floors)}


def curve(*groups: dict[str, Any], top_k: int | None = None) -> list[dict[str, Any]]:
    """Precision and coverage at every (threshold, margin) of the grid, the groups' counts
    pooled (each group's sessions matched against its own members' voiceprints); with
    ``top_k``, the normalised scores' grid, AS-norm against each group's cohort."""
    thresholds, margins = (
        (THRESHOLDS, MARGINS) if top_k is None else (NORM_THRESHOLDS, NORM_MARGINS)
    )
    return [
        {"threshold": t, "margin": m, **_pooled([evaluate(g, t, m, top_k) for g in groups])}
        for t in thresholds
        for m in margins
    ]


def _pooled(results: list[dict[str, Any]]) -> dict[str, Any]:
    made, wrong, eligible = (
        sum(r[k] for r in results) for k in ("suggestions", "wrong", "eligible")
    )
    right = made - wrong
    return {
        "suggestions": made,
        "wrong": wrong,
        "eligible": eligible,
        "precision": right / made if made else 1.0,
        "coverage": right / eligible if eligible else 0.0,
    }


def evaluate(
    scored: dict[str, Any],
    threshold: float,
    margin: float,
    top_k: int | None = None,
    floors: FloorRule | None = None,
) -> dict[str, Any]:
    """Suggestions made, wrong ones (naming a member other than the one the speaker truly
    is, or anyone for a speaker who has no voiceprint or is nobody), precision, and coverage:
    the claimed members present whose voice ended with the right suggestion. With ``top_k``
    the scores are AS-normalised against ``scored["cohort"]`` (the thresholds in that scale);
    with ``floors`` each member's floor comes from their claimed voices (``scored["claims"]``)
    by the product's :func:`member_floors`."""
    voiceprints = scored["voiceprints"]
    floor_of = member_floors(scored["claims"], floors) if floors is not None else None
    norm = None
    if top_k is not None:
        norm = CohortNorm(scored["cohort"], top_k, threshold, margin)
        if not norm.applies:
            raise BenchError(f"a cohort of {len(norm.cohort)} voices is too small for top {top_k}")
    made = wrong = eligible = right = 0
    kinds = dict.fromkeys(WRONG_KINDS, 0)
    for heard in scored["sessions"]:
        eligible += len(heard.present & voiceprints.keys())
        covered = set()
        for match in match_voices(heard.voices, voiceprints, threshold, margin, norm, floor_of):
            made += 1
            truth = heard.truth.get(match.speaker)
            if truth == match.user:
                covered.add(match.user)
                continue
            wrong += 1
            kinds[_wrong_kind(truth, voiceprints)] += 1
            kinds["naming_an_absent_member"] += match.user not in heard.present
        right += len(covered)
    return {
        "suggestions": made,
        "wrong": wrong,
        "eligible": eligible,
        "precision": (made - wrong) / made if made else 1.0,
        "coverage": right / eligible if eligible else 0.0,
        "wrong_kinds": kinds,
    }


# what a wrong suggestion's speaker truly is (the first three add up to the wrong ones), and
# how many of them named a member who was not in the session at all
WRONG_KINDS = (
    "speaker_without_voiceprint",  # the member who never claimed, or the outsider
    "speaker_is_another_member",
    "speaker_is_nobody",
    "naming_an_absent_member",
)


def _wrong_kind(truth: str | None, voiceprints: dict[str, Any]) -> str:
    if truth is None:
        return "speaker_is_nobody"
    return "speaker_is_another_member" if truth in voiceprints else "speaker_without_voiceprint"


def choose(points: list[dict[str, Any]]) -> tuple[float, float]:
    """The operating point: the best coverage among points with precision >= 99 %; of those,
    the smallest margin, and the middle of the thresholds that keep that coverage (an edge of
    a flat optimum is where a new group falls off first)."""
    safe = [p for p in points if p["precision"] >= PRECISION_GOAL and p["suggestions"]]
    if not safe:
        raise BenchError("no threshold reaches 99 % precision on the tune group")
    best = max(p["coverage"] for p in safe)
    margin = min(p["margin"] for p in safe if p["coverage"] == best)
    thresholds = sorted(
        p["threshold"] for p in safe if p["coverage"] == best and p["margin"] == margin
    )
    return thresholds[(len(thresholds) - 1) // 2], margin


def _pooled_der(sessions: list[Heard]) -> dict[str, float]:
    """The group's DER before and after the voiceprints told members apart (diarized turns)."""
    pooled = {}
    for when in ("before", "after"):
        if sessions and all(when in h.der for h in sessions):
            error = sum(h.der[when][0] for h in sessions)
            pooled[when] = round(error / max(sum(h.der[when][1] for h in sessions), 1e-9), 4)
    return pooled


def _score_summary(scored: dict[str, Any]) -> dict[str, Any]:
    """How a speaker scores against their own voiceprint, and the best impostor score."""
    own, impostor = [], []
    for heard in scored["sessions"]:
        for v in heard.voices:
            scores = {
                name: float(np.dot(v.embedding, print_))
                for name, print_ in scored["voiceprints"].items()
            }
            if heard.truth.get(v.speaker) in scores:
                own.append(scores.pop(heard.truth[v.speaker]))
            if scores:
                impostor.append(max(scores.values()))

    def spread(xs: list[float]) -> dict[str, float]:
        return {
            "min": round(min(xs), 3),
            "median": round(float(np.median(xs)), 3),
            "max": round(max(xs), 3),
        }

    return {"own": spread(own), "best_impostor": spread(impostor)}


def render(result: dict[str, Any]) -> None:
    defaults, chosen = result["defaults"], result["chosen"]
    console.print(
        f"{result['embedder']}, {result['turns']} turns: the defaults, threshold "
        f"{defaults['threshold']}, margin {defaults['margin']}"
    )
    _render_points(result["at_defaults"])
    if chosen is not None:
        console.print(
            f"what the tune groups choose on these turns: threshold {chosen['threshold']}, "
            f"margin {chosen['margin']}"
        )
        _render_points(result["at_chosen"])
    _render_norm(result.get("as_norm"))
    _render_floors(result.get("member_floors"))
    for split, summary in result["scores"].items():
        console.print(f"{split} scores: {summary}")
    for split, count in result.get("splits", {}).items():
        der = result.get("der", {}).get(split, {})
        console.print(f"{split}: {count} speakers split off by the voiceprints; DER {der}")


def _render_points(points: dict[str, dict[str, Any]]) -> None:
    for split, p in points.items():
        wrong = {k: n for k, n in p.get("wrong_kinds", {}).items() if n}
        console.print(
            f"  {split}: precision {p['precision']:.3f} ({p['wrong']} wrong of "
            f"{p['suggestions']}), coverage {p['coverage']:.3f} of {p['eligible']} speakers"
            + (f"; wrong: {wrong}" if wrong else "")
        )


def _render_norm(norm: dict[str, Any] | None) -> None:
    if not norm:
        return
    cohorts = "; ".join(
        f"{s}: {' + '.join(c)} ({norm['cohort_sizes'][s]} voiceprints)"
        for s, c in norm["cohorts"].items()
    )
    console.print(f"AS-norm, each group's cohort the voiceprints of other groups only: {cohorts}")
    at = norm["settings"]
    console.print(
        f"AS-norm at the settings: top {at['top_k']}, threshold {at['threshold']}, "
        f"margin {at['margin']}"
    )
    _render_points(norm["at_settings"])
    for k, p in norm.get("by_top_k", {}).items():
        tune = p["tune"]
        console.print(
            f"  tune groups pooled, top {k}: they choose {p['threshold']} / {p['margin']}: "
            + _precision_coverage(tune)
        )
    if "raw_tune" in norm:
        raw = norm["raw_tune"]
        console.print("  tune groups pooled, raw at its choice: " + _precision_coverage(raw))
    chosen = norm.get("chosen")
    if chosen is not None:
        console.print(
            f"AS-norm at what the tune groups choose: top {chosen['top_k']}, threshold "
            f"{chosen['threshold']}, margin {chosen['margin']} (as good as raw on them: "
            f"{norm['as_good_as_raw']})"
        )
        _render_points(norm["at_chosen"])


def _precision_coverage(pooled: dict[str, Any]) -> str:
    return f"precision {pooled['precision']:.3f}, coverage {pooled['coverage']:.3f}"


def _render_floors(floors: dict[str, Any] | None) -> None:
    if not floors:
        return
    console.print(
        f"per-member floors at threshold {floors['threshold']}, margin {floors['margin']}: "
        f"own scores and floors {floors['own']}"
    )
    console.print(f"  at the settings' slack {floors['settings_slack']}:")
    _render_points(floors["at_settings"])
    if "raw_tune" in floors:
        raw = floors["raw_tune"]
        console.print("  tune groups pooled, raw: " + _precision_coverage(raw))
    if "chosen_slack" in floors:
        tune = floors["tune"]
        console.print(
            f"  the tune groups choose slack {floors['chosen_slack']}: "
            f"{_precision_coverage(tune)} (as good as raw on "
            f"them: {floors['as_good_as_raw']}); raw beside floored, every group:"
        )
        for split, raw_point in floors["raw"].items():
            console.print(f"  {split}, raw then floored:")
            _render_points({split: raw_point})
            _render_points({split: floors["at_chosen"][split]})
