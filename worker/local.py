"""The whole pipeline in this process, with no database, queue or storage: a recording's path in, its
transcript out. `tingxie transcribe` runs it. The platform runs the same pieces as tasks (worker.service):
the same cut into chunks and windows, the same engine calls, the same merge, so both give the same
transcript for the same settings."""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from tingxie.errors import JobFailure, JobWarning
from tingxie.settings import Settings
from tingxie.transcript import TranscriptSegment
from worker.audio.decode import DecodeReport, check_duration
from worker.audio.plan import PlannedChunk, window_audio
from worker.audio.prepare import cut_chunks
from worker.batching import Prompt
from worker.diarization.clustering import SpeakerCount
from worker.diarization.labels import with_speakers
from worker.engines.base import Engine, Transcription
from worker.merge import detected_languages, join_text, merge_segments, window_segments


@dataclass(frozen=True)
class LocalProgress:
    declared_s: float | None  # the duration the container declares; None when it does not say
    decoded_s: float  # audio decoded so far
    transcribed_s: float  # recording time up to which every window with speech has been transcribed
    windows_done: int


@dataclass(frozen=True)
class LocalTranscript:
    duration_s: float  # audio decoded
    segments: list[TranscriptSegment]  # in recording time, in order
    warnings: list[JobWarning]  # what the decode had to leave out

    @property
    def text(self) -> str:
        return join_text(self.segments)

    @property
    def languages(self) -> list[str]:
        return detected_languages(self.segments)


ProgressCallback = Callable[[LocalProgress], None]


def transcribe_file(
    path: Path,
    engine: Engine,
    settings: Settings,
    prompt: Prompt,
    on_progress: ProgressCallback | None = None,
    speakers: SpeakerCount | None = None,
) -> LocalTranscript:
    """Decode, cut and transcribe `path` chunk by chunk as it is decoded, so memory holds one chunk of
    samples whatever the recording's length; with `speakers`, label them as the platform's diarize step
    does. Raises `JobFailure` with the codes a job would fail with (`invalid_audio`, `no_audio_stream`,
    `audio_too_long`), or `file_not_found`."""
    if not path.is_file():
        raise JobFailure(f"no such file: {path}", code="file_not_found")
    tracker = _Tracker(check_duration(path, settings.max_duration_seconds), on_progress)
    report, batch_size = DecodeReport(), _batch_size(engine, settings)
    labeller = _Labeller(settings, speakers) if speakers is not None else None
    per_chunk = []
    for chunk in cut_chunks(path, settings, report, tracker.decoded):
        per_chunk.append(_transcribe_chunk(chunk, engine, prompt, batch_size, tracker))
        if labeller is not None and chunk.windows:
            labeller.add(chunk)
    tracker.transcribed(report.seconds, windows=0)
    segments, warnings = merge_segments(per_chunk), report.warnings()
    if labeller is not None:
        segments, warnings = labeller.labelled(segments, warnings)
    return LocalTranscript(report.seconds, segments, warnings)


class _Labeller:
    """Speaker labels for `transcribe_file`: the chunks with speech fed to a diarizer as they are cut.
    As on the platform, a failure costs the labels only: the transcript comes with a warning."""

    def __init__(self, settings: Settings, count: SpeakerCount) -> None:
        # Imported here: the encoder pulls in torch, which a pocketsphinx run without speakers never needs.
        from worker.diarization.diarize import Diarizer
        from worker.diarization.encoder import speaker_encoder

        self._count = count
        self._diarizer: Diarizer | None = None
        self._failure: str | None = None
        try:
            self._diarizer = Diarizer(speaker_encoder(settings))
        except Exception as exc:  # weights missing or unreadable
            self._failure = f"{type(exc).__name__}: {exc}"

    def add(self, chunk: PlannedChunk) -> None:
        if self._diarizer is None:
            return
        try:
            self._diarizer.add(chunk.start, chunk.samples)
        except Exception as exc:
            self._diarizer, self._failure = None, f"{type(exc).__name__}: {exc}"

    def labelled(
        self, segments: list[TranscriptSegment], warnings: list[JobWarning]
    ) -> tuple[list[TranscriptSegment], list[JobWarning]]:
        try:
            if self._diarizer is not None:
                return with_speakers(segments, self._diarizer.turns(self._count)), warnings
        except Exception as exc:
            self._failure = f"{type(exc).__name__}: {exc}"
        return segments, [*warnings, JobWarning("diarization_failed", f"no speaker labels: {self._failure}")]


def _batch_size(engine: Engine, settings: Settings) -> int:
    # Imported here: the registry pulls in torch, which only the neural engines need loaded.
    from worker.engines.registry import batch_limit

    return batch_limit(engine, settings)


def _transcribe_chunk(
    chunk: PlannedChunk, engine: Engine, prompt: Prompt, batch_size: int, tracker: "_Tracker"
) -> list[TranscriptSegment]:
    """The chunk's windows through the engine `batch_size` at a time, as the worker's batcher would call
    it, so that progress moves between calls; a silence-only chunk never reaches the engine."""
    audio = window_audio(chunk.samples, chunk.windows)
    results: list[Transcription] = []
    for first in range(0, len(audio), batch_size):
        batch = audio[first : first + batch_size]
        results += _checked(engine.transcribe(batch, prompt.language, prompt.context), batch)
        tracker.transcribed(chunk.start + chunk.windows[len(results) - 1].end, windows=len(batch))
    tracker.transcribed(chunk.end, windows=0)
    return window_segments(chunk.start, chunk.windows, results)


def _checked(results: list[Transcription], batch: Sequence[object]) -> list[Transcription]:
    if len(results) != len(batch):
        raise RuntimeError(f"the engine returned {len(results)} results for {len(batch)} windows")
    return results


class _Tracker:
    """What has been done so far, told to the caller's callback at each step."""

    def __init__(self, declared_s: float | None, on_progress: ProgressCallback | None) -> None:
        self._on_progress = on_progress
        self._state = LocalProgress(declared_s, decoded_s=0.0, transcribed_s=0.0, windows_done=0)
        self._tell()

    def decoded(self, seconds: float) -> None:
        self._state = replace(self._state, decoded_s=seconds)
        self._tell()

    def transcribed(self, up_to_s: float, windows: int) -> None:
        # Never past what is decoded: a chunk's end, its offset plus its length, can be by a rounding error.
        done = min(up_to_s, self._state.decoded_s)
        self._state = replace(self._state, transcribed_s=done, windows_done=self._state.windows_done + windows)
        self._tell()

    def _tell(self) -> None:
        if self._on_progress is not None:
            self._on_progress(self._state)
