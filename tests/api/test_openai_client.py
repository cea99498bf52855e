"""OpenAI's own Python client against the platform's `/v1/audio/transcriptions`, in every response format,
on the keyless loopback install (the client always sends a key: one that matches none is the local user)
and with keys, where a wrong one raises the client's AuthenticationError."""

from pathlib import Path

import httpx
import openai
import pytest

from tests.conftest import Platform
from tests.corpus import manifest
from tests.helpers import wer
from tests.subtitles import srt_cues

CLIP = manifest()["en/sense_and_sensibility_01_austen_64kb-0870.wav"]


def _client(platform: Platform, key: str) -> openai.OpenAI:
    # No retries: a retried 5xx would submit the recording again and hide what the first answer was.
    return openai.OpenAI(base_url=f"{platform.url}/v1", api_key=key, max_retries=0, timeout=120)


def _transcribe(client: openai.OpenAI, path: Path, **options: object) -> object:
    with path.open("rb") as audio:
        return client.audio.transcriptions.create(model="whisper-1", file=audio, **options)  # type: ignore[call-overload]


@pytest.fixture
def keyless(platform: Platform) -> openai.OpenAI:
    return _client(platform, "sk-anything-at-all")


def test_json_gives_the_text(keyless: openai.OpenAI) -> None:
    transcription = _transcribe(keyless, CLIP.path)
    assert isinstance(transcription, openai.types.audio.Transcription)
    assert wer(CLIP.reference, transcription.text) <= 0.5


def test_text_srt_and_vtt_come_back_as_strings(keyless: openai.OpenAI) -> None:
    text = _transcribe(keyless, CLIP.path, response_format="text")
    assert isinstance(text, str) and wer(CLIP.reference, text) <= 0.5
    srt = _transcribe(keyless, CLIP.path, response_format="srt")
    assert isinstance(srt, str)
    cues = srt_cues(srt)
    assert cues and [cue.number for cue in cues] == list(range(1, len(cues) + 1))
    assert all(cue.start < cue.end for cue in cues)
    vtt = _transcribe(keyless, CLIP.path, response_format="vtt")
    assert isinstance(vtt, str) and vtt.startswith("WEBVTT\n\n") and " --> " in vtt


def test_verbose_json_with_both_granularities(keyless: openai.OpenAI) -> None:
    verbose = _transcribe(
        keyless, CLIP.path, response_format="verbose_json", timestamp_granularities=["segment", "word"]
    )
    assert isinstance(verbose, openai.types.audio.TranscriptionVerbose)
    assert verbose.language == "en" and verbose.duration == pytest.approx(CLIP.duration, abs=0.1)
    assert verbose.segments and [segment.id for segment in verbose.segments] == list(range(len(verbose.segments)))
    assert all(0 <= segment.start < segment.end <= verbose.duration + 0.01 for segment in verbose.segments)
    # pocketsphinx gives word times: the client parses them into its own TranscriptionWord objects.
    assert verbose.words and wer(CLIP.reference, " ".join(word.word for word in verbose.words)) <= 0.5
    starts = [word.start for word in verbose.words]
    assert starts == sorted(starts) and all(word.start < word.end <= verbose.duration for word in verbose.words)
    words_only = _transcribe(keyless, CLIP.path, response_format="verbose_json", timestamp_granularities=["word"])
    assert words_only.segments is None and words_only.words == verbose.words  # type: ignore[attr-defined]


def test_bad_input_raises_the_clients_own_exceptions_with_openai_error_types(keyless: openai.OpenAI) -> None:
    with pytest.raises(openai.UnprocessableEntityError) as bad_language:
        _transcribe(keyless, CLIP.path, language="xx-not-a-language")
    error = bad_language.value.body
    assert isinstance(error, dict)
    assert error["type"] == "invalid_request_error" and error["code"] == "invalid_language"
    with pytest.raises(openai.UnprocessableEntityError) as bad_granularity:
        _transcribe(keyless, CLIP.path, response_format="verbose_json", timestamp_granularities=["sentence"])
    assert bad_granularity.value.code == "invalid_timestamp_granularities"


def test_other_routes_keep_their_error_shape(platform: Platform) -> None:
    refused = httpx.get(f"{platform.url}/v1/jobs/not-a-uuid")
    assert refused.status_code == 422 and set(refused.json()["error"]) == {"code", "message"}


def test_a_token_that_is_no_key_is_the_local_user_on_every_route(platform: Platform) -> None:
    listed = httpx.get(f"{platform.url}/v1/jobs", headers={"Authorization": "Bearer sk-whatever"})
    assert listed.status_code == 200, listed.text


def test_with_keys_the_right_key_transcribes_and_a_wrong_one_is_refused(platform: Platform, key_secret: str) -> None:
    transcription = _transcribe(_client(platform, key_secret), CLIP.path)
    assert wer(CLIP.reference, transcription.text) <= 0.5  # type: ignore[attr-defined]
    with pytest.raises(openai.AuthenticationError) as refused:
        _transcribe(_client(platform, "sk-not-a-key"), CLIP.path)
    error = refused.value.body
    assert isinstance(error, dict) and error["type"] == "authentication_error" and error["code"] == "unauthorized"
