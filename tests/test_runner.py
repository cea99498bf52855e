"""The processes `make serve` and `make demo` start: the worker runs the reconciler's schedule, no
child outlives the process that started it, however that process ends, and Ctrl-C on `make serve` in
the middle of a job hands its work back to the next start."""

import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import httpx
import pytest

from tests.conftest import RedisDatabases
from tests.corpus import OSR
from tests.helpers import proc_stat_fields, submit, wait_for
from tests.services import free_port
from tingxie.runner import spawn, worker_command

RECONCILED = re.compile(r"Task tingxie\.reconcile\[[^\]]+\] succeeded")


def _running(pid: int) -> bool:
    """Not yet exited: a zombie waiting to be reaped has exited."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    state = next(line for line in status.splitlines() if line.startswith("State:"))
    return "zombie" not in state


def _wait_for(condition: Callable[[], object], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


def test_a_child_dies_with_its_parent_even_when_the_parent_is_killed() -> None:
    """SIGKILL gives the parent no chance to stop its children; the kernel does it instead."""
    script = (
        "import os, time; from tingxie.runner import spawn; "
        "print(spawn(['sleep', '300'], dict(os.environ)).pid, flush=True); time.sleep(300)"
    )
    with subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True) as parent:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        assert _running(child)
        parent.send_signal(signal.SIGKILL)
    assert _wait_for(lambda: not _running(child), timeout=10)


def _served_worker(service_env: dict[str, str], redis_databases: RedisDatabases, log: Path) -> subprocess.Popen[bytes]:
    """The cpu worker as `make serve` runs it, the reconciler's schedule embedded, reconciling every second."""
    env = os.environ | service_env
    env |= {
        "TINGXIE_BROKER_URL": redis_databases.url(redis_databases.spare),  # no other worker consumes it
        "TINGXIE_RECONCILE_EVERY_SECONDS": "1",
    }
    with log.open("wb") as out:
        command = worker_command(log.parent / "beat-schedule", log_level="INFO")
        return spawn(command, env, stdout=out, stderr=subprocess.STDOUT)


def _children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (field 4 of /proc/<pid>/stat)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = proc_stat_fields(stat)
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def test_the_served_worker_runs_the_reconciler_on_its_schedule(
    service_env: dict[str, str], redis_databases: RedisDatabases, tmp_path: Path
) -> None:
    """`make serve` runs one worker and no separate beat, so the worker itself must send the reconcile
    task that recovers jobs whose broker messages were lost."""
    log = tmp_path / "worker.log"
    worker = _served_worker(service_env, redis_databases, log)
    try:
        ran = _wait_for(lambda: RECONCILED.search(log.read_text(errors="replace")), timeout=90)
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    if not ran:
        pytest.fail(f"the worker never ran the reconcile task; its log:\n{log.read_text(errors='replace')[-3000:]}")


def test_the_reconcilers_schedule_dies_with_a_killed_worker(
    service_env: dict[str, str], redis_databases: RedisDatabases, tmp_path: Path
) -> None:
    """The schedule runs in a process the worker forks (Celery's embedded beat): a worker killed outright,
    by SIGKILL or the OOM killer, must not leave it behind sending reconcile tasks on its own."""
    log = tmp_path / "worker.log"
    worker = _served_worker(service_env, redis_databases, log)
    try:
        assert _wait_for(lambda: RECONCILED.search(log.read_text(errors="replace")), timeout=90), log.read_text()
        beats = _children(worker.pid)
        assert beats, "the worker has no child process"
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=30)
    assert _wait_for(lambda: not any(_running(pid) for pid in beats), timeout=10), beats


class Served:
    """`tingxie serve` (what `make serve` runs) in a process group of its own, as a terminal runs it, so
    that Ctrl-C can be sent to the whole group the way a terminal sends it."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.url = f"http://127.0.0.1:{env['TINGXIE_PORT']}"
        with log.open("ab") as out:
            command = [sys.executable, "-m", "tingxie.cli", "serve"]
            self.process = subprocess.Popen(
                command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        if not _wait_for(self._healthy, timeout=120):
            os.killpg(self.process.pid, signal.SIGKILL)
            raise AssertionError(f"tingxie serve did not start; its log:\n{log.read_text(errors='replace')[-3000:]}")

    def _healthy(self) -> bool:
        try:
            return httpx.get(f"{self.url}/healthz").status_code == 200
        except httpx.TransportError:
            return False

    def __enter__(self) -> "Served":
        return self

    def __exit__(self, *_: object) -> None:
        if self.process.poll() is None:  # a failed test: nothing of it may take the next test's work
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def ctrl_c(self) -> int:
        os.killpg(self.process.pid, signal.SIGINT)
        return self.process.wait(timeout=60)


def _in_flight(client: httpx.Client, job_id: str) -> bool:
    job = client.get(f"/v1/jobs/{job_id}").json()
    return job["status"] == "processing" and (job["progress"]["chunks_total"] or 0) > job["progress"]["chunks_done"]


def _status(data_dir: Path, job_id: str) -> str:
    """Read from the embedded database itself while nothing serves it."""
    with closing(sqlite3.connect(data_dir / "tingxie.sqlite")) as database:
        (status,) = database.execute("SELECT status FROM jobs WHERE id = ?", (job_id.replace("-", ""),)).fetchone()
    return str(status)


def test_ctrl_c_on_serve_mid_job_hands_the_work_back(tmp_path: Path) -> None:
    """The embedded defaults (SQLite, local storage, the SQLite broker), with the lease settings scaled
    down as in tests/worker/test_worker_crash.py."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TINGXIE_")} | {
        "TINGXIE_DATA_DIR": str(tmp_path / "data"),
        "TINGXIE_PORT": str(free_port()),
        "TINGXIE_CHUNK_SECONDS": "6",
        "TINGXIE_WINDOW_SECONDS": "6",
        "TINGXIE_LEASE_SECONDS": "5",
        "TINGXIE_LEASE_RENEW_SECONDS": "1",
        "TINGXIE_RECONCILE_EVERY_SECONDS": "1",
    }
    log = tmp_path / "serve.log"
    with Served(env, log) as served, httpx.Client(base_url=served.url, timeout=60) as client:
        reference = wait_for(client, submit(client, OSR).json()["id"])
        job_id = submit(client, OSR).json()["id"]
        assert _wait_for(lambda: _in_flight(client, job_id), timeout=60), "the job never had a chunk in flight"
        assert served.ctrl_c() == 0
    assert _status(tmp_path / "data", job_id) == "processing"  # stopped with work left: handed back, not failed

    with Served(env, log) as served, httpx.Client(base_url=served.url, timeout=60) as client:
        job = wait_for(client, job_id, timeout=180)
        served.ctrl_c()
    assert job["status"] == "completed", job["error"]
    assert job["progress"]["chunks_done"] == job["progress"]["chunks_total"]
    assert job["segments"] == reference["segments"]  # each chunk's segments exactly once
