"""A worker's memory over several prepare jobs in a row, on S3 storage and on local storage.

One process per storage runs what `worker.service.prepare` runs for each job: fetch the source from
storage to a temporary file (`Storage.download`), then decode, detect speech, cut and store every chunk
(`plan_and_store`) back into the same storage. After each job it prints the process's resident memory
and the job's own peak (VmHWM, reset before each job through /proc/self/clear_refs), so memory that one
job leaves behind for the next shows as a rising line. S3 is a moto_server on a free port.

    .venv/bin/python bench/worker_memory.py                 # 3 jobs of 180 minutes
    .venv/bin/python bench/worker_memory.py --minutes 30    # a quicker look
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.prep import cached_recording

GOAL_MB = 400.0


def _status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def _reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS


def run_jobs(storage_kind: str, endpoint: str | None, source: Path, jobs: int) -> None:
    """In this process: `jobs` prepares of `source`, one after another, printing memory after each."""
    from tingxie.settings import Settings
    from tingxie.storage import build_storage
    from worker.audio.prepare import plan_and_store

    with tempfile.TemporaryDirectory() as scratch:
        settings = Settings(
            s3_endpoint_url=endpoint,
            s3_access_key="bench",
            s3_secret_key="bench",
            storage_dir=Path(scratch) / "storage",
        )  # type: ignore[call-arg]
        storage = build_storage(settings)
        storage.put_bytes("source", source.read_bytes())
        print(f"{storage_kind}: idle {_status_mb('VmRSS'):.0f} MB", flush=True)
        for job in range(1, jobs + 1):
            _reset_peak()
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "source"
                storage.download("source", path)
                prepared = plan_and_store(path, storage, f"jobs/{job}/chunks/", settings)
            storage.delete_prefix(f"jobs/{job}/")
            rss, peak = _status_mb("VmRSS"), _status_mb("VmHWM")
            print(f"{storage_kind}: job {job}: {len(prepared.chunks)} chunks, peak {peak:.0f} MB, after {rss:.0f} MB")


def _moto() -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(3)
    return server, f"http://127.0.0.1:{port}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=180.0)
    parser.add_argument("--jobs", type=int, default=3)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)  # storage kind, endpoint or "-"
    args = parser.parse_args()
    source = cached_recording(args.minutes)
    if args.child:
        kind, endpoint = args.child
        run_jobs(kind, None if endpoint == "-" else endpoint, source, args.jobs)
        return
    print(f"{args.jobs} prepares of {source.name} ({source.stat().st_size / 2**20:.0f} MB) per storage", flush=True)
    server, endpoint = _moto()
    try:
        for kind, url in (("s3", endpoint), ("local", "-")):
            argv = [sys.executable, __file__, "--minutes", str(args.minutes), "--jobs", str(args.jobs)]
            subprocess.run([*argv, "--child", kind, url], check=True, env=dict(os.environ))
    finally:
        server.terminate()
    print(f"goal: every job's peak at most {GOAL_MB:.0f} MB, and no rise from job to job")


if __name__ == "__main__":
    main()
