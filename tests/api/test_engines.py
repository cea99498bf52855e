"""What the API says about the engine and its languages."""

import httpx

from tests.corpus import OSR
from tests.helpers import submit, wait_for


def test_engines_reports_the_configured_engine(client: httpx.Client) -> None:
    body = client.get("/v1/engines").json()
    assert body["engine"] == "pocketsphinx"
    assert body["languages"] == ["auto", "en"]
    assert body["window_seconds"] == 6
    assert body["word_timestamps"] is True  # pocketsphinx's row of the engine table


def test_a_language_the_engine_cannot_transcribe_is_refused(client: httpx.Client) -> None:
    response = submit(client, OSR, language="zh")
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "unsupported_language"


def test_health_readiness_and_metrics(client: httpx.Client) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz").json()
    assert ready["checks"] == {"database": "ok", "broker": "ok", "storage": "ok"}
    wait_for(client, submit(client, OSR).json()["id"])
    text = client.get("/metrics").text
    completed = next(line for line in text.splitlines() if line.startswith('tingxie_jobs{status="completed"}'))
    assert float(completed.split()[-1]) >= 1
    assert "tingxie_audio_seconds" in text
    assert "<form" in client.get("/").text
