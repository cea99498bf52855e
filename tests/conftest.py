"""Real services for the suite: a fresh Postgres database (migrated once), Redis, an S3-protocol server
(moto_server on a free loopback port) and, for end-to-end tests, the API and a Celery worker as real
processes. The test process itself is configured like one more worker of the same deployment."""

import os
import secrets
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest
import redis
from sqlalchemy import update

from tests.engines.tiny_models import build_tiny_qwen3_aligner, build_tiny_qwen3_asr, build_tiny_whisper
from tests.services import free_port
from tingxie import migrate
from tingxie.db import dispose_engines, session_scope
from tingxie.keys import hash_key
from tingxie.models import ApiKey, utcnow
from tingxie.queue import BROKER_MARK, get_celery
from tingxie.runner import (
    api_command,
    gpu_worker_command,
    interactive_worker_command,
    interactive_worker_env,
    spawn,
    worker_command,
)
from tingxie.settings import get_settings
from tingxie.storage import get_storage
from worker.engines.registry import get_engine as get_speech_engine
from worker.engines.registry import reset_batcher
from worker.leases import reset_lease_keeper

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
REDIS_HOST = "redis://127.0.0.1:6379"
CLAIM_KEY = "tingxie:test-session"
CLAIM_TTL_S = 4 * 3600  # a claim outlives the longest test session, and expires should its holder be killed


def _claim_redis_databases(count: int) -> list[int]:
    """Redis databases of this test session's own, so two sessions on one machine never consume each
    other's messages. A claim names its process; a claim whose process is gone is taken over."""
    claimed = []
    for db in range(1, 16):
        if _claim(redis.Redis.from_url(f"{REDIS_HOST}/{db}")):
            claimed.append(db)
            if len(claimed) == count:
                return claimed
    _release(claimed)
    raise RuntimeError("no free Redis database for this test session")


def _claim(client: redis.Redis) -> bool:
    if client.set(CLAIM_KEY, os.getpid(), nx=True, ex=CLAIM_TTL_S):
        return True
    with client.pipeline() as pipe:
        try:
            pipe.watch(CLAIM_KEY)
            holder = pipe.get(CLAIM_KEY)
            if holder is not None and _alive(int(holder)):
                return False
            pipe.multi()
            pipe.set(CLAIM_KEY, os.getpid(), ex=CLAIM_TTL_S)
            pipe.execute()
        except redis.WatchError:  # another session took it meanwhile
            return False
    return True


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _release(databases: list[int]) -> None:
    for db in databases:
        redis.Redis.from_url(f"{REDIS_HOST}/{db}").flushdb()  # also drops the claim


@dataclass(frozen=True)
class RedisDatabases:
    platform: int  # the platform's broker
    idle: int  # a broker no worker consumes
    spare: int  # for a second platform with other limits

    def url(self, db: int) -> str:
        return f"{REDIS_HOST}/{db}"


MAX_UPLOAD_BYTES = 20 * 1024 * 1024
BIN = Path(sys.executable).parent


def clear_caches() -> None:
    dispose_engines()
    reset_batcher()
    reset_lease_keeper()
    for cached in (get_settings, get_storage, get_celery, get_speech_engine):
        cached.cache_clear()


@contextmanager
def fresh_database() -> Iterator[str]:
    """A new, migrated Postgres database on the shared server, dropped afterwards."""
    name = f"tingxie_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    migrate.upgrade(url)
    yield url
    dispose_engines()
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    with fresh_database() as url:
        yield url


@pytest.fixture(scope="session")
def redis_databases() -> Iterator[RedisDatabases]:
    claimed = _claim_redis_databases(3)
    try:
        for db in claimed:
            _flush_keeping_claim(db)
        yield RedisDatabases(*claimed)
    finally:
        _release(claimed)


@pytest.fixture(scope="session")
def redis_url(redis_databases: RedisDatabases) -> str:
    return redis_databases.url(redis_databases.platform)


