"""The submit-and-poll path under load, against a bare FastAPI endpoint served the same way in the same run.

    .venv/bin/python -m bench.api_load [--seconds 5] [--connections 32]

Starts services of its own (Postgres database, Redis, moto_server for S3), the tingxie API (no workers:
submitted jobs stay queued, which is what a status poll reads most of the time) and a bare FastAPI app
answering `GET /ping` with a small JSON body, each in one uvicorn process. A load client of its own
(asyncio, keep-alive HTTP/1.1 connections, each sending its next request when the answer is in) drives:

- `bare`: GET /ping
- `poll`: GET /v1/jobs/{id} of a queued job
- `submit`: POST /v1/jobs with a 1 s WAV (multipart)
- `poll+key`: GET /v1/jobs/{id} with an API key (made after the others: from then on keys are required)

and prints requests/s, p50 and p99 latency, the ratio to the bare endpoint, and the Postgres sessions
opened per 1,000 requests (pg_stat_database.sessions).

Then one large file (`--upload-mb`, 256 by default) goes up, streamed from disk, three ways: as one PUT straight
to the S3 server through a presigned URL; as `POST /v1/jobs` through the API, which stores it in 8 MiB parts;
and in the same parts straight to the S3 server, by the writer the API stores uploads with, run in this
process. The last is what the parts themselves cost the S3 server: moto_server spends about three times the
CPU on a multipart upload that it spends on one PUT of the same bytes. It prints MB/s for each, the API's
ratios to both, and how far the API's peak resident memory rose."""

from __future__ import annotations

import argparse
import asyncio
import io
import math
import os
import statistics
import sys
import time
import wave
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import boto3
import httpx
import psycopg
from fastapi import FastAPI
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from api.jobs.upload import WRITE_BYTES
from bench.backlog_platform import PG_ADMIN, Services
from tests.services import free_port
from tingxie.keys import create_key
from tingxie.runner import api_command, spawn
from tingxie.storage import S3Storage

UPLOAD_ROUNDS = 3
bare_app = FastAPI()


@bare_app.get("/ping")
def ping() -> dict[str, str]:
    return {"status": "ok"}


@dataclass(frozen=True)
class Result:
    name: str
    requests: int
    seconds: float
    latencies_ms: list[float]
    errors: int
    sessions: int | None = None

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    def percentile(self, share: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, math.ceil(share * len(ordered)) - 1)]


def one_second_wav() -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(16000)
        wav.writeframes(bytes(32000))
    return out.getvalue()


def multipart_request(port: int, wav: bytes) -> bytes:
    boundary = "tingxiebenchboundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="one.wav"\r\n'
            "Content-Type: audio/wav\r\n\r\n"
        ).encode()
        + wav
        + f"\r\n--{boundary}--\r\n".encode()
    )
    head = (
        f"POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: {len(body)}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n\r\n"
    )
    return head.encode() + body


def get_request(port: int, path: str, secret: str | None = None) -> bytes:
    authorization = "" if secret is None else f"Authorization: Bearer {secret}\r\n"
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{authorization}\r\n".encode()


def keyed_job(api_port: int, database_url: str, wav: bytes) -> tuple[str, str]:
    """A key made in the database (as `tingxie create-key` does) and a job submitted with it; from now
    on the API requires keys."""
    engine = create_engine(database_url)
    with Session(engine) as session, session.begin():
        _, secret = create_key(session, "bench")
    engine.dispose()
    headers = {"Authorization": f"Bearer {secret}"}
    job = httpx.post(f"http://127.0.0.1:{api_port}/v1/jobs", files={"file": ("one.wav", wav)}, headers=headers)
    job.raise_for_status()
    return secret, job.json()["id"]


