"""Turning engine output into a job's transcript: absolute times, time order, one text."""

import re
from collections.abc import Iterable, Sequence

from tingxie.languages import UNSPACED_LANGUAGES
from tingxie.transcript import TranscriptSegment, TranscriptWord
from worker.audio.plan import Window, to_absolute
from worker.engines.base import Segment, Transcription

# C0/C1 control characters (NUL above all, which Postgres cannot store) are never part of a transcript.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def window_segments(
    chunk_start: float, windows: Sequence[Window], results: Sequence[Transcription]
) -> list[TranscriptSegment]:
    """One chunk's segments in recording time, from its windows' results (in the windows' order, however
    the batcher mixed them with other chunks' windows on the way)."""
    return [
        _placed(chunk_start, window, segment)
        for window, result in zip(windows, results, strict=True)
        for segment in result.segments
        if clean_text(segment.text)
    ]


def clean_text(text: str) -> str:
    return " ".join(_CONTROL.sub("", text).split())


def _placed(chunk_start: float, window: Window, segment: Segment) -> TranscriptSegment:
    def at(offset: float) -> float:
        """A time in the window, in recording time; engines may report past the window's end."""
        return round(to_absolute(chunk_start, window.start, min(offset, window.end - window.start)), 3)

    words = tuple(
        TranscriptWord(start=at(word.start), end=at(word.end), text=text)
        for word in segment.words
        if (text := clean_text(word.text))
    )
    return TranscriptSegment(
        start=at(segment.start),
        end=at(segment.end),
        language=segment.language,
        text=clean_text(segment.text),
        words=words,
    )


def merge_segments(per_chunk: Iterable[Sequence[TranscriptSegment]]) -> list[TranscriptSegment]:
    merged = [segment for chunk in per_chunk for segment in chunk]
    return sorted(merged, key=lambda segment: (segment.start, segment.end))


def join_text(segments: Sequence[TranscriptSegment]) -> str:
    text = ""
    for segment in segments:
        if text and not _unspaced_join(text, segment):
            text += " "
        text += segment.text
    return text


def _unspaced_join(text: str, segment: TranscriptSegment) -> bool:
    return segment.language in UNSPACED_LANGUAGES and not text[-1].isascii()


def detected_languages(segments: Sequence[TranscriptSegment]) -> list[str]:
    """Languages in order of first appearance."""
    return list(dict.fromkeys(s.language for s in segments if s.language))
