"""Far-field diarization material, and the ONE place that says what may be tuned on.

Three groups of conversations, always reported apart (``python -m bench quality --parts der``):

* ``clean``: the corpus's close-talk conversations (pyannote sample, AN4, Leopard).
* ``tuned-on``: far-field audio a diarizer may be tuned on: the corpus's AMI excerpts
  ``AMI_SPLIT["tune"]`` and the synthetic rooms of split ``tune``.
* ``never-tuned``: far-field audio nobody may tune on, only report: the corpus's AMI
  excerpts ``AMI_SPLIT["report"]``, the seven AMI excerpts in ``bench/data/ami_heldout``
  and the synthetic rooms of split ``report``.

The synthetic conversations are clean corpus speech (``VOICES``: speakers cut from the clean
conversations by their RTTM, and single-speaker recordings) arranged into turns with
overlaps, then rendered by ``bench.rooms`` in a simulated room with babble and clatter.
The two splits use different recordings and speakers and different seeds. Everything is
drawn from fixed seeds, and built once into ``CACHE_DIR/farfield`` (the cache key is a
hash of this file and of ``bench/rooms.py``, so any change to the recipe rebuilds).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import numpy.typing as npt

from bench import rooms
from bench.inputs import CACHE_DIR, DIARIZATION, SessionInput, corpus_conversations, rttm_speakers
from bench.report import CORPUS, BenchError

# --- the split --------------------------------------------------------------------------------

AMI_CORPUS = "ami_excerpts_pyannote_debug"  # folder under corpus/diarization
AMI_SPLIT = {
    "tune": ("trn00", "trn01", "trn02", "trn03", "trn04"),
    "report": ("dev00", "dev01"),
}
AMI_HELDOUT = Path(__file__).parent / "data" / "ami_heldout"  # report only, see its README
GROUPS = {
    "clean": "clean",
    "tuned-on": "far-field tuned-on",
    "never-tuned": "far-field never-tuned",
}
SPLITS = ("tune", "report")
CONVERSATIONS = 12  # per split
SEEDS = {"tune": 1_000, "report": 2_000}  # conversation i of a split uses seed + i

ASR = CORPUS / "asr_en"


@dataclass(frozen=True)
class VoiceSource:
    """Where one synthetic talker's speech comes from: whole files, or one speaker's
    non-overlapped turns in an RTTM. Voices of one ``family`` may be the same person
    (undocumented provenance), so a conversation takes at most one voice per family."""

    name: str
    family: str
    files: tuple[Path, ...]
    rttm_speaker: str | None = None


def _files(name: str, family: str, *patterns: str) -> VoiceSource:
    found = tuple(sorted(p for pattern in patterns for p in CORPUS.glob(pattern)))
    return VoiceSource(name, family, found)


def _speaker(folder: str, stem: str, speaker: str) -> VoiceSource:
    wav = DIARIZATION / folder / f"{stem}.wav"
    return VoiceSource(f"{stem}.{speaker}", f"{stem}.{speaker}", (wav,), speaker)


# Tune and report share no recording and, as far as the corpus documents, no speaker.
VOICES = {
    "tune": (
        _speaker("pyannote_sample", "sample", "speaker90"),
        _speaker("pyannote_sample", "sample", "speaker91"),
        _speaker("nemo_an4_diarize_test", "an4_diarize_test", "SPEAKER_00"),
        _speaker("nemo_an4_diarize_test", "an4_diarize_test", "SPEAKER_01"),
        _files("harvard_spk1", "harvard_spk1", "asr_en/speechbrain_harvard/spk1_snt*.wav"),
        _files("singlish0", "singlish", "singlish/singlish0.wav"),
        _files("singlish1", "singlish", "singlish/singlish1.wav"),
        _files("singlish2", "singlish", "singlish/singlish2.wav"),
        _files("singlemic1", "singlemic", "asr_en/speechbrain_harvard/singlemic_example1.wav"),
        _files("singlemic2", "singlemic", "asr_en/speechbrain_harvard/singlemic_example2_16k.wav"),
        _files("singlemic5", "singlemic", "asr_en/speechbrain_harvard/singlemic_example5.wav"),
        _files("cards", "cards", "asr_en/pocketsphinx_cards/cards_00[1-5].wav"),
    ),
    "report": (
        _speaker("picovoice_leopard_diarization_test", "leopard_diarization_test", "spk1"),
        _speaker("picovoice_leopard_diarization_test", "leopard_diarization_test", "spk2"),
        _speaker("picovoice_leopard_diarization_test", "leopard_diarization_test", "spk3"),
        _files("librivox", "librivox", "asr_en/pocketsphinx_librivox/*.wav"),
        _files("harvard_spk2", "harvard_spk2", "asr_en/speechbrain_harvard/spk2_snt*.wav"),
        _files("ami_ES2011a", "ami_ES2011a", "asr_en/ami_headset_ES2011a_40-46s/*.wav"),
        _files("imda702", "imda", "singlish/imda_221931702.wav"),
        _files("imda727", "imda", "singlish/imda_221931727.wav"),
        _files("imda818", "imda", "singlish/imda_221931818.wav"),
    ),
}


def der_groups(
    groups: list[str] | None = None, limit: int | None = None, cache_dir: Path = CACHE_DIR
) -> dict[str, list[SessionInput]]:
    """The conversations of each group (``GROUPS`` keys; all by default), each tagged with
    its ``group`` and ``source``; ``limit`` keeps the first so many per group (synthetic
    rooms beyond it are not built)."""
    corpus = corpus_conversations()
    ami = {c.name: c for c in corpus if c.chunks[0].parent.name == AMI_CORPUS}
    unassigned = set(ami) - {n for names in AMI_SPLIT.values() for n in names}
    if unassigned:
        raise BenchError(f"AMI corpus excerpts in no split: {sorted(unassigned)} (AMI_SPLIT)")
    sources: dict[str, list[tuple[str, Callable[[int | None], list[SessionInput]]]]] = {
        "clean": [("corpus clean", lambda n: [c for c in corpus if c.name not in ami][:n])],
        "tuned-on": [
            ("AMI corpus trn00-04", lambda n: [ami[x] for x in AMI_SPLIT["tune"]][:n]),
            ("synthetic rooms", lambda n: synthetic_conversations("tune", n, cache_dir)),
        ],
        "never-tuned": [
            ("AMI corpus dev00-01", lambda n: [ami[x] for x in AMI_SPLIT["report"]][:n]),
            ("AMI held-out", lambda n: ami_heldout()[:n]),
            ("synthetic rooms", lambda n: synthetic_conversations("report", n, cache_dir)),
        ],
    }
    chosen: dict[str, list[SessionInput]] = {}
    for group in groups or list(GROUPS):
        sessions: list[SessionInput] = []
        for source, load in sources[group]:
            left = None if limit is None else limit - len(sessions)
            if left is not None and left <= 0:
                break
            tags = {"group": GROUPS[group], "source": source}
            sessions += [replace(s, tags={**s.tags, **tags}) for s in load(left)]
        chosen[GROUPS[group]] = sessions
    return chosen


def ami_heldout() -> list[SessionInput]:
    """The seven AMI excerpts of ``bench/data/ami_heldout`` (30 s each)."""
    return [
        SessionInput(
            name=flac.stem,
            chunks=(flac,),
            duration_s=30.0,
            rttm=flac.with_suffix(".rttm"),
            uem=flac.with_suffix(".uem"),
            speakers=len(rttm_speakers(flac.with_suffix(".rttm"))),
        )
        for flac in sorted(AMI_HELDOUT.glob("*.flac"))
    ]


# --- the synthetic conversations --------------------------------------------------------------

FRAME = 320  # 20 ms, the unit of the dry speech activity that makes the references
Signal = npt.NDArray[np.float32]


@dataclass(frozen=True)
class Voice:
    """One talker's clean speech: clips at 16 kHz, each normalised to the same active
    level, with its 20 ms frame activity (True where the dry speech is on)."""

    name: str
    family: str
    clips: tuple[Signal, ...]
    active: tuple[npt.NDArray[np.bool_], ...]


@dataclass(frozen=True)
class Turn:
    speaker: str
    start_s: float
    samples: Signal
    regions: tuple[tuple[float, float], ...]  # speech within the turn, seconds from its start


@dataclass(frozen=True)
class Conversation:
    """A built conversation: the rendered audio, its exact reference and the room."""

    name: str
    split: str
    seed: int
    duration_s: float
    talkers: tuple[str, ...]  # the voice seated at each of ``room.talkers``
    turns: tuple[Turn, ...]
    room: rooms.Room
    rendered: rooms.Rendered

    def reference(self) -> list[tuple[str, float, float]]:
        """(speaker, start s, end s) of every stretch of speech, in time order."""
        spans = [
            (t.speaker, round(t.start_s + a, 3), round(t.start_s + b, 3))
            for t in self.turns
            for a, b in t.regions
        ]
        return sorted(spans, key=lambda s: (s[1], s[0]))


def synthetic_conversations(
    split: str, limit: int | None = None, cache_dir: Path = CACHE_DIR
) -> list[SessionInput]:
    """The first ``limit`` (default all ``CONVERSATIONS``) conversations of ``split``,
    built into ``cache_dir`` on first use and read from there after."""
    folder = cache_dir / "farfield" / recipe_hash() / split
    count = CONVERSATIONS if limit is None else min(limit, CONVERSATIONS)
    voices: list[Voice] | None = None
    sessions = []
    for index in range(count):
        name = f"room_{split}_{index:02d}"
        if not (folder / f"{name}.json").exists():
            voices = voices or load_voices(split)
            write_conversation(build_conversation(split, index, voices), folder)
        sessions.append(_session(folder, name))
    return sessions


def recipe_hash() -> str:
    """Short hash of the recipe (this module, ``bench/rooms.py``, pyroomacoustics's version)."""
    import pyroomacoustics

    digest = hashlib.sha256(pyroomacoustics.__version__.encode())
    for module in (Path(__file__), Path(rooms.__file__)):
        digest.update(module.read_bytes())
    return digest.hexdigest()[:12]


def _session(folder: Path, name: str) -> SessionInput:
    meta = json.loads((folder / f"{name}.json").read_text())
    return SessionInput(
        name=name,
        chunks=(folder / f"{name}.wav",),
        duration_s=meta["duration_s"],
        rttm=folder / f"{name}.rttm",
        uem=folder / f"{name}.uem",
        speakers=len(meta["speakers"]),
        tags={key: str(meta["room"][key]) for key in ("rt60_measured_s", "snr_db")},
    )


def load_voices(split: str) -> list[Voice]:
    """The split's ``VOICES`` decoded, cut to their speaker (RTTM voices), equalised and
    levelled."""
    return [_voice(source) for source in VOICES[split]]


def _voice(source: VoiceSource) -> Voice:
    from services.audio import decode_audio

    if not source.files:
        raise BenchError(f"no corpus files for voice {source.name}")
    clips = []
    for path in source.files:
        samples = decode_audio(path).samples
        if source.rttm_speaker is None:
            clips.append(samples)
            continue
        for start, end in _alone(path.with_suffix(".rttm"), source.rttm_speaker):
            clips.append(samples[int(start * rooms.SAMPLE_RATE) : int(end * rooms.SAMPLE_RATE)])
    clips = [c for c in clips if len(c) >= 0.5 * rooms.SAMPLE_RATE]
    active = [_activity(c) for c in clips]
    clips = _equalised(clips, active)
    levelled = [_levelled(c, a) for c, a in zip(clips, active, strict=True)]
    return Voice(source.name, source.family, tuple(levelled), tuple(active))


def _alone(rttm: Path, speaker: str) -> list[tuple[float, float]]:
    """The speaker's RTTM turns with every other speaker's turns cut out."""
    turns: dict[str, list[tuple[float, float]]] = {}
    for line in rttm.read_text().splitlines():
        f = line.split()
        if f and f[0] == "SPEAKER":
            turns.setdefault(f[7], []).append((float(f[3]), float(f[3]) + float(f[4])))
    others = sorted(span for who, spans in turns.items() if who != speaker for span in spans)
    pieces = []
    for start, end in turns[speaker]:
        for other_start, other_end in others:
            if other_start < end and other_end > start:
                if other_start > start:
                    pieces.append((start, other_start))
                start = max(start, other_end)
        if end > start:
            pieces.append((start, end))
    return pieces


def _activity(clip: Signal) -> npt.NDArray[np.bool_]:
    """Speech on/off per 20 ms frame of a clean clip: frames within 35 dB of the clip's
    loud frames (95th percentile), gaps under 0.3 s filled, bursts under 0.1 s dropped."""
    n = len(clip) // FRAME
    power = np.mean(np.asarray(clip[: n * FRAME], dtype=np.float64).reshape(n, FRAME) ** 2, 1)
    on = power > max(np.percentile(power, 95) * 10**-3.5, 1e-9)
    filled = ~_drop_short(~on, 15, interior_only=True)  # leading/trailing silence stays
    return _drop_short(filled, 5)


def _drop_short(
    on: npt.NDArray[np.bool_], frames: int, interior_only: bool = False
) -> npt.NDArray[np.bool_]:
    """``on`` with its runs of True shorter than ``frames`` set to False."""
    out = on.copy()
    edges = np.flatnonzero(np.diff(np.concatenate([[0], on.astype(np.int8), [0]])))
    for start, end in zip(edges[::2], edges[1::2], strict=True):
        inside = start > 0 and end < len(on)
        if end - start < frames and (inside or not interior_only):
            out[start:end] = False
    return out


def _equalised(clips: list[Signal], active: list[npt.NDArray[np.bool_]]) -> list[Signal]:
    """The voice's clips through one linear-phase filter that brings its long-term spectrum
    towards a fixed speech spectrum (flat to 500 Hz, then -6 dB per octave), within +-10 dB.
    Each corpus voice comes from its own recording, so without this its microphone and
    channel would tell the voices apart in any room, which real table talk does not allow."""
    from scipy.signal import firwin2, oaconvolve, welch

    speech = np.concatenate(
        [
            c[i * FRAME : (i + 1) * FRAME]
            for c, a in zip(clips, active, strict=True)
            for i in np.flatnonzero(a)
        ]
    )
    freqs, power = welch(speech, fs=rooms.SAMPLE_RATE, nperseg=512)
    have_db = 10 * np.log10(power + 1e-14)
    want_db = -6 * np.log2(np.maximum(freqs, 500) / 500)
    band = (freqs >= 300) & (freqs <= 3400)
    change = want_db - have_db
    change = np.convolve(change - np.mean(change[band]), np.ones(9) / 9, mode="same")
    gains = 10 ** (np.clip(change, -10, 10) / 20)
    taps = firwin2(257, freqs / freqs[-1], gains)
    return [
        np.asarray(oaconvolve(clip, taps)[128 : 128 + len(clip)], dtype=np.float32)
        for clip in clips
    ]


def _levelled(clip: Signal, active: npt.NDArray[np.bool_]) -> Signal:
    frames = np.asarray(clip[: len(active) * FRAME]).reshape(len(active), FRAME)
    power = float(np.mean(frames[active] ** 2)) if active.any() else float(np.mean(clip**2))
    return (clip * (10 ** (-26 / 20) / np.sqrt(power + 1e-12))).astype(np.float32)


def build_conversation(split: str, index: int, voices: list[Voice]) -> Conversation:
    """Conversation ``index`` of ``split``: 2-4 talkers (one voice per family), 30-90 s,
    turns with ~25 % overlapping starts, in a random room with babble from the split's
    other voices. Deterministic in (split, index)."""
    seed = SEEDS[split] + index
    rng = np.random.default_rng(seed)
    duration = round(float(rng.uniform(30, 90)), 1)
    talkers = _cast(rng, voices, int(rng.integers(2, 5)))
    turns = _turns(rng, talkers, duration)
    length = int(duration * rooms.SAMPLE_RATE)
    tracks = [_track([t for t in turns if t.speaker == v.name], length) for v in talkers]
    others = [v for v in voices if v not in talkers]
    babble = [_babble_track(rng, others, length) for _ in range(rooms.BABBLE_SOURCES)]
    room = rooms.random_room(rng, len(talkers))
    return Conversation(
        name=f"room_{split}_{index:02d}",
        split=split,
        seed=seed,
        duration_s=duration,
        talkers=tuple(v.name for v in talkers),
        turns=tuple(turns),
        room=room,
        rendered=rooms.render(room, tracks, babble, rng),
    )


def _cast(rng: np.random.Generator, voices: list[Voice], wanted: int) -> list[Voice]:
    cast: list[Voice] = []
    for i in rng.permutation(len(voices)):
        if voices[i].family not in {v.family for v in cast}:
            cast.append(voices[i])
    return cast[:wanted]


def _turns(rng: np.random.Generator, talkers: list[Voice], duration: float) -> list[Turn]:
    """Turns of 1-5 s, each by another talker than the last (talkativeness drawn per
    conversation); a quarter start before the previous one ends (by 0.2-1 s), the others
    after a 0.1-1 s gap; nobody overlaps themselves."""
    weights = rng.dirichlet(np.ones(len(talkers)))
    turns: list[Turn] = []
    free = {v.name: 0.0 for v in talkers}
    t = float(rng.uniform(0.3, 1.5))
    while True:
        choices = [i for i, v in enumerate(talkers) if not turns or v.name != turns[-1].speaker]
        p = weights[choices] / weights[choices].sum()
        voice = talkers[choices[int(rng.choice(len(choices), p=p))]]
        samples, regions = _excerpt(rng, voice)
        start = t + rng.uniform(0.1, 1.0)
        if turns and rng.random() < 0.25:
            start = max(turns[-1].start_s + 0.3, t - rng.uniform(0.2, 1.0))
        start = round(max(start, free[voice.name] + 0.2), 3)
        end = start + len(samples) / rooms.SAMPLE_RATE
        if end > duration - 0.2:
            return turns
        turns.append(Turn(voice.name, start, samples, regions))
        free[voice.name] = end
        t = max(t, end)


def _excerpt(
    rng: np.random.Generator, voice: Voice
) -> tuple[Signal, tuple[tuple[float, float], ...]]:
    """A 1-5 s stretch of one of the voice's clips (longer clips likelier), trimmed to
    start and end on speech, and its speech regions (seconds from its start)."""
    sizes = np.array([len(a) for a in voice.active], dtype=np.float64)
    k = int(rng.choice(len(sizes), p=sizes / sizes.sum()))
    active = voice.active[k]
    want = min(int(rng.uniform(1.0, 5.0) * rooms.SAMPLE_RATE / FRAME), len(active))
    first = int(rng.integers(0, len(active) - want + 1))
    on = np.flatnonzero(active[first : first + want])
    if on.size == 0:  # a silent stretch: start at the clip's first speech instead
        first = min(int(np.flatnonzero(active)[0]), len(active) - want)
        on = np.flatnonzero(active[first : first + want])
    lo, hi = first + int(on[0]), first + int(on[-1]) + 1
    window = active[lo:hi]
    edges = np.flatnonzero(np.diff(np.concatenate([[0], window.astype(np.int8), [0]])))
    regions = tuple(
        (round(a * FRAME / rooms.SAMPLE_RATE, 3), round(b * FRAME / rooms.SAMPLE_RATE, 3))
        for a, b in zip(edges[::2], edges[1::2], strict=True)
    )
    gain = np.float32(10 ** (rng.uniform(-3, 3) / 20))
    return voice.clips[k][lo * FRAME : hi * FRAME] * gain, regions


def _track(turns: list[Turn], length: int) -> Signal:
    track = np.zeros(length, dtype=np.float32)
    for turn in turns:
        at = round(turn.start_s * rooms.SAMPLE_RATE)
        track[at : at + len(turn.samples)] += turn.samples[: length - at]
    return track


def _babble_track(rng: np.random.Generator, voices: list[Voice], length: int) -> Signal:
    """One background talker: excerpts of the given voices back to back."""
    track = np.zeros(length, dtype=np.float32)
    at = int(rng.integers(0, rooms.SAMPLE_RATE))
    while at < length:
        samples, _ = _excerpt(rng, voices[int(rng.integers(len(voices)))])
        track[at : at + len(samples)] = samples[: length - at]
        at += len(samples) + int(rng.uniform(0.05, 0.4) * rooms.SAMPLE_RATE)
    return track


def write_conversation(conversation: Conversation, folder: Path) -> None:
    """``<name>.wav`` (PCM16), ``.rttm``, ``.uem`` and ``.json`` (the room and its draws);
    the JSON is written last, so its presence means the rest is complete."""
    import soundfile

    folder.mkdir(parents=True, exist_ok=True)
    name = conversation.name
    mixture = conversation.rendered.mixture
    soundfile.write(folder / f"{name}.wav", mixture, rooms.SAMPLE_RATE, "PCM_16")
    (folder / f"{name}.rttm").write_text(
        "".join(
            f"SPEAKER {name} 1 {start:.3f} {end - start:.3f} <NA> <NA> {who} <NA> <NA>\n"
            for who, start, end in conversation.reference()
        )
    )
    (folder / f"{name}.uem").write_text(f"{name} 1 0.000 {conversation.duration_s:.3f}\n")
    (folder / f"{name}.json").write_text(json.dumps(describe(conversation), indent=1) + "\n")


def describe(conversation: Conversation) -> dict[str, object]:
    """The conversation's draws and measured properties, as the cache's JSON holds them
    (a seated talker whose turns all fell past the end is in the room but not a speaker)."""
    reference = conversation.reference()
    speech = _covered([(s, e) for _, s, e in reference])
    overlap = sum(e - s for _, s, e in reference) - speech
    room = conversation.room
    return {
        "name": conversation.name,
        "split": conversation.split,
        "seed": conversation.seed,
        "duration_s": conversation.duration_s,
        "speakers": sorted({who for who, _, _ in reference}),
        "speech_s": round(speech, 2),
        "overlap_s": round(overlap, 2),
        "room": {
            "dims_m": room.dims,
            "rt60_target_s": room.rt60_s,
            "rt60_measured_s": conversation.rendered.rt60_measured_s,
            "talker_distances_m": dict(
                zip(conversation.talkers, room.talker_distances(), strict=True)
            ),
            "snr_db": room.snr_db,
        },
    }


def _covered(spans: list[tuple[float, float]]) -> float:
    total, reach = 0.0, 0.0
    for start, end in sorted(spans):
        if end > reach:
            total += end - max(start, reach)
            reach = end
    return total
