"""`tingxie` command line: migrate, serve, demo, keys (create, list, revoke, rotate-webhook-secret) and
create-key."""

import argparse
import sys
import uuid
from pathlib import Path

from tingxie import migrate


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "migrate":
        migrate.upgrade()
        return 0
    if args.command == "serve":
        from tingxie.runner import serve

        return serve()
    if args.command == "demo":
        from tingxie.runner import demo as run_demo

        return run_demo(args.audio)
    if args.command == "create-key":  # the first spelling of `keys create`, kept working
        return _keys_create(args.name)
    commands = {
        "create": lambda: _keys_create(args.name),
        "list": _keys_list,
        "revoke": lambda: _keys_revoke(args.id),
        "rotate-webhook-secret": lambda: _keys_rotate(args.id, args.overlap_hours),
    }
    return commands[args.keys_command]()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tingxie", description="Self-hosted speech transcription")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("migrate", help="apply database migrations")
    commands.add_parser("serve", help="run the API and workers in the foreground")
    demo = commands.add_parser("demo", help="start the platform, transcribe one file, stop")
    demo.add_argument("audio", type=Path)
    create_key = commands.add_parser("create-key", help="the same as `keys create`")
    create_key.add_argument("name")
    keys = commands.add_parser("keys", help="manage API keys").add_subparsers(dest="keys_command", required=True)
    keys.add_parser("create", help="create a key and print it once, as the last line").add_argument("name")
    keys.add_parser("list", help="id, name, created, last used, revoked")
    keys.add_parser("revoke", help="refuse a key from now on").add_argument("id", type=uuid.UUID)
    rotate = keys.add_parser("rotate-webhook-secret", help="a new webhook signing secret, printed as the last line")
    rotate.add_argument("id", type=uuid.UUID)
    rotate.add_argument("--overlap-hours", type=float, default=24.0, help="how long the old one still signs")
    return parser


def _keys_create(name: str) -> int:
    from tingxie.db import session_scope
    from tingxie.keys import create_key

    migrate.upgrade()
    with session_scope() as session:
        key, secret = create_key(session, name)
        print(f"created key {key.id} ({name}); its secrets are shown only now.")
        print(f"webhook signing secret: {key.webhook_secret}")
        print("API key:")
    print(secret)
    return 0


def _keys_list() -> int:
    from tingxie.db import session_scope
    from tingxie.keys import list_keys

    migrate.upgrade()
    with session_scope() as session:
        keys = list_keys(session)
    print(f"{'id':36}  {'name':20}  {'created':19}  {'last used':19}  revoked")
    for key in keys:
        times = (_when(key.created_at), _when(key.last_used_at), _when(key.revoked_at))
        print(f"{key.id!s:36}  {key.name[:20]:20}  {times[0]:19}  {times[1]:19}  {times[2]}")
    return 0


def _when(moment: object) -> str:
    return "-" if moment is None else str(moment)[:19]


def _keys_rotate(key_id: uuid.UUID, overlap_hours: float) -> int:
    from datetime import timedelta

    from tingxie.db import session_scope
    from tingxie.errors import NotFound
    from tingxie.keys import rotate_webhook_secret

    migrate.upgrade()
    try:
        with session_scope() as session:
            rotated = rotate_webhook_secret(session, key_id, timedelta(hours=max(0.0, overlap_hours)))
    except NotFound as missing:
        print(missing.message, file=sys.stderr)
        return 1
    print(f"new webhook signing secret of {key_id}; the previous one also signs until {rotated.previous_expires_at}:")
    print(rotated.secret)
    return 0


def _keys_revoke(key_id: uuid.UUID) -> int:
    from tingxie.db import session_scope
    from tingxie.errors import NotFound
    from tingxie.keys import revoke_key

    migrate.upgrade()
    try:
        with session_scope() as session:
            revoke_key(session, key_id)
    except NotFound as missing:
        print(missing.message, file=sys.stderr)
        return 1
    print(f"revoked {key_id}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
