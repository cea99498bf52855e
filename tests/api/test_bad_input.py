"""Bad input ends as a clear 4xx or a `failed` job with a code: never a 500, never a stuck job."""

from pathlib import Path

import httpx
import pytest

from tests.conftest import MAX_UPLOAD_BYTES
from tests.corpus import OSR
from tests.helpers import stored_sources, submit, wait_for


def _error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    assert response.json()["error"]["message"]


def test_text_file_named_mp3_fails_with_invalid_audio(client: httpx.Client, tmp_path: Path) -> None:
    fake = tmp_path / "notes.mp3"
    fake.write_text("these are meeting notes, not a recording\n" * 50)
    response = submit(client, fake)
    assert response.status_code == 202
    job = wait_for(client, response.json()["id"])
    assert job["status"] == "failed"
    assert job["error"]["code"] == "invalid_audio"
    _error(client.get(f"/v1/jobs/{job['id']}/transcript"), 409, "transcript_not_ready")


def test_empty_file_is_refused(client: httpx.Client, tmp_path: Path) -> None:
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    _error(submit(client, empty), 422, "empty_file")


def test_upload_over_the_size_limit_is_refused_while_streaming(client: httpx.Client) -> None:
    def body() -> object:
        block = b"\0" * (1024 * 1024)
        yield from (block for _ in range(MAX_UPLOAD_BYTES // len(block) + 2))

    # No Content-Length (chunked): the limit is enforced on the bytes as they arrive.
    boundary = "tingxieboundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.wav"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()

    def stream() -> object:
        yield head
        yield from body()  # type: ignore[misc]
        yield tail

    response = client.post(
        "/v1/jobs", content=stream(), headers={"content-type": f"multipart/form-data; boundary={boundary}"}
    )
    _error(response, 413, "payload_too_large")


def test_declared_length_over_the_limit_is_refused_before_reading(client: httpx.Client) -> None:
    big = b"\0" * (MAX_UPLOAD_BYTES + 1024 * 1024)
    _error(client.post("/v1/jobs", files={"file": ("big.wav", big)}), 413, "payload_too_large")


def test_missing_file_part_and_wrong_body(client: httpx.Client) -> None:
    _error(client.post("/v1/jobs", data={"language": "en"}, files={"other": ("x", b"1")}), 422, "missing_file")
    _error(client.post("/v1/jobs", json={"file": "x"}), 422, "invalid_body")


def test_unknown_language_lists_the_valid_ones(client: httpx.Client) -> None:
    response = submit(client, OSR, language="klingon")
    _error(response, 422, "invalid_language")
    assert "en" in response.json()["error"]["message"]


def test_unknown_job_is_a_json_404(client: httpx.Client) -> None:
    _error(client.get("/v1/jobs/00000000-0000-0000-0000-000000000000"), 404, "not_found")
    _error(client.get("/v1/jobs/not-a-uuid"), 422, "invalid_request")
    _error(client.get("/v1/nothing-here"), 404, "not_found")


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/hook",
        "http://[::1]/hook",
        "http://10.0.0.1/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://localhost/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "ftp://example.org/hook",
        "not a url",
    ],
)
def test_a_webhook_url_into_the_platforms_own_network_is_refused(client: httpx.Client, url: str) -> None:
    """The platform's webhook guard is on (TINGXIE_WEBHOOK_ALLOW_PRIVATE is not set for it)."""
    jobs, sources = _job_count(client), stored_sources()
    _error(submit(client, OSR, webhook_url=url), 422, "url_not_allowed")
    assert _job_count(client) == jobs and stored_sources() == sources


def test_an_overlong_idempotency_key_is_refused(client: httpx.Client) -> None:
    with OSR.open("rb") as audio:
        response = client.post("/v1/jobs", files={"file": (OSR.name, audio)}, headers={"Idempotency-Key": "k" * 300})
    _error(response, 422, "invalid_idempotency_key")


