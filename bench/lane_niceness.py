"""The interactive job behind a backlog with the bulk workers' nice value raised (TINGXIE_BULK_NICENESS,
10 by default) and left as it is (0), in alternating rounds on the same services, so that the machine's
drift falls on both alike. Each round starts a platform (API, cpu worker, one GPU worker, the interactive
worker), times a 30 s interactive job on it idle, then behind `--jobs` recordings of 10 minutes once the
GPU worker's first call has started, and says which worker transcribed it.

    .venv/bin/python bench/lane_niceness.py              # 3 rounds of each, behind 6 x 10 min
    .venv/bin/python bench/lane_niceness.py --smoke      # one round of each, behind 1 x 1 min
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.backlog import INTERACTIVE_SECONDS, interactive_latency
from bench.backlog_platform import BenchPlatform, Services, build_model, recordings

BATCH_SIZE = 16


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=6)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args(argv)
    jobs, minutes, rounds = (1, 1.0, 1) if args.smoke else (args.jobs, args.minutes, args.rounds)
    with Services() as services:
        model = build_model(services.directory)
        paths = recordings(jobs, minutes, services.directory)
        clip = recordings(1, INTERACTIVE_SECONDS / 60, services.directory, name="interactive")[0]
        print(f"{'bulk nice':>9} {'alone s':>8} {'by':>12} {'behind s':>9} {'by':>12} {'ratio':>6}")
        ratios: dict[str, list[float]] = {"0": [], "10": []}
        for _ in range(rounds):
            for niceness in ratios:
                platform = BenchPlatform(services, model, batch_size=BATCH_SIZE)
                platform.env["TINGXIE_BULK_NICENESS"] = niceness
                alone, behind = interactive_latency(platform, paths, clip)
                ratio = behind.total_s / alone.total_s
                ratios[niceness].append(ratio)
                print(
                    f"{niceness:>9} {alone.total_s:>8.2f} {platform.transcribed_by(alone.job_id):>12} "
                    f"{behind.total_s:>9.2f} {platform.transcribed_by(behind.job_id):>12} {ratio:>5.2f}x",
                    flush=True,
                )
        for niceness, found in ratios.items():
            median = sorted(found)[len(found) // 2]
            print(f"bulk nice {niceness}: behind / alone {median:.2f}x (median of {len(found)})")


if __name__ == "__main__":
    main()
