"""A transcript's segments in recording time: made by the worker, stored as JSON, rendered by the API.

They stay this type from the moment engine output is placed in the recording (`worker.merge`) until the
API renders them; the dict form exists only at the database boundary."""

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class TranscriptSegment:
    start: float  # seconds from the start of the recording
    end: float
    language: str | None  # API language code; None when the engine could not tell
    text: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> "TranscriptSegment":
        return cls(start=row["start"], end=row["end"], language=row["language"], text=row["text"])


def to_rows(segments: Iterable[TranscriptSegment]) -> list[dict[str, Any]]:
    return [segment.as_dict() for segment in segments]


def from_rows(rows: Iterable[dict[str, Any]] | None) -> list[TranscriptSegment]:
    return [TranscriptSegment.from_dict(row) for row in rows or []]
