"""Builds the configured engine, once per worker process."""

from functools import lru_cache

from tingxie.settings import Settings, get_settings
from worker.engines.base import Engine


def build_engine(settings: Settings) -> Engine:
    if settings.engine == "pocketsphinx":
        from worker.engines.pocketsphinx import PocketsphinxEngine

        return PocketsphinxEngine()
    raise NotImplementedError(f"engine {settings.engine!r} is not available in this build")


@lru_cache(maxsize=1)
def get_engine() -> Engine:
    return build_engine(get_settings())
