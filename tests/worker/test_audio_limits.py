"""What cannot be transcribed fails with the right code; what holds no speech completes with nothing.

The duration limit is enforced twice: from the duration the container declares, before decoding, and on
the samples actually decoded, for containers that omit their duration or lie about it. Both are checked on
the decoder with a small limit, and end to end on a second API and worker that have a 10 s limit."""

import io
import struct
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.audio_fixtures import SAMPLE_RATE, encode_samples, load_16k, video_only, write_wav
from tests.conftest import Platform, RedisDatabases
from tests.corpus import OSR
from tests.helpers import submit, wait_for
from tingxie.errors import JobFailure
from worker.audio.decode import check_duration, declared_duration, decode

LIMIT_S = 10.0
NO_LIMIT_S = 3600.0


class _Pipe(io.RawIOBase):
    """A write-only, unseekable file: muxers cannot go back to write a duration into the header."""

    def __init__(self, sink: io.BufferedWriter) -> None:
        self._sink = sink

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def write(self, data: bytes) -> int:  # type: ignore[override]
        return self._sink.write(data)


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    return load_16k(OSR)


@pytest.fixture(scope="module")
def declared() -> Path:
    """35 s of WAV, its length in the header."""
    return OSR


@pytest.fixture(scope="module")
def undeclared(speech: np.ndarray, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """35 s of Opus in WebM written as a stream: the file states no duration at all."""
    path = tmp_path_factory.mktemp("limits") / "streamed.webm"
    with path.open("wb") as sink:
        encode_samples(_Pipe(sink), [speech], "webm", "libopus", 48_000, "mono", "s16")
    return path


@pytest.fixture(scope="module")
def lying(speech: np.ndarray, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """35 s of MP3 whose Xing/Info header claims a tenth of its frames: a 3.5 s declared duration."""
    path = tmp_path_factory.mktemp("limits") / "lying.mp3"
    encode_samples(path, [speech], "mp3", "libmp3lame", SAMPLE_RATE, "mono", "s16p")
    data = bytearray(path.read_bytes())
    tag = max(data.find(b"Xing"), data.find(b"Info"))
    assert tag > 0 and struct.unpack(">I", data[tag + 4 : tag + 8])[0] & 1, "no frame count in the header"
    frames = struct.unpack(">I", data[tag + 8 : tag + 12])[0]
    struct.pack_into(">I", data, tag + 8, frames // 10)
    path.write_bytes(bytes(data))
    return path


def _code(error: pytest.ExceptionInfo[JobFailure]) -> str:
    return error.value.code


# --- on the decoder ------------------------------------------------------------------------------------


def test_declared_duration_over_the_limit_fails_before_decoding() -> None:
    with pytest.raises(JobFailure) as error:
        check_duration(OSR, LIMIT_S)
    assert _code(error) == "audio_too_long"
    check_duration(OSR, NO_LIMIT_S)


@pytest.mark.parametrize("fixture", ["undeclared", "lying"])
def test_limit_holds_on_decoded_samples_when_the_container_omits_or_lies(
    fixture: str, request: pytest.FixtureRequest
) -> None:
    path: Path = request.getfixturevalue(fixture)
    declared = declared_duration(path)
    assert declared is None or declared < LIMIT_S
    check_duration(path, LIMIT_S)  # nothing to object to before decoding
    decoded = 0
    with pytest.raises(JobFailure) as error:
        for block in decode(path, LIMIT_S):
            decoded += len(block)
    assert _code(error) == "audio_too_long"
    assert decoded <= LIMIT_S * SAMPLE_RATE  # stopped at the limit, not after decoding everything
    assert sum(len(block) for block in decode(path, NO_LIMIT_S)) / SAMPLE_RATE > 3 * LIMIT_S


def test_decoder_codes_for_text_and_for_video_without_audio(tmp_path: Path) -> None:
    text = tmp_path / "notes.wav"
    text.write_text("minutes of the meeting\n" * 100)
    with pytest.raises(JobFailure) as error:
        list(decode(text, NO_LIMIT_S))
    assert _code(error) == "invalid_audio"
    with pytest.raises(JobFailure) as error:
        list(decode(video_only(tmp_path / "silent-film.mp4", 2.0), NO_LIMIT_S))
    assert _code(error) == "no_audio_stream"


# --- end to end ----------------------------------------------------------------------------------------


def _final(client: httpx.Client, path: Path) -> dict:
    response = submit(client, path)
    assert response.status_code == 202, response.text
    return wait_for(client, response.json()["id"])


def _assert_failed(job: dict, code: str) -> None:
    assert job["status"] == "failed", job
    assert job["error"]["code"] == code and job["error"]["message"]


def test_text_file_fails_as_invalid_audio(client: httpx.Client, tmp_path: Path) -> None:
    text = tmp_path / "agenda.m4a"
    text.write_text("1. budget\n2. hiring\n3. any other business\n" * 40)
    _assert_failed(_final(client, text), "invalid_audio")


def test_video_without_audio_fails_as_no_audio_stream(client: httpx.Client, tmp_path: Path) -> None:
    _assert_failed(_final(client, video_only(tmp_path / "screen-recording.mp4", 3.0)), "no_audio_stream")


def test_silence_completes_with_no_segments(client: httpx.Client, tmp_path: Path) -> None:
    room_tone = np.random.default_rng(7).normal(0, 0.001, 20 * SAMPLE_RATE).astype(np.float32)  # -60 dBFS
    job = _final(client, write_wav(tmp_path / "room-tone.wav", room_tone))
    assert job["status"] == "completed", job["error"]
    assert job["segments"] == [] and job["text"] == ""
    assert job["duration_s"] == pytest.approx(20.0, abs=0.01)
    assert job["progress"]["chunks_total"] == 0


def test_header_only_wav_completes_with_no_segments(client: httpx.Client, tmp_path: Path) -> None:
    empty = write_wav(tmp_path / "empty.wav", np.zeros(0, dtype=np.float32))
    assert empty.stat().st_size == 44
    job = _final(client, empty)
    assert job["status"] == "completed", job["error"]
    assert job["segments"] == [] and job["text"] == ""
    assert job["duration_s"] == 0


@pytest.fixture(scope="module")
def limited(
    service_env: dict[str, str], redis_databases: RedisDatabases, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[httpx.Client]:
    """A second API and worker on the same database and storage, with a 10 s limit."""
    # A broker of its own: the suite's worker must not take these jobs, nor this one the suite's.
    broker = redis_databases.url(redis_databases.spare)
    env = service_env | {"TINGXIE_BROKER_URL": broker, "TINGXIE_MAX_DURATION_SECONDS": str(LIMIT_S)}
    platform = Platform(env, tmp_path_factory.mktemp("limits-logs")).start()
    try:
        with platform.client() as client:
            yield client
    finally:
        platform.stop()


@pytest.mark.parametrize("fixture", ["declared", "undeclared", "lying"])
def test_too_long_fails(fixture: str, limited: httpx.Client, request: pytest.FixtureRequest) -> None:
    _assert_failed(_final(limited, request.getfixturevalue(fixture)), "audio_too_long")
