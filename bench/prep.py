"""Prepare step on a 1-hour MP3: tingxie's streaming decode + VAD + plan + store, against pydub + ffmpeg.

The recording is made of the real clips in ../shared/speech joined by pauses, encoded once as a 44.1 kHz
stereo 128 kb/s MP3 (the shape of a typical upload) and cached in the temp directory. Each side then runs
in a fresh interpreter, so peak memory is that of one process doing one job:

  tingxie   decode (PyAV, streaming) -> 16 kHz mono -> silero VAD -> chunks and windows cut in pauses
            -> every chunk with speech stored as WAV in a LocalStorage: the steps of worker.service.prepare
  baseline  pydub.AudioSegment.from_file(...).set_channels(1).set_frame_rate(16000), which runs ffmpeg
            and holds the whole decoded recording in memory

    python bench/prep.py                 # 60 minutes
    python bench/prep.py --minutes 10    # a quicker look
"""

from __future__ import annotations

import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from argparse import SUPPRESS, ArgumentParser, RawDescriptionHelpFormatter
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import cycle
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

CACHE = Path(tempfile.gettempdir()) / "tingxie-bench"
PAUSES_S = (0.6, 1.5, 0.9, 2.5, 1.2, 4.0)  # between clips, in turn
MP3_RATE, MP3_LAYOUT, MP3_SAMPLE_FMT = 44_100, "stereo", "s16p"
GOAL_WALL_S = 15.0
GOAL_RSS_MB = 300.0
INSTALL_FFMPEG = "apt-get install -y ffmpeg"


@dataclass(frozen=True)
class Measurement:
    name: str
    wall_s: float
    peak_rss_mb: float
    detail: str


# --- the recording -------------------------------------------------------------------------------------


def recording_blocks(seconds: float) -> Iterator:
    """Real clips, every language, in manifest order and again, with pauses, until `seconds` of audio."""
    import numpy as np

    from tests.audio_fixtures import SAMPLE_RATE, load_16k
    from tests.corpus import manifest

    clips = [load_16k(clip.path) for clip in manifest().values()]
    remaining = int(seconds * SAMPLE_RATE)
    for clip, pause in zip(cycle(clips), cycle(PAUSES_S), strict=False):
        silence = np.zeros(int(pause * SAMPLE_RATE), dtype=np.float32)
        block = np.concatenate((clip, silence))[:remaining]
        remaining -= len(block)
        yield block
        if not remaining:
            return


def recording_path(minutes: float) -> Path:
    return CACHE / f"speech-{minutes:g}min-{MP3_RATE}-{MP3_LAYOUT}.mp3"


def cached_recording(minutes: float) -> Path:
    """The recording as MP3, built once (streaming, never whole in memory) and reused."""
    from tests.audio_fixtures import encode_samples

    path = recording_path(minutes)
    if not path.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".part")
        blocks = recording_blocks(minutes * 60)
        encode_samples(partial, blocks, "mp3", "libmp3lame", MP3_RATE, MP3_LAYOUT, MP3_SAMPLE_FMT)
        partial.rename(path)
    return path


# --- what is measured, each in a fresh interpreter ----------------------------------------------------


def prepare_with_tingxie(path: Path) -> str:
    """Decode, plan and store as worker.service prepares a job (`plan_and_store`), with the platform's
    settings (the defaults unless TINGXIE_ variables say otherwise)."""
    import uuid

    from tingxie.settings import get_settings
    from tingxie.storage import LocalStorage
    from worker.audio.decode import check_duration
    from worker.audio.prepare import plan_and_store

    settings = get_settings()
    with tempfile.TemporaryDirectory(prefix="tingxie-bench-") as tmp:
        check_duration(path, settings.max_duration_seconds)
        audio = plan_and_store(path, LocalStorage(Path(tmp)), f"jobs/{uuid.uuid4()}/chunks/", settings)
    windows = sum(len(chunk.windows) for chunk in audio.chunks)
    chunks = f"{len(audio.chunks)} chunks, {windows} windows (chunks <= {settings.chunk_seconds:g} s)"
    return f"{audio.duration:.0f} s of audio -> {chunks}"


