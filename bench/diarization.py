"""Speaker labels on conversations built from real clips of different speakers (tests/conversations.py):
error rate, word times at the clips' edges, and time and memory on long recordings.

    .venv/bin/python -m bench.diarization                  # everything: DER, word times, 1 h and 3 h
    .venv/bin/python -m bench.diarization --hours 1        # only 1 h for the long run
    .venv/bin/python -m bench.diarization --hours 0        # no long run

- **DER** for 2, 3 and 4 speakers, three conversations each (turns of 2-15 s, a fifth of the changes of
  speaker overlapping by 0.2-0.6 s), the number of speakers left to the clustering: the textbook
  definition, (missed + false alarm + confusion) / reference speech, speakers mapped one to one for the
  most overlap, 0.25 s either side of each reference turn's edges not scored. Overlapped speech counts
  once per speaker, so the one speaker the diarizer gives there is a miss for the other.
- **Word times at clip edges**: a conversation of the English speakers with no overlaps transcribed by
  `worker.local.transcribe_file` with pocketsphinx; for each utterance, the first word's start and the
  last word's end against the utterance's speech onset and offset (from the VAD) in the conversation.
- **Long recordings**: 1 h and 3 h of conversation fed to the diarizer in 300 s chunks, as the worker's
  diarize step feeds its stored chunks, each in a process of its own: wall time and peak resident memory.
  The audio is made chunk by chunk, so the bench never holds the recording either."""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.audio_fixtures import write_wav
from tests.conversations import Conversation, conversation, diarization_error
from tingxie.engines import speaker_encoder_weights
from tingxie.settings import Settings
from worker.batching import Prompt
from worker.diarization.clustering import SpeakerCount
from worker.diarization.diarize import Diarizer
from worker.diarization.encoder import SpeakerEncoder, load_encoder
from worker.engines.pocketsphinx import PocketsphinxEngine
from worker.local import transcribe_file

SAMPLE_RATE = 16_000
CHUNK_SECONDS = 300
SPEAKER_SETS = {2: ["lucier", "osr"], 3: ["lucier", "osr", "kennedy"], 4: ["lucier", "osr", "kennedy", "austen"]}
ENGLISH = ["lucier", "osr", "kennedy", "austen"]
SEEDS = (0, 1, 2)
GOALS = {2: 0.15, 4: 0.25}


def encoder() -> SpeakerEncoder:
    weights = speaker_encoder_weights(None)
    if weights is None:
        raise SystemExit("resemblyzer is not installed")
    return load_encoder(weights)


def diarize(chunks: Iterator[np.ndarray], count: SpeakerCount) -> tuple[list[tuple[float, float, str]], int]:
    diarizer, position = Diarizer(encoder()), 0.0
    for samples in chunks:
        diarizer.add(position, samples)
        position += len(samples) / SAMPLE_RATE
    turns = diarizer.turns(count)
    return [(turn.start, turn.end, turn.speaker) for turn in turns], diarizer.pieces


def chunks_of(samples: np.ndarray) -> Iterator[np.ndarray]:
    step = CHUNK_SECONDS * SAMPLE_RATE
    for first in range(0, len(samples), step):
        yield samples[first : first + step]


def error_rates() -> None:
    print("DER (collar 0.25 s), number of speakers found, per conversation:")
    for speakers, names in SPEAKER_SETS.items():
        rates, found = [], []
        for seed in SEEDS:
            talk = conversation(names, seed)
            hypothesis, _ = diarize(chunks_of(talk.samples), SpeakerCount())
            error = diarization_error(talk.turns, hypothesis, talk.duration)
            rates.append(error.rate)
            found.append(len({speaker for _, _, speaker in hypothesis}))
        goal = f" (goal <= {GOALS[speakers]:.0%})" if speakers in GOALS else ""
        shown = ", ".join(f"{rate:.1%}" for rate in rates)
        print(f"  {speakers} speakers: DER {shown}, mean {statistics.mean(rates):.1%}{goal}; found {found}")


def word_time_errors() -> None:
    talk = conversation(ENGLISH, seed=0, overlap_share=0.0)
    with tempfile.TemporaryDirectory() as tmp:
        path = write_wav(Path(tmp) / "talk.wav", talk.samples)
        transcript = transcribe_file(path, PocketsphinxEngine(), Settings(), Prompt(language=None, context=None))
    words = [word for segment in transcript.segments for word in segment.words]
    errors = []
    for turn in talk.turns:
        inside = [word for word in words if turn.start - 0.5 <= (word.start + word.end) / 2 <= turn.end + 0.5]
        if inside:
            errors += [abs(inside[0].start - turn.start), abs(inside[-1].end - turn.end)]
    print(
        f"word times at clip edges (pocketsphinx, {len(talk.turns)} utterances, {len(errors)} edges): "
        f"median {statistics.median(errors):.2f} s, p90 {np.percentile(errors, 90):.2f} s, "
        f"max {max(errors):.2f} s (goal: median <= 0.3 s)"
    )


def long_conversation(hours: float) -> Iterator[np.ndarray]:
    """`hours` of conversation in CHUNK_SECONDS chunks, made as they are needed."""
    needed, buffered, seed = int(hours * 3600 * SAMPLE_RATE), np.zeros(0, dtype=np.float32), 0
    step = CHUNK_SECONDS * SAMPLE_RATE
    while needed > 0:
        while len(buffered) < min(step, needed):
            talk: Conversation = conversation(SPEAKER_SETS[4], seed)
            buffered = np.concatenate((buffered, talk.samples))
            seed += 1
        size = min(step, needed)
        yield buffered[:size]
        buffered, needed = buffered[size:], needed - size


def measure_long(hours: float) -> None:
    """In this process (run as a child): diarize `hours` of conversation and print a JSON line."""
    for _ in long_conversation(0.02):  # the clips decoded and cached, the encoder loaded: not timed
        pass
    encoder()
    started = time.perf_counter()
    turns, pieces = diarize(long_conversation(hours), SpeakerCount())
    seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    speakers = len({speaker for _, _, speaker in turns})
    print(json.dumps({"hours": hours, "seconds": seconds, "peak_mb": peak_mb, "pieces": pieces, "speakers": speakers}))


def long_runs(hours: list[float]) -> None:
    for length in hours:
        command = [sys.executable, "-m", "bench.diarization", "--measure-long", str(length)]
        result = subprocess.run(command, capture_output=True, text=True, check=True)
        figures = json.loads(result.stdout.strip().splitlines()[-1])
        goal = "goal <= 120 s" if length == 1 else "goal: peak <= 1024 MB" if length == 3 else ""
        print(
            f"{length:g} h: {figures['seconds']:.0f} s ({figures['seconds'] / (length * 3600):.3f} of real time), "
            f"peak {figures['peak_mb']:.0f} MB, {figures['pieces']} pieces, {figures['speakers']} speakers "
            f"({goal}; the clips repeat, so the speakers found are not scored)"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hours", type=float, nargs="*", default=[1, 3], help="long runs to time (0: none)")
    parser.add_argument("--measure-long", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure_long is not None:
        measure_long(args.measure_long)
        return 0
    error_rates()
    word_time_errors()
    long_runs([hours for hours in args.hours if hours > 0])
    return 0


if __name__ == "__main__":
    sys.exit(main())
