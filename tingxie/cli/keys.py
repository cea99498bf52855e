"""`tingxie keys create | list | revoke | rotate-webhook-secret`, on the database the TINGXIE_ settings
name (migrated first, so they work on a fresh install). Their output is plain lines, read by scripts: a
new secret is always the last line."""

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Annotated

import typer

from tingxie import migrate
from tingxie.cli.display import errors
from tingxie.errors import NotFound

app = typer.Typer(help="Manage API keys.", no_args_is_help=True)

KeyId = Annotated[uuid.UUID, typer.Argument(metavar="ID", help="the key's id (`keys list`)", show_default=False)]
Name = Annotated[str, typer.Argument(help="what the key is for", show_default=False)]


@app.command("create")
def create(name: Name) -> None:
    """Create a key and print it once, as the last line."""
    from tingxie.db import session_scope
    from tingxie.keys import create_key

    migrate.upgrade()
    with session_scope() as session:
        key, secret = create_key(session, name)
        print(f"created key {key.id} ({name}); its secrets are shown only now.")
        print(f"webhook signing secret: {key.webhook_secret}")
        print("API key:")
    print(secret)  # after the commit: a secret printed is a key that exists


@app.command("list")
def list_keys() -> None:
    """id, name, created, last used, revoked."""
    from tingxie.db import session_scope
    from tingxie.keys import list_keys as stored_keys

    migrate.upgrade()
    with session_scope() as session:
        keys = stored_keys(session)
    print(f"{'id':36}  {'name':20}  {'created':19}  {'last used':19}  revoked")
    for key in keys:
        times = (_when(key.created_at), _when(key.last_used_at), _when(key.revoked_at))
        print(f"{key.id!s:36}  {key.name[:20]:20}  {times[0]:19}  {times[1]:19}  {times[2]}")


def _when(moment: object) -> str:
    return "-" if moment is None else str(moment)[:19]


@app.command("revoke")
def revoke(key_id: KeyId) -> None:
    """Refuse a key from now on."""
    from tingxie.db import session_scope
    from tingxie.keys import revoke_key

    migrate.upgrade()
    with _known_key(), session_scope() as session:
        revoke_key(session, key_id)
    print(f"revoked {key_id}")


@app.command("rotate-webhook-secret")
def rotate_webhook_secret(
    key_id: KeyId,
    overlap_hours: Annotated[float, typer.Option(help="how long the old secret still signs")] = 24.0,
) -> None:
    """A new webhook signing secret, printed as the last line."""
    from tingxie.db import session_scope
    from tingxie.keys import rotate_webhook_secret as rotate

    migrate.upgrade()
    with _known_key(), session_scope() as session:
        rotated = rotate(session, key_id, timedelta(hours=max(0.0, overlap_hours)))
    print(f"new webhook signing secret of {key_id}; the previous one also signs until {rotated.previous_expires_at}:")
    print(rotated.secret)


@contextmanager
def _known_key() -> Iterator[None]:
    """An unknown key id ends the command with the reason on stderr and exit status 1."""
    try:
        yield
    except NotFound as missing:
        errors.print(missing.message, markup=False)
        raise typer.Exit(1) from missing
