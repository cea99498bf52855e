"""`make serve` and `make demo`: run the API and a worker as child processes, and stop them cleanly."""

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import httpx

from api import wire
from tingxie import migrate
from tingxie.parent_death import die_with_parent
from tingxie.queue import CPU_LANE, CPU_QUEUE, GPU_LANE, GPU_QUEUE
from tingxie.settings import CPU_AUTO_BATCH_SIZE, MAX_AUTO_BATCH, Settings, get_settings

POLL_SECONDS = 0.5
STARTUP_SECONDS = 90
FINAL = ("completed", "failed", "canceled")


def api_command(host: str, port: int, log_level: str = "warning") -> list[str]:
    command = [sys.executable, "-m", "uvicorn", "api.main:app", "--host", host, "--port", str(port)]
    return [*command, "--http", wire.PROTOCOL, "--log-level", log_level]


CPU_WORKER_CONCURRENCY = 2  # two prepares at once: a short job's never waits for a whole long one
# An interactive job is short: a thread preparing one, one finalizing another and two chunks being transcribed.
INTERACTIVE_WORKER_CONCURRENCY = 4
INTERACTIVE_BATCH_SIZE = 16  # windows per call of the interactive worker's engine: its few jobs' worth


def worker_command(beat_schedule: Path | None, log_level: str = "WARNING") -> list[str]:
    """The cpu-queue worker (prepare, diarize, finalize, webhooks), with the reconciler's schedule embedded
    (`-B`) when `beat_schedule` names the file beat keeps its state in; compose.yaml runs one beat of its own."""
    command = _celery_worker("cpu", [CPU_QUEUE, CPU_LANE], CPU_WORKER_CONCURRENCY, log_level)
    if beat_schedule is not None:
        command += ["--beat", "--schedule", str(beat_schedule)]
    return command


def gpu_worker_command(concurrency: int, log_level: str = "WARNING") -> list[str]:
    """The gpu-queue worker (transcribe): `concurrency` chunks held at once by a thread pool, whose
    windows one batcher in the process gathers into engine calls (worker/batching.py)."""
    return _celery_worker("gpu", [GPU_QUEUE, GPU_LANE], concurrency, log_level)


def gpu_worker_concurrency(settings: Settings) -> int:
    """TRANSCRIBE_CONCURRENCY, or for "auto" the chunks that keep the largest batch the worker may reach
    full: the setting's, or on a GPU with BATCH_SIZE=auto the most it sizes from free memory."""
    if settings.transcribe_concurrency != "auto":
        return settings.transcribe_concurrency
    if settings.batch_size != "auto":
        return settings.chunks_to_hold(settings.batch_size)
    return settings.chunks_to_hold(MAX_AUTO_BATCH if _on_cuda(settings) else CPU_AUTO_BATCH_SIZE)


def _on_cuda(settings: Settings) -> bool:
    if settings.engine == "pocketsphinx":
        return False
    from worker.engines.torch_support import resolve_device  # only here: it loads torch

    return resolve_device(settings.device).startswith("cuda")


def interactive_worker_command(log_level: str = "WARNING") -> list[str]:
    """Every step of interactive jobs, with an engine of its own (on the same GPU as a gpu worker): bulk
    work never holds its threads, nor makes its windows wait for a call in progress."""
    return _celery_worker("interactive", [GPU_LANE, CPU_LANE], INTERACTIVE_WORKER_CONCURRENCY, log_level)


def interactive_worker_env(batch_size: int | Literal["auto"]) -> dict[str, str]:
    """The interactive worker's engine makes small calls, at most `batch_size` (the deployment's setting):
    its batch is not sized from the GPU's free memory, which is the gpu worker's to size its own from."""
    size = INTERACTIVE_BATCH_SIZE if batch_size == "auto" else min(batch_size, INTERACTIVE_BATCH_SIZE)
    return {"TINGXIE_BATCH_SIZE": str(size)}


def _celery_worker(name: str, queues: list[str], concurrency: int, log_level: str) -> list[str]:
    command = [sys.executable, "-m", "celery", "--quiet", "-A", "worker.celery_app", "worker", "-Q", ",".join(queues)]
    command += ["--pool", "threads", "--concurrency", str(concurrency), "--loglevel", log_level]
    return [*command, "-n", f"{name}-{uuid.uuid4().hex[:8]}@%h"]  # unique among workers of one broker


