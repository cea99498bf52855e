"""Builds the configured engine, once per worker process (the first task loads it)."""

import logging
from functools import lru_cache

from tingxie.settings import Settings, get_settings
from worker.engines.base import Engine

log = logging.getLogger(__name__)


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
    if settings.engine == "qwen3-asr":
        from worker.engines.qwen3_asr import Qwen3AsrEngine

        return Qwen3AsrEngine(settings.model_path, device, settings.dtype, settings.batch_size)
    from worker.engines.whisper import WhisperEngine

    return WhisperEngine(settings.model_path, device, settings.dtype, settings.batch_size)


@lru_cache(maxsize=1)
def get_engine() -> Engine:
    settings = get_settings()
    engine = build_engine(settings)
    log.info("loaded engine %s (%s) on %s", engine.name, engine.model, engine.device)
    return engine
