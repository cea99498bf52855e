"""A backlog of real recordings through the whole platform, against the engine alone on the same windows.

Starts its own services (a Redis server on a free port, a fresh Postgres database on 127.0.0.1:5432,
moto_server as S3), the API and workers as real processes, and a random-weight Qwen3-ASR: the tiny
config on CPU, the Qwen3-ASR-1.7B-hf architecture in bfloat16 on CUDA. Recordings are corpus clips from
../shared/speech played in turn with pauses, WAV, `--minutes` long each. In one run it prints:

- engine alone: `Qwen3AsrEngine.transcribe` on windows drawn evenly through the backlog, at each batch
  size; the best one is the batch size the platform runs with, and it is timed again after the platform
  runs: the ratios are against the mean of the two;
- transcribe stage: the backlog prepared first (no GPU worker running), then one GPU worker started:
  audio-s/s from its first engine call to the last job's completion, its ratio to the engine alone, and
  mean windows per engine call (from the worker's log);
- the same stage with two GPU workers (on CUDA: as many as there are GPUs, one each);
- end to end: the backlog submitted over HTTP with every worker running, first upload to last completion;
- an interactive 30 s job submitted behind the backlog, against the same job on an idle platform (the
  median of three of each).

    .venv/bin/python bench/backlog.py                     # 6 x 10 min (goals apply to this)
    .venv/bin/python bench/backlog.py --jobs 2 --minutes 2  # a quick look
    .venv/bin/python bench/backlog.py --smoke             # the smallest run that exercises every step
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.backlog_platform import BenchPlatform, Latency, Services, audio_seconds, build_model, recordings
from bench.backlog_platform import engine_alone as measure_engine

CALL_LINE = re.compile(r"^\[(?P<at>[\d-]+ [\d:,]+): INFO/\w+\] engine call: (?P<n>\d+) windows in (?P<s>[\d.]+) s")
INTERACTIVE_SECONDS = 30.0
INTERACTIVE_SAMPLES = 3  # one interactive job's latency varies by several times on two shared cores


@dataclass(frozen=True)
class StageRun:
    workers: int
    wall_s: float
    audio_s: float
    calls: int
    windows: int

    @property
    def audio_per_second(self) -> float:
        return self.audio_s / self.wall_s

    @property
    def windows_per_call(self) -> float:
        return self.windows / self.calls if self.calls else 0.0


def engine_calls(logs: list[Path]) -> list[tuple[float, int, float]]:
    """(start, windows, seconds) of every engine call the workers logged, start as a Unix time."""
    calls = []
    for log in logs:
        for line in log.read_text(errors="replace").splitlines():
            match = CALL_LINE.match(line)
            if match:
                ended = datetime.strptime(match["at"], "%Y-%m-%d %H:%M:%S,%f").timestamp()
                calls.append((ended - float(match["s"]), int(match["n"]), float(match["s"])))
    return calls


def transcribe_stage(platform: BenchPlatform, paths: list[Path], workers: int) -> StageRun:
    """Every recording prepared first; then `workers` GPU workers drain the chunks."""
    platform.start(gpu_workers=0)
    ids = platform.submit_all(paths, priority="batch")
    platform.wait_prepared(ids)
    logs = platform.start_gpu_workers(workers)
    finished = platform.wait_completed(ids)
    calls = engine_calls(logs)
    platform.stop()
    started = min(start for start, _, _ in calls)
    wall = max(finished) - started
    return StageRun(workers, wall, sum(audio_seconds(p) for p in paths), len(calls), sum(n for _, n, _ in calls))


def end_to_end(platform: BenchPlatform, paths: list[Path]) -> float:
    """Seconds from the first upload to the last completion, every worker running."""
    platform.start(gpu_workers=1)
    platform.warm_up()
    started = time.time()
    ids = platform.submit_all(paths, priority="batch")
    finished = platform.wait_completed(ids)
    platform.stop()
    return max(finished) - started


def interactive_latency(
    platform: BenchPlatform, paths: list[Path], clip: Path, samples: int = 1
) -> tuple[Latency, Latency]:
    """The clip's latency on an idle platform, then behind the backlog (submitted once the GPU is busy,
    one after another while the backlog runs): the median of `samples` of each."""
    platform.start(gpu_workers=1)
    platform.warm_up()
    alone = _median([platform.latency(clip, priority="interactive") for _ in range(samples)])
    ids = platform.submit_all(paths, priority="batch")
    platform.wait_first_call()
    behind = _median([platform.latency(clip, priority="interactive") for _ in range(samples)])
    platform.wait_completed(ids)
    platform.stop()
    return alone, behind


def _median(found: list[Latency]) -> Latency:
    return sorted(found, key=lambda latency: latency.total_s)[len(found) // 2]


def report(
    best: tuple[int, float],
    again: float,
    stages: list[StageRun],
    e2e: tuple[float, float],
    latency: tuple[Latency, Latency],
) -> None:
    batch, first = best
    engine_rate = (first + again) / 2  # the machine drifts between the first timing and the last
    print(f"\nengine alone, best batch {batch}: {first:.1f} audio s/s before the platform runs, {again:.1f} after")
    print(f"{'':24} the ratios below are against their mean, {engine_rate:.1f}")
    print(f"{'transcribe stage':24} {'wall s':>8} {'audio s/s':>10} {'vs engine':>10} {'win/call':>9} {'vs batch':>9}")
    for run in stages:
        rate, per_call = run.audio_per_second, run.windows_per_call
        print(
            f"{f'{run.workers} GPU worker(s)':24} {run.wall_s:>8.1f} {rate:>10.1f} {rate / engine_rate:>10.2f} "
            f"{per_call:>9.1f} {per_call / batch:>9.2f}"
        )
    one, two = stages[0], stages[-1]
    print(f"{'2 workers vs 1':24} {one.wall_s / two.wall_s:>8.2f}x faster")
    wall, audio = e2e
    rate = audio / wall
    print(f"end to end (1 GPU worker): {wall:.1f} s wall, {rate:.1f} audio s/s, {rate / engine_rate:.2f} of the engine")
    alone, behind = latency
    ratio = behind.total_s / alone.total_s
    label = f"interactive {INTERACTIVE_SECONDS:.0f} s job (median of {INTERACTIVE_SAMPLES})"
    print(f"{label}: {alone.total_s:.1f} s alone, {behind.total_s:.1f} s behind the backlog ({ratio:.2f}x)")
    print(
        f"{'':{len(label) + 2}}waiting for a cpu worker: {alone.queued_s:.1f} s alone, {behind.queued_s:.1f} s behind"
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=6)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--batch-sizes", default="1,4,8,16,32,64", help="engine-alone sizes to try")
    parser.add_argument("--smoke", action="store_true", help="2 jobs of 1 minute, batch sizes 1 and 8")
    parser.add_argument("--generate-cache", choices=("dynamic", "static"), default="dynamic")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    jobs, minutes, sizes = args.jobs, args.minutes, [int(size) for size in args.batch_sizes.split(",")]
    if args.smoke:
        jobs, minutes, sizes = 2, 1.0, [1, 8]
    with Services() as services:
        model = build_model(services.directory)
        paths = recordings(jobs, minutes, services.directory)
        clip = recordings(1, INTERACTIVE_SECONDS / 60, services.directory, name="interactive")[0]
        print(
            f"backlog: {jobs} x {minutes:g} min ({sum(audio_seconds(p) for p in paths):.0f} s of audio); {model.name}"
        )
        static = {"cache_implementation": "static"} if args.generate_cache == "static" else None
        best = measure_engine(model, paths, sizes, static)
        platform = BenchPlatform(services, model, batch_size=best[0], generate_cache=args.generate_cache)
        print(f"platform: batch size {best[0]}, {platform.concurrency} chunks held per GPU worker", flush=True)
        stages = [transcribe_stage(platform, paths, workers) for workers in (1, 2)]
        e2e = (end_to_end(platform, paths), sum(audio_seconds(p) for p in paths))
        latency = interactive_latency(platform, paths, clip, INTERACTIVE_SAMPLES)
        _, again = measure_engine(model, paths, [best[0]], static)
        report(best, again, stages, e2e, latency)


if __name__ == "__main__":
    main()
