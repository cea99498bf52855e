"""Reading SRT back in the tests: every cue's number, times and text (its lines joined by a space)."""

import re
from dataclasses import dataclass

_CUE = re.compile(r"(\d+)\n(\d\d):(\d\d):(\d\d),(\d{3}) --> (\d\d):(\d\d):(\d\d),(\d{3})\n(.+?)\n(?:\n|$)", re.S)


@dataclass(frozen=True)
class SrtCue:
    number: int
    start: float
    end: float
    lines: tuple[str, ...]

    @property
    def text(self) -> str:
        return " ".join(self.lines)


def _seconds(hours: str, minutes: str, seconds: str, millis: str) -> float:
    return int(hours) * 3600 + int(minutes) * 60 + int(seconds) + int(millis) / 1000


def srt_cues(text: str) -> list[SrtCue]:
    """The cues of `text`; every cue in it is read (the count of `-->` is checked against them)."""
    cues = [
        SrtCue(
            number=int(match[1]),
            start=_seconds(*match.groups()[1:5]),
            end=_seconds(*match.groups()[5:9]),
            lines=tuple(match[10].split("\n")),
        )
        for match in _CUE.finditer(text)
    ]
    assert text.count(" --> ") == len(cues), text[:2000]
    return cues


def words_of(texts: list[str]) -> list[str]:
    return " ".join(texts).split()
