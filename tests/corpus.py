"""The shared speech corpus in ../shared/speech: its paths and manifest, with no heavy imports.

Kept apart from tests.helpers so that benchmarks which only need audio (bench/gpu_throughput.py on a
GPU machine) do not pull in the database, storage and HTTP stacks.
"""

import csv
from dataclasses import dataclass
from pathlib import Path

SPEECH = Path(__file__).resolve().parents[2] / "shared" / "speech"
OSR = SPEECH / "en" / "OSR_us_000_0034_8k.wav"


@dataclass(frozen=True)
class Clip:
    path: Path
    language: str
    duration: float
    reference: str


def manifest() -> dict[str, Clip]:
    with (SPEECH / "manifest.tsv").open(encoding="utf-8") as handle:
        rows = csv.DictReader(handle, delimiter="\t")
        return {
            row["file"]: Clip(SPEECH / row["file"], row["language"], float(row["duration_s"]), row["reference_text"])
            for row in rows
        }
