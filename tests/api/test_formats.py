"""Transcript renderings, checked on a real transcription and on exact timestamps."""

import httpx

from api import formats
from tests.corpus import OSR
from tests.helpers import submit, wait_for
from tingxie.transcript import TranscriptSegment

SEGMENTS = [
    TranscriptSegment(start=0.5, end=2.25, language="zh", text="你好"),
    TranscriptSegment(start=3661.0, end=3662.999, language="en", text="hello there"),
]


def test_txt_has_one_tagged_line_per_segment() -> None:
    assert formats.to_txt(SEGMENTS) == "[zh] 你好\n[en] hello there\n"


def test_speakers_prefix_every_format() -> None:
    spoken = [segment.with_speaker(speaker) for segment, speaker in zip(SEGMENTS, ["S1", "S2"], strict=True)]
    assert formats.to_txt(spoken) == "[S1][zh] 你好\n[S2][en] hello there\n"
    assert "\n[S1] 你好\n" in formats.to_srt(spoken) and "\n[S2] hello there\n" in formats.to_srt(spoken)
    assert "\n<v S1>你好\n" in formats.to_vtt(spoken) and "\n<v S2>hello there\n" in formats.to_vtt(spoken)


def test_srt_numbers_cues_with_comma_milliseconds() -> None:
    assert formats.to_srt(SEGMENTS) == (
        "1\n00:00:00,500 --> 00:00:02,250\n你好\n\n2\n01:01:01,000 --> 01:01:02,999\nhello there\n\n"
    )


def test_vtt_has_header_and_dot_milliseconds() -> None:
    assert formats.to_vtt(SEGMENTS) == (
        "WEBVTT\n\n00:00:00.500 --> 00:00:02.250\n你好\n\n01:01:01.000 --> 01:01:02.999\nhello there\n\n"
    )


def test_every_format_over_http(client: httpx.Client) -> None:
    job = wait_for(client, submit(client, OSR).json()["id"])
    segments = job["segments"]
    assert all(segment["words"] and segment["speaker"] is None for segment in segments)
    srt = client.get(f"/v1/jobs/{job['id']}/transcript", params={"format": "srt"})
    assert srt.headers["content-type"].startswith("application/x-subrip")
    cues = srt.text.count(" --> ")
    assert cues >= len(segments) and srt.text.startswith("1\n")  # long segments become several cues
    vtt = client.get(f"/v1/jobs/{job['id']}/transcript", params={"format": "vtt"})
    assert vtt.text.startswith("WEBVTT\n\n") and vtt.text.count(" --> ") == cues
    as_json = client.get(f"/v1/jobs/{job['id']}/transcript", params={"format": "json"}).json()
    assert as_json["segments"] == segments
    bad = client.get(f"/v1/jobs/{job['id']}/transcript", params={"format": "docx"})
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_request"
