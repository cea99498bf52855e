"""The prepare step's audio work, without the database: a source file decoded, planned and stored chunk
by chunk in one streaming pass. `worker.service.prepare` runs it for a job; `bench/prep.py` measures it."""

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from tingxie.errors import JobWarning
from tingxie.settings import Settings
from tingxie.storage import Storage
from worker.audio.decode import SAMPLE_RATE, DecodeReport, decode
from worker.audio.plan import ChunkPlanner, PlannedChunk, Window
from worker.audio.prefetch import prefetched
from worker.audio.wavio import encode_wav


@dataclass(frozen=True)
class StoredChunk:
    index: int
    start: float
    end: float
    audio_key: str
    windows: tuple[Window, ...]


@dataclass(frozen=True)
class PreparedAudio:
    duration: float  # seconds decoded
    chunks: list[StoredChunk]  # those with speech, in order
    warnings: list[JobWarning]  # what the decode had to leave out


def plan_and_store(
    path: Path,
    storage: Storage,
    key_prefix: str,
    settings: Settings,
    on_progress: Callable[[float], None] | None = None,
    on_chunk: Callable[[StoredChunk], None] | None = None,
) -> PreparedAudio:
    """Decode (a thread ahead), detect speech and cut chunks; each chunk with speech is stored under
    `key_prefix` as it is cut, so memory holds one chunk of samples whatever the length of the recording.
    `on_progress` hears the seconds decoded so far after every block; `on_chunk` each chunk once it is
    stored, so its transcription can start while the rest of the recording is still being decoded."""
    planner = ChunkPlanner(settings.chunk_seconds, settings.planned_window_seconds)
    report = DecodeReport()
    stored: list[StoredChunk] = []
    for block in prefetched(decode(path, settings.max_duration_seconds, report)):
        stored += _store_audible(planner.feed(block), storage, key_prefix, on_chunk)
        if on_progress is not None:
            on_progress(planner.total_samples / SAMPLE_RATE)
    stored += _store_audible(planner.finish(), storage, key_prefix, on_chunk)
    return PreparedAudio(planner.total_samples / SAMPLE_RATE, stored, report.warnings())


def _store_audible(
    chunks: Iterable[PlannedChunk],
    storage: Storage,
    key_prefix: str,
    on_chunk: Callable[[StoredChunk], None] | None,
) -> list[StoredChunk]:
    """Chunks with speech are stored; silence-only chunks never reach the engine."""
    stored = []
    for chunk in chunks:
        if chunk.windows:
            stored.append(_store_chunk(chunk, storage, key_prefix))
            if on_chunk is not None:
                on_chunk(stored[-1])
    return stored


def _store_chunk(chunk: PlannedChunk, storage: Storage, key_prefix: str) -> StoredChunk:
    key = f"{key_prefix}{chunk.index:05d}.wav"
    storage.put_bytes(key, encode_wav(chunk.samples))
    return StoredChunk(chunk.index, chunk.start, chunk.end, key, chunk.windows)
