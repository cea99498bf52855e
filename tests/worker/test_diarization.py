"""Speaker labels on conversations made of real clips of different speakers (tests/conversations.py): the
diarizer alone, the worker's steps in this process (a forced failure among them), and a job submitted over
HTTP to the running platform."""

import uuid
from pathlib import Path

import httpx
import pytest
import redis

from tests.audio_fixtures import write_wav
from tests.conftest import clear_caches
from tests.conversations import Conversation, conversation, diarization_error
from tests.helpers import job_and_chunks, stored_job, wait_for
from tingxie.engines import speaker_encoder_weights
from tingxie.states import Diarization
from tingxie.transcript import SpeakerTurn, TranscriptSegment, TranscriptWord, from_rows
from worker import service, tasks
from worker.diarization.clustering import SpeakerCount
from worker.diarization.diarize import Diarizer
from worker.diarization.encoder import load_encoder
from worker.diarization.labels import with_speakers

COLLAR = 0.25


def _diarized(talk: Conversation, count: SpeakerCount) -> list[SpeakerTurn]:
    weights = speaker_encoder_weights(None)
    assert weights is not None, "resemblyzer's weights are part of the install"
    diarizer = Diarizer(load_encoder(weights))
    step = 60 * 16_000  # fed in chunks, as the worker feeds stored chunks
    for first in range(0, len(talk.samples), step):
        diarizer.add(first / 16_000, talk.samples[first : first + step])
    return diarizer.turns(count)


def _error(talk: Conversation, turns: list[SpeakerTurn]) -> float:
    hypothesis = [(turn.start, turn.end, turn.speaker) for turn in turns]
    return diarization_error(talk.turns, hypothesis, talk.duration, collar=COLLAR).rate


def test_two_speakers_are_found_with_their_turns_in_place() -> None:
    talk = conversation(["lucier", "osr"], seed=0)
    turns = _diarized(talk, SpeakerCount())
    assert {turn.speaker for turn in turns} == {"S1", "S2"}
    assert _error(talk, turns) <= 0.2
    assert [turn.start for turn in turns] == sorted(turn.start for turn in turns)
    assert turns[0].speaker == "S1"  # named in order of first appearance


def test_the_count_given_overrules_the_clustering() -> None:
    talk = conversation(["lucier", "osr"], seed=1)
    assert {turn.speaker for turn in _diarized(talk, SpeakerCount(exactly=1))} == {"S1"}
    assert len({turn.speaker for turn in _diarized(talk, SpeakerCount(at_least=3))}) == 3


def test_words_that_straddle_a_change_of_speaker_split_their_segment() -> None:
    words = tuple(TranscriptWord(float(i), i + 0.8, word) for i, word in enumerate(["yes", "I", "agree", "but", "no"]))
    segment = TranscriptSegment(0.0, 4.8, "en", "yes I agree but no", words=words)
    turns = [SpeakerTurn(0.0, 2.9, "S2"), SpeakerTurn(3.1, 5.0, "S1")]  # named by the diarizer's own order
    first, second = with_speakers([segment], turns)
    assert (first.speaker, first.text, first.start, first.end) == ("S1", "yes I agree", 0.0, 2.8)
    assert (second.speaker, second.text, second.start, second.end) == ("S2", "but no", 3.0, 4.8)
    lone = TranscriptSegment(10.0, 12.0, "en", "later", words=(TranscriptWord(10.0, 12.0, "later"),))
    assert with_speakers([lone], turns)[0].speaker == "S1"  # in no turn: the nearest one's speaker


def _run_steps_with_diarization(job_id: uuid.UUID) -> None:
    """prepare -> every chunk -> diarize (through its Celery task, in this process) -> finalize."""
    service.prepare(job_id)
    for chunk in job_and_chunks(job_id)[1]:
        service.transcribe(job_id, chunk.index)
    service.finalize(job_id)  # too early: it waits for the speaker turns
    assert job_and_chunks(job_id)[0].status == "processing"
    tasks.diarize.apply(args=[str(job_id)])
    service.finalize(job_id)


@pytest.fixture(scope="module")
def two_speakers(tmp_path_factory: pytest.TempPathFactory) -> tuple[Conversation, Path]:
    talk = conversation(["lucier", "osr"], seed=2)
    return talk, write_wav(tmp_path_factory.mktemp("talk") / "two_speakers.wav", talk.samples)


