"""A backlog through the whole platform while it is hurt: workers killed (SIGKILL) at random every few
seconds and started again (as a supervisor such as compose's `restart: always` does), one restart of its
Redis (without persistence: every message is lost) and one of its Postgres. The same backlog without
faults, in the same run, is the baseline: it gives each recording's reference transcript and the wall
time the faults are compared with.

    .venv/bin/python -m bench.fault_soak              # 12 x 3 min, 120 s of faults, the shipped leases
    .venv/bin/python -m bench.fault_soak --jobs 12 --minutes 5 --faults-for 300
    .venv/bin/python -m bench.fault_soak --smoke      # 2 x 1 min, 20 s of faults, leases scaled down

Services are the bench's own (a redis-server, a Postgres cluster in a temporary directory, moto_server
as S3), never the machine's; the engine is a random-weight Qwen3-ASR (tests' tiny config on CPU)."""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import httpx

from bench.backlog_platform import build_model, recordings
from tests.services import OwnPostgres, OwnRedis, free_port
from tingxie.runner import api_command, gpu_worker_command, spawn, worker_command

POLL_S = 0.5
WAIT_S = 30 * 60
GOAL_RECOVERY_S = 5 * 60
SCALED_LEASES = {
    "TINGXIE_LEASE_SECONDS": "5",
    "TINGXIE_LEASE_RENEW_SECONDS": "1",
    "TINGXIE_RECONCILE_EVERY_SECONDS": "2",
}
SERVICE_DOWN_S = 5.0  # how long Redis and Postgres stay down when restarted
Segment = tuple[float, float, str]


@dataclass(frozen=True)
class Outcome:
    wall_s: float
    completed: int
    lost: int  # failed, or not completed when the bench gave up waiting
    duplicated: int  # completed with some segment more often than the reference has it
    differing: int  # completed with a transcript other than the reference
    # The last completion, counted from the last fault; 0 when every job finished while faults still came.
    last_done_after_fault_s: float | None = None


@dataclass
class Platform:
    """The API, a cpu worker (with the reconciler's schedule) and a GPU worker on the bench's services;
    workers killed by the chaos are started again at once."""

    env: dict[str, str]
    logs: Path
    port: int = field(default_factory=free_port)
    children: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    restarts: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        subprocess.run([sys.executable, "-m", "tingxie.cli", "migrate"], env=self.env, check=True)
        self._launch("api", api_command("127.0.0.1", self.port))
        for name in ("cpu", "gpu"):
            self._launch(name, self._worker(name))
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/healthz").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(POLL_S)
        raise RuntimeError("the API did not start")

    def _worker(self, name: str) -> list[str]:
        if name == "cpu":
            return worker_command(self.logs / "beat-schedule", log_level="INFO")
        return gpu_worker_command(concurrency=4, log_level="INFO")

    def _launch(self, name: str, command: list[str]) -> None:
        env = self.env | ({"OMP_NUM_THREADS": "1"} if name == "gpu" else {})
        with (self.logs / f"{name}-{self.restarts}.log").open("wb") as log:
            self.children[name] = spawn(command, env, stdout=log, stderr=subprocess.STDOUT)

    def kill_and_restart(self, name: str) -> None:
        child = self.children[name]
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
        self.restarts += 1
        self._launch(name, self._worker(name))

    def stop(self) -> None:
        for child in self.children.values():
            child.terminate()
        for child in self.children.values():
            try:
                child.wait(timeout=60)
            except subprocess.TimeoutExpired:
                child.kill()

    def submit(self, paths: list[Path]) -> list[str]:
        ids = []
        with httpx.Client(base_url=self.url, timeout=120) as client:
            for path in paths:
                with path.open("rb") as audio:
                    response = client.post("/v1/jobs", files={"file": (path.name, audio)})
                response.raise_for_status()
                ids.append(response.json()["id"])
        return ids

    def wait(self, ids: list[str], timeout: float = WAIT_S) -> list[dict]:
        deadline = time.monotonic() + timeout
        jobs: list[dict] = []
        with httpx.Client(base_url=self.url, timeout=60) as client:
            while time.monotonic() < deadline:
                try:
                    jobs = [client.get(f"/v1/jobs/{job_id}").json() for job_id in ids]
                except (httpx.TransportError, ValueError):
                    time.sleep(POLL_S)
                    continue
                if all(job.get("status") in ("completed", "failed", "canceled") for job in jobs):
                    break
                time.sleep(POLL_S)
        return jobs


def _segments(job: dict) -> list[Segment]:
    return [(segment["start"], segment["end"], segment["text"]) for segment in job.get("segments") or []]


def judge(jobs: list[dict], references: list[dict], wall_s: float, last_fault: float | None) -> Outcome:
    completed = [(job, ref) for job, ref in zip(jobs, references, strict=True) if job.get("status") == "completed"]
    duplicated = sum(
        any(count > Counter(_segments(ref))[segment] for segment, count in Counter(_segments(job)).items())
        for job, ref in completed
    )
    differing = sum(_segments(job) != _segments(ref) for job, ref in completed)
    finished = [datetime.fromisoformat(job["finished_at"]).timestamp() for job, _ in completed]
    after = max(0.0, max(finished) - last_fault) if last_fault is not None and finished else None
    return Outcome(wall_s, len(completed), len(jobs) - len(completed), duplicated, differing, after)


