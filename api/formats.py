"""Transcript renderings: txt (one `[lang] text` line per segment, `[S1][lang] text` with speakers), json,
and srt and vtt, whose cues are subtitle-sized (api/cues.py) and name the speaker when there is one."""

from collections.abc import Sequence

from api.cues import Cue, subtitle_cues
from tingxie.transcript import TranscriptSegment

FORMATS = ("txt", "json", "srt", "vtt")


def to_txt(segments: Sequence[TranscriptSegment]) -> str:
    return "".join(f"{_speaker_tag(s.speaker)}[{s.language or 'unknown'}] {s.text}\n" for s in segments)


def _speaker_tag(speaker: str | None) -> str:
    return f"[{speaker}]" if speaker else ""


def _timestamp(seconds: float, separator: str) -> str:
    millis = round(seconds * 1000)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def _cue_time(cue: Cue, separator: str) -> str:
    return f"{_timestamp(cue.start, separator)} --> {_timestamp(cue.end, separator)}"


def to_srt(segments: Sequence[TranscriptSegment]) -> str:
    cues = subtitle_cues(segments)
    return "".join(
        f"{number}\n{_cue_time(cue, ',')}\n{_srt_speaker(cue.speaker)}{cue.text}\n\n"
        for number, cue in enumerate(cues, start=1)
    )


def _srt_speaker(speaker: str | None) -> str:
    return f"[{speaker}] " if speaker else ""


def to_vtt(segments: Sequence[TranscriptSegment]) -> str:
    # WebVTT's voice span names the speaker; players that show it and ones that do not both read it.
    cues = "".join(f"{_cue_time(cue, '.')}\n{_vtt_voice(cue.speaker)}{cue.text}\n\n" for cue in subtitle_cues(segments))
    return f"WEBVTT\n\n{cues}"


def _vtt_voice(speaker: str | None) -> str:
    return f"<v {speaker}>" if speaker else ""
