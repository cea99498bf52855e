"""Subtitle cues from transcript segments: at most MAX_CUE_SECONDS on screen and MAX_LINES lines of
LINE_CHARS characters (characters, not bytes or display cells, so CJK text counts one per character).

A segment that fits is one cue with its own text and times. A longer one is split between words: each cue
takes as many words as fit, then steps back to the best break among the last two thirds of them, where a
sentence or clause ends or the speaker pauses. The words' own times place the cues; a segment without word
times (an engine that gives none) gets times shared out over its words in proportion to their length, which
is close for steady speech and can be off by a second or two where the speaker pauses mid-segment."""

import re
from collections.abc import Sequence
from dataclasses import dataclass

from tingxie.languages import is_spaced, space_between
from tingxie.transcript import TranscriptSegment, TranscriptWord

MAX_CUE_SECONDS = 7.0
LINE_CHARS = 42
MAX_LINES = 2

_SENTENCE_END = tuple(".!?…。！？")
_CLAUSE_END = tuple(",;:—，、；：")
_PAUSE_WORTH = 2.0  # break score per second of pause after a word, up to LONG_PAUSE
_LONG_PAUSE = 1.0
# In unspaced scripts a "word" is a character with the punctuation after it, or a run of Latin letters/digits.
_UNSPACED_TOKEN = re.compile(r"[A-Za-z0-9]+[^\w\s]*|\w[^\w\s]*|[^\w\s]+")


@dataclass(frozen=True)
class Cue:
    start: float
    end: float
    lines: tuple[str, ...]
    speaker: str | None

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


def subtitle_cues(segments: Sequence[TranscriptSegment]) -> list[Cue]:
    return [cue for segment in segments for cue in _segment_cues(segment)]


def _segment_cues(segment: TranscriptSegment) -> list[Cue]:
    spaced = is_spaced(segment.language)
    whole = _wrapped(_tokens(segment.text, spaced), spaced)
    if whole is not None and segment.end - segment.start <= MAX_CUE_SECONDS:
        return [Cue(segment.start, segment.end, whole, segment.speaker)]
    words = list(segment.words) or _proportional_words(segment, spaced)
    cues, first = [], 0
    while first < len(words):
        last = _longest_fit(words, first, spaced)
        if last < len(words):
            last = _best_break(words, first, last)
        run = words[first:last]
        texts = [word.text for word in run]
        # A single word too long for the lines (a URL, say) is a cue of its own, unbroken.
        lines = _wrapped(texts, spaced) or (_joined(texts, spaced),)
        cues.append(Cue(run[0].start, run[-1].end, lines, segment.speaker))
        first = last
    return cues


def _longest_fit(words: Sequence[TranscriptWord], first: int, spaced: bool) -> int:
    """The end (exclusive) of the longest run of words from `first` that fits one cue; at least one word."""
    last = first + 1
    while last < len(words) and _fits(words[first : last + 1], spaced):
        last += 1
    return last


def _fits(run: Sequence[TranscriptWord], spaced: bool) -> bool:
    if run[-1].end - run[0].start > MAX_CUE_SECONDS:
        return False
    return _wrapped([word.text for word in run], spaced) is not None


def _best_break(words: Sequence[TranscriptWord], first: int, fit: int) -> int:
    """Where to end a cue that could hold words[first:fit]: the best-scoring break among its last two thirds."""
    earliest = first + max(1, (fit - first + 2) // 3)
    candidates = range(earliest, fit + 1)
    return max(candidates, key=lambda end: _break_score(words, end) + (end - first) / (fit - first))


def _break_score(words: Sequence[TranscriptWord], end: int) -> float:
    """How good a place it is to break before words[end]."""
    text = words[end - 1].text
    score = 3.0 if text.endswith(_SENTENCE_END) else 1.5 if text.endswith(_CLAUSE_END) else 0.0
    if end < len(words):
        pause = words[end].start - words[end - 1].end
        score += _PAUSE_WORTH * min(max(pause, 0.0), _LONG_PAUSE)
    return score


def _wrapped(tokens: Sequence[str], spaced: bool) -> tuple[str, ...] | None:
    """The words in one line, or two balanced lines, of at most LINE_CHARS each; None if they do not fit."""
    text, breaks = _layout(tokens, spaced)
    if len(text) <= LINE_CHARS:
        return (text,)
    if len(text) > MAX_LINES * LINE_CHARS + 1:
        return None
    fitting = [(cut, resume) for cut, resume in breaks if cut <= LINE_CHARS and len(text) - resume <= LINE_CHARS]
    if not fitting:
        return None
    cut, resume = min(fitting, key=lambda pair: max(pair[0], len(text) - pair[1]))
    return (text[:cut], text[resume:])


def _layout(tokens: Sequence[str], spaced: bool) -> tuple[str, list[tuple[int, int]]]:
    """The words as one line of text, and each place it can be broken between two of them: where the first
    line would end and where the second would start (after the space, if there is one)."""
    text, breaks = "", []
    for token in tokens:
        if text:
            space = space_between(text, token, spaced)
            breaks.append((len(text), len(text) + space))
            text += " " if space else ""
        text += token
    return text, breaks


def _joined(tokens: Sequence[str], spaced: bool) -> str:
    return _layout(tokens, spaced)[0]


def _tokens(text: str, spaced: bool) -> list[str]:
    return text.split() if spaced else _UNSPACED_TOKEN.findall(text)


def _proportional_words(segment: TranscriptSegment, spaced: bool) -> list[TranscriptWord]:
    """Words for a segment without word times: its span shared out by their lengths."""
    tokens = _tokens(segment.text, spaced)
    weights = [len(token) + (1 if spaced else 0) for token in tokens]
    total, duration = sum(weights) or 1, segment.end - segment.start
    words, position = [], segment.start
    for token, weight in zip(tokens, weights, strict=True):
        end = position + duration * weight / total
        words.append(TranscriptWord(round(position, 3), round(end, 3), token))
        position = end
    return words
