"""What the commands show and write. Results (written paths, job ids, JSON) go to stdout, one per line,
for scripts; progress bars, warnings and errors go to stderr, so that piping stdout never mixes them in."""

import json
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

from tingxie.cli.options import TranscriptFormat

errors = Console(stderr=True, highlight=False, soft_wrap=True)


def progress_bars(enabled: bool = True) -> Progress:
    """One bar per file or job: its name, the bar, a percentage and a line of detail (`detail` field).
    Lines printed to stdout while the bars run show above them when stdout is the same terminal, and
    stay on stdout when it is piped."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
        console=errors,
        disable=not enabled,
        redirect_stdout=sys.stdout.isatty(),
    )


def report_failure(source: str, code: str, message: str) -> None:
    """One input that failed, among others that go on."""
    errors.print(f"{source}: {code}: {message}", markup=False)


def report_error(code: str, message: str) -> None:
    """A failure that ends the command."""
    errors.print(f"error {code}: {message}", markup=False)


def print_result(line: str) -> None:
    print(line, flush=True)


def print_json(body: Any) -> None:
    print(json.dumps(body, ensure_ascii=False), flush=True)


def write_transcript(output: Path, stem: str, format: TranscriptFormat, text: str) -> Path:
    """`<output>/<stem>.<format>`, replaced if it exists."""
    output.mkdir(parents=True, exist_ok=True)
    path = output / f"{stem}.{format}"
    path.write_text(text, encoding="utf-8")
    return path
