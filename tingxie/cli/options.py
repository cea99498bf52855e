"""Options that several commands share, as `Annotated` aliases, so each command's signature reads as
its documentation."""

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer


class TranscriptFormat(StrEnum):
    """The renderings of GET /v1/jobs/{id}/transcript."""

    TXT = "txt"
    JSON = "json"
    SRT = "srt"
    VTT = "vtt"


Formats = Annotated[
    list[TranscriptFormat] | None,
    typer.Option("--format", "-f", help="txt, json, srt or vtt; repeat it for several (default: txt)"),
]
Output = Annotated[
    Path,
    typer.Option("--output", "-o", file_okay=False, help="directory the transcripts go to, as `<stem>.<format>`"),
]
Language = Annotated[str, typer.Option("--language", "-l", help="auto (detect) or a language code")]
Context = Annotated[
    str | None, typer.Option(help="names and terms the speech may contain, given to the engine as a prompt")
]
Diarize = Annotated[bool, typer.Option("--diarize", help="label speakers: S1, S2, ... in order of first appearance")]
Speakers = Annotated[
    int | None, typer.Option("--speakers", min=1, max=20, help="the number of speakers, when known (implies --diarize)")
]
Server = Annotated[
    str | None,
    typer.Option(envvar="TINGXIE_SERVER", help="the server's URL (default: http://127.0.0.1 on TINGXIE_PORT, 8000)"),
]
Key = Annotated[str | None, typer.Option(envvar="TINGXIE_KEY", help="API key, sent as a Bearer token")]
Json = Annotated[bool, typer.Option("--json", help="print the API's JSON objects, and no progress bars")]


def chosen_formats(formats: list[TranscriptFormat] | None) -> list[TranscriptFormat]:
    """The formats asked for, each once, in the order given; txt when none was."""
    return list(dict.fromkeys(formats or [TranscriptFormat.TXT]))
