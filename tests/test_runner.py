"""The processes `make serve` and `make demo` start: the worker runs the reconciler's schedule, and no
child outlives the process that started it, however that process ends."""

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import RedisDatabases
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


def test_the_served_worker_runs_the_reconciler_on_its_schedule(
    service_env: dict[str, str], redis_databases: RedisDatabases, tmp_path: Path
) -> None:
    """`make serve` runs one worker and no separate beat, so the worker itself must send the reconcile
    task that recovers jobs whose broker messages were lost."""
    env = os.environ | service_env
    env |= {
        "TINGXIE_BROKER_URL": redis_databases.url(redis_databases.spare),  # no other worker consumes it
        "TINGXIE_RECONCILE_EVERY_SECONDS": "1",
    }
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        command = worker_command(tmp_path / "beat-schedule", log_level="INFO")
        worker = spawn(command, env, stdout=out, stderr=subprocess.STDOUT)
    try:
        ran = _wait_for(lambda: RECONCILED.search(log.read_text(errors="replace")), timeout=90)
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    if not ran:
        pytest.fail(f"the worker never ran the reconcile task; its log:\n{log.read_text(errors='replace')[-3000:]}")
