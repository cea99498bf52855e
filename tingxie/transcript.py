"""A transcript's segments in recording time: made by the worker, stored as JSON, rendered by the API.

They stay these types from the moment engine output is placed in the recording (`worker.merge`) until the
API renders them; the dict form exists only at the database boundary. Rows stored before segments had
words or speakers read back with none."""

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any


@dataclass(frozen=True)
class TranscriptWord:
    start: float  # seconds from the start of the recording
    end: float
    text: str

    def as_dict(self) -> dict[str, Any]:
        return {"start": self.start, "end": self.end, "text": self.text}

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> "TranscriptWord":
        return cls(start=row["start"], end=row["end"], text=row["text"])


@dataclass(frozen=True)
class TranscriptSegment:
    start: float  # seconds from the start of the recording
    end: float
    language: str | None  # API language code; None when the engine could not tell
    text: str
    words: tuple[TranscriptWord, ...] = ()  # in time order, inside [start, end]; empty when the engine gave none
    speaker: str | None = None  # "S1", "S2", ... in order of first appearance; None without diarization

    def as_dict(self) -> dict[str, Any]:
        return {
            "start": self.start,
            "end": self.end,
            "language": self.language,
            "text": self.text,
            "speaker": self.speaker,
            "words": [word.as_dict() for word in self.words],
        }

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> "TranscriptSegment":
        return cls(
            start=row["start"],
            end=row["end"],
            language=row["language"],
            text=row["text"],
            words=tuple(TranscriptWord.from_dict(word) for word in row.get("words") or ()),
            speaker=row.get("speaker"),
        )

    def with_speaker(self, speaker: str | None) -> "TranscriptSegment":
        return replace(self, speaker=speaker)


MAX_SPEAKERS = 20  # the most speakers a job may ask for, and the most the clustering finds


@dataclass(frozen=True)
class SpeakerTurn:
    """A stretch of the recording one speaker holds, as diarization found it."""

    start: float  # seconds from the start of the recording
    end: float
    speaker: str

    def as_dict(self) -> dict[str, Any]:
        return {"start": self.start, "end": self.end, "speaker": self.speaker}

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> "SpeakerTurn":
        return cls(start=row["start"], end=row["end"], speaker=row["speaker"])


def to_rows(segments: Iterable[TranscriptSegment]) -> list[dict[str, Any]]:
    return [segment.as_dict() for segment in segments]


def from_rows(rows: Iterable[dict[str, Any]] | None) -> list[TranscriptSegment]:
    return [TranscriptSegment.from_dict(row) for row in rows or []]
