"""The table of speech-recognition engines: every fact about an engine that the settings, the worker's
registry, `/v1/engines` and language validation need. A new engine is one module under `worker/engines/`
and one row here.

The factory is named as `module:function` rather than imported, so the API (which never loads a model)
does not import torch or transformers."""

import importlib.util
import json
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Literal

from tingxie.languages import SUPPORTED_CODES, WHISPER_API_CODES, normalize_code

EngineName = Literal["pocketsphinx", "qwen3-asr", "whisper"]


class WordTimes(StrEnum):
    """Where an engine's word times come from, and so when its segments carry them."""

    ALWAYS = "always"  # the decoder's own word boundaries
    WITH_ALIGNER = "with_aligner"  # a forced aligner, once TINGXIE_ALIGNER_PATH names one
    # The cross-attention heads that follow the audio, which the checkpoint's generation_config.json lists
    # as alignment_heads (OpenAI's Whisper checkpoints do; a fine-tuned one may not).
    WITH_ALIGNMENT_HEADS = "with_alignment_heads"


@dataclass(frozen=True)
class EngineSpec:
    name: EngineName
    # The longest window it transcribes well; TINGXIE_WINDOW_SECONDS can only lower it.
    window_limit_s: float
    languages: frozenset[str]  # API codes it can be asked for (besides "auto")
    word_times: WordTimes
    factory: str  # "module:function" building the engine from the Settings; imported by workers only
    bundled_model: str | None = None  # the model it ships with, when it needs no TINGXIE_MODEL_PATH

    def gives_word_times(self, model_path: str | None, aligner_path: str | None) -> bool:
        """Whether segments carry word times with this model (and aligner); read from files only."""
        if self.word_times == WordTimes.WITH_ALIGNER:
            return bool(aligner_path)
        if self.word_times == WordTimes.WITH_ALIGNMENT_HEADS:
            return bool(model_path) and has_alignment_heads(Path(model_path or ""))
        return True

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
            word_times=WordTimes.ALWAYS,
            factory="worker.engines.pocketsphinx:build",
            bundled_model="en-us (bundled)",
        ),
        EngineSpec(
            name="qwen3-asr",
            window_limit_s=30.0,
            languages=SUPPORTED_CODES,
            word_times=WordTimes.WITH_ALIGNER,
            factory="worker.engines.qwen3_asr:build",
        ),
        EngineSpec(
            name="whisper",
            window_limit_s=30.0,
            languages=WHISPER_API_CODES,
            word_times=WordTimes.WITH_ALIGNMENT_HEADS,
            factory="worker.engines.whisper:build",
        ),
    )
}

# Every code some engine accepts: a code outside it is not a language tingxie knows at all.
KNOWN_CODES: frozenset[str] = frozenset().union(*(spec.languages for spec in ENGINES.values()))


def engine_spec(name: str) -> EngineSpec:
    return ENGINES[name]


def has_alignment_heads(model_path: Path) -> bool:
    try:
        config = json.loads((model_path / "generation_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return bool(config.get("alignment_heads"))


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
