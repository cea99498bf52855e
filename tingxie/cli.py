"""`tingxie` command line: migrate, serve, demo, create-key."""

import argparse
import sys
from pathlib import Path

from tingxie import migrate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tingxie", description="Self-hosted speech transcription")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("migrate", help="apply database migrations")
    commands.add_parser("serve", help="run the API and a worker in the foreground")
    demo = commands.add_parser("demo", help="start the platform, transcribe one file, stop")
    demo.add_argument("audio", type=Path)
    key = commands.add_parser("create-key", help="create an API key and print it once")
    key.add_argument("name")
    args = parser.parse_args(argv)

    if args.command == "migrate":
        migrate.upgrade()
        return 0
    if args.command == "serve":
        from tingxie.runner import serve

        return serve()
    if args.command == "demo":
        from tingxie.runner import demo as run_demo

        return run_demo(args.audio)
    return _create_key(args.name)


def _create_key(name: str) -> int:
    from tingxie.db import session_scope
    from tingxie.keys import hash_key, new_secret
    from tingxie.models import ApiKey

    migrate.upgrade()
    secret = new_secret()
    with session_scope() as session:
        session.add(ApiKey(name=name, key_hash=hash_key(secret)))
    print(secret)
    return 0


if __name__ == "__main__":
    sys.exit(main())
