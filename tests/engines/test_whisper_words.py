"""Whisper's word times from the cross-attention of its alignment heads (transformers'
return_token_timestamps), on a tiny random checkpoint with and without alignment heads."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tingxie.engines import engine_spec
from worker.engines.torch_support import TokenBudget
from worker.engines.whisper import WhisperEngine

BUDGET = TokenBudget(per_second=2.0, margin=4, cap=40)


@pytest.fixture(scope="module")
def timed_whisper(tiny_whisper: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny checkpoint with alignment heads named in its generation config, as OpenAI's have."""
    directory = tmp_path_factory.mktemp("whisper-timed") / "model"
    shutil.copytree(tiny_whisper, directory)
    config_path = directory / "generation_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config["alignment_heads"] = [[1, 0], [1, 1]]
    config_path.write_text(json.dumps(config), encoding="utf-8")
    return directory


def test_a_checkpoint_with_alignment_heads_gives_words_inside_their_segments(
    timed_whisper: Path, clips: list[np.ndarray]
) -> None:
    engine = WhisperEngine(timed_whisper, batch_size=4, budget=BUDGET)
    assert engine.word_times and engine_spec("whisper").gives_word_times(str(timed_whisper), None)
    results = engine.transcribe(clips, language="en")
    segments = [segment for result in results for segment in result.segments]
    assert segments
    for window, result in zip(clips, results, strict=True):
        for segment in result.segments:
            assert segment.words
            assert 0 <= segment.start <= segment.end <= len(window) / 16_000
            starts = [word.start for word in segment.words]
            assert starts == sorted(starts) and all(w.start <= w.end <= segment.end for w in segment.words)
            assert "".join("".join(w.text for w in segment.words).split()) == "".join(segment.text.split())


def test_a_checkpoint_without_alignment_heads_gives_segments_without_words(
    tiny_whisper: Path, clips: list[np.ndarray]
) -> None:
    engine = WhisperEngine(tiny_whisper, batch_size=4, budget=BUDGET)
    assert not engine.word_times and not engine_spec("whisper").gives_word_times(str(tiny_whisper), None)
    for result in engine.transcribe(clips[:2], language="en"):
        assert all(not segment.words for segment in result.segments)
