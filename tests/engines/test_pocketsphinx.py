"""The bundled pocketsphinx engine on real speech."""

import numpy as np
import pytest

from tests.audio_fixtures import decoded
from tests.corpus import manifest
from tests.helpers import wer
from worker.audio.decode import SAMPLE_RATE
from worker.engines.pocketsphinx import PocketsphinxEngine


def _speech(name: str, seconds: float | None = None) -> np.ndarray:
    samples = decoded(manifest()[name].path)
    return samples if seconds is None else samples[: int(seconds * SAMPLE_RATE)]


def test_transcribes_english_with_word_times() -> None:
    clip = manifest()["en/jfk.wav"]
    [result] = PocketsphinxEngine().transcribe([_speech("en/jfk.wav")])
    assert result.language == "en"
    assert wer(clip.reference, result.text) < 0.4, result.text
    [segment] = result.segments
    assert 0 <= segment.start < segment.end <= clip.duration
    assert " ".join(word.text for word in segment.words) == segment.text
    assert segment.words[0].start == segment.start and segment.words[-1].end == segment.end
    assert all(a.end <= b.start for a, b in zip(segment.words, segment.words[1:], strict=False))
    assert all(word.start < word.end for word in segment.words)


@pytest.mark.parametrize("name", ["en/spk1_snt4.wav", "en/jfk.flac"])
def test_a_window_does_not_depend_on_what_the_engine_heard_before(name: str) -> None:
    """One engine serves every job of a worker process; its decoder's adaptation must not carry over.
    (Without a reset, hearing 25 s of this lecture first changes both of these transcripts.)"""
    window = _speech(name)
    fresh = PocketsphinxEngine().transcribe([window])[0].text
    engine = PocketsphinxEngine()
    engine.transcribe([_speech("en/lucier.mp3", seconds=25)])
    assert engine.transcribe([window])[0].text == fresh
