"""CMU pocketsphinx: the embedded default. Its en-us model ships inside the wheel, so a fresh machine
transcribes real English with no download. English only; it degrades on long utterances, which is why
windows are cut at pauses before they reach it."""

import re
from collections.abc import Sequence

import numpy as np
from pocketsphinx import Decoder

from tingxie.settings import Settings
from worker.engines.base import Segment, Transcription, Word

SAMPLE_RATE = 16_000
FRAMES_PER_SECOND = 100  # pocketsphinx's default frame rate
_FILLERS = re.compile(r"^(<s>|</s>|<sil>|\[.*\])$")
_ALTERNATE = re.compile(r"\(\d+\)$")  # "the(2)": second pronunciation of "the"


def build(settings: Settings) -> "PocketsphinxEngine":
    return PocketsphinxEngine()


class PocketsphinxEngine:
    name = "pocketsphinx"
    model = "en-us (bundled)"
    device = "cpu"

    def __init__(self) -> None:
        self._decoder = Decoder(loglevel="FATAL")

    def transcribe(
        self, audio: Sequence[np.ndarray], language: str | None = None, context: str | None = None
    ) -> list[Transcription]:
        return [self._transcribe_one(item) for item in audio]

    def _transcribe_one(self, samples: np.ndarray) -> Transcription:
        pcm = (np.clip(samples, -1.0, 1.0) * 32767).astype("<i2").tobytes()
        # The decoder adapts its cepstral mean to everything it hears, across utterances: without this
        # reset a window's words would depend on the windows (of any job) this process decoded before.
        self._decoder.reinit_feat()
        self._decoder.start_utt()
        self._decoder.process_raw(pcm, full_utt=True)
        self._decoder.end_utt()
        duration = len(samples) / SAMPLE_RATE
        words = tuple(
            Word(
                start=seg.start_frame / FRAMES_PER_SECOND,
                end=min((seg.end_frame + 1) / FRAMES_PER_SECOND, duration),
                text=_ALTERNATE.sub("", seg.word),
            )
            for seg in self._decoder.seg()
            if not _FILLERS.match(seg.word)
        )
        if not words:
            return Transcription(language="en", text="", segments=())
        text = " ".join(word.text for word in words)
        segment = Segment(start=words[0].start, end=words[-1].end, text=text, language="en", words=words)
        return Transcription(language="en", text=text, segments=(segment,))
