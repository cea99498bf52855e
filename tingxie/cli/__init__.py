"""The `tingxie` command line (typer). Each command lives in a module of its own:

    migrate, serve, demo        here: the platform on this machine (tingxie.runner)
    keys …, create-key          keys.py: API keys, straight in the database
    transcribe                  transcribe.py: the whole pipeline in this process, no server
    submit                      submit.py: recordings sent to a running server (client.py)
    jobs …                      jobs.py: that server's jobs

`main(argv)` runs it and returns the exit status, for the `tingxie` script, `python -m tingxie.cli` and
any code that calls it in-process."""

from pathlib import Path
from typing import Annotated

import typer

from tingxie import migrate as migrations
from tingxie.cli import jobs, keys
from tingxie.cli.submit import submit
from tingxie.cli.transcribe import transcribe

# Tracebacks without local variables: they would print API keys and secrets.
app = typer.Typer(
    name="tingxie",
    help="Self-hosted speech transcription.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
    rich_markup_mode="markdown",
)
app.command()(transcribe)
app.command()(submit)
app.add_typer(jobs.app, name="jobs")
app.add_typer(keys.app, name="keys")
app.command("create-key", help="The same as `keys create` (its first spelling, kept working).")(keys.create)


@app.command()
def migrate() -> None:
    """Apply the database migrations."""
    migrations.upgrade()


@app.command()
def serve() -> None:
    """Run the API and workers in the foreground, until Ctrl-C."""
    from tingxie.runner import serve as serve_platform

    raise typer.Exit(serve_platform())


@app.command()
def demo(audio: Annotated[Path, typer.Argument(help="a recording", show_default=False)]) -> None:
    """Start the platform, transcribe one file through it, stop."""
    from tingxie.runner import demo as run_demo

    raise typer.Exit(run_demo(audio))


def main(argv: list[str] | None = None) -> int:
    """Run the command line on `argv` (default: the process's arguments); its exit status."""
    try:
        app(args=argv, prog_name="tingxie")
    except SystemExit as leaving:  # typer ends every run, successful or not, by sys.exit
        return leaving.code if isinstance(leaving.code, int) else 0 if leaving.code is None else 1
    return 0
