"""The hostile corpus, sent to each of the three routes that take audio.

Every file gets the same answer from `POST /v1/jobs` (through the job it creates), `POST /api/transcribe`
and `POST /v1/audio/transcriptions`: completed, or a JSON error with the code below. None gets a 500 and
none leaves a job running. Requests that lie about themselves (wrong content types, a Content-Length
shorter or longer than the body) are refused in JSON and leave nothing stored, on S3 and in embedded mode."""

import base64
import io
import socket
import struct
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.audio_fixtures import SAMPLE_RATE, encode_samples, video_only, write_wav
from tests.conftest import Platform
from tests.corpus import OSR
from tests.helpers import stored_sources, wait_for
from tingxie.models import utcnow
from tingxie.settings import get_settings
from worker.reconcile import sweep_orphans

CLEANUP_WAIT_S = 5.0

JOBS, SEED, OPENAI = "/v1/jobs", "/api/transcribe", "/v1/audio/transcriptions"
ROUTES = (JOBS, SEED, OPENAI)
COMPLETED = "completed"


@dataclass(frozen=True)
class Hostile:
    name: str
    filename: str
    data: bytes
    expect: str  # COMPLETED, or the error code every route answers with
    content_type: str = "application/octet-stream"


def _room_tone(seconds: float) -> np.ndarray:
    """-60 dBFS noise: real samples that hold no speech, so a completed job costs no engine time."""
    return np.random.default_rng(11).normal(0, 0.001, int(seconds * SAMPLE_RATE)).astype(np.float32)


def _encoded(container: str, codec: str, rate: int, sample_fmt: str, samples: np.ndarray) -> bytes:
    out = io.BytesIO()
    encode_samples(out, [samples], container, codec, rate, "mono", sample_fmt)
    return out.getvalue()


def _wav_claiming_149_hours() -> bytes:
    """8 kHz 8-bit PCM whose header gives the largest data size RIFF allows (what a recorder streaming to a
    pipe writes), followed by 2 s of audio."""
    audio = (np.random.default_rng(5).integers(126, 130, 2 * 8000)).astype(np.uint8).tobytes()
    fmt = struct.pack("<4sIHHIIHH", b"fmt ", 16, 1, 1, 8000, 8000, 1, 8)
    return b"RIFF" + struct.pack("<I", 0xFFFFFFFF) + b"WAVE" + fmt + b"data" + struct.pack("<I", 0xFFFFFFF0) + audio