def _flush_keeping_claim(db: int) -> None:
    client = redis.Redis.from_url(f"{REDIS_HOST}/{db}")
    client.flushdb()
    client.set(CLAIM_KEY, os.getpid(), ex=CLAIM_TTL_S)


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    port = free_port()
    command = [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)]
    server = spawn(command, dict(os.environ), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    _wait_until(lambda: httpx.get(endpoint).status_code < 500, what="moto_server")
    yield endpoint
    server.terminate()
    server.wait(timeout=10)


@pytest.fixture(scope="session")
def service_env(
    postgres_url: str, redis_url: str, s3_endpoint: str, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, str]:
    """TINGXIE_ settings for the deployment on real services, also applied to this test process."""
    env = {
        "TINGXIE_DATA_DIR": str(tmp_path_factory.mktemp("data")),
        "TINGXIE_DATABASE_URL": postgres_url,
        "TINGXIE_BROKER_URL": redis_url,
        "TINGXIE_S3_ENDPOINT_URL": s3_endpoint,
        "TINGXIE_S3_BUCKET": "tingxie-test",
        "TINGXIE_S3_ACCESS_KEY": "testing",
        "TINGXIE_S3_SECRET_KEY": "testing",
        "TINGXIE_MAX_UPLOAD_BYTES": str(MAX_UPLOAD_BYTES),
        "TINGXIE_CHUNK_SECONDS": "12",
        "TINGXIE_WINDOW_SECONDS": "6",
    }
    os.environ.update(env)
    clear_caches()
    return env


def _wait_until(ready: object, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if ready():  # type: ignore[operator]
                return
        except (httpx.TransportError, OSError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{what} did not start within {timeout} s")


class Platform:
    """The API, a cpu-queue worker, `gpu_workers` gpu-queue workers and (unless told not to) the interactive
    worker, as real processes with the given settings, as `make serve` runs them."""

    def __init__(
        self,
        env: dict[str, str],
        log_dir: Path,
        *,
        reconciler: bool = False,
        gpu_workers: int = 1,
        interactive_worker: bool = True,
    ) -> None:
        self.port = free_port()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("TINGXIE_")} | env
        self.log_dir = log_dir
        self.children: list[subprocess.Popen[bytes]] = []
        self.processes: dict[str, subprocess.Popen[bytes]] = {}  # by name, the last one launched of each
        # The reconciler runs on a schedule embedded in the cpu worker, as `make serve` runs it.
        self.beat_schedule = log_dir / "beat-schedule" if reconciler else None
        self.gpu_workers = gpu_workers
        self.interactive_worker = interactive_worker

    def start(self) -> "Platform":
        subprocess.run([sys.executable, "-m", "tingxie.cli", "migrate"], env=self.env, check=True)
        self.launch("api", api_command("127.0.0.1", self.port, log_level="info"))
        self.launch("worker-cpu", worker_command(beat_schedule=self.beat_schedule, log_level="INFO"))
        for number in range(self.gpu_workers):
            name = "worker-gpu" if number == 0 else f"worker-gpu-{number + 1}"
            self.launch(name, gpu_worker_command(concurrency=4, log_level="INFO"))
        if self.interactive_worker:
            batch_size = self.env.get("TINGXIE_BATCH_SIZE", "auto")
            lane_env = interactive_worker_env("auto" if batch_size == "auto" else int(batch_size))
            self.launch("worker-interactive", interactive_worker_command(log_level="INFO"), lane_env)
        _wait_until(self._healthy, what="the API")
        return self

    def _healthy(self) -> bool:
        if any(child.poll() is not None for child in self.children):
            self.stop()
            raise RuntimeError("a platform process exited during start-up")
        return httpx.get(f"{self.url}/healthz").status_code == 200

    def launch(self, name: str, command: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        """Start one more process of this platform (its settings and `env`), logging to `<log_dir>/<name>.log`."""
        with (self.log_dir / f"{name}.log").open("wb") as log:
            child = spawn(command, self.env | (env or {}), stdout=log, stderr=subprocess.STDOUT)
        self.children.append(child)
        self.processes[name] = child
        return child

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=60)

    def stop(self) -> None:
        for child in self.children:
            child.terminate()
        for child in self.children:
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        for log in sorted(self.log_dir.glob("*.log")):
            sys.stderr.write(f"--- {log.name} (tail) ---\n{log.read_text(errors='replace')[-3000:]}\n")


@pytest.fixture(scope="session")
def platform(service_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    # Two GPU workers: pocketsphinx holds the GIL, so one process decodes on one core at a time.
    running = Platform(service_env, tmp_path_factory.mktemp("logs"), gpu_workers=2).start()
    yield running
    running.stop()


@pytest.fixture
def key_secret(platform: Platform) -> Iterator[str]:
    """One key exists for the test's length: from then on the platform requires keys."""
    secret = f"tx_test_{secrets.token_hex(8)}"
    with session_scope() as session:
        key = ApiKey(name="test", key_hash=hash_key(secret))
        session.add(key)
    yield secret
    with session_scope() as session:
        session.execute(update(ApiKey).where(ApiKey.id == key.id).values(revoked_at=utcnow()))


@pytest.fixture(scope="session")
def embedded_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """No service URLs at all: SQLite, a local storage directory and the SQLite broker."""
    data_dir = tmp_path_factory.mktemp("embedded")
    env = {"TINGXIE_DATA_DIR": str(data_dir), "TINGXIE_CHUNK_SECONDS": "12", "TINGXIE_WINDOW_SECONDS": "6"}
    running = Platform(env, tmp_path_factory.mktemp("embedded-logs")).start()
    yield running
    running.stop()
    shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture
def client(platform: Platform) -> Iterator[httpx.Client]:
    with platform.client() as http:
        yield http


@pytest.fixture(scope="session")
def tiny_qwen3_asr(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weight Qwen3-ASR checkpoint on disk, loaded like real weights."""
    return build_tiny_qwen3_asr(tmp_path_factory.mktemp("qwen3-asr"))


@pytest.fixture(scope="session")
def tiny_qwen3_aligner(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weight Qwen3-ForcedAligner checkpoint on disk, loaded like real weights."""
    return build_tiny_qwen3_aligner(tmp_path_factory.mktemp("qwen3-aligner"))


@pytest.fixture(scope="session")
def tiny_whisper(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weight Whisper checkpoint on disk, loaded like real weights."""
    return build_tiny_whisper(tmp_path_factory.mktemp("whisper"))


@pytest.fixture
def idle_broker(
    service_env: dict[str, str], redis_databases: RedisDatabases, monkeypatch: pytest.MonkeyPatch
) -> Iterator[redis.Redis]:
    """This process as a worker whose broker no worker consumes: the test runs each step itself and can
    count what was enqueued."""
    url = redis_databases.url(redis_databases.idle)
    monkeypatch.setenv("TINGXIE_BROKER_URL", url)
    clear_caches()
    _flush_keeping_claim(redis_databases.idle)
    broker = redis.Redis.from_url(url)
    broker.set(BROKER_MARK, "set by the test")  # this broker has lost nothing: see tingxie.queue.broker_lost_messages
    yield broker
    monkeypatch.undo()
    clear_caches()
