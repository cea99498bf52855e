"""Builds the configured engine and the batcher in front of it, once per worker process (the first task
loads them; the tasks of a thread pool that start together wait for that one load)."""

import importlib
import logging
import threading
from collections.abc import Callable
from functools import lru_cache
from typing import Protocol, cast

from tingxie.engines import engine_spec
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


def build_engine(settings: Settings) -> Engine:
    """The configured engine, from its row of the engine table (tingxie/engines.py)."""
    module, function = engine_spec(settings.engine).factory.split(":")
    factory: Callable[[Settings], Engine] = getattr(importlib.import_module(module), function)
    engine = factory(settings)
    if settings.batch_size == "auto" and engine.device.startswith("cuda"):
        _fit_batch_to_memory(cast(BatchedEngine, engine))
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