def _noise_after(header: bytes, size: int) -> bytes:
    return header + np.random.default_rng(9).integers(0, 256, size, dtype=np.uint8).tobytes()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> list[Hostile]:
    folder = tmp_path_factory.mktemp("hostile")
    tone = _room_tone(8.0)
    flac = _encoded("flac", "flac", 16_000, "s16", tone)
    mp3 = _encoded("mp3", "libmp3lame", 16_000, "s16p", tone)
    m4a = _encoded("ipod", "aac", 16_000, "fltp", tone)
    wav = write_wav(folder / "tone.wav", tone).read_bytes()
    one_sample = write_wav(folder / "one.wav", np.zeros(1, dtype=np.float32)).read_bytes()
    hour = io.BytesIO()
    encode_samples(hour, (np.zeros(SAMPLE_RATE * 60, dtype=np.float32) for _ in range(60)), "flac", "flac", 8000)
    return [
        Hostile("zero bytes", "empty.wav", b"", "empty_file"),
        Hostile("one sample", "one.wav", one_sample, COMPLETED),
        Hostile("WAV header claiming 149 h", "streamed.wav", _wav_claiming_149_hours(), COMPLETED),
        Hostile("an hour of silence, small", "silence.flac", hour.getvalue(), COMPLETED),
        Hostile("FLAC cut in half", "cut.flac", flac[: len(flac) // 2], COMPLETED),
        Hostile("MP3 cut in half", "cut.mp3", mp3[: len(mp3) // 2], COMPLETED),
        Hostile(
            "Ogg Opus cut in half",
            "cut.ogg",
            (ogg := _encoded("ogg", "libopus", 48_000, "s16", tone))[: len(ogg) // 2],
            COMPLETED,
        ),
        Hostile("M4A cut in half", "cut.m4a", m4a[: len(m4a) // 2], "invalid_audio"),
        Hostile("M4A header only", "head.m4a", m4a[:64], "invalid_audio"),
        Hostile("noise after a FLAC header", "noise.flac", _noise_after(flac[:200], len(flac)), "invalid_audio"),
        Hostile("noise after an MP3 header", "noise.mp3", _noise_after(mp3[:200], len(mp3)), "invalid_audio"),
        Hostile("random bytes", "random.bin", _noise_after(b"", 50_000), "invalid_audio"),
        Hostile("text named .mp3", "minutes.mp3", b"1. budget\n2. hiring\n" * 200, "invalid_audio"),
        Hostile(
            "video without audio", "screen.mp4", video_only(folder / "screen.mp4", 2.0).read_bytes(), "no_audio_stream"
        ),
        Hostile("WAV sent as image/png", "photo.png", wav, COMPLETED, content_type="image/png"),
        Hostile("path-like file name", "../../etc/passwd.wav", wav, COMPLETED),
    ]


def _send(client: httpx.Client, route: str, item: Hostile) -> httpx.Response:
    if route == SEED:
        return client.post(route, json={"file": base64.b64encode(item.data).decode()})
    fields = {"model": "whisper-1"} if route == OPENAI else {}
    return client.post(route, files={"file": (item.filename, item.data, item.content_type)}, data=fields)


def _outcome(client: httpx.Client, route: str, item: Hostile) -> str:
    response = _send(client, route, item)
    assert response.status_code < 500, f"{item.name} on {route}: {response.text}"
    if response.status_code == 202:
        job = wait_for(client, response.json()["id"])
        return COMPLETED if job["status"] == COMPLETED else str(job["error"]["code"])
    if response.status_code == 200:
        return COMPLETED
    error = response.json()["error"]
    assert error["message"], f"{item.name} on {route}: an error without a message"
    return str(error["code"])


def test_every_route_gives_every_hostile_file_the_same_clear_answer(
    client: httpx.Client, corpus: list[Hostile]
) -> None:
    cases = [(item, route) for item in corpus for route in ROUTES]
    # All at once: the synchronous routes each hold a request open while their job runs.
    with ThreadPoolExecutor(max_workers=12) as pool:
        outcomes = list(pool.map(lambda case: _outcome(client, case[1], case[0]), cases))
    found = {(item.name, route): outcome for (item, route), outcome in zip(cases, outcomes, strict=True)}
    assert found == {(item.name, route): item.expect for item, route in cases}


# --- requests that lie about themselves ----------------------------------------------------------------


def _error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code


@pytest.mark.parametrize("route", ROUTES)
def test_an_invalid_language_is_refused_on_every_route(client: httpx.Client, route: str) -> None:
    sources = stored_sources()
    data = OSR.read_bytes()
    if route == SEED:
        response = client.post(route, json={"file": base64.b64encode(data).decode(), "language": "klingon"})
    else:
        response = client.post(route, files={"file": ("a.wav", data)}, data={"language": "klingon", "model": "w"})
    _error(response, 422, "invalid_language")
    assert "en" in response.json()["error"]["message"]  # the valid codes are listed
    assert stored_sources() == sources


@pytest.mark.parametrize(
    ("route", "code"), [(JOBS, "invalid_body"), (OPENAI, "invalid_body"), (SEED, "invalid_request")]
)
def test_a_body_of_the_wrong_type_is_refused(client: httpx.Client, route: str, code: str) -> None:
    _error(client.post(route, content=OSR.read_bytes(), headers={"Content-Type": "audio/wav"}), 422, code)
    _error(client.post(route, content=b"file=abc", headers={"Content-Type": "text/plain"}), 422, code)


def _multipart(data: bytes) -> tuple[bytes, str]:
    boundary = "hostile-boundary"
    head = f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n\r\n'.encode()
    return head + data + f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def _raw_request(url: str, route: str, body: bytes, content_type: str, declared: int) -> list[bytes]:
    """Send `body` under a Content-Length of `declared`; every response read back until the server closes.

    A client that sent less than it declared half-closes, as one that gives up would: the server would
    otherwise wait for the rest. One that sent more keeps the connection open for the answers."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as connection:
        head = f"POST {route} HTTP/1.1\r\nHost: {host}\r\nContent-Type: {content_type}\r\n"
        connection.sendall(f"{head}Content-Length: {declared}\r\n\r\n".encode() + body)
        if declared > len(body):
            connection.shutdown(socket.SHUT_WR)
        received = b"".join(iter(lambda: connection.recv(65536), b""))
    return [response for response in received.split(b"HTTP/1.1 ") if response]


def _status_and_body(response: bytes) -> tuple[int, bytes]:
    head, _, body = response.partition(b"\r\n\r\n")
    assert b"content-type: application/json" in head.lower(), response
    return int(head[:3]), body


def _request_body(route: str) -> tuple[bytes, str]:
    audio = OSR.read_bytes()[:40_000]
    if route == SEED:
        return b'{"file": "' + base64.b64encode(audio) + b'"}', "application/json"
    return _multipart(audio)


def _lying_lengths(url: str) -> Iterator[tuple[str, list[bytes]]]:
    for route in ROUTES:
        body, content_type = _request_body(route)
        yield f"{route} short", _raw_request(url, route, body, content_type, len(body) // 2)
        yield f"{route} long", _raw_request(url, route, body, content_type, len(body) + 10_000)


def _check_lying_lengths(url: str, stored: Callable[[], object], sweep: Callable[[], object] | None = None) -> None:
    before = stored()
    for case, responses in _lying_lengths(url):
        if case.endswith("long"):
            assert responses == [], f"{case}: the client hung up before its body was whole; nothing to answer"
            continue
        # The truncated request is refused, and the bytes after it, read as a request, get a JSON 400.
        (first_status, _), (second_status, second) = (_status_and_body(response) for response in responses)
        assert first_status == 422, case
        assert second_status == 400 and b'"invalid_http"' in second, case
    # A client that hangs up mid-body sees the connection close at once, while the server is still
    # deleting what it had stored of the upload: nothing may remain, though not necessarily at that instant.
    deadline = time.monotonic() + CLEANUP_WAIT_S
    while stored() != before and time.monotonic() < deadline:
        time.sleep(0.05)
    if sweep is not None and stored() != before:
        # An S3 write has been seen to land after the request's own delete (the object listed again after
        # delete_objects reported it deleted): the reconciler's orphan sweep is what removes such a leftover.
        sweep()
    assert stored() == before


def _sweep_orphans_now() -> int:
    """The reconciler's sweep as it runs once every orphan is old enough."""
    return sweep_orphans(utcnow() + timedelta(seconds=get_settings().orphan_after_seconds + 60))


def test_a_content_length_that_lies_is_refused_in_json_leaving_nothing(platform: Platform) -> None:
    api_log = platform.log_dir / "api.log"
    logged_before = len(api_log.read_text(errors="replace"))
    _check_lying_lengths(platform.url, stored_sources, _sweep_orphans_now)
    logged = api_log.read_text(errors="replace")[logged_before:]
    # A client hanging up is worth a line, not an "unhandled error" with a traceback.
    assert "client disconnected during POST" in logged
    assert "unhandled error" not in logged and "Traceback" not in logged


def _files_under(folder: Path) -> set[Path]:
    return {path for path in folder.rglob("*") if path.is_file()}


def test_refusals_leave_nothing_in_embedded_storage(embedded_platform: Platform, corpus: list[Hostile]) -> None:
    storage = Path(embedded_platform.env["TINGXIE_DATA_DIR"]) / "storage"
    before = _files_under(storage)
    with embedded_platform.client() as client:
        empty = next(item for item in corpus if item.expect == "empty_file")
        for route in ROUTES:
            assert _outcome(client, route, empty) == "empty_file"
        _error(
            client.post(JOBS, files={"file": ("a.wav", OSR.read_bytes())}, data={"language": "xx"}),
            422,
            "invalid_language",
        )
        two_files = [("file", ("a.wav", OSR.read_bytes())), ("file", ("b.wav", OSR.read_bytes()))]
        _error(client.post(JOBS, files=two_files), 422, "invalid_body")
    _check_lying_lengths(embedded_platform.url, lambda: _files_under(storage))
    assert _files_under(storage) == before
