"""Shared test helpers: real speech from ../shared/speech, WER, and a client that waits for jobs."""

import csv
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jiwer

SPEECH = Path(__file__).resolve().parents[2] / "shared" / "speech"
OSR = SPEECH / "en" / "OSR_us_000_0034_8k.wav"
FINAL = ("completed", "failed", "canceled")


@dataclass(frozen=True)
class Clip:
    path: Path
    language: str
    duration: float
    reference: str


def manifest() -> dict[str, Clip]:
    with (SPEECH / "manifest.tsv").open(encoding="utf-8") as handle:
        rows = csv.DictReader(handle, delimiter="\t")
        return {
            row["file"]: Clip(
                SPEECH / row["file"], row["language"], float(row["duration_s"]), row["reference_text"]
            )
            for row in rows
        }


def normalize(text: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"[^\w\s']", " ", text.lower())).strip()


def wer(reference: str, hypothesis: str) -> float:
    return float(jiwer.wer(normalize(reference), normalize(hypothesis)))


def submit(client: httpx.Client, path: Path, **fields: str) -> httpx.Response:
    with path.open("rb") as handle:
        return client.post("/v1/jobs", files={"file": (path.name, handle)}, data=fields)


def wait_for(client: httpx.Client, job_id: str, timeout: float = 180) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job: dict[str, Any] = client.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in FINAL:
            return job
        time.sleep(0.25)
    raise AssertionError(f"job {job_id} did not finish within {timeout} s: {job}")
