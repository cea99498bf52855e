"""Word times for Qwen3-ASR from a tiny random-weight Qwen3-ForcedAligner, through transformers' real
Qwen3ASRForTokenClassification and processor path: the times are random, their structure is not."""

from pathlib import Path

import numpy as np
import pytest

from tingxie.engines import engine_spec
from tingxie.settings import Settings
from worker.engines.qwen3_aligner import Qwen3Aligner, aligns
from worker.engines.qwen3_asr import Qwen3AsrEngine, build
from worker.engines.torch_support import TokenBudget

BUDGET = TokenBudget(per_second=2.0, margin=4, cap=40)


@pytest.fixture(scope="module")
def aligned_engine(tiny_qwen3_asr: Path, tiny_qwen3_aligner: Path) -> Qwen3AsrEngine:
    return Qwen3AsrEngine(tiny_qwen3_asr, batch_size=4, budget=BUDGET, aligner=Qwen3Aligner(tiny_qwen3_aligner))


def test_segments_get_ordered_words_inside_them_that_hold_their_text(
    aligned_engine: Qwen3AsrEngine, clips: list[np.ndarray]
) -> None:
    results = aligned_engine.transcribe(clips, language="en")
    timed = [segment for result in results for segment in result.segments]
    assert timed, "the tiny model says something on real speech"
    for window, result in zip(clips, results, strict=True):
        for segment in result.segments:
            assert segment.words, segment
            assert 0 <= segment.start <= segment.end <= len(window) / 16_000
            assert segment.start == segment.words[0].start and segment.end >= segment.words[-1].end
            assert all(word.start <= word.end for word in segment.words)
            for times in ([w.start for w in segment.words], [w.end for w in segment.words]):
                assert times == sorted(times)
            assert "".join(word.text for word in segment.words).replace(" ", "") == segment.text.replace(" ", "")


def test_words_do_not_depend_on_the_batch(aligned_engine: Qwen3AsrEngine, clips: list[np.ndarray]) -> None:
    together = aligned_engine.transcribe(clips, language="en")
    alone = [aligned_engine.transcribe([clip], language="en")[0] for clip in clips]
    assert [r.text for r in together] == [r.text for r in alone]
    assert [[s.words for s in r.segments] for r in together] == [[s.words for s in r.segments] for r in alone]


def test_languages_the_aligner_does_not_know_keep_their_segments_without_words(
    aligned_engine: Qwen3AsrEngine, clips: list[np.ndarray]
) -> None:
    assert aligns("zh-sichuan") and aligns("yue") and aligns(None) and not aligns("ar")
    for result in aligned_engine.transcribe(clips[:2], language="ar"):
        assert all(not segment.words for segment in result.segments)


def test_the_factory_loads_the_aligner_from_its_setting(tiny_qwen3_asr: Path, tiny_qwen3_aligner: Path) -> None:
    settings = Settings(engine="qwen3-asr", model_path=str(tiny_qwen3_asr), device="cpu", batch_size=2)
    assert build(settings).aligner is None
    assert not engine_spec("qwen3-asr").gives_word_times(settings.model_path, settings.aligner_path)
    with_aligner = settings.model_copy(update={"aligner_path": str(tiny_qwen3_aligner)})
    engine = build(with_aligner)
    assert engine.aligner is not None and engine.aligner.model_path == str(tiny_qwen3_aligner)
    assert engine_spec("qwen3-asr").gives_word_times(with_aligner.model_path, with_aligner.aligner_path)


def test_words_take_back_the_punctuation_the_splitter_drops(tiny_qwen3_aligner: Path) -> None:
    from worker.engines.qwen3_aligner import _with_punctuation

    processor = Qwen3Aligner(tiny_qwen3_aligner).processor
    for text, shown in [
        ("“Hello,” she said: it's well-known.", ["“Hello,”", "she", "said:", "it's", "well-known."]),
        ("欢迎大家，来体验。", ["欢", "迎", "大", "家，", "来", "体", "验。"]),
    ]:
        words = processor.split_words_for_alignment(text)
        assert _with_punctuation(text, words) == shown