def prepare_with_pydub(path: Path) -> str:
    from pydub import AudioSegment

    audio = AudioSegment.from_file(str(path)).set_channels(1).set_frame_rate(16_000)
    return f"{audio.duration_seconds:.0f} s of audio, 16 kHz mono, held whole in memory"


RUNNERS = {"tingxie": prepare_with_tingxie, "baseline": prepare_with_pydub}


def _own_peak_kb() -> int:
    """This process's peak RSS since exec. getrusage's ru_maxrss would also count what the parent held
    when it forked, because Linux carries the high-water mark across exec."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def child(name: str, path: Path) -> None:
    detail = RUNNERS[name](path)
    # The largest single process: this one, or ffmpeg for the baseline (spawned while this one was small).
    peak_kb = max(_own_peak_kb(), resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    print(json.dumps({"peak_rss_mb": peak_kb / 1024, "detail": detail}))


def _python(*args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"{' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return done


def measure(name: str, path: Path) -> Measurement:
    started = time.perf_counter()
    done = _python("--child", name, str(path))
    wall = time.perf_counter() - started
    report = json.loads(done.stdout.strip().splitlines()[-1])
    return Measurement(name, wall, report["peak_rss_mb"], report["detail"])


# --- report --------------------------------------------------------------------------------------------


def table(tingxie: Measurement, baseline: Measurement | None) -> str:
    rows = [f"{'':10} {'wall s':>8} {'peak RSS MB':>12} {'wall ratio':>11} {'RSS ratio':>10}"]
    for m in (tingxie, baseline):
        if m is None:
            continue
        wall_ratio = f"{m.wall_s / baseline.wall_s:.2f}" if baseline else "n/a"
        rss_ratio = f"{m.peak_rss_mb / baseline.peak_rss_mb:.2f}" if baseline else "n/a"
        rows.append(f"{m.name:10} {m.wall_s:8.1f} {m.peak_rss_mb:12.0f} {wall_ratio:>11} {rss_ratio:>10}")
    return "\n".join(rows)


def goals(m: Measurement, minutes: float) -> str:
    wall_ok, rss_ok = m.wall_s <= GOAL_WALL_S, m.peak_rss_mb <= GOAL_RSS_MB
    scope = "" if minutes == 60 else f" (the goals are for 60 minutes; this run is {minutes:g})"
    return (
        f"goals for tingxie: wall <= {GOAL_WALL_S:g} s: {'PASS' if wall_ok else 'FAIL'}, "
        f"peak RSS <= {GOAL_RSS_MB:g} MB: {'PASS' if rss_ok else 'FAIL'}{scope}"
    )


def main() -> None:
    parser = ArgumentParser(description=__doc__, formatter_class=RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=60)
    parser.add_argument("--child", nargs=2, metavar=("NAME", "PATH"), help=SUPPRESS)
    parser.add_argument("--build", action="store_true", help=SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], Path(args.child[1]))
        return
    if args.build:
        cached_recording(args.minutes)
        return
    path = recording_path(args.minutes)
    if not path.exists():
        print(f"building {path} (once) ...", flush=True)
        _python("--build", "--minutes", str(args.minutes))  # elsewhere: this process stays small
    size_mb = path.stat().st_size / 1e6
    print(f"recording: {path} ({size_mb:.0f} MB, MP3 {MP3_RATE} Hz {MP3_LAYOUT})")
    tingxie = measure("tingxie", path)
    print(f"tingxie:  {tingxie.detail}")
    baseline = None
    if shutil.which("ffmpeg") is None:
        print(f"baseline: could not run: pydub needs ffmpeg, which is not on PATH ({INSTALL_FFMPEG})")
    else:
        baseline = measure("baseline", path)
        print(f"baseline: {baseline.detail}")
    print()
    print(table(tingxie, baseline))
    print()
    print(goals(tingxie, args.minutes))


if __name__ == "__main__":
    main()
