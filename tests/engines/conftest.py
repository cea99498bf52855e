from __future__ import annotations

import numpy as np
import pytest

from tests.engines.speech import load_clip
from worker.engines.base import WINDOW_SAMPLES

CLIPS = ("en/jfk.wav", "zh/asr_example_zh.wav", "yue/yue-4.wav", "en/english.wav", "multi/fr1.wav")
LONG_CLIP = "en/OSR_us_000_0034_8k.wav"


@pytest.fixture(scope="session")
def clips() -> list[np.ndarray]:
    """Real speech of several languages and lengths, the last one a full 30 s window."""
    return [load_clip(name) for name in CLIPS] + [load_clip(LONG_CLIP)[:WINDOW_SAMPLES]]
