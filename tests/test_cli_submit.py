"""`tingxie submit` and `tingxie jobs …` against the running platform (real API and workers), as
subprocesses finding the server and key in TINGXIE_SERVER / TINGXIE_KEY or in flags."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import Platform
from tests.corpus import OSR, manifest
from tests.helpers import wer
from tests.services import free_port
from tests.subtitles import srt_cues, words_of

CLIP = manifest()["en/sense_and_sensibility_01_austen_64kb-0870.wav"]


@pytest.fixture
def cli_env(platform: Platform) -> dict[str, str]:
    """A shell on another machine: none of the platform's own settings, only where the server is."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("TINGXIE_")}
    return env | {"TINGXIE_SERVER": platform.url}


def _tingxie(env: dict[str, str], *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "tingxie.cli", *args]
    return subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=300)


def _ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_submit_wait_writes_the_transcripts(cli_env: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = ["--wait", "--format", "srt", "--format", "json", "--output", str(out)]
    stdout = _ok(_tingxie(cli_env, "submit", str(CLIP.path), *args))
    assert stdout.splitlines() == [str(out / f"{CLIP.path.stem}.srt"), str(out / f"{CLIP.path.stem}.json")]
    cues = srt_cues((out / f"{CLIP.path.stem}.srt").read_text(encoding="utf-8"))
    assert cues and [cue.number for cue in cues] == list(range(1, len(cues) + 1))
    transcript = json.loads((out / f"{CLIP.path.stem}.json").read_text(encoding="utf-8"))
    assert transcript["segments"] and wer(CLIP.reference, transcript["text"]) <= 0.5


def test_jobs_get_list_transcript_cancel_and_delete(cli_env: dict[str, str], tmp_path: Path) -> None:
    completed = json.loads(_ok(_tingxie(cli_env, "submit", str(CLIP.path), "--wait", "--json", cwd=tmp_path)))
    job_id = completed["id"]
    # --wait writes the transcript too, as txt into the current directory when no --output is given.
    assert (tmp_path / f"{CLIP.path.stem}.txt").read_text(encoding="utf-8").strip() == "\n".join(
        f"[{segment['language']}] {segment['text']}" for segment in completed["segments"]
    )
    assert completed["status"] == "completed" and completed["filename"] == CLIP.path.name
    assert json.loads(_ok(_tingxie(cli_env, "jobs", "get", job_id, "--json")))["text"] == completed["text"]
    assert "completed" in _ok(_tingxie(cli_env, "jobs", "get", job_id))
    listed = json.loads(_ok(_tingxie(cli_env, "jobs", "list", "--json", "--status", "completed")))
    assert job_id in [job["id"] for job in listed["jobs"]]
    (row,) = [line for line in _ok(_tingxie(cli_env, "jobs", "list")).splitlines() if job_id in line]
    assert "completed" in row and f"{CLIP.duration:.1f} s" in row and "en" in row.split()
    srt = _ok(_tingxie(cli_env, "jobs", "transcript", job_id, "--format", "srt"))
    cue_words = words_of([cue.text for cue in srt_cues(srt)])
    assert cue_words == words_of([segment["text"] for segment in completed["segments"]])

    queued = json.loads(_ok(_tingxie(cli_env, "submit", str(OSR), "--json")))  # 35 s: still running when canceled
    assert json.loads(_ok(_tingxie(cli_env, "jobs", "cancel", queued["id"], "--json")))["status"] == "canceled"
    not_ready = _tingxie(cli_env, "jobs", "transcript", queued["id"])
    assert not_ready.returncode == 1 and "error transcript_not_ready: " in not_ready.stderr

    for finished in (job_id, queued["id"]):
        assert _ok(_tingxie(cli_env, "jobs", "delete", finished)).strip() == f"deleted {finished}"
        gone = _tingxie(cli_env, "jobs", "get", finished)
        assert gone.returncode == 1 and "error not_found: " in gone.stderr


def test_a_wrong_key_is_refused_and_the_right_one_works(cli_env: dict[str, str], key_secret: str) -> None:
    refused = _tingxie(cli_env, "jobs", "list", "--key", "tx_not_a_key")
    assert refused.returncode == 1 and "error unauthorized: " in refused.stderr
    refused_upload = _tingxie(cli_env | {"TINGXIE_KEY": "tx_not_a_key"}, "submit", str(CLIP.path))
    assert refused_upload.returncode == 1 and "error unauthorized: " in refused_upload.stderr
    assert "Traceback" not in refused.stderr + refused_upload.stderr
    assert "jobs" in json.loads(_ok(_tingxie(cli_env | {"TINGXIE_KEY": key_secret}, "jobs", "list", "--json")))


def test_no_server_listening_is_a_message_not_a_traceback(tmp_path: Path) -> None:
    env = {name: value for name, value in os.environ.items() if not name.startswith("TINGXIE_")}
    done = _tingxie(env, "jobs", "list", "--server", f"http://127.0.0.1:{free_port()}", cwd=tmp_path)
    assert done.returncode == 1
    assert "error server_unreachable: cannot connect to http://127.0.0.1:" in done.stderr
    assert "Traceback" not in done.stderr
