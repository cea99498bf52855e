"""Webhooks end to end: a real platform (API, workers, the reconciler) delivers to a real HTTP receiver on
a loopback port (allowed by TINGXIE_WEBHOOK_ALLOW_NETWORKS), and every delivery is verified with the
`standardwebhooks` package, not with tingxie's own code.

The platform has a database of its own: the last tests make API keys, which would end the keyless
local mode of the suite's shared platform. Retries are scaled down (TINGXIE_WEBHOOK_RETRY_BASE_SECONDS)
and the reconciler, which sends them, runs every half second."""

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from tests.conftest import Platform, RedisDatabases, _flush_keeping_claim, fresh_database
from tests.corpus import OSR, SPEECH
from tests.helpers import submit, wait_for
from tests.peers import WEBHOOK_TIMEOUT_S, Answer, Peer, Received, outbound_settings, running_peer
from tingxie.db import get_sessionmaker
from tingxie.keys import create_key
from tingxie.settings import Settings
from tingxie.webhooks import JITTER, MAX_ATTEMPTS, MAX_DELAY_S, keyless_secret, retry_delay

CLIP = SPEECH / "en" / "spk1_snt4.wav"  # 2.5 s: the webhooks are under test, not the transcription


@pytest.fixture(scope="module")
def receiver() -> Iterator[Peer]:
    with running_peer() as peer:
        yield peer


@pytest.fixture(scope="module")
def own_database() -> Iterator[str]:
    with fresh_database() as url:
        yield url


@pytest.fixture(scope="module")
def webhook_platform(
    service_env: dict[str, str],
    redis_databases: RedisDatabases,
    own_database: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Platform]:
    _flush_keeping_claim(redis_databases.spare)
    data_dir = str(tmp_path_factory.mktemp("webhook-data"))
    env = service_env | outbound_settings(data_dir, own_database, redis_databases.url(redis_databases.spare))
    running = Platform(env, tmp_path_factory.mktemp("webhook-logs"), reconciler=True).start()
    yield running
    running.stop()


@pytest.fixture
def client(webhook_platform: Platform) -> Iterator[httpx.Client]:
    with webhook_platform.client() as http:
        yield http


def _keyless_secret(platform: Platform) -> str:
    """Generated into the data directory on first use, as the keyless local mode does."""
    return (Path(platform.env["TINGXIE_DATA_DIR"]) / "webhook-secret").read_text().strip()


def _verified(secret: str, request: Received) -> dict[str, Any]:
    payload: dict[str, Any] = Webhook(secret).verify(request.body, request.headers)
    return payload


def _deliveries(client: httpx.Client, job_id: str) -> list[dict[str, Any]]:
    response = client.get(f"/v1/jobs/{job_id}/webhook/deliveries")
    assert response.status_code == 200, response.text
    deliveries: list[dict[str, Any]] = response.json()["deliveries"]
    return deliveries


