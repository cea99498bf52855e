"""Subtitle cues: on a long real recording, every cue keeps to the limits, whether the segments carry word
times or not; breaks fall between words, at punctuation and pauses where there are some."""

from dataclasses import replace
from functools import cache

import pytest

from api import cues, formats
from tests.corpus import SPEECH
from tests.subtitles import srt_cues, words_of
from tingxie.settings import Settings
from tingxie.transcript import TranscriptSegment, TranscriptWord
from worker.batching import Prompt
from worker.engines.pocketsphinx import PocketsphinxEngine
from worker.local import transcribe_file


@cache
def lecture() -> tuple[TranscriptSegment, ...]:
    """100 s of a real lecture through pocketsphinx: short segments, each with its words' times."""
    settings = Settings(window_seconds=8)
    transcript = transcribe_file(SPEECH / "en" / "lucier.mp3", PocketsphinxEngine(), settings, Prompt(None, None))
    return tuple(transcript.segments)


def _as_long_segments(segments: tuple[TranscriptSegment, ...], seconds: float, words: bool) -> list[TranscriptSegment]:
    """Neighbouring segments joined into ones of about `seconds`, as a 30 s window of Qwen3-ASR gives."""
    joined: list[TranscriptSegment] = []
    for segment in segments:
        if joined and segment.end - joined[-1].start <= seconds:
            last = joined[-1]
            merged_words = last.words + segment.words if words else ()
            joined[-1] = replace(last, end=segment.end, text=f"{last.text} {segment.text}", words=merged_words)
        else:
            joined.append(segment if words else replace(segment, words=()))
    return joined


@pytest.mark.parametrize("words", [True, False], ids=["word-times", "no-word-times"])
def test_cues_of_a_long_recording_keep_to_the_limits(words: bool) -> None:
    segments = _as_long_segments(lecture(), seconds=30, words=words)
    assert max(segment.end - segment.start for segment in segments) > 20  # long enough to need splitting
    found = srt_cues(formats.to_srt(segments))
    assert len(found) > len(segments) and [cue.number for cue in found] == list(range(1, len(found) + 1))
    previous_end = 0.0
    for cue in found:
        assert previous_end <= cue.start < cue.end <= cue.start + cues.MAX_CUE_SECONDS + 0.001, cue
        assert len(cue.lines) <= cues.MAX_LINES and all(len(line) <= cues.LINE_CHARS for line in cue.lines), cue
        previous_end = cue.end
    # Every word once, in order, none cut in two.
    assert words_of([cue.text for cue in found]) == words_of([segment.text for segment in segments])


def test_cues_from_word_times_start_and_end_on_words() -> None:
    segments = _as_long_segments(lecture(), seconds=30, words=True)
    starts = {word.start for segment in segments for word in segment.words}
    ends = {word.end for segment in segments for word in segment.words}
    for cue in cues.subtitle_cues(segments):
        assert cue.start in starts and cue.end in ends


def test_a_long_cjk_segment_is_counted_by_characters_and_broken_after_punctuation() -> None:
    sentence = "今天我们讨论语音识别系统的部署方案，"  # 18 characters with the comma
    text = (sentence * 6).rstrip("，") + "。"
    segment = TranscriptSegment(start=10.0, end=34.0, language="zh", text=text)
    made = cues.subtitle_cues([segment])
    assert len(made) >= 4
    for cue in made:
        assert len(cue.lines) <= 2 and all(len(line) <= cues.LINE_CHARS for line in cue.lines)
        assert cue.end - cue.start <= cues.MAX_CUE_SECONDS
        assert " " not in cue.text
    assert "".join(cue.text.replace("\n", "") for cue in made) == text
    assert all(cue.text.endswith(("，", "。")) for cue in made)  # every break at a clause end
    assert made[0].start == 10.0 and made[-1].end == 34.0


def test_a_pause_is_preferred_to_a_break_mid_phrase() -> None:
    phrase = "so the first thing we did was to measure the room and then we played it back again"
    texts = phrase.split(" ")
    times = [i * 0.4 for i in range(len(texts))]
    pause_after = texts.index("room")
    words = tuple(
        TranscriptWord(t + (1.0 if i > pause_after else 0.0), t + 0.35 + (1.0 if i > pause_after else 0.0), w)
        for i, (t, w) in enumerate(zip(times, texts, strict=True))
    )
    segment = TranscriptSegment(words[0].start, words[-1].end, "en", " ".join(texts), words=words)
    first = cues.subtitle_cues([segment])[0]
    assert first.text.replace("\n", " ").endswith("measure the room")


def test_a_short_segment_is_one_cue_as_it_was() -> None:
    segment = TranscriptSegment(1.0, 4.5, "en", "he was not an ill disposed young man")
    assert cues.subtitle_cues([segment]) == [cues.Cue(1.0, 4.5, (segment.text,), None)]