def spawn(command: list[str], env: dict[str, str], **options: Any) -> subprocess.Popen[bytes]:
    """A child that Linux kills when this process dies, even by SIGKILL, so a killed `make serve` or test
    run leaves no API or worker behind to take the next one's tasks."""
    return subprocess.Popen(command, env=env, preexec_fn=die_with_parent, **options)


@contextmanager
def platform(port: int, env: dict[str, str] | None = None) -> Iterator[list[subprocess.Popen[bytes]]]:
    """The API and the cpu, gpu and interactive workers as children, all terminated on exit, whatever happens."""
    settings = get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    migrate.upgrade()
    child_env = {**os.environ, **(env or {})}
    children = [
        spawn(api_command(settings.host, port), child_env),
        spawn(worker_command(settings.data_dir / "beat-schedule"), child_env),
        spawn(gpu_worker_command(gpu_worker_concurrency(settings)), child_env),
        spawn(interactive_worker_command(), child_env | interactive_worker_env(settings.batch_size)),
    ]
    try:
        yield children
    finally:
        for child in children:
            if child.poll() is None:
                child.terminate()
        for child in children:
            try:
                child.wait(timeout=20)
            except subprocess.TimeoutExpired:
                child.kill()


def serve() -> int:
    settings = get_settings()
    stop = False

    def request_stop(_signum: int, _frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    with platform(settings.port) as children:
        print(f"tingxie listening on http://{settings.host}:{settings.port} (Ctrl-C to stop)", flush=True)
        while not stop and all(child.poll() is None for child in children):
            time.sleep(0.5)
    return 0 if stop else 1


def _free_port(host: str, preferred: int) -> int:
    with socket.socket() as probe:
        if probe.connect_ex((host, preferred)) != 0:
            return preferred
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _wait_healthy(client: httpx.Client, children: list[subprocess.Popen[bytes]]) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if any(child.poll() is not None for child in children):
            raise RuntimeError("the API or worker exited during start-up; see the log above")
        try:
            if client.get("/healthz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"the API did not answer within {STARTUP_SECONDS} s")


def demo(audio: Path) -> int:
    if not audio.is_file():
        print(f"no such file: {audio}", file=sys.stderr)
        return 2
    settings = get_settings()
    port = _free_port(settings.host, settings.port)
    base_url = f"http://{settings.host}:{port}"
    with platform(port) as children, httpx.Client(base_url=base_url, timeout=60) as client:
        _wait_healthy(client, children)
        print(f"platform up at {base_url}; submitting {audio}", flush=True)
        job = _submit(client, audio)
        job = _poll(client, job)
        return _report(client, job)


def _submit(client: httpx.Client, audio: Path) -> dict:
    with audio.open("rb") as handle:
        response = client.post("/v1/jobs", files={"file": (audio.name, handle)}, data={"language": "auto"})
    response.raise_for_status()
    job: dict = response.json()
    print(f"job {job['id']} {job['status']}", flush=True)
    return job


def _poll(client: httpx.Client, job: dict) -> dict:
    shown = ""
    while job["status"] not in FINAL:
        time.sleep(POLL_SECONDS)
        job = client.get(f"/v1/jobs/{job['id']}").json()
        progress = job["progress"]
        line = f"  {job['status']}: {progress['chunks_done']}/{progress['chunks_total'] or '?'} chunks"
        if line != shown:
            print(line, flush=True)
            shown = line
    return job


def _report(client: httpx.Client, job: dict) -> int:
    if job["status"] != "completed":
        error = job.get("error") or {}
        print(f"job {job['status']}: {error.get('code')}: {error.get('message')}", file=sys.stderr)
        return 1
    transcript = client.get(f"/v1/jobs/{job['id']}/transcript", params={"format": "txt"}).text
    seconds = job["duration_s"] or 0.0
    print(f"\ntranscript ({seconds:.1f} s of audio, languages: {', '.join(job['languages'] or [])}):\n")
    print(transcript, end="")
    return 0
