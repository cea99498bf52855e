"""The seed's JSON route and the OpenAI-style route: ordinary jobs underneath, answered synchronously."""

import base64

import httpx

from tests.corpus import OSR, manifest
from tests.helpers import wer


def test_seed_route_returns_text_and_language(client: httpx.Client) -> None:
    body = {"file": base64.b64encode(OSR.read_bytes()).decode(), "language": "auto"}
    response = client.post("/api/transcribe", json=body)
    assert response.status_code == 200, response.text
    assert response.json()["language"] == "en"
    assert wer(manifest()["en/OSR_us_000_0034_8k.wav"].reference, response.json()["text"]) <= 0.4


def test_seed_route_rejects_bad_base64(client: httpx.Client) -> None:
    response = client.post("/api/transcribe", json={"file": "not base64!!"})
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_base64"


def test_seed_route_reports_undecodable_audio(client: httpx.Client) -> None:
    response = client.post("/api/transcribe", json={"file": base64.b64encode(b"plain text" * 100).decode()})
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_audio"


def _openai(client: httpx.Client, response_format: str) -> httpx.Response:
    with OSR.open("rb") as audio:
        return client.post(
            "/v1/audio/transcriptions",
            files={"file": (OSR.name, audio)},
            data={"model": "whisper-1", "response_format": response_format, "prompt": "gold ring"},
        )


def test_openai_route_formats(client: httpx.Client) -> None:
    assert set(_openai(client, "json").json()) == {"text"}
    verbose = _openai(client, "verbose_json").json()
    assert verbose["language"] == "en" and verbose["segments"][0]["id"] == 0
    assert verbose["text"] == " ".join(segment["text"] for segment in verbose["segments"])
    assert _openai(client, "vtt").text.startswith("WEBVTT")
    assert _openai(client, "text").headers["content-type"].startswith("text/plain")
    bad = _openai(client, "docx")
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_format"
