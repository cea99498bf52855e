"""What the API says about the engine and its languages."""

import httpx

from tests.helpers import OSR, submit


def test_engines_reports_the_configured_engine(client: httpx.Client) -> None:
    body = client.get("/v1/engines").json()
    assert body["engine"] == "pocketsphinx"
    assert body["languages"] == ["auto", "en"]
    assert body["window_seconds"] == 6


def test_a_language_the_engine_cannot_transcribe_is_refused(client: httpx.Client) -> None:
    response = submit(client, OSR, language="zh")
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "unsupported_language"
