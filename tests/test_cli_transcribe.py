"""`tingxie transcribe`: the whole pipeline in the command's own process, no server, on the embedded
defaults (the pocketsphinx engine), with real speech."""

import json
import os
import subprocess
import sys
from itertools import pairwise
from pathlib import Path

import pytest

from tests.audio_fixtures import write_wav
from tests.conversations import conversation
from tests.corpus import SPEECH, manifest
from tests.helpers import wer
from tests.subtitles import srt_cues, words_of

CLIPS = [manifest()["en/jfk.wav"], manifest()["en/sense_and_sensibility_01_austen_64kb-0870.wav"]]
SHORT = manifest()["en/goforward.wav"]


@pytest.fixture
def embedded_env(tmp_path: Path) -> dict[str, str]:
    """The default settings, whatever TINGXIE_ variables this test process runs with."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("TINGXIE_")}
    return env | {"TINGXIE_DATA_DIR": str(tmp_path / "data")}


def _tingxie(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "tingxie.cli", *args]
    return subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=300)


def test_two_recordings_in_one_call_give_srt_and_json_for_each(embedded_env: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = [str(clip.path) for clip in CLIPS] + ["--format", "srt", "--format", "json", "--output", str(out)]
    done = _tingxie(embedded_env, tmp_path, "transcribe", *args)
    assert done.returncode == 0, done.stderr[-3000:]
    expected = [out / f"{clip.path.stem}.{format}" for clip in CLIPS for format in ("srt", "json")]
    assert done.stdout.splitlines() == [str(path) for path in expected]
    for clip in CLIPS:
        cues = srt_cues((out / f"{clip.path.stem}.srt").read_text(encoding="utf-8"))
        assert cues and [cue.number for cue in cues] == list(range(1, len(cues) + 1))
        assert all(cue.start < cue.end <= clip.duration + 0.01 for cue in cues)
        assert all(earlier.end <= later.start for earlier, later in pairwise(cues))
        body = json.loads((out / f"{clip.path.stem}.json").read_text(encoding="utf-8"))
        assert body["file"] == clip.path.name and body["languages"] == ["en"]
        assert body["segments"] and all(segment["text"].strip() for segment in body["segments"])
        assert words_of([segment["text"] for segment in body["segments"]]) == words_of([cue.text for cue in cues])
        assert wer(clip.reference, body["text"]) <= 0.6


def test_a_file_that_fails_is_reported_and_the_others_are_written(embedded_env: dict[str, str], tmp_path: Path) -> None:
    """Missing and undecodable files among a good one: their codes on stderr, exit status 1, and the
    good file's transcript still written, as txt into the current directory by default."""
    (tmp_path / "noise.wav").write_bytes(os.urandom(4096))
    done = _tingxie(embedded_env, tmp_path, "transcribe", "missing.wav", str(SHORT.path), "noise.wav")
    assert done.returncode == 1
    assert "missing.wav: file_not_found: " in done.stderr
    assert "noise.wav: invalid_audio: " in done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout.splitlines() == [f"{SHORT.path.stem}.txt"]
    assert wer(SHORT.reference, (tmp_path / f"{SHORT.path.stem}.txt").read_text().removeprefix("[en] ")) <= 0.5
    assert sorted(path.name for path in tmp_path.glob("*.txt")) == [f"{SHORT.path.stem}.txt"]


def test_a_language_the_api_would_refuse_is_refused_before_any_work(
    embedded_env: dict[str, str], tmp_path: Path
) -> None:
    unknown = _tingxie(embedded_env, tmp_path, "transcribe", "--language", "xx", str(SPEECH / "en" / "jfk.wav"))
    assert unknown.returncode == 2 and "invalid_language" in unknown.stderr
    english_only = _tingxie(embedded_env, tmp_path, "transcribe", "--language", "zh", str(SHORT.path))
    assert english_only.returncode == 2 and "unsupported_language" in english_only.stderr
    assert not list(tmp_path.glob("*.txt"))


def test_diarize_labels_the_speakers_of_a_conversation(embedded_env: dict[str, str], tmp_path: Path) -> None:
    talk = write_wav(tmp_path / "talk.wav", conversation(["lucier", "osr"], seed=0).samples)
    out = tmp_path / "out"
    done = _tingxie(
        embedded_env, tmp_path, "transcribe", str(talk), "--diarize", "-f", "txt", "-f", "srt", "-o", str(out)
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = (out / "talk.txt").read_text(encoding="utf-8").splitlines()
    assert lines and all(line.startswith(("[S1][en] ", "[S2][en] ")) for line in lines)
    assert {line[:4] for line in lines} == {"[S1]", "[S2]"}
    assert all(
        cue.text.startswith(("[S1] ", "[S2] ")) for cue in srt_cues((out / "talk.srt").read_text(encoding="utf-8"))
    )
    one = _tingxie(embedded_env, tmp_path, "transcribe", str(talk), "--speakers", "1", "-o", str(out))
    assert one.returncode == 0, one.stderr[-3000:]
    assert all(line.startswith("[S1][en] ") for line in (out / "talk.txt").read_text(encoding="utf-8").splitlines())