def _segments_on_their_speakers_turns(talk: Conversation, segments: list[TranscriptSegment]) -> float:
    """The share of the transcript's time whose speaker is the reference speaker there (under the best
    one-to-one naming)."""
    names = sorted(talk.speakers)
    shared: dict[tuple[str, str], float] = {}
    for segment in segments:
        for turn in talk.turns:
            overlap = min(segment.end, turn.end) - max(segment.start, turn.start)
            if overlap > 0 and segment.speaker is not None:
                shared[(segment.speaker, turn.speaker)] = shared.get((segment.speaker, turn.speaker), 0) + overlap
    best = max(
        shared.get(("S1", names[0]), 0) + shared.get(("S2", names[1]), 0),
        shared.get(("S1", names[1]), 0) + shared.get(("S2", names[0]), 0),
    )
    return best / sum(shared.values())


def test_the_worker_labels_the_transcript(idle_broker: redis.Redis, two_speakers: tuple[Conversation, Path]) -> None:
    talk, path = two_speakers
    job_id = stored_job(path, diarization=Diarization.PENDING)
    _run_steps_with_diarization(job_id)
    job, _ = job_and_chunks(job_id)
    assert job.status == "completed" and job.diarization == Diarization.DONE and not job.warnings
    segments = from_rows(job.segments)
    assert {segment.speaker for segment in segments} == {"S1", "S2"}
    assert _segments_on_their_speakers_turns(talk, segments) >= 0.85


def test_a_failed_diarization_still_completes_the_job_with_a_warning(
    idle_broker: redis.Redis, monkeypatch: pytest.MonkeyPatch, two_speakers: tuple[Conversation, Path], tmp_path: Path
) -> None:
    broken = tmp_path / "encoder.pt"
    broken.write_bytes(b"not a torch checkpoint")
    monkeypatch.setenv("TINGXIE_SPEAKER_ENCODER_PATH", str(broken))
    clear_caches()
    job_id = stored_job(two_speakers[1], diarization=Diarization.PENDING)
    _run_steps_with_diarization(job_id)
    job, _ = job_and_chunks(job_id)
    assert job.status == "completed" and job.diarization == Diarization.FAILED
    assert [warning["code"] for warning in job.warnings or []] == ["diarization_failed"]
    segments = from_rows(job.segments)
    assert segments and job.text and all(segment.speaker is None for segment in segments)


def test_a_job_asks_for_speakers_over_http(client: httpx.Client, two_speakers: tuple[Conversation, Path]) -> None:
    talk, path = two_speakers
    assert client.get("/v1/engines").json()["diarization"] == {"available": True, "default": "off"}
    with path.open("rb") as audio:
        submitted = client.post("/v1/jobs", files={"file": audio}, data={"diarize": "true", "max_speakers": "4"})
    assert submitted.status_code == 202, submitted.text
    assert submitted.json()["diarization"] == "pending"
    job = wait_for(client, submitted.json()["id"])
    assert job["status"] == "completed" and job["diarization"] == "done", job
    segments = from_rows(job["segments"])
    assert {segment.speaker for segment in segments} == {"S1", "S2"}
    assert _segments_on_their_speakers_turns(talk, segments) >= 0.85
    txt = client.get(f"/v1/jobs/{job['id']}/transcript", params={"format": "txt"}).text
    assert txt.startswith("[S1][en] ") and "\n[S2][en] " in txt
    with path.open("rb") as audio:
        plain = client.post("/v1/jobs", files={"file": audio})
    assert wait_for(client, plain.json()["id"])["diarization"] is None  # off unless asked: the server's default


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"diarize": "perhaps"}, "invalid_diarize"),
        ({"speakers": "0"}, "invalid_speakers"),
        ({"speakers": "two"}, "invalid_speakers"),
        ({"max_speakers": "21"}, "invalid_speakers"),
        ({"min_speakers": "3", "max_speakers": "2"}, "invalid_speakers"),
        ({"speakers": "2", "max_speakers": "3"}, "invalid_speakers"),
    ],
)
def test_bad_speaker_fields_are_refused(client: httpx.Client, fields: dict[str, str], code: str) -> None:
    response = client.post("/v1/jobs", files={"file": b"RIFF"}, data=fields)
    assert response.status_code == 422 and response.json()["error"]["code"] == code, response.text