class Chaos:
    """Kills a random worker every few seconds for `seconds`, restarting it at once; restarts Redis a
    third of the way in and Postgres two thirds in."""

    def __init__(self, platform: Platform, redis: OwnRedis, postgres: OwnPostgres, seed: int) -> None:
        self.platform, self.redis, self.postgres = platform, redis, postgres
        self.random = random.Random(seed)
        self.kills: Counter[str] = Counter()
        self.last_fault = 0.0

    def run(self, seconds: float, kill_every: tuple[float, float]) -> None:
        started = time.monotonic()
        restarts = [(seconds / 3, self._restart_redis), (2 * seconds / 3, self._restart_postgres)]
        while (elapsed := time.monotonic() - started) < seconds:
            if restarts and elapsed >= restarts[0][0]:
                restarts.pop(0)[1]()
            else:
                name = self.random.choice(["cpu", "gpu", "gpu"])  # the GPU worker holds the most work
                self.platform.kill_and_restart(name)
                self.kills[name] += 1
                print(f"  {elapsed:6.1f} s: killed the {name} worker", flush=True)
            self.last_fault = time.time()
            time.sleep(self.random.uniform(*kill_every))

    def _restart_redis(self) -> None:
        print("  restarting Redis (its messages are lost)", flush=True)
        self.redis.stop()
        time.sleep(SERVICE_DOWN_S)
        self.redis.start()

    def _restart_postgres(self) -> None:
        print("  restarting Postgres", flush=True)
        self.postgres.stop()
        time.sleep(SERVICE_DOWN_S)
        self.postgres.start()


def _s3(directory: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    moto = [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)]
    server = spawn(moto, dict(os.environ), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            httpx.get(url)
            return server, url
        except httpx.TransportError:
            time.sleep(POLL_S)
    raise RuntimeError("moto_server did not start")


def _row(name: str, outcome: Outcome) -> str:
    after = "" if outcome.last_done_after_fault_s is None else f"{outcome.last_done_after_fault_s:10.1f}"
    return (
        f"{name:<12}{outcome.wall_s:8.1f}{outcome.completed:11d}{outcome.lost:6d}"
        f"{outcome.duplicated:12d}{outcome.differing:11d}{after}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=12)
    parser.add_argument("--minutes", type=float, default=3.0, help="length of each recording")
    parser.add_argument("--faults-for", type=float, default=120.0, help="seconds of kills and restarts")
    parser.add_argument("--kill-every", type=float, nargs=2, default=(3.0, 8.0), metavar=("MIN", "MAX"))
    parser.add_argument("--scaled-leases", action="store_true", help="leases of 5 s instead of the shipped 120 s")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--smoke", action="store_true", help="2 x 1 min, 20 s of faults, scaled leases")
    args = parser.parse_args()
    if args.smoke:
        args.jobs, args.minutes, args.faults_for, args.scaled_leases = 2, 1.0, 20.0, True

    directory = Path(tempfile.mkdtemp(prefix="tingxie-soak-"))
    redis, postgres = OwnRedis().start(), OwnPostgres().start()
    s3, s3_url = _s3(directory)
    platform: Platform | None = None
    try:
        paths = recordings(args.jobs, args.minutes, directory, name="soak")
        env = {k: v for k, v in os.environ.items() if not k.startswith("TINGXIE_")} | {
            "TINGXIE_DATA_DIR": str(directory / "data"),
            "TINGXIE_DATABASE_URL": postgres.url,
            "TINGXIE_BROKER_URL": redis.url,
            "TINGXIE_S3_ENDPOINT_URL": s3_url,
            "TINGXIE_S3_ACCESS_KEY": "bench",
            "TINGXIE_S3_SECRET_KEY": "bench",
            "TINGXIE_ENGINE": "qwen3-asr",
            "TINGXIE_MODEL_PATH": str(build_model(directory)),
            "TINGXIE_DEVICE": "cpu",
            "TINGXIE_AUTH_REQUIRED": "false",
            "TINGXIE_MAX_SUBMITS_PER_MINUTE": "0",
        }
        env |= SCALED_LEASES if args.scaled_leases else {}
        platform = Platform(env, directory)
        platform.start()
        leases = (
            "scaled down (5 s)" if args.scaled_leases else "as shipped (120 s, renewed every 30 s, reconciler 30 s)"
        )
        print(f"{args.jobs} recordings of {args.minutes:g} min; leases {leases}", flush=True)

        started = time.monotonic()
        references = platform.wait(platform.submit(paths))
        baseline = judge(references, references, time.monotonic() - started, None)
        if baseline.completed != args.jobs:
            raise RuntimeError("the backlog did not complete without faults")

        print(f"faults for {args.faults_for:g} s:", flush=True)
        chaos = Chaos(platform, redis, postgres, args.seed)
        started = time.monotonic()
        ids = platform.submit(paths)
        chaos.run(args.faults_for, tuple(args.kill_every))
        jobs = platform.wait(ids)
        hurt = judge(jobs, references, time.monotonic() - started, chaos.last_fault)

        kills = ", ".join(f"{count} x {name}" for name, count in sorted(chaos.kills.items()))
        print(f"\nworkers killed: {kills}; Redis restarted once, Postgres restarted once")
        print(
            f"{'':<12}{'wall s':>8}{'completed':>11}{'lost':>6}{'duplicated':>12}{'differing':>11}"
            f"{'done after last fault s':>25}"
        )
        print(_row("no faults", baseline))
        print(_row("faults", hurt))
        print(f"slowdown with faults: {hurt.wall_s / baseline.wall_s:.2f}x")
        recovery = hurt.last_done_after_fault_s
        ok = hurt.lost == 0 and hurt.duplicated == 0 and recovery is not None and recovery <= GOAL_RECOVERY_S
        print(
            f"goals (0 lost, 0 duplicated, all done within {GOAL_RECOVERY_S} s of the last fault): "
            f"{'PASS' if ok else 'FAIL'}"
        )
        return 0 if ok else 1
    finally:
        if platform is not None:
            platform.stop()
        s3.terminate()
        redis.stop()
        postgres.remove()
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
