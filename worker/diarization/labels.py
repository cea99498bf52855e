"""Speakers onto the transcript: each word gets the speaker whose turn it overlaps most (or the nearest
turn, for a word said in a gap between turns), and a segment whose words change speaker is split there.
A segment without word times gets the speaker it overlaps most as a whole. Speakers are then renamed S1,
S2, ... in order of first appearance in the transcript, so a speaker with no words leaves no gap."""

from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import replace
from itertools import groupby

from tingxie.languages import join_words
from tingxie.transcript import SpeakerTurn, TranscriptSegment, TranscriptWord


def with_speakers(segments: Sequence[TranscriptSegment], turns: Sequence[SpeakerTurn]) -> list[TranscriptSegment]:
    if not turns:
        return list(segments)
    timeline = _Timeline(turns)
    labelled = [part for segment in segments for part in _split_by_speaker(segment, timeline)]
    return _renamed(labelled)


class _Timeline:
    """The turns in time order, for finding who spoke over a span."""

    def __init__(self, turns: Sequence[SpeakerTurn]) -> None:
        self._turns = sorted(turns, key=lambda turn: turn.start)
        self._starts = [turn.start for turn in self._turns]

    def speaker(self, start: float, end: float) -> str:
        """The speaker who holds most of [start, end]; the nearest turn's when none overlaps it."""
        first = max(0, bisect_right(self._starts, start) - 1)
        overlaps: dict[str, float] = {}
        for turn in self._turns[first:]:
            if turn.start > end:
                break
            shared = min(end, turn.end) - max(start, turn.start)
            if shared > 0:
                overlaps[turn.speaker] = overlaps.get(turn.speaker, 0.0) + shared
        if overlaps:
            return max(overlaps, key=lambda speaker: overlaps[speaker])
        return self._nearest(start, end, first)

    def _nearest(self, start: float, end: float, first: int) -> str:
        near = self._turns[max(0, first - 1) : first + 2]
        return min(near, key=lambda turn: max(turn.start - end, start - turn.end)).speaker


def _split_by_speaker(segment: TranscriptSegment, timeline: _Timeline) -> list[TranscriptSegment]:
    if not segment.words:
        return [segment.with_speaker(timeline.speaker(segment.start, segment.end))]
    runs = [
        (speaker, tuple(words))
        for speaker, words in groupby(segment.words, key=lambda word: timeline.speaker(word.start, word.end))
    ]
    if len(runs) == 1:
        return [segment.with_speaker(runs[0][0])]
    return [
        _part(segment, speaker, words, first=i == 0, last=i == len(runs) - 1) for i, (speaker, words) in enumerate(runs)
    ]


def _part(
    segment: TranscriptSegment, speaker: str, words: tuple[TranscriptWord, ...], first: bool, last: bool
) -> TranscriptSegment:
    return replace(
        segment,
        start=segment.start if first else words[0].start,
        end=segment.end if last else words[-1].end,
        text=join_words([word.text for word in words], segment.language),
        words=words,
        speaker=speaker,
    )


def _renamed(segments: list[TranscriptSegment]) -> list[TranscriptSegment]:
    names: dict[str, str] = {}
    for segment in segments:
        if segment.speaker is not None:
            names.setdefault(segment.speaker, f"S{len(names) + 1}")
    return [segment.with_speaker(names.get(segment.speaker or "")) for segment in segments]
