"""Damaged and stitched-together files decode as far as FFmpeg's own command line would take them.

Real recordings arrive imperfect: two MP3s joined with `cat` (a second header, another sample rate and
channel count mid-stream), a few corrupted packets, a file cut short by a full disk. Those keep every
packet that decodes. A file that is mostly noise bytes behind a valid header is refused as `invalid_audio`
rather than transcribed from garbage."""

import logging
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.audio_fixtures import decoded, envelope, similarity, transcode
from tests.corpus import manifest
from tests.helpers import submit, wait_for, wer
from tingxie.errors import JobFailure
from worker.audio.decode import SAMPLE_RATE, DecodeReport, decode

NO_LIMIT_S = 3600.0
FIRST, SECOND = "en/jfk.wav", "en/OSR_us_000_0034_8k.wav"
JOIN_TOLERANCE_S = 0.15  # each MP3 adds an encoder delay and pads its last frame
MAX_LAG_FRAMES = 10  # 200 ms: MP3 encoder delay and padding between the two files
SPLICES = 40  # corrupted byte runs in the damaged MP3


def _seconds(path: Path) -> float:
    return sum(len(block) for block in decode(path, NO_LIMIT_S)) / SAMPLE_RATE


def _warnings(path: Path) -> list[str]:
    """The codes of the warnings a decode of `path` reports."""
    report = DecodeReport()
    for _ in decode(path, NO_LIMIT_S, report):
        pass
    return [warning.code for warning in report.warnings()]


def _cut_in_half(source: Path) -> Path:
    cut = source.with_name(f"cut-{source.name}")
    data = source.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    return cut


@pytest.fixture(scope="module")
def parts(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The same speech as two MP3s that differ in everything a stream can: rate, channels, header."""
    directory = tmp_path_factory.mktemp("damaged")
    clips = manifest()
    first = transcode(clips[FIRST].path, directory / "first.mp3", "mp3", "libmp3lame", 44_100, "stereo", "s16p")
    second = transcode(clips[SECOND].path, directory / "second.mp3", "mp3", "libmp3lame", 22_050, "mono", "s16p")
    return first, second


@pytest.fixture(scope="module")
def joined(parts: tuple[Path, Path]) -> Path:
    first, second = parts
    path = first.with_name("joined.mp3")
    path.write_bytes(first.read_bytes() + second.read_bytes())
    return path


def _damaged_copy(source: Path, name: str, head: int, rng: np.random.Generator, body: bytes | None = None) -> Path:
    """`source` with its first `head` bytes intact; after them either `body`, or the rest of the file with
    `SPLICES` runs of random bytes written over it."""
    data = bytearray(source.read_bytes())
    if body is not None:
        data[head:] = body
    else:
        for offset in rng.integers(head, len(data) - 64, SPLICES):
            data[offset : offset + 50] = rng.integers(0, 256, 50, dtype=np.uint8).tobytes()
    path = source.with_name(name)
    path.write_bytes(bytes(data))
    return path


def test_files_joined_with_cat_decode_to_both(parts: tuple[Path, Path], joined: Path) -> None:
    first, second = parts
    assert abs(_seconds(joined) - (_seconds(first) + _seconds(second))) < JOIN_TOLERANCE_S
    # The second file's speech is really there, not noise: after the first file's length (give or take
    # the codec delay), the joined file's loudness follows the second file decoded alone.
    rest, alone = envelope(decoded(joined)[len(decoded(first)) :]), envelope(decoded(second))
    assert max(similarity(rest[lag:], alone) for lag in range(MAX_LAG_FRAMES)) > 0.95


def test_damaged_packets_are_skipped(parts: tuple[Path, Path], caplog: pytest.LogCaptureFixture) -> None:
    _, second = parts
    damaged = _damaged_copy(second, "damaged.mp3", 2_000, np.random.default_rng(0))
    with caplog.at_level(logging.WARNING, logger="worker.audio.decode"):
        seconds = _seconds(damaged)
    assert seconds > 0.9 * _seconds(second)
    assert "damaged packets" in caplog.text
    assert _warnings(damaged) == ["damaged_audio_skipped"]


def test_intact_files_have_no_warnings(parts: tuple[Path, Path]) -> None:
    for path in parts:
        assert _warnings(path) == [], path.name


def test_a_file_cut_short_keeps_what_was_written(parts: tuple[Path, Path]) -> None:
    _, second = parts
    cut = _cut_in_half(second)
    assert 0.4 * _seconds(second) < _seconds(cut) < 0.6 * _seconds(second)
    # The MP3's Xing header still counts every frame of the whole file.
    assert _warnings(cut) == ["audio_truncated"]


def test_noise_behind_a_valid_header_is_invalid_audio(parts: tuple[Path, Path]) -> None:
    _, second = parts
    rng = np.random.default_rng(1)
    noise = _damaged_copy(second, "noise.mp3", 800, rng, body=rng.integers(0, 256, 300_000, dtype=np.uint8).tobytes())
    with pytest.raises(JobFailure, match="packets are damaged") as error:
        _seconds(noise)
    assert error.value.code == "invalid_audio"


def test_joined_file_transcribes_end_to_end(client: httpx.Client, joined: Path) -> None:
    clips = manifest()
    reference = f"{clips[FIRST].reference} {clips[SECOND].reference}"
    response = submit(client, joined)
    assert response.status_code == 202, response.text
    job = wait_for(client, response.json()["id"])
    assert job["status"] == "completed", job
    assert wer(reference, job["text"]) < 0.4, job["text"]


def test_a_file_cut_short_completes_with_a_warning(client: httpx.Client, parts: tuple[Path, Path]) -> None:
    _, second = parts
    response = submit(client, _cut_in_half(second))
    assert response.status_code == 202, response.text
    job = wait_for(client, response.json()["id"])
    assert job["status"] == "completed", job
    assert job["text"], job
    assert [warning["code"] for warning in job["warnings"]] == ["audio_truncated"], job["warnings"]
    assert "cut short" in job["warnings"][0]["message"]