def test_a_nul_in_the_context_is_refused(client: httpx.Client) -> None:
    _error(submit(client, OSR, context="meeting\x00notes"), 422, "invalid_context")


def test_a_path_like_file_name_with_a_nul_is_kept_as_its_last_part(client: httpx.Client) -> None:
    """The body is written by hand: httpx would percent-encode the NUL."""
    boundary = b"tingxie-boundary"
    body = (
        b"--" + boundary + b'\r\nContent-Disposition: form-data; name="file"; filename="../../etc/os\x00r.wav"\r\n'
        b"Content-Type: audio/wav\r\n\r\n" + OSR.read_bytes() + b"\r\n--" + boundary + b"--\r\n"
    )
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary.decode()}"}
    response = client.post("/v1/jobs", content=body, headers=headers)
    assert response.status_code == 202, response.text
    assert response.json()["filename"] == "osr.wav"
    assert wait_for(client, response.json()["id"])["status"] == "completed"


def _job_count(client: httpx.Client) -> int:
    return len(client.get("/v1/jobs", params={"limit": 200}).json()["jobs"])


def test_a_bad_openai_response_format_is_refused_before_any_job_exists(client: httpx.Client) -> None:
    jobs, sources = _job_count(client), stored_sources()
    with OSR.open("rb") as audio:
        form = {"model": "whisper-1", "response_format": "docx"}
        response = client.post("/v1/audio/transcriptions", files={"file": (OSR.name, audio)}, data=form)
    _error(response, 422, "invalid_format")
    assert _job_count(client) == jobs and stored_sources() == sources


def test_a_refused_upload_leaves_nothing_stored(client: httpx.Client) -> None:
    sources = stored_sources()
    _error(submit(client, OSR, language="xx-nonsense"), 422, "invalid_language")
    _error(submit(client, OSR, retain_days="-3"), 422, "invalid_retain_days")
    assert stored_sources() == sources


def test_the_openapi_document_describes_the_upload_forms(client: httpx.Client) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for path in ("/v1/jobs", "/v1/audio/transcriptions"):
        form = paths[path]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
        assert form["required"] == ["file"] and form["properties"]["file"]["format"] == "binary"


def test_thousands_of_form_fields_or_one_huge_field_are_refused(client: httpx.Client) -> None:
    sources = stored_sources()
    many = {f"field{number}": "x" for number in range(5000)}
    with OSR.open("rb") as audio:
        _error(client.post("/v1/jobs", files={"file": (OSR.name, audio)}, data=many), 422, "invalid_body")
    with OSR.open("rb") as audio:
        huge = {"context": "y" * (1024 * 1024)}
        _error(client.post("/v1/jobs", files={"file": (OSR.name, audio)}, data=huge), 422, "invalid_body")
    # The file part first, stored whole, and only then the fields that get the request refused.
    boundary = b"tingxie-boundary"
    file_part = b'Content-Disposition: form-data; name="file"; filename="a.wav"\r\n\r\n' + OSR.read_bytes()
    fields = [b'Content-Disposition: form-data; name="f%d"\r\n\r\nx' % number for number in range(100)]
    body = (
        b"".join(b"--" + boundary + b"\r\n" + part + b"\r\n" for part in [file_part, *fields])
        + b"--"
        + boundary
        + b"--\r\n"
    )
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary.decode()}"}
    _error(client.post("/v1/jobs", content=body, headers=headers), 422, "invalid_body")
    assert stored_sources() == sources


def test_malformed_json_and_bad_base64_on_the_seed_route(client: httpx.Client) -> None:
    broken = client.post("/api/transcribe", content=b'{"file": "abc', headers={"Content-Type": "application/json"})
    _error(broken, 422, "invalid_request")
    _error(client.post("/api/transcribe", json={"file": "not base64 at all!"}), 422, "invalid_base64")
    _error(client.post("/api/transcribe", json={"file": 12}), 422, "invalid_request")
