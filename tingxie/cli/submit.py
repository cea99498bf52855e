"""`tingxie submit`: recordings, as files or URLs, sent to a running server; with `--wait`, followed until
their jobs end and their transcripts written."""

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import Progress, TaskID

from tingxie.cli.client import ApiClient, RemoteError, RemoteJob
from tingxie.cli.connection import connected
from tingxie.cli.display import print_json, print_result, progress_bars, report_failure, write_transcript
from tingxie.cli.options import (
    Context,
    Diarize,
    Formats,
    Json,
    Key,
    Language,
    Output,
    Server,
    Speakers,
    TranscriptFormat,
    chosen_formats,
)

POLL_SECONDS = 0.5  # as often as the server's own event stream reads the job
URL_SCHEMES = ("http://", "https://")
# Failures that every other recording of the call would meet too: they end the command at once.
FATAL_CODES = frozenset({"server_unreachable", "unauthorized"})


Wait = Annotated[bool, typer.Option("--wait", help="follow the jobs to the end and write their transcripts")]


@dataclass(frozen=True)
class Transcripts:
    """What to write of each completed job."""

    formats: list[TranscriptFormat]
    output: Path
    list_paths: bool  # print each path written (not with --json: stdout then holds only JSON)


@dataclass(frozen=True)
class Submission:
    source: str  # the argument: a path or a URL
    stem: str  # the transcripts' file name, without the format
    job: RemoteJob  # as the server accepted it
    task: TaskID  # its progress bar


def submit(
    sources: Annotated[
        list[str], typer.Argument(metavar="SOURCE", help="recordings: files, or http(s) URLs a worker fetches")
    ],
    server: Server = None,
    key: Key = None,
    language: Language = "auto",
    context: Context = None,
    diarize: Diarize = False,
    speakers: Speakers = None,
    wait: Wait = False,
    formats: Formats = None,
    output: Output = Path("."),
    as_json: Json = False,
) -> None:
    """Submit recordings to a running server, and with --wait write their transcripts.

    Prints each job's id, or with --wait writes `<output>/<stem>.<format>` for each recording and format. A
    recording refused or failed is reported as `<source>: <code>: <message>` and the others go on; the
    exit status is then 1."""
    if formats and not wait:
        raise typer.BadParameter("transcripts are written once a job completes: add --wait", param_hint="--format")
    fields = {"language": language} | ({"context": context} if context else {})
    fields |= {"diarize": "true"} if diarize or speakers else {}
    fields |= {"speakers": str(speakers)} if speakers else {}
    with connected(server, key) as client, progress_bars(enabled=not as_json) as bars:
        submissions = [_submit_one(client, source, fields, bars) for source in sources]
        accepted = [submission for submission in submissions if submission is not None]
        if wait:
            jobs = _follow(client, accepted, bars)
            delivered = [
                _deliver(client, submission, job, Transcripts(chosen_formats(formats), output, not as_json))
                for submission, job in zip(accepted, jobs, strict=True)
            ]
        else:
            jobs, delivered = [submission.job for submission in accepted], []
    _print_jobs(accepted, jobs, as_json, listed=not wait)
    if len(accepted) < len(sources) or not all(delivered):
        raise typer.Exit(1)


def _print_jobs(submissions: list[Submission], jobs: list[RemoteJob], as_json: bool, listed: bool) -> None:
    """With --json, every job's object; otherwise, unless the transcripts' paths were the results, a line
    per job: its id, status and recording."""
    for submission, job in zip(submissions, jobs, strict=True):
        if as_json:
            print_json(job.body)
        elif listed:
            print_result(f"{job.id}  {job.status}  {submission.source}")


def _submit_one(client: ApiClient, source: str, fields: dict[str, str], bars: Progress) -> Submission | None:
    """Upload (or hand over the URL of) one recording; None, once reported, when the server refused it."""
    task = bars.add_task(_display_name(source), total=_upload_size(source), detail="uploading")
    try:
        job = _send(client, source, fields, lambda sent: bars.advance(task, sent))
    except RemoteError as refused:
        if refused.code in FATAL_CODES:
            raise
        bars.update(task, detail=refused.code)
        bars.stop_task(task)
        report_failure(source, refused.code, refused.message)
        return None
    bars.update(task, detail=job.status)
    return Submission(source, _stem(source, job), job, task)


def _send(client: ApiClient, source: str, fields: dict[str, str], on_sent: Callable[[int], None]) -> RemoteJob:
    if _is_url(source):
        return client.submit_url(source, fields)
    return client.submit_file(Path(source), fields, on_sent)


def _is_url(source: str) -> bool:
    return source.lower().startswith(URL_SCHEMES)


def _upload_size(source: str) -> int | None:
    path = Path(source)
    return path.stat().st_size if not _is_url(source) and path.is_file() else None


def _display_name(source: str) -> str:
    return source if _is_url(source) else Path(source).name


def _stem(source: str, job: RemoteJob) -> str:
    """A file's own stem; for a URL, that of the name the server gave the job (the URL's last part)."""
    if not _is_url(source):
        return Path(source).stem
    return Path(job.filename).stem if job.filename else str(job.id)


def _follow(client: ApiClient, submissions: list[Submission], bars: Progress) -> list[RemoteJob]:
    """Poll every job until each has ended; the jobs' final states, in the submissions' order."""
    latest = [submission.job for submission in submissions]
    while not all(job.is_final for job in latest):
        time.sleep(POLL_SECONDS)
        latest = [job if job.is_final else client.job(job.id) for job in latest]
        for submission, job in zip(submissions, latest, strict=True):
            _show(bars, submission.task, job)
    return latest


def _show(bars: Progress, task: TaskID, job: RemoteJob) -> None:
    """Chunks transcribed out of those the recording is cut into (a pulse until it is cut)."""
    if job.is_final:
        bars.update(task, total=1, completed=1, detail=job.status)
        bars.stop_task(task)
        return
    chunks = f"{job.chunks_done}/{job.chunks_total if job.chunks_total is not None else '?'} chunks"
    bars.update(task, total=job.chunks_total, completed=job.chunks_done, detail=f"{job.status} {chunks}")


def _deliver(client: ApiClient, submission: Submission, job: RemoteJob, wanted: Transcripts) -> bool:
    """Write a completed job's transcripts; report one that failed or was canceled. False for those."""
    if job.status != "completed":
        error = job.error or RemoteError(job.status, f"job {job.id} was {job.status}")
        report_failure(submission.source, error.code, error.message)
        return False
    for format in wanted.formats:
        written = write_transcript(wanted.output, submission.stem, format, client.transcript(job.id, format))
        if wanted.list_paths:
            print_result(str(written))
    return True
