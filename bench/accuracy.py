"""Word error rate of the pipeline against one single-pass decode, with the pocketsphinx engine.

For every English clip of ../shared/speech, and for a ~10-minute recording made of those clips joined by
pauses (its reference is their references joined), the same audio is transcribed two ways:

  pipeline     plan_chunks with the platform's default chunk and window lengths for pocketsphinx (300 s / 8 s),
               the engine on every window, segments merged and joined as worker.service.finalize does
  single pass  the engine on the whole recording as one utterance

The pipeline exists to be no worse than a single pass on anything, and much better on long recordings.

    python bench/accuracy.py                # clips + 10 minutes (a few minutes on one core)
    python bench/accuracy.py --minutes 3
    python bench/accuracy.py --window-seconds 6    # shorter windows than the platform's
"""

from __future__ import annotations

import sys
import tempfile
import time
from argparse import ArgumentParser, RawDescriptionHelpFormatter
from dataclasses import dataclass
from itertools import cycle
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from tests.audio_fixtures import SAMPLE_RATE, concatenate_with_pauses, write_wav
from tests.corpus import Clip, manifest
from tests.helpers import wer
from tingxie.settings import Settings
from worker.audio.decode import decode
from worker.audio.plan import plan_chunks, window_audio
from worker.engines.pocketsphinx import PocketsphinxEngine
from worker.merge import join_text, merge_segments, window_segments

DEFAULTS = Settings.model_construct(engine="pocketsphinx")  # the defaults, whatever TINGXIE_ says here
CHUNK_S = DEFAULTS.chunk_seconds
WINDOW_S = DEFAULTS.planned_window_seconds
NO_LIMIT_S = 24 * 3600.0
PAUSE_S = 1.0
LUCIER = "en/lucier.mp3"
LUCIER_GOAL = 0.77


@dataclass(frozen=True)
class Row:
    name: str
    duration_s: float
    pipeline: float
    single: float
    seconds: float  # time spent transcribing both ways


def pipeline_text(engine: PocketsphinxEngine, path: Path, window_s: float) -> str:
    """The platform's path: chunks and windows cut in pauses, the engine on each window."""
    per_chunk = []
    for chunk in plan_chunks(decode(path, NO_LIMIT_S), CHUNK_S, window_s):
        items = window_audio(chunk.samples, chunk.windows)
        per_chunk.append(window_segments(chunk.start, chunk.windows, engine.transcribe(items)))
    return join_text(merge_segments(per_chunk))


def single_pass_text(engine: PocketsphinxEngine, path: Path) -> str:
    samples = np.concatenate(list(decode(path, NO_LIMIT_S)))
    return engine.transcribe([samples])[0].text


def measure(name: str, clip: Clip, window_s: float) -> Row:
    """Each way starts from a fresh engine: pocketsphinx carries state from one utterance to the next,
    so a shared engine would let the second way inherit what the first one heard."""
    started = time.perf_counter()
    pipeline = wer(clip.reference, pipeline_text(PocketsphinxEngine(), clip.path, window_s))
    single = wer(clip.reference, single_pass_text(PocketsphinxEngine(), clip.path))
    return Row(name, clip.duration, pipeline, single, time.perf_counter() - started)


def long_recording(clips: list[Clip], minutes: float, directory: Path) -> Clip:
    """The clips in turn, with pauses, until `minutes` of audio, its reference theirs joined."""
    chosen, total = [], 0.0
    for clip in cycle(clips):
        if total >= minutes * 60:
            break
        chosen.append(clip)
        total += clip.duration + PAUSE_S
    samples, _ = concatenate_with_pauses([clip.path for clip in chosen], PAUSE_S, trim=False)
    path = write_wav(directory / f"english-{minutes:g}min.wav", samples)
    return Clip(path, "en", len(samples) / SAMPLE_RATE, " ".join(clip.reference for clip in chosen))


def progress(row: Row) -> str:
    return f"{row.name}: pipeline {row.pipeline:.3f}, single pass {row.single:.3f} ({row.seconds:.0f} s)"


def table(rows: list[Row]) -> str:
    lines = [f"{'recording':52} {'dur s':>7} {'pipeline':>9} {'single':>7} {'delta':>7} {'time s':>7}"]
    for row in rows:
        delta = row.pipeline - row.single
        flag = "  <- pipeline worse" if delta > 0 else ""
        lines.append(
            f"{row.name:52} {row.duration_s:7.1f} {row.pipeline:9.3f} {row.single:7.3f} {delta:+7.3f}"
            f" {row.seconds:7.1f}{flag}"
        )
    return "\n".join(lines)


def verdict(rows: list[Row]) -> list[str]:
    worse = [row.name for row in rows if row.pipeline > row.single]
    lucier = next(row for row in rows if row.name == LUCIER)
    lucier_ok = lucier.pipeline <= LUCIER_GOAL
    return [
        f"{LUCIER}: pipeline WER {lucier.pipeline:.3f}, single pass {lucier.single:.3f} "
        f"(goal <= {LUCIER_GOAL}: {'PASS' if lucier_ok else 'FAIL'})",
        "pipeline never worse than single pass: " + ("PASS" if not worse else f"FAIL ({', '.join(worse)})"),
    ]


def main() -> None:
    parser = ArgumentParser(description=__doc__, formatter_class=RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10, help="length of the joined recording")
    parser.add_argument("--window-seconds", type=float, default=WINDOW_S, help="window length, <= 30 s")
    args = parser.parse_args()
    window_s = args.window_seconds
    english = {name: clip for name, clip in manifest().items() if clip.language == "en"}
    print(
        f"pocketsphinx, chunks {CHUNK_S:g} s, windows {window_s:g} s; {len(english)} English clips",
        flush=True,
    )
    rows = []
    for name, clip in english.items():
        rows.append(measure(name, clip, window_s))
        print(f"  {progress(rows[-1])}", flush=True)
    clips = list(english.values())
    with tempfile.TemporaryDirectory(prefix="tingxie-accuracy-") as tmp:
        joined = long_recording(clips, args.minutes, Path(tmp))
        name = f"all English clips joined ({joined.duration / 60:.1f} min)"
        rows.append(measure(name, joined, window_s))
    print()
    print(table(rows))
    print()
    print("\n".join(verdict(rows)))


if __name__ == "__main__":
    main()
