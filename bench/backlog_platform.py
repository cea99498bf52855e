"""What bench/backlog.py runs on: services of its own, a random-weight model on disk, recordings made from
the corpus, the engine alone on their windows, and the platform's processes started and stopped."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
import wave
from dataclasses import dataclass
from datetime import datetime
from itertools import cycle
from pathlib import Path
from types import TracebackType

import httpx
import psycopg
import torch

from tests.audio_fixtures import concatenate_with_pauses, write_wav
from tests.corpus import manifest
from tests.engines.tiny_models import build_qwen3_asr_processor, build_tiny_qwen3_asr
from tests.services import free_port
from tingxie import migrate
from tingxie.runner import (
    api_command,
    gpu_worker_command,
    interactive_worker_command,
    interactive_worker_env,
    spawn,
    worker_command,
)
from tingxie.settings import Settings
from worker.audio.decode import decode
from worker.audio.plan import plan_chunks, window_audio

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
PAUSE_S = 1.0
CHUNK_SECONDS = 300.0
POLL_S = 0.2
JOBS_POLL_S = 1.0  # the jobs are timed by their own finished_at: polling often only loads the shared cores
WAIT_S = 6 * 3600
ENGINE_SAMPLE_WINDOWS = 128  # the engine alone is timed on at least this many of the backlog's windows
ON_CUDA = torch.cuda.is_available()


class Services:
    """A Redis server, a Postgres database and an S3 server of the bench's own, and a scratch directory."""

    def __enter__(self) -> Services:
        self.directory = Path(tempfile.mkdtemp(prefix="tingxie-backlog-"))
        self.database = f"tingxie_bench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{self.database}"')
        self.database_url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{self.database}"
        migrate.upgrade(self.database_url)
        redis_port, s3_port = free_port(), free_port()
        redis_command = ["redis-server", "--port", str(redis_port), "--save", "", "--appendonly", "no"]
        self._children = [spawn(redis_command, dict(os.environ), stdout=subprocess.DEVNULL)]
        moto = [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(s3_port)]
        self._children.append(spawn(moto, dict(os.environ), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        self.broker_url = f"redis://127.0.0.1:{redis_port}/0"
        self.s3_url = f"http://127.0.0.1:{s3_port}"
        _wait(lambda: httpx.get(self.s3_url).status_code < 500, "moto_server")
        return self

    def __exit__(self, *_exc: object | TracebackType) -> None:
        for child in self._children:
            child.terminate()
            child.wait(timeout=30)
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
        shutil.rmtree(self.directory, ignore_errors=True)

    def flush_broker(self) -> None:
        port = self.broker_url.rsplit(":", 1)[1].split("/")[0]
        subprocess.run(["redis-cli", "-p", port, "flushall"], check=True, stdout=subprocess.DEVNULL)


def _wait(ready: object, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if ready():  # type: ignore[operator]
                return
        except (httpx.TransportError, OSError):
            pass
        time.sleep(POLL_S)
    raise RuntimeError(f"{what} did not start within {timeout} s")


def build_model(directory: Path) -> Path:
    """A random-weight Qwen3-ASR saved like real weights: full size on CUDA, the tests' tiny one on CPU."""
    if not ON_CUDA:
        return build_tiny_qwen3_asr(directory / "qwen3-asr-tiny")
    from bench.gpu_throughput import full_size_config, random_model

    processor = build_qwen3_asr_processor()
    target = directory / "qwen3-asr-1.7b-random"
    random_model(full_size_config(processor), "cuda", torch.bfloat16).save_pretrained(target)
    processor.save_pretrained(target)
    return target


def recordings(count: int, minutes: float, directory: Path, name: str = "backlog") -> list[Path]:
    """`count` recordings of the corpus's WAV clips in turn, each starting at a different clip."""
    clips = [clip.path for clip in manifest().values() if clip.path.suffix == ".wav"]
    paths = []
    for number in range(count):
        chosen, total, turn = [], 0.0, cycle(clips[number % len(clips) :] + clips[: number % len(clips)])
        while total < minutes * 60:
            chosen.append(next(turn))
            total += audio_seconds(chosen[-1]) + PAUSE_S
        samples, _ = concatenate_with_pauses(chosen, PAUSE_S)
        paths.append(write_wav(directory / f"{name}-{number}.wav", samples[: int(minutes * 60 * 16_000)]))
    return paths


def audio_seconds(path: Path) -> float:
    with wave.open(str(path)) as wav:
        return wav.getnframes() / wav.getframerate()


def engine_alone(
    model: Path, paths: list[Path], batch_sizes: list[int], generate_kwargs: dict[str, str] | None = None
) -> tuple[int, float]:
    """The engine on the backlog's own windows (cut as the platform cuts them) at each batch size, one
    CPU thread on CPU as each worker has; returns the best (batch size, audio s/s)."""
    from worker.engines.qwen3_asr import Qwen3AsrEngine

    if not ON_CUDA:
        torch.set_num_threads(1)
    engine = Qwen3AsrEngine(model, device="cuda" if ON_CUDA else "cpu", generate_kwargs=generate_kwargs)
    windows = _spread_sample(_windows(paths), max(ENGINE_SAMPLE_WINDOWS, max(batch_sizes) * 3))
    seconds = sum(len(window) for window in windows) / 16_000
    engine.transcribe(windows[:1])
    best = (0, 0.0)
    print(f"engine alone on {len(windows)} of the backlog's windows ({seconds:.0f} s):")
    for size in batch_sizes:
        engine.batch_size = size
        started = time.perf_counter()
        engine.transcribe(windows)
        rate = seconds / (time.perf_counter() - started)
        print(f"  batch {size:>4}: {rate:8.1f} audio s/s", flush=True)
        best = max(best, (size, rate), key=lambda row: row[1])
    return best


def _spread_sample(windows: list, count: int) -> list:
    """`count` windows evenly spaced through the backlog, so that the engine is timed on the mix of
    recordings and window lengths the platform transcribes, not on the first recording's."""
    stride = max(1, len(windows) // count)
    return windows[::stride][:count]


def _windows(paths: list[Path]) -> list:
    settings = Settings(engine="qwen3-asr", chunk_seconds=CHUNK_SECONDS)
    found = []
    for path in paths:
        for chunk in plan_chunks(decode(path, 24 * 3600), CHUNK_SECONDS, settings.planned_window_seconds):
            found += window_audio(chunk.samples, chunk.windows)
    return found


@dataclass(frozen=True)
class Latency:
    job_id: str
    queued_s: float  # submitted until a cpu worker started preparing it
    total_s: float  # submitted until completed


class BenchPlatform:
    """The API, a cpu worker, GPU workers and the interactive worker on the bench's services, started and
    stopped per run."""

    def __init__(self, services: Services, model: Path, batch_size: int, generate_cache: str = "dynamic") -> None:
        self.services = services
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("TINGXIE_")} | {
            "TINGXIE_DATA_DIR": str(services.directory / "data"),
            "TINGXIE_DATABASE_URL": services.database_url,
            "TINGXIE_BROKER_URL": services.broker_url,
            "TINGXIE_S3_ENDPOINT_URL": services.s3_url,
            "TINGXIE_S3_ACCESS_KEY": "bench",
            "TINGXIE_S3_SECRET_KEY": "bench",
            "TINGXIE_ENGINE": "qwen3-asr",
            "TINGXIE_MODEL_PATH": str(model),
            "TINGXIE_BATCH_SIZE": str(batch_size),
            "TINGXIE_CHUNK_SECONDS": str(CHUNK_SECONDS),
            "TINGXIE_AUTH_REQUIRED": "false",
            "TINGXIE_GENERATE_CACHE": generate_cache,
        }
        # Chunks held per GPU worker: four calls' worth of windows and two to spare, as `make serve` holds;
        # more would only take chunks that another worker could be transcribing.
        self.concurrency = Settings(engine="qwen3-asr", chunk_seconds=CHUNK_SECONDS).chunks_to_hold(batch_size)
        self.port = free_port()
        self._children: list[subprocess.Popen[bytes]] = []
        self._run = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, gpu_workers: int) -> None:
        self._run += 1
        self.services.flush_broker()
        self._launch("api", api_command("127.0.0.1", self.port), self.env)
        self._launch("cpu", worker_command(None, log_level="INFO"), self.env)
        self.start_gpu_workers(gpu_workers)
        self._launch("interactive", interactive_worker_command(log_level="INFO"), self._interactive_env())
        _wait(lambda: httpx.get(f"{self.url}/healthz").status_code == 200, "the API")

    def start_gpu_workers(self, count: int) -> list[Path]:
        logs = []
        for number in range(count):
            env = self.env | (
                {"CUDA_VISIBLE_DEVICES": str(number % torch.cuda.device_count())}
                if ON_CUDA
                else {"OMP_NUM_THREADS": "1"}
            )
            logs.append(self._launch(f"gpu{number}", gpu_worker_command(self.concurrency, log_level="INFO"), env))
        return logs

    def _interactive_env(self) -> dict[str, str]:
        """On the first GPU beside a gpu worker, or one CPU thread of its own."""
        device = {"CUDA_VISIBLE_DEVICES": "0"} if ON_CUDA else {"OMP_NUM_THREADS": "1"}
        batch = interactive_worker_env(int(self.env["TINGXIE_BATCH_SIZE"]))
        return self.env | device | batch

    def _launch(self, name: str, command: list[str], env: dict[str, str]) -> Path:
        log = self.services.directory / f"run{self._run}-{name}.log"
        with log.open("wb") as out:
            self._children.append(spawn(command, env, stdout=out, stderr=subprocess.STDOUT))
        return log

    def stop(self) -> None:
        for child in self._children:
            child.terminate()
        for child in self._children:
            child.wait(timeout=120)
        self._children = []

    def submit_all(self, paths: list[Path], priority: str) -> list[str]:
        return [self._submit(path, priority) for path in paths]

    def _submit(self, path: Path, priority: str) -> str:
        with path.open("rb") as audio, httpx.Client(base_url=self.url, timeout=600) as client:
            response = client.post("/v1/jobs", files={"file": (path.name, audio)}, data={"priority": priority})
        response.raise_for_status()
        return str(response.json()["id"])

    def _jobs(self, ids: list[str]) -> list[dict]:
        with httpx.Client(base_url=self.url, timeout=60) as client:
            return [client.get(f"/v1/jobs/{job_id}").json() for job_id in ids]

    def _until(self, ids: list[str], done: object) -> list[dict]:
        """Each job as it is once `done` holds for it; a job is asked for no more after that."""
        found: dict[str, dict] = {}
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            for job in self._jobs([job_id for job_id in ids if job_id not in found]):
                if job["status"] in ("failed", "canceled"):
                    raise RuntimeError(f"a job did not complete: {job['error']}")
                if done(job):  # type: ignore[operator]
                    found[job["id"]] = job
            if len(found) == len(ids):
                return [found[job_id] for job_id in ids]
            time.sleep(POLL_S if len(ids) == 1 else JOBS_POLL_S)
        raise RuntimeError("the backlog did not finish")

    def wait_prepared(self, ids: list[str]) -> None:
        self._until(ids, lambda job: job["progress"]["chunks_total"] is not None)

    def wait_completed(self, ids: list[str]) -> list[float]:
        jobs = self._until(ids, lambda job: job["status"] == "completed")
        return [datetime.fromisoformat(job["finished_at"]).timestamp() for job in jobs]

    def wait_first_call(self) -> None:
        logs = sorted(self.services.directory.glob(f"run{self._run}-gpu*.log"))
        _wait(lambda: any("engine call:" in log.read_text(errors="replace") for log in logs), "an engine call", WAIT_S)

    def warm_up(self) -> None:
        """A short job of each priority, so the GPU worker and the interactive worker have their models
        loaded before anything is timed."""
        clip = next(clip.path for clip in manifest().values() if clip.path.suffix == ".wav")
        self.wait_completed([self._submit(clip, "batch"), self._submit(clip, "interactive")])

    def latency(self, path: Path, priority: str) -> Latency:
        job_id = self._submit(path, priority)
        self.wait_completed([job_id])
        job = self._jobs([job_id])[0]
        created, started, finished = (
            datetime.fromisoformat(job[k]) for k in ("created_at", "started_at", "finished_at")
        )
        return Latency(job_id, (started - created).total_seconds(), (finished - created).total_seconds())

    def transcribed_by(self, job_id: str) -> str:
        """Which of this run's workers transcribed the job's chunks (`gpu0`, `interactive`), by their logs."""
        logs = self.services.directory.glob(f"run{self._run}-*.log")
        found = [log.stem.split("-", 1)[1] for log in logs if f"job {job_id} chunk " in log.read_text(errors="replace")]
        return ",".join(sorted(found)) or "none"
