"""The prepare step's audio work, without the database: a source file decoded, planned and stored chunk
by chunk in one streaming pass. `worker.service.prepare` runs it for a job; `bench/prep.py` measures it;
`worker.local` runs the same cut (`cut_chunks`) without storing anything."""

from collections.abc import Callable, Iterable, Iterator
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
    report = DecodeReport()
    stored = _store_audible(cut_chunks(path, settings, report, on_progress), storage, key_prefix, on_chunk)
    return PreparedAudio(report.seconds, stored, report.warnings())


def cut_chunks(
    path: Path, settings: Settings, report: DecodeReport, on_progress: Callable[[float], None] | None = None
) -> Iterator[PlannedChunk]:
    """The recording decoded (a thread ahead) and cut into chunks and windows in pauses, each chunk as soon
    as it is cut. `on_progress` hears the seconds decoded so far after every block; `report` is complete
    once the last chunk is out."""
    planner = ChunkPlanner(settings.chunk_seconds, settings.planned_window_seconds)
    for block in prefetched(decode(path, settings.max_duration_seconds, report)):
        yield from planner.feed(block)
        if on_progress is not None:
            on_progress(planner.total_samples / SAMPLE_RATE)
    yield from planner.finish()


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
