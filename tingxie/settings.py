"""The one settings class. Every value comes from a `TINGXIE_` environment variable; nothing else reads
the environment. Unset service URLs fall back to the embedded mode: SQLite, a local storage directory and
a SQLite-backed broker under `TINGXIE_DATA_DIR`, so a fresh machine needs no servers."""

import math
from functools import lru_cache
from ipaddress import ip_network
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from tingxie.engines import EngineName, engine_spec

GIB = 1024**3
CPU_AUTO_BATCH_SIZE = 8
MAX_AUTO_BATCH = 512  # the most BATCH_SIZE=auto sizes on CUDA: past it the 1.7B model gains nothing on an H100
HOUR = 3600.0


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TINGXIE_", extra="ignore")

    # Services. None means the embedded default under data_dir.
    data_dir: Path = Path(".tingxie")
    database_url: str | None = None
    broker_url: str | None = None
    s3_endpoint_url: str | None = None
    s3_bucket: str = "tingxie"
    s3_access_key: SecretStr | None = None
    s3_secret_key: SecretStr | None = None
    s3_region: str = "us-east-1"
    # Where clients reach the S3 server, for the URLs of direct uploads; unset: s3_endpoint_url.
    s3_public_endpoint_url: str | None = None
    storage_dir: Path | None = None

    # Engine.
    engine: EngineName = "pocketsphinx"
    model_path: str | None = None
    # Qwen3-ForcedAligner (a local directory, like MODEL_PATH): word times for Qwen3-ASR's segments.
    aligner_path: str | None = None
    device: str = "auto"  # "auto" picks cuda when available
    dtype: str | None = None  # None: bfloat16 on CUDA, float32 on CPU
    # Windows per engine call, gathered from every chunk a worker holds; halved on CUDA out-of-memory.
    # "auto": sized from the GPU's free memory on CUDA, CPU_AUTO_BATCH_SIZE on the CPU.
    batch_size: Annotated[int, Field(ge=1)] | Literal["auto"] = "auto"
    # "static": a preallocated key/value cache, with which transformers compiles the decoding step on CUDA
    # (torch.compile). Qwen3-ASR only; not yet measured on a GPU, so off by default.
    generate_cache: Literal["dynamic", "static"] = "dynamic"
    batch_wait_ms: float = Field(20.0, ge=0)  # longest a window waits for batch mates before a call starts
    # Chunks the GPU worker of `make serve` holds at once (its Celery thread pool): enough to fill a call
    # while others load. "auto": `chunks_to_hold` for the batch the worker may reach (tingxie/runner.py).
    transcribe_concurrency: Annotated[int, Field(ge=1)] | Literal["auto"] = "auto"
    # A worker that takes bulk work (the cpu or gpu queue) raises its nice value by this much when it
    # starts (worker/niceness.py), so that the API and the interactive worker on the same host get the
    # cores first while a backlog keeps them busy; 0 leaves every worker at the priority it started with.
    bulk_niceness: int = Field(10, ge=0, le=19)

    # Speaker labels (worker/diarization): the default for jobs that do not say (`diarize`), and the
    # speaker encoder's weights (None: the ones the resemblyzer wheel ships).
    diarization: Literal["off", "on"] = "off"
    speaker_encoder_path: Path | None = None

    # Audio pipeline.
    chunk_seconds: float = Field(300.0, ge=1)  # queue chunk: unit of parallelism and retry
    window_seconds: float = Field(30.0, ge=1, le=30)  # upper bound on the model window; see planned_window_seconds
    max_upload_bytes: int = 4 * GIB
    max_duration_seconds: float = 12 * HOUR

    # HTTP.
    host: str = "127.0.0.1"
    port: int = 8000
    auth_required: bool | None = None  # None: only on a non-loopback bind or once keys exist
    sync_wait_seconds: float = 600.0  # how long the synchronous compatibility routes wait for a job

    # Limits per API key; none applies in the keyless local mode, and 0 switches one off. A key over one
    # gets 429 `rate_limited` (or `quota_exceeded`) with Retry-After, before its upload streams.
    max_active_jobs_per_key: int = Field(1000, ge=0)  # queued or processing at once
    max_submits_per_minute: int = Field(300, ge=0)
    max_audio_hours_per_day: float = Field(0.0, ge=0)  # audio of the jobs submitted in the last 24 h

    # Retention. Finished jobs (completed, failed, canceled) older than this, counted from when they
    # finished, are deleted with everything stored for them by the reconciler; None keeps them. A job's
    # own `retain_days` may shorten it. keep_source=False drops a job's uploaded audio once it completes.
    retention_days: float | None = Field(None, gt=0)
    keep_source: bool = True
    # Stored objects of a job or upload that has no row, untouched this long, are deleted by the reconciler
    # (looked for once per this interval): what a request left when its process died between storing the
    # upload and recording the job, or when a write reached storage after its request had been refused.
    orphan_after_seconds: float = Field(3600.0, gt=0)

    # Webhooks (tingxie/webhooks.py). Deliveries for an API key's jobs are signed with that key's secret;
    # the keyless local mode signs with webhook_secret, or with one generated into data_dir on first use.
    webhook_secret: SecretStr | None = None
    # Webhook and audio URLs reach public addresses only, and those in webhook_allow_networks (comma-
    # separated addresses or CIDR networks: a LAN's receivers); webhook_allow_private lets them reach any.
    webhook_allow_private: bool = False
    webhook_allow_networks: str = ""
    webhook_retry_base_seconds: float = Field(30.0, gt=0)  # the first retry's delay; doubled for each next
    webhook_timeout_seconds: float = Field(10.0, gt=0)  # to connect, and for each read of the response

    # Recovery. A worker holds a lease on what it works on (prepare: the job; transcribe: the chunk) and
    # renews it every lease_renew_seconds; the reconciler, every reconcile_every_seconds, queues again
    # whatever a lease expired on. So work a killed worker held runs again within lease_seconds plus one
    # reconciler interval: about 2.5 minutes on these defaults.
    lease_seconds: float = Field(120.0, gt=0)
    lease_renew_seconds: float = Field(30.0, gt=0)
    reconcile_every_seconds: float = Field(30.0, gt=0)
    # Redis redelivers a message a worker took and never acknowledged after this long: what brings back
    # a task whose worker died before it took its lease (a lease that was never taken never runs out).
    # A task still running then gets one duplicate, which its lease turns away; messages waiting in the
    # queue are never redelivered, however deep the backlog. Several lease periods, so that redelivery
    # stays rare for live work.
    visibility_timeout_seconds: int = Field(600, gt=0)
    # A queued or processing job with no progress for this long has its next step enqueued again.
    reconcile_after_seconds: int = 6 * 3600 + 600

    @field_validator("webhook_allow_networks")
    @classmethod
    def _networks(cls, value: str) -> str:
        for part in value.split(","):
            if part.strip():
                ip_network(part.strip(), strict=False)  # ValueError: not an address or a network
        return value

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir.absolute() / 'tingxie.sqlite'}"

    @property
    def resolved_broker_url(self) -> str:
        return self.broker_url or f"sqla+sqlite:///{self.data_dir.absolute() / 'broker.sqlite'}"

    @property
    def resolved_storage_dir(self) -> Path:
        return (self.storage_dir or self.data_dir / "storage").absolute()

    @property
    def starting_batch_size(self) -> int:
        """The batch an engine starts with: the setting, or CPU_AUTO_BATCH_SIZE for "auto" (which a CUDA
        engine then replaces with a size from the GPU's free memory)."""
        return CPU_AUTO_BATCH_SIZE if self.batch_size == "auto" else self.batch_size

    def chunks_to_hold(self, batch_size: int) -> int:
        """Chunks a GPU worker holds to keep calls of `batch_size` windows full: four calls' worth and two to
        spare. A finished chunk's thread is away from the batcher for several calls (committing, taking the
        next message, reading the next chunk), and with two calls' worth the waiting windows ran out."""
        windows_per_chunk = math.ceil(self.chunk_seconds / self.planned_window_seconds)
        return 4 * batch_size // windows_per_chunk + 2

    @property
    def planned_window_seconds(self) -> float:
        """The model window chunks are cut into: the setting, capped by what the engine handles well."""
        return min(self.window_seconds, engine_spec(self.engine).window_limit_s)

    @property
    def uses_s3(self) -> bool:
        return self.s3_endpoint_url is not None


@lru_cache
def get_settings() -> Settings:
    return Settings()
