"""`tingxie jobs list | get | transcript | cancel | delete`: the jobs of a running server."""

import sys
import uuid
from datetime import datetime
from typing import Annotated

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from tingxie.cli.client import RemoteJob
from tingxie.cli.connection import connected
from tingxie.cli.display import print_json, print_result
from tingxie.cli.options import Json, Key, Server, TranscriptFormat

PIPED_WIDTH = 160  # a table piped to a file or another program is not squeezed into 80 columns

app = typer.Typer(help="Jobs on a running server.", no_args_is_help=True)

JobId = Annotated[uuid.UUID, typer.Argument(metavar="ID", help="the job's id", show_default=False)]


@app.command("list")
def list_jobs(
    server: Server = None,
    key: Key = None,
    status: Annotated[str | None, typer.Option(help="queued, processing, completed, failed or canceled")] = None,
    limit: Annotated[int, typer.Option(min=1, max=200, help="how many, newest first")] = 50,
    as_json: Json = False,
) -> None:
    """The newest jobs: id, status, created, duration, language."""
    with connected(server, key) as client:
        page = client.jobs(status, limit)
    if as_json:
        print_json(page.body)
        return
    _stdout().print(_table(page.jobs))


@app.command("get")
def get_job(job_id: JobId, server: Server = None, key: Key = None, as_json: Json = False) -> None:
    """One job: its state, progress, error, and its text once completed."""
    with connected(server, key) as client:
        job = client.job(job_id)
    if as_json:
        print_json(job.body)
        return
    for name, value in _summary(job):
        print_result(f"{name:9} {value}")
    if job.body.get("text"):
        print_result(f"\n{job.body['text']}")


@app.command("transcript")
def transcript(
    job_id: JobId,
    server: Server = None,
    key: Key = None,
    format: Annotated[TranscriptFormat, typer.Option("--format", "-f", help="txt, json, srt or vtt")] = (
        TranscriptFormat.TXT
    ),
) -> None:
    """A completed job's transcript, printed as the server renders it."""
    with connected(server, key) as client:
        text = client.transcript(job_id, format)
    sys.stdout.write(text)


@app.command("cancel")
def cancel(job_id: JobId, server: Server = None, key: Key = None, as_json: Json = False) -> None:
    """Stop a queued or running job."""
    with connected(server, key) as client:
        job = client.cancel(job_id)
    if as_json:
        print_json(job.body)
    else:
        print_result(f"{job.id}  {job.status}")


@app.command("delete")
def delete(job_id: JobId, server: Server = None, key: Key = None, as_json: Json = False) -> None:
    """Delete a job with its audio and transcript."""
    with connected(server, key) as client:
        client.delete(job_id)
    if as_json:
        print_json({"id": str(job_id), "deleted": True})  # the API answers 204, with no body
    else:
        print_result(f"deleted {job_id}")


def _stdout() -> Console:
    return Console(width=None if sys.stdout.isatty() else PIPED_WIDTH, highlight=False)


def _table(jobs: list[RemoteJob]) -> Table:
    table = Table(box=box.SIMPLE)
    for column in ("id", "status", "created", "duration", "language"):
        table.add_column(column, no_wrap=True)
    for job in jobs:
        table.add_row(str(job.id), job.status, _local_time(job.created_at), _seconds(job.duration_s), _languages(job))
    return table


def _summary(job: RemoteJob) -> list[tuple[str, str]]:
    total = job.chunks_total if job.chunks_total is not None else "?"
    rows = [
        ("id", str(job.id)),
        ("status", job.status),
        ("created", _local_time(job.created_at)),
        ("file", job.filename or "-"),
        ("duration", _seconds(job.duration_s)),
        ("language", _languages(job)),
        ("progress", f"{job.chunks_done}/{total} chunks"),
    ]
    if job.error is not None:
        rows.append(("error", f"{job.error.code}: {job.error.message}"))
    return rows


def _local_time(moment: datetime) -> str:
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def _seconds(duration: float | None) -> str:
    return "-" if duration is None else f"{duration:.1f} s"


def _languages(job: RemoteJob) -> str:
    """Those detected, once known; until then what was asked for (auto, or a code)."""
    return ", ".join(job.languages) if job.languages else job.language
