"""POST /v1/jobs with JSON naming the audio by URL: the worker fetches it from a real HTTP server on a
loopback port (the platform may reach 127.0.0.1 through TINGXIE_WEBHOOK_ALLOW_NETWORKS, nothing else
private), following redirects, each checked, and enforcing the size limit as the bytes arrive."""

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import MAX_UPLOAD_BYTES, Platform, RedisDatabases, _flush_keeping_claim, fresh_database
from tests.corpus import OSR
from tests.helpers import wait_for
from tests.peers import Answer, Peer, outbound_settings, running_peer


@pytest.fixture(scope="module")
def peer() -> Iterator[Peer]:
    with running_peer() as running:
        yield running


@pytest.fixture(scope="module")
def url_platform(
    service_env: dict[str, str], redis_databases: RedisDatabases, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Platform]:
    _flush_keeping_claim(redis_databases.spare)
    with fresh_database() as database:
        data_dir = str(tmp_path_factory.mktemp("url-data"))
        env = service_env | outbound_settings(data_dir, database, redis_databases.url(redis_databases.spare))
        running = Platform(env, tmp_path_factory.mktemp("url-logs")).start()
        yield running
        running.stop()


@pytest.fixture
def client(url_platform: Platform) -> Iterator[httpx.Client]:
    with url_platform.client() as http:
        yield http


def _submit(client: httpx.Client, **body: Any) -> httpx.Response:
    return client.post("/v1/jobs", json=body)


def _failed_with(client: httpx.Client, audio_url: str, code: str) -> dict[str, Any]:
    created = _submit(client, audio_url=audio_url)
    assert created.status_code == 202, created.text
    job = wait_for(client, created.json()["id"])
    assert job["status"] == "failed" and job["error"]["code"] == code, job
    return job


def test_audio_fetched_by_the_worker_through_a_redirect_is_transcribed(client: httpx.Client, peer: Peer) -> None:
    peer.on("/recordings/OSR_us_000_0034_8k.wav", Answer(body=OSR.read_bytes()))
    url = peer.on("/share/abc", Answer(302, headers={"Location": "/recordings/OSR_us_000_0034_8k.wav"}))
    created = _submit(client, audio_url=url, language="en", context="Harvard sentences")
    assert created.status_code == 202, created.text
    assert created.headers["Location"] == f"/v1/jobs/{created.json()['id']}"
    job = wait_for(client, created.json()["id"])
    assert job["status"] == "completed", job
    assert job["filename"] == "abc" and job["language"] == "en"
    uploaded = client.post("/v1/jobs", files={"file": (OSR.name, OSR.read_bytes())})
    assert job["text"] == wait_for(client, uploaded.json()["id"])["text"] != ""  # the same audio, whichever way
    (fetch,) = peer.requests_to("/recordings/OSR_us_000_0034_8k.wav")
    assert fetch.method == "GET" and fetch.headers["user-agent"].startswith("tingxie")


def test_a_404_fails_the_job_with_the_status(client: httpx.Client, peer: Peer) -> None:
    job = _failed_with(client, peer.on("/missing.wav", 404), "fetch_failed")
    assert "404" in job["error"]["message"]


def test_a_server_error_is_tried_again(client: httpx.Client, peer: Peer) -> None:
    url = peer.on("/flaky.wav", 503, Answer(body=OSR.read_bytes()))
    assert wait_for(client, _submit(client, audio_url=url).json()["id"])["status"] == "completed"
    assert len(peer.requests_to("/flaky.wav")) == 2


@pytest.mark.parametrize(
    "target", ["http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/a.wav", "http://[::1]:9/a.wav"]
)
def test_a_redirect_to_a_private_address_is_refused(client: httpx.Client, peer: Peer, target: str) -> None:
    url = peer.on(f"/to-private/{len(peer.received)}", Answer(301, headers={"Location": target}))
    job = _failed_with(client, url, "url_not_allowed")
    assert "public addresses" in job["error"]["message"]


def test_more_than_five_redirects_fail_the_job(client: httpx.Client, peer: Peer) -> None:
    hops = [peer.on(f"/hop/{n}", Answer(307, headers={"Location": f"/hop/{n + 1}"})) for n in range(7)]
    job = _failed_with(client, hops[0], "fetch_failed")
    assert "redirects" in job["error"]["message"]
    assert len(peer.requests_to("/hop/6")) == 0


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "until-close"])
def test_a_file_over_the_limit_is_cut_off_as_it_streams(client: httpx.Client, peer: Peer, declared: bool) -> None:
    body = b"\0" * (MAX_UPLOAD_BYTES + 1024 * 1024)
    url = peer.on(f"/huge-{declared}.wav", Answer(body=body, declare_length=declared))
    _failed_with(client, url, "payload_too_large")


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"audio_url": "http://10.0.0.1/a.wav"}, "url_not_allowed"),
        ({"audio_url": "http://127.0.0.2/a.wav"}, "url_not_allowed"),  # loopback, but not the allowed 127.0.0.1
        ({"audio_url": "file:///etc/passwd"}, "url_not_allowed"),
        ({"audio_url": "https://example.org/a.wav", "webhook_url": "http://169.254.169.254/"}, "url_not_allowed"),
        ({"audio_url": "http://127.0.0.1/a.wav", "language": "klingon"}, "invalid_language"),
        ({"audio_url": "http://127.0.0.1/a.wav", "unknown": 1}, "invalid_body"),
        ({"language": "en"}, "invalid_body"),
        ({"audio_url": 42}, "invalid_body"),
    ],
)
def test_what_cannot_be_fetched_is_refused_at_submit(client: httpx.Client, body: dict[str, Any], code: str) -> None:
    before = len(client.get("/v1/jobs").json()["jobs"])
    response = _submit(client, **body)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == code
    assert len(client.get("/v1/jobs").json()["jobs"]) == before


def test_malformed_json_is_refused(client: httpx.Client) -> None:
    response = client.post("/v1/jobs", content=b'{"audio_url": ', headers={"Content-Type": "application/json"})
    assert response.status_code == 422 and response.json()["error"]["code"] == "invalid_body"
