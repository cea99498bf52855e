"""Builds the configured engine and the batcher in front of it, once per worker process (the first task
loads them; the tasks of a thread pool that start together wait for that one load)."""

import logging
import threading
from functools import lru_cache
from typing import Protocol

from tingxie.queue import BATCH_STEPS
from tingxie.settings import Settings, get_settings
from worker.batching import WindowBatcher
from worker.engines.base import Engine
from worker.engines.torch_support import batch_for_memory

log = logging.getLogger(__name__)


class BatchedEngine(Protocol):
    """A torch engine: it batches windows itself and lowers its batch on CUDA out-of-memory."""

    batch_size: int
    device: str

    def window_bytes(self) -> int: ...


def resolve_device(device: str) -> str:
    """ "auto" is CUDA when a GPU is visible, else the CPU."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def build_engine(settings: Settings) -> Engine:
    if settings.engine == "pocketsphinx":
        from worker.engines.pocketsphinx import PocketsphinxEngine

        return PocketsphinxEngine()
    if not settings.model_path:
        raise RuntimeError(f"TINGXIE_MODEL_PATH must name a local model directory for {settings.engine}")
    device = resolve_device(settings.device)
    batch_size = settings.starting_batch_size
    engine: Engine
    if settings.engine == "qwen3-asr":
        from worker.engines.qwen3_asr import Qwen3AsrEngine

        static = {"cache_implementation": "static"} if settings.generate_cache == "static" else {}
        engine = Qwen3AsrEngine(settings.model_path, device, settings.dtype, batch_size, generate_kwargs=static)
    else:
        from worker.engines.whisper import WhisperEngine

        engine = WhisperEngine(settings.model_path, device, settings.dtype, batch_size)
    if settings.batch_size == "auto" and device.startswith("cuda"):
        _fit_batch_to_memory(engine)
    return engine


def _fit_batch_to_memory(engine: BatchedEngine) -> None:
    """With the weights loaded, size the batch from the memory left on the GPU."""
    import torch

    free, _total = torch.cuda.mem_get_info(torch.device(engine.device))
    engine.batch_size = batch_for_memory(free, engine.window_bytes())
    log.info("batch size %d from %.1f GiB free on the GPU", engine.batch_size, free / 1024**3)


@lru_cache(maxsize=1)
def get_engine() -> Engine:
    settings = get_settings()
    engine = build_engine(settings)
    log.info("loaded engine %s (%s) on %s", engine.name, engine.model, engine.device)
    return engine


def batch_limit(engine: Engine, settings: Settings) -> int:
    """Windows per engine call: the torch engines' own size, which falls after an out-of-memory error."""
    size = getattr(engine, "batch_size", None)
    if isinstance(size, int):
        return size
    return settings.starting_batch_size


_batcher_lock = threading.Lock()
_batcher: WindowBatcher | None = None


def get_batcher() -> WindowBatcher:
    """The process's one batcher, in front of its one engine."""
    global _batcher
    with _batcher_lock:
        if _batcher is None:
            settings = get_settings()
            engine = get_engine()
            wait_s = settings.batch_wait_ms / 1000
            _batcher = WindowBatcher(engine, lambda: batch_limit(engine, settings), wait_s, bulk_from=BATCH_STEPS[0])
        return _batcher


def reset_batcher() -> None:
    """Stop the batcher, so the next task builds one for the current settings (tests change them)."""
    global _batcher
    with _batcher_lock:
        if _batcher is not None:
            _batcher.close()
        _batcher = None