async def _connection(port: int, request: bytes, deadline: float, latencies: list[float], errors: list[int]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
            latencies.append((time.perf_counter() - started) * 1000)
            if status >= 400:
                errors.append(status)
    finally:
        writer.close()


async def _drive(port: int, request: bytes, seconds: float, connections: int) -> tuple[list[float], list[int], float]:
    latencies: list[float] = []
    errors: list[int] = []
    started = time.perf_counter()
    deadline = started + seconds
    await asyncio.gather(*(_connection(port, request, deadline, latencies, errors) for _ in range(connections)))
    return latencies, errors, time.perf_counter() - started


def drive(name: str, port: int, request: bytes, args: argparse.Namespace, database: str | None = None) -> Result:
    asyncio.run(_drive(port, request, 1.0, args.connections))  # warm-up: connections, pools, caches
    before = _sessions(database)
    latencies, errors, seconds = asyncio.run(_drive(port, request, args.seconds, args.connections))
    after = _sessions(database)
    sessions = None if before is None or after is None else after - before
    return Result(name, len(latencies), seconds, latencies, len(errors), sessions)


def _sessions(database: str | None) -> int | None:
    if database is None:
        return None
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute("SELECT pg_stat_clear_snapshot()")
        row = admin.execute("SELECT sessions FROM pg_stat_database WHERE datname = %s", (database,)).fetchone()
    return int(row[0]) if row else None


@dataclass(frozen=True)
class UploadSpeed:
    megabytes: float
    direct_s: float
    direct_parts_s: float
    api_s: float
    api_peak_growth_mb: float


def upload_speed(services: Services, api_port: int, api_pid: int, secret: str, megabytes: int) -> UploadSpeed:
    """The median of `UPLOAD_ROUNDS` rounds, each one direct PUT and one API upload, after a round not counted:
    moto_server (and the API) are far slower on their first few hundred MB, while their heaps grow."""
    path = services.directory / "upload.bin"
    with path.open("wb") as out:
        for _ in range(megabytes):
            out.write(os.urandom(1024 * 1024))
    s3 = boto3.client(
        "s3",
        endpoint_url=services.s3_url,
        aws_access_key_id="bench",
        aws_secret_access_key="bench",
        region_name="us-east-1",
    )
    s3.create_bucket(Bucket="bench-direct")
    url = s3.generate_presigned_url("put_object", Params={"Bucket": "bench-direct", "Key": "direct.bin"})
    api = httpx.Client(base_url=f"http://127.0.0.1:{api_port}", headers={"Authorization": f"Bearer {secret}"})
    before = _resident_mb(api_pid, "VmRSS")
    direct: list[float] = []
    direct_parts: list[float] = []
    through_api: list[float] = []
    for _ in range(UPLOAD_ROUNDS + 1):
        direct.append(_timed(lambda: _put_direct(url, path)))
        s3.delete_object(Bucket="bench-direct", Key="direct.bin")
        direct_parts.append(_timed(lambda: _put_parts(S3Storage(s3, "bench-direct"), path)))
        s3.delete_object(Bucket="bench-direct", Key="parts.bin")
        through_api.append(_timed(lambda: _post_job(api, path)))
    path.unlink()
    growth = _resident_mb(api_pid, "VmHWM") - before
    medians = [statistics.median(times[1:]) for times in (direct, direct_parts, through_api)]
    return UploadSpeed(megabytes, *medians, growth)


def _timed(action: Callable[[], None]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def _put_direct(url: str, path: Path) -> None:
    with path.open("rb") as body:
        length = {"Content-Length": str(path.stat().st_size)}
        httpx.put(url, content=body, headers=length, timeout=600).raise_for_status()


def _put_parts(storage: S3Storage, path: Path) -> None:
    writer = storage.writer("parts.bin")
    with path.open("rb") as body:
        while block := body.read(WRITE_BYTES):
            writer.write(block)
    writer.close()


def _post_job(api: httpx.Client, path: Path) -> None:
    with path.open("rb") as body:
        answer = api.post("/v1/jobs", files={"file": ("big.wav", body)}, timeout=600)
    answer.raise_for_status()
    api.delete(f"/v1/jobs/{answer.json()['id']}").raise_for_status()  # its object too: moto_server keeps all in memory


def _resident_mb(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} for process {pid}")


def _wait_healthy(port: int, path: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}{path}").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"nothing answered on port {port}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--upload-mb", type=int, default=256, help="size of the large upload; 0 skips it")
    args = parser.parse_args()
    with Services() as services:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TINGXIE_")} | {
            "TINGXIE_DATA_DIR": str(services.directory / "data"),
            "TINGXIE_DATABASE_URL": services.database_url,
            "TINGXIE_BROKER_URL": services.broker_url,
            "TINGXIE_S3_ENDPOINT_URL": services.s3_url,
            "TINGXIE_S3_ACCESS_KEY": "bench",
            "TINGXIE_S3_SECRET_KEY": "bench",
            "TINGXIE_MAX_SUBMITS_PER_MINUTE": "0",
            "TINGXIE_MAX_ACTIVE_JOBS_PER_KEY": "0",
        }
        api_port, bare_port = free_port(), free_port()
        bare = [sys.executable, "-m", "uvicorn", "bench.api_load:bare_app", "--port", str(bare_port)]
        children = [
            spawn(api_command("127.0.0.1", api_port), env),
            spawn([*bare, "--log-level", "warning"], env, cwd=Path(__file__).resolve().parents[1]),
        ]
        try:
            _wait_healthy(api_port, "/healthz")
            _wait_healthy(bare_port, "/ping")
            wav = one_second_wav()
            job = httpx.post(f"http://127.0.0.1:{api_port}/v1/jobs", files={"file": ("one.wav", wav)}).json()
            results = [
                drive("bare", bare_port, get_request(bare_port, "/ping"), args),
                drive("poll", api_port, get_request(api_port, f"/v1/jobs/{job['id']}"), args, services.database),
                drive("submit", api_port, multipart_request(api_port, wav), args, services.database),
            ]
            secret, keyed = keyed_job(api_port, services.database_url, wav)
            poll_keyed = get_request(api_port, f"/v1/jobs/{keyed}", secret)
            results.append(drive("poll+key", api_port, poll_keyed, args, services.database))
            upload = None
            if args.upload_mb:
                upload = upload_speed(services, api_port, children[0].pid, secret, args.upload_mb)
        finally:
            for child in children:
                child.terminate()
                child.wait(timeout=30)
    report(results, args)
    if upload is not None:
        report_upload(upload)
    return 0


def report(results: list[Result], args: argparse.Namespace) -> None:
    bare = results[0]
    print(f"{args.connections} connections, {args.seconds:g} s per route, on {os.cpu_count()} CPUs")
    print(f"{'route':8} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'of bare':>8} {'errors':>7} {'sessions/1k':>12}")
    for result in results:
        sessions = "-" if result.sessions is None else f"{1000 * result.sessions / max(1, result.requests):.1f}"
        print(
            f"{result.name:8} {result.rate:8.0f} {result.percentile(0.5):8.1f} {result.percentile(0.99):8.1f} "
            f"{result.rate / bare.rate:8.2f} {result.errors:7d} {sessions:>12}"
        )
    mean = statistics.mean(bare.latencies_ms)
    print(f"(bare mean latency {mean:.1f} ms; goals: poll >= 1500/s, submit >= 200/s, p99 < 50 ms)")


def report_upload(upload: UploadSpeed) -> None:
    print(f"upload of {upload.megabytes:g} MB, streamed from disk")
    print(f"  one PUT straight to the S3 server:      {upload.megabytes / upload.direct_s:7.1f} MB/s")
    print(f"  8 MiB parts straight to the S3 server:  {upload.megabytes / upload.direct_parts_s:7.1f} MB/s")
    print(f"  POST /v1/jobs through the API:          {upload.megabytes / upload.api_s:7.1f} MB/s")
    print(
        f"  API / one PUT {upload.direct_s / upload.api_s:.2f} (goal >= 0.8), API / the same parts "
        f"{upload.direct_parts_s / upload.api_s:.2f}; the API's peak memory rose {upload.api_peak_growth_mb:.0f} MB"
    )


if __name__ == "__main__":
    sys.exit(main())
