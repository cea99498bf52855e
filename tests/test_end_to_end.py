"""The whole slice over HTTP with real speech: upload -> storage -> broker -> worker -> database -> poll."""

from typing import Any

import httpx
import pytest

from tests.conftest import Platform
from tests.corpus import OSR, manifest
from tests.helpers import submit, wait_for, wer

MAX_WER = 0.40


def _transcribe_osr(client: httpx.Client) -> dict[str, Any]:
    response = submit(client, OSR)
    assert response.status_code == 202, response.text
    job = response.json()
    assert response.headers["location"] == f"/v1/jobs/{job['id']}"
    assert job["status"] == "queued"
    return wait_for(client, job["id"])


def _check_transcript(job: dict[str, Any]) -> None:
    clip = manifest()["en/OSR_us_000_0034_8k.wav"]
    assert job["status"] == "completed", job["error"]
    assert job["progress"]["chunks_total"] >= 3  # 35.5 s at TINGXIE_CHUNK_SECONDS=12
    assert job["progress"]["chunks_done"] == job["progress"]["chunks_total"]
    assert job["duration_s"] == pytest.approx(clip.duration, abs=0.05)
    segments = job["segments"]
    starts = [s["start"] for s in segments]
    assert starts == sorted(starts)
    assert all(s["start"] < s["end"] for s in segments)
    assert segments[0]["start"] < 3.0 and segments[-1]["end"] > clip.duration - 4.0
    assert job["languages"] == ["en"]
    assert wer(clip.reference, job["text"]) <= MAX_WER


def test_real_speech_on_postgres_redis_and_s3(client: httpx.Client) -> None:
    job = _transcribe_osr(client)
    _check_transcript(job)
    txt = client.get(f"/v1/jobs/{job['id']}/transcript", params={"format": "txt"})
    assert txt.status_code == 200
    lines = txt.text.splitlines()
    assert len(lines) == len(job["segments"])
    assert all(line.startswith("[en] ") for line in lines)
    as_json = client.get(f"/v1/jobs/{job['id']}/transcript", params={"format": "json"}).json()
    assert as_json["segments"] == job["segments"] and as_json["text"] == job["text"]


def test_real_speech_on_embedded_defaults(embedded_platform: Platform) -> None:
    with embedded_platform.client() as client:
        _check_transcript(_transcribe_osr(client))


def test_listing_cancel_and_delete(client: httpx.Client) -> None:
    job = wait_for(client, submit(client, OSR).json()["id"])
    listed = client.get("/v1/jobs", params={"status": "completed", "limit": 200}).json()
    assert job["id"] in [item["id"] for item in listed["jobs"]]
    refused = client.post(f"/v1/jobs/{job['id']}/cancel")
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "job_finished"
    assert client.delete(f"/v1/jobs/{job['id']}").status_code == 204
    assert client.get(f"/v1/jobs/{job['id']}").status_code == 404
