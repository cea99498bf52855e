"""GET /v1/jobs/{id}/events: a client follows a real job's Server-Sent Events to its end, and resumes."""

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.corpus import OSR
from tests.helpers import submit, wait_for


@dataclass(frozen=True)
class Event:
    id: str | None
    type: str
    data: dict[str, Any]


def events(response: httpx.Response) -> Iterator[Event]:
    """The events of a text/event-stream, as the HTML spec parses them (comments and `retry` skipped)."""
    fields: dict[str, str] = {}
    for line in response.iter_lines():
        if line == "":
            if "data" in fields:
                yield Event(fields.get("id"), fields.get("event", "message"), json.loads(fields["data"]))
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")


def follow(client: httpx.Client, job_id: str, last_event_id: str | None = None) -> list[Event]:
    headers = {"Last-Event-ID": last_event_id} if last_event_id is not None else {}
    with client.stream("GET", f"/v1/jobs/{job_id}/events", headers=headers, timeout=120) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        return list(events(response))


def test_a_client_follows_a_job_from_queued_to_completed(client: httpx.Client) -> None:
    job_id = submit(client, OSR).json()["id"]
    started = time.monotonic()
    seen = follow(client, job_id)
    assert time.monotonic() - started < 120

    assert seen[0].type in ("job.queued", "job.processing")
    assert seen[-1].type == "job.completed" and seen[-1].data["status"] == "completed"
    assert all(event.data["id"] == job_id for event in seen)
    assert len({event.id for event in seen}) == len(seen)  # each one a change
    done = [event.data["progress"]["chunks_done"] for event in seen]
    assert done == sorted(done) and done[-1] == seen[-1].data["progress"]["chunks_total"] >= 2
    assert any(event.type == "job.progress" for event in seen)  # progress while processing, not only the ends
    assert client.get(f"/v1/jobs/{job_id}").json()["progress"] == seen[-1].data["progress"]

    # Resuming: from the final event there is nothing more (204 stops an EventSource reconnecting); from
    # an earlier one, the final event comes at once.
    final_id = seen[-1].id
    assert client.get(f"/v1/jobs/{job_id}/events", headers={"Last-Event-ID": final_id or ""}).status_code == 204
    (resumed,) = follow(client, job_id, last_event_id=seen[0].id)
    assert resumed == seen[-1]


def test_a_finished_job_answers_its_final_event_at_once_with_the_error(client: httpx.Client, tmp_path: Path) -> None:
    noise = tmp_path / "not-audio.wav"
    noise.write_bytes(b"this is not audio at all" * 100)
    job_id = submit(client, noise).json()["id"]
    wait_for(client, job_id)
    (final,) = follow(client, job_id)
    assert final.type == "job.failed"
    assert final.data["error"]["code"] == "invalid_audio"


def test_the_event_stream_of_an_unknown_job_is_a_json_404(client: httpx.Client) -> None:
    response = client.get("/v1/jobs/00000000-0000-0000-0000-000000000000/events")
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
