"""Every container and codec people upload is decoded to the same speech.

One real recording (~76 s of English clips from the corpus joined by 1 s pauses, as a 16 kHz WAV) is
re-encoded in each format: PCM WAV in four sample formats at several rates and channel counts, FLAC, MP3,
AAC (m4a), Vorbis (ogg), Opus (ogg and webm), and MP4 / MKV videos with an audio track. Each decodes to the
right length at 16 kHz mono with the original's loudness envelope, and transcribes over HTTP, end to end,
as well as the original WAV does."""

from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from tests.audio_fixtures import (
    FORMATS,
    Format,
    concatenate_with_pauses,
    envelope,
    load_16k,
    make_formats,
    write_wav,
)
from tests.conftest import MAX_UPLOAD_BYTES, Platform
from tests.corpus import Clip, manifest
from tests.helpers import submit, wait_for, wer
from worker.audio.decode import SAMPLE_RATE, declared_duration, decode

# Pocketsphinx turns a word or two differently on any re-sampled copy; over ~150 words that stays within
# the margin, while over one 35 s clip it does not.
CLIPS = (
    "en/OSR_us_000_0034_8k.wav",
    "en/jfk.wav",
    "en/sense_and_sensibility_01_austen_64kb-0870.wav",
    "en/spk1_snt1.wav",
    "en/spk1_snt4.wav",
    "en/spk1_snt5.wav",
    "en/sense_and_sensibility_01_austen_64kb-0880.wav",
    "en/goforward.wav",
)
PAUSE_S = 1.0
DURATION_TOLERANCE_S = 0.05  # codec frames and encoder delay, at most a couple of frames
DECLARED_TOLERANCE_S = 0.1  # a container's duration spans its longest stream: one 0.1 s video frame more
WER_MARGIN = 0.05
NO_LIMIT_S = 3600.0


@pytest.fixture(scope="module")
def original(tmp_path_factory: pytest.TempPathFactory) -> Clip:
    clips = [manifest()[name] for name in CLIPS]
    samples, _ = concatenate_with_pauses([clip.path for clip in clips], PAUSE_S, trim=False)
    path = write_wav(tmp_path_factory.mktemp("original") / "english.wav", samples)
    reference = " ".join(clip.reference for clip in clips)
    return Clip(path, "en", len(samples) / SAMPLE_RATE, reference)


@pytest.fixture(scope="module")
def encoded(original: Clip, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    made = make_formats(original.path, tmp_path_factory.mktemp("formats"))
    too_big = [path.name for path in made.values() if path.stat().st_size >= MAX_UPLOAD_BYTES]
    assert not too_big, f"over the suite's upload limit: {too_big}"
    return made


def _submit(client: httpx.Client, path: Path) -> str:
    response = submit(client, path)
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def _completed(client: httpx.Client, job_id: str) -> dict[str, Any]:
    job = wait_for(client, job_id, timeout=600)
    assert job["status"] == "completed", job["error"]
    return job


@pytest.fixture(scope="module")
def submitted(original: Clip, encoded: dict[str, Path], platform: Platform) -> dict[str, str]:
    """Every format and the original submitted at once, so one file is prepared while another is
    transcribed; each test then waits for its own job."""
    with platform.client() as client:
        return {"original": _submit(client, original.path)} | {
            name: _submit(client, path) for name, path in encoded.items()
        }


@pytest.fixture(scope="module")
def original_wer(original: Clip, submitted: dict[str, str], platform: Platform) -> float:
    """The WAV original through the same HTTP path: the bar every other format is held to."""
    with platform.client() as client:
        return wer(original.reference, _completed(client, submitted["original"])["text"])


@pytest.mark.parametrize("fmt", FORMATS, ids=lambda fmt: fmt.name)
def test_decodes_to_16k_mono_of_right_length(fmt: Format, encoded: dict[str, Path], original: Clip) -> None:
    path = encoded[fmt.name]
    blocks = list(decode(path, NO_LIMIT_S))
    assert all(block.ndim == 1 and block.dtype == np.float32 for block in blocks)
    samples = np.concatenate(blocks)
    assert len(samples) / SAMPLE_RATE == pytest.approx(original.duration, abs=DURATION_TOLERANCE_S)
    declared = declared_duration(path)
    assert declared is not None and declared == pytest.approx(original.duration, abs=DECLARED_TOLERANCE_S)
    # Same speech, not just the same length: a wrong rate or channel mix would distort the envelope.
    reference = envelope(load_16k(original.path))
    loudness = envelope(samples)[: len(reference)]
    assert np.corrcoef(loudness, reference[: len(loudness)])[0, 1] > 0.99


@pytest.mark.parametrize("fmt", FORMATS, ids=lambda fmt: fmt.name)
def test_transcribes_end_to_end_as_well_as_the_original(
    fmt: Format, submitted: dict[str, str], original: Clip, original_wer: float, client: httpx.Client
) -> None:
    job = _completed(client, submitted[fmt.name])
    assert job["duration_s"] == pytest.approx(original.duration, abs=DURATION_TOLERANCE_S)
    assert job["languages"] == ["en"]
    assert job["warnings"] == []  # an intact file of any format is read whole
    assert job["progress"]["prepared_s"] == job["duration_s"]
    # One-sided: a broken decode only ever makes the transcript worse.
    assert wer(original.reference, job["text"]) <= original_wer + WER_MARGIN
