"""Which server the remote commands talk to, and how their failures end them."""

from collections.abc import Iterator
from contextlib import contextmanager

import typer

from tingxie.cli.client import ApiClient, RemoteError
from tingxie.cli.display import report_error
from tingxie.settings import get_settings


def default_server() -> str:
    """This machine, on the port `tingxie serve` listens on with the same TINGXIE_ settings."""
    return f"http://127.0.0.1:{get_settings().port}"


@contextmanager
def connected(server: str | None, key: str | None) -> Iterator[ApiClient]:
    """A client of the server; a `RemoteError` that escapes ends the command with
    `error <code>: <message>` and exit status 1, never a traceback."""
    try:
        with ApiClient(server or default_server(), key) as client:
            yield client
    except RemoteError as error:
        report_error(error.code, error.message)
        raise typer.Exit(1) from error