def _settled(client: httpx.Client, job_id: str, attempts: int, timeout: float = 30) -> dict[str, Any]:
    """The job once its webhook has made `attempts` attempts and has none scheduled."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job: dict[str, Any] = client.get(f"/v1/jobs/{job_id}").json()
        hook = job["webhook"]
        if hook["attempts"] >= attempts and hook["next_attempt_at"] is None:
            return job
        time.sleep(0.1)
    raise AssertionError(f"the webhook of job {job_id} did not settle: {job}")


def test_a_delivery_answered_500_twice_then_200_is_one_signed_event_tried_three_times(
    client: httpx.Client, receiver: Peer, webhook_platform: Platform
) -> None:
    url = receiver.on("/flaky", 500, 500, 200)
    created = submit(client, CLIP, webhook_url=url)
    assert created.status_code == 202, created.text
    job_id = created.json()["id"]
    assert created.json()["webhook"] == {"url": url, "attempts": 0, "last_status": None, "next_attempt_at": None}
    assert wait_for(client, job_id)["status"] == "completed"

    requests = receiver.wait_for("/flaky", 3)
    secret = _keyless_secret(webhook_platform)
    payloads = [_verified(secret, request) for request in requests]
    assert {request.headers["webhook-id"] for request in requests} == {f"msg_{job_id.replace('-', '')}"}
    assert all(
        p == {"type": "job.completed", "timestamp": p["timestamp"], "data": {"id": job_id, "status": "completed"}}
        for p in payloads
    )
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + "A" * 43 + "=").verify(requests[0].body, requests[0].headers)

    job = _settled(client, job_id, attempts=3)
    assert job["webhook"] == {"url": url, "attempts": 3, "last_status": 200, "next_attempt_at": None}
    deliveries = _deliveries(client, job_id)
    assert [(d["attempt"], d["status_code"], d["outcome"]) for d in deliveries] == [
        (1, 500, "retry"),
        (2, 500, "retry"),
        (3, 200, "delivered"),
    ]
    assert deliveries[0]["next_attempt_at"] is not None and deliveries[2]["next_attempt_at"] is None
    time.sleep(2)  # several reconciler runs later, nothing more is sent
    assert len(receiver.requests_to("/flaky")) == 3


def test_410_gone_stops_the_retries(client: httpx.Client, receiver: Peer) -> None:
    url = receiver.on("/gone", 410, 410, 410)
    job_id = submit(client, CLIP, webhook_url=url).json()["id"]
    wait_for(client, job_id)
    receiver.wait_for("/gone", 1)
    job = _settled(client, job_id, attempts=1)
    assert job["webhook"]["last_status"] == 410
    time.sleep(2)
    assert len(receiver.requests_to("/gone")) == 1
    assert [d["outcome"] for d in _deliveries(client, job_id)] == ["stopped"]


def test_a_receiver_that_hangs_times_out_and_is_retried(client: httpx.Client, receiver: Peer) -> None:
    url = receiver.on("/hangs", Answer(delay_s=WEBHOOK_TIMEOUT_S * 3), 200)
    job_id = submit(client, CLIP, webhook_url=url).json()["id"]
    wait_for(client, job_id)
    _settled(client, job_id, attempts=2)
    first, second = _deliveries(client, job_id)
    assert first["status_code"] is None and "timed out" in first["error"] and first["outcome"] == "retry"
    assert WEBHOOK_TIMEOUT_S * 1000 * 0.9 <= first["duration_ms"] < WEBHOOK_TIMEOUT_S * 1000 * 2.5
    assert second["status_code"] == 200 and second["outcome"] == "delivered"


def test_a_redirect_is_not_followed_and_counts_as_a_failure(client: httpx.Client, receiver: Peer) -> None:
    url = receiver.on("/moved", Answer(302, headers={"Location": receiver.url("/redirected-to")}), 200)
    job_id = submit(client, CLIP, webhook_url=url).json()["id"]
    wait_for(client, job_id)
    _settled(client, job_id, attempts=2)
    first, second = _deliveries(client, job_id)
    assert first["status_code"] == 302 and "not followed" in first["error"] and first["outcome"] == "retry"
    assert second["outcome"] == "delivered"
    assert receiver.requests_to("/redirected-to") == []


def test_redelivery_sends_the_same_event_again(
    client: httpx.Client, receiver: Peer, webhook_platform: Platform
) -> None:
    url = receiver.on("/again")
    job_id = submit(client, CLIP, webhook_url=url).json()["id"]
    wait_for(client, job_id)
    _settled(client, job_id, attempts=1)
    redelivered = client.post(f"/v1/jobs/{job_id}/webhook/redeliver")
    assert redelivered.status_code == 202, redelivered.text
    first, second = receiver.wait_for("/again", 2)
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    secret = _keyless_secret(webhook_platform)
    assert _verified(secret, first) == _verified(secret, second)
    assert _settled(client, job_id, attempts=2)["webhook"]["last_status"] == 200


def test_failed_and_canceled_jobs_send_their_own_events(
    client: httpx.Client, receiver: Peer, webhook_platform: Platform, tmp_path: Path
) -> None:
    noise = tmp_path / "noise.wav"
    noise.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(range(256)) * 4)
    failed = submit(client, noise, webhook_url=receiver.url("/failed")).json()["id"]
    long_job = submit(client, OSR, webhook_url=receiver.url("/canceled")).json()["id"]
    assert client.post(f"/v1/jobs/{long_job}/cancel").status_code == 200
    secret = _keyless_secret(webhook_platform)
    (failed_event,) = receiver.wait_for("/failed", 1)
    (canceled_event,) = receiver.wait_for("/canceled", 1)
    assert _verified(secret, failed_event)["type"] == "job.failed"
    assert _verified(secret, failed_event)["data"] == {"id": failed, "status": "failed"}
    assert _verified(secret, canceled_event)["data"] == {"id": long_job, "status": "canceled"}


def test_webhook_routes_refuse_what_they_cannot_do(client: httpx.Client) -> None:
    plain = submit(client, CLIP).json()["id"]
    assert client.get(f"/v1/jobs/{plain}").json()["webhook"] is None
    refused = client.post(f"/v1/jobs/{plain}/webhook/redeliver")
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "no_webhook"
    rotate = client.post("/v1/webhook-secret/rotate")
    assert rotate.status_code == 409 and rotate.json()["error"]["code"] == "keyless_mode"
    wait_for(client, plain)


# --- with API keys (these end the keyless mode of this platform, so they come last) ----------------------


def test_each_key_signs_with_its_own_secret_and_a_rotation_sends_both_signatures(
    client: httpx.Client, receiver: Peer, own_database: str
) -> None:
    with get_sessionmaker(own_database)() as session, session.begin():
        key, api_secret = create_key(session, "integrator")
        first_secret = key.webhook_secret
    auth = {"Authorization": f"Bearer {api_secret}"}
    client.headers.update(auth)

    before = submit(client, CLIP, webhook_url=receiver.url("/keyed")).json()["id"]
    wait_for(client, before)
    (signed_once,) = receiver.wait_for("/keyed", 1)
    _verified(first_secret, signed_once)
    assert len(signed_once.headers["webhook-signature"].split(" ")) == 1

    rotated = client.post("/v1/webhook-secret/rotate", params={"overlap_hours": 1})
    assert rotated.status_code == 200, rotated.text
    second_secret = rotated.json()["secret"]
    assert second_secret.startswith("whsec_") and second_secret != first_secret

    during = submit(client, CLIP, webhook_url=receiver.url("/rotating")).json()["id"]
    wait_for(client, during)
    (signed_twice,) = receiver.wait_for("/rotating", 1)
    assert len(signed_twice.headers["webhook-signature"].split(" ")) == 2
    _verified(first_secret, signed_twice)  # a receiver not yet switched
    _verified(second_secret, signed_twice)  # and one already switched

    ended = client.post("/v1/webhook-secret/rotate", params={"overlap_hours": 0}).json()["secret"]
    after = submit(client, CLIP, webhook_url=receiver.url("/rotated")).json()["id"]
    wait_for(client, after)
    (signed_after,) = receiver.wait_for("/rotated", 1)
    _verified(ended, signed_after)
    with pytest.raises(WebhookVerificationError):
        _verified(second_secret, signed_after)
    assert json.loads(signed_after.body)["data"]["id"] == after


# --- the parts on their own ----------------------------------------------------------------------------


def test_the_retries_of_a_series_span_about_a_day_with_jitter() -> None:
    base = Settings().webhook_retry_base_seconds
    nominal = [min(MAX_DELAY_S, base * 2 ** (retry - 1)) for retry in range(1, MAX_ATTEMPTS)]
    assert 20 * 3600 < sum(nominal) < 30 * 3600
    for retry, expected in enumerate(nominal, start=1):
        drawn = {retry_delay(retry, base) for _ in range(20)}
        assert all(expected * (1 - JITTER) <= delay <= expected * (1 + JITTER) for delay in drawn)
        assert len(drawn) > 1  # jittered, so receivers that failed together are not retried together


def test_the_keyless_secret_is_generated_once_into_the_data_directory_unless_set(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    generated = keyless_secret(settings)
    assert generated.startswith("whsec_") and keyless_secret(settings) == generated
    assert (tmp_path / "webhook-secret").stat().st_mode & 0o777 == 0o600
    Webhook(generated)  # a secret the standard's own library accepts
    chosen = "whsec_" + "Q" * 43 + "="
    assert keyless_secret(Settings(data_dir=tmp_path, webhook_secret=chosen)) == chosen  # type: ignore[arg-type]
