"""`tingxie transcribe`: recordings transcribed in this process, with no server, database or queue, on
the engine the TINGXIE_ settings name (pocketsphinx unless they say otherwise)."""

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import Progress, TaskID

from api.formats import to_srt, to_txt, to_vtt
from tingxie.cli.display import print_result, progress_bars, report_error, report_failure, write_transcript
from tingxie.cli.options import (
    Context,
    Diarize,
    Formats,
    Language,
    Output,
    Speakers,
    TranscriptFormat,
    chosen_formats,
)
from tingxie.errors import InvalidRequest, TingxieError
from tingxie.settings import Settings, get_settings
from tingxie.transcript import TranscriptSegment, to_rows

if TYPE_CHECKING:  # the pipeline (PyAV, onnxruntime, the engine) loads only when a file is transcribed
    from worker.batching import Prompt
    from worker.diarization.clustering import SpeakerCount
    from worker.engines.base import Engine
    from worker.local import LocalProgress, LocalTranscript


TEXT_RENDERINGS: dict[TranscriptFormat, Callable[[Sequence[TranscriptSegment]], str]] = {
    TranscriptFormat.TXT: to_txt,
    TranscriptFormat.SRT: to_srt,
    TranscriptFormat.VTT: to_vtt,
}


@dataclass(frozen=True)
class LocalRun:
    """What every file of one `transcribe` call shares."""

    engine: "Engine"
    settings: Settings
    prompt: "Prompt"
    formats: list[TranscriptFormat]
    output: Path
    speakers: "SpeakerCount | None"  # None: no speaker labels


def transcribe(
    files: Annotated[
        list[Path], typer.Argument(metavar="FILE", help="recordings, in any format FFmpeg reads", show_default=False)
    ],
    language: Language = "auto",
    formats: Formats = None,
    output: Output = Path("."),
    context: Context = None,
    diarize: Diarize = False,
    speakers: Speakers = None,
) -> None:
    """Transcribe recordings in this process, with no server.

    Writes `<output>/<stem>.<format>` per file and format. A file that fails is reported as
    `<file>: <code>: <message>` and the others go on; the exit status is then 1."""
    from worker.batching import Prompt
    from worker.diarization.clustering import SpeakerCount

    settings = get_settings()
    prompt = Prompt(_checked_language(language, settings.engine), context)
    count = SpeakerCount(exactly=speakers) if diarize or speakers else None
    run = LocalRun(_loaded_engine(), settings, prompt, chosen_formats(formats), output, count)
    with progress_bars() as bars:
        succeeded = [_transcribe_one(path, run, bars) for path in files]
    if not all(succeeded):
        raise typer.Exit(1)


def _checked_language(language: str, engine: str) -> str | None:
    """The API's own check, so a code the server would refuse is refused here too; None for auto."""
    from api.jobs.service import validate_language

    try:
        code = validate_language(language, engine)
    except InvalidRequest as refused:
        raise typer.BadParameter(f"{refused.code}: {refused.message}", param_hint="--language") from refused
    return None if code == "auto" else code


def _loaded_engine() -> "Engine":
    from worker.engines.registry import get_engine

    try:
        return get_engine()
    except (RuntimeError, OSError) as unusable:  # no model path, weights missing or unreadable
        report_error("engine_unavailable", str(unusable))
        raise typer.Exit(1) from unusable


def _transcribe_one(path: Path, run: LocalRun, bars: Progress) -> bool:
    """Transcribe and write one file; False, once reported, when it failed."""
    from worker.local import transcribe_file

    task = bars.add_task(path.name, total=None, detail="")
    try:
        transcript = transcribe_file(
            path, run.engine, run.settings, run.prompt, lambda p: _show(bars, task, p), run.speakers
        )
    except TingxieError as failure:
        bars.update(task, detail=failure.code)
        bars.stop_task(task)
        report_failure(str(path), failure.code, failure.message)
        return False
    except Exception as unexpected:  # an engine error on one file must not stop the files after it
        bars.update(task, detail="internal_error")
        bars.stop_task(task)
        report_failure(str(path), "internal_error", repr(unexpected))
        return False
    for warning in transcript.warnings:
        report_failure(str(path), f"warning {warning.code}", warning.message)
    for format in run.formats:
        written = write_transcript(run.output, path.stem, format, render(format, path, transcript))
        print_result(str(written))
    bars.update(task, total=1, completed=1, detail=f"{transcript.duration_s:.1f} s, done")
    bars.stop_task(task)
    return True


def _show(bars: Progress, task: TaskID, progress: "LocalProgress") -> None:
    """Seconds of the recording transcribed, out of its declared length (a pulse when it declares none)."""
    if progress.transcribed_s == 0.0:
        detail = f"decoding {progress.decoded_s:.0f} s"
    else:
        detail = f"{progress.transcribed_s:.0f} s, {progress.windows_done} windows"
    total = progress.declared_s if progress.declared_s else None
    bars.update(task, total=total, completed=progress.transcribed_s, detail=detail)


def render(format: TranscriptFormat, source: Path, transcript: "LocalTranscript") -> str:
    """The transcript as the API renders it (GET /v1/jobs/{id}/transcript); json names the file where
    the API's names the job."""
    if format is not TranscriptFormat.JSON:
        return TEXT_RENDERINGS[format](transcript.segments)
    body = {"file": source.name, "text": transcript.text, "languages": transcript.languages}
    return json.dumps(body | {"segments": to_rows(transcript.segments)}, ensure_ascii=False, indent=2) + "\n"
