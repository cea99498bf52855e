"""The table of speech-recognition engines: every fact about an engine that the settings, the worker's
registry, `/v1/engines` and language validation need. A new engine is one module under `worker/engines/`
and one row here.

The factory is named as `module:function` rather than imported, so the API (which never loads a model)
does not import torch or transformers."""

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from tingxie.languages import SUPPORTED_CODES, WHISPER_API_CODES, normalize_code

EngineName = Literal["pocketsphinx", "qwen3-asr", "whisper"]


@dataclass(frozen=True)
class EngineSpec:
    name: EngineName
    # The longest window it transcribes well; TINGXIE_WINDOW_SECONDS can only lower it.
    window_limit_s: float
    languages: frozenset[str]  # API codes it can be asked for (besides "auto")
    word_timestamps: bool  # whether its segments carry word times
    factory: str  # "module:function" building the engine from the Settings; imported by workers only
    bundled_model: str | None = None  # the model it ships with, when it needs no TINGXIE_MODEL_PATH

    def accepts(self, code: str) -> bool:
        return normalize_code(code) in self.languages


ENGINES: dict[str, EngineSpec] = {
    spec.name: spec
    for spec in (
        # An HMM decoder whose accuracy falls on long utterances (bench/accuracy.py measures it): short windows.
        EngineSpec(
            name="pocketsphinx",
            window_limit_s=8.0,
            languages=frozenset({"en"}),
            word_timestamps=True,
            factory="worker.engines.pocketsphinx:build",
            bundled_model="en-us (bundled)",
        ),
        EngineSpec(
            name="qwen3-asr",
            window_limit_s=30.0,
            languages=SUPPORTED_CODES,
            word_timestamps=False,
            factory="worker.engines.qwen3_asr:build",
        ),
        EngineSpec(
            name="whisper",
            window_limit_s=30.0,
            languages=WHISPER_API_CODES,
            word_timestamps=False,
            factory="worker.engines.whisper:build",
        ),
    )
}

# Every code some engine accepts: a code outside it is not a language tingxie knows at all.
KNOWN_CODES: frozenset[str] = frozenset().union(*(spec.languages for spec in ENGINES.values()))


def engine_spec(name: str) -> EngineSpec:
    return ENGINES[name]


def speaker_encoder_weights(speaker_encoder_path: Path | None) -> Path | None:
    """The speaker encoder's weights for diarization: the configured file, else the one the resemblyzer
    wheel ships (`pretrained.pt`), found without importing the package; None when there is neither."""
    if speaker_encoder_path is not None:
        return speaker_encoder_path
    spec = importlib.util.find_spec("resemblyzer")
    if spec is None or spec.origin is None:
        return None
    bundled = Path(spec.origin).parent / "pretrained.pt"
    return bundled if bundled.is_file() else None
