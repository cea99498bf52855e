"""Transcript renderings: txt (one `[lang] text` line per segment), json, srt and vtt."""

from collections.abc import Sequence

from tingxie.transcript import TranscriptSegment

FORMATS = ("txt", "json", "srt", "vtt")


def to_txt(segments: Sequence[TranscriptSegment]) -> str:
    return "".join(f"[{s.language or 'unknown'}] {s.text}\n" for s in segments)


def _timestamp(seconds: float, separator: str) -> str:
    millis = round(seconds * 1000)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def _cue_time(segment: TranscriptSegment, separator: str) -> str:
    return f"{_timestamp(segment.start, separator)} --> {_timestamp(segment.end, separator)}"


def to_srt(segments: Sequence[TranscriptSegment]) -> str:
    return "".join(f"{number}\n{_cue_time(s, ',')}\n{s.text}\n\n" for number, s in enumerate(segments, start=1))


def to_vtt(segments: Sequence[TranscriptSegment]) -> str:
    cues = "".join(f"{_cue_time(s, '.')}\n{s.text}\n\n" for s in segments)
    return f"WEBVTT\n\n{cues}"
