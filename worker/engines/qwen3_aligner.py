"""Word times for Qwen3-ASR: Qwen3-ForcedAligner through transformers' native implementation
(`Qwen3ASRForTokenClassification`; the processor's `prepare_forced_aligner_inputs` and
`decode_forced_alignment`). Given a window's audio and its transcript, one forward pass classifies two
`<timestamp>` markers after each word into 80 ms slots: the word's start and end.

The aligner knows 11 languages (ALIGNED_LANGUAGES); a window in another language keeps its segment
without words. Words are split the processor's default way (CJK characters one by one, other scripts at
spaces, punctuation dropped) for every language, so Japanese and Korean need neither nagisa nor soynlp;
each word then takes back the punctuation that follows it in the transcript, so cues built from words
read like the transcript."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import Qwen3ASRForTokenClassification, Qwen3ASRProcessor
from transformers.models.qwen3_asr.processing_qwen3_asr import FORCED_ALIGNER_LANGUAGES

from tingxie.languages import lookup
from worker.engines.base import SAMPLE_RATE, WINDOW_SAMPLES, Word, in_item
from worker.engines.torch_support import AdaptiveBatcher, resolve_dtype

ALIGNED_LANGUAGES: frozenset[str] = frozenset(FORCED_ALIGNER_LANGUAGES)


def aligns(language: str | None) -> bool:
    """Whether the aligner takes a window in this API language (a dialect as its parent); an undetected
    language is tried."""
    if language is None:
        return True
    try:
        entry = lookup(language)
    except ValueError:
        return False
    name = lookup(entry.parent).qwen_name if entry.parent else entry.qwen_name
    return name in ALIGNED_LANGUAGES


class Qwen3Aligner:
    def __init__(
        self, model_path: str | Path, device: str = "cpu", dtype: torch.dtype | str | None = None, batch_size: int = 8
    ) -> None:
        self.model_path = str(model_path)
        self.device = device
        self.dtype = resolve_dtype(dtype, device)
        self.processor = Qwen3ASRProcessor.from_pretrained(model_path, local_files_only=True)
        model = Qwen3ASRForTokenClassification.from_pretrained(model_path, dtype=self.dtype, local_files_only=True)
        self.model = model.to(device).eval()  # type: ignore[arg-type]  # transformers types .to() for dtypes only
        self._batcher = AdaptiveBatcher(batch_size)

    def align(
        self, windows: Sequence[np.ndarray], texts: Sequence[str], languages: Sequence[str | None]
    ) -> list[tuple[Word, ...]]:
        """Each window's words with their times in the window; none for an empty transcript or a language
        the aligner does not know."""
        todo = [
            index
            for index, (text, language) in enumerate(zip(texts, languages, strict=True))
            if text.strip() and aligns(language)
        ]
        words: list[tuple[Word, ...]] = [() for _ in windows]
        aligned = self._batcher.map(
            todo, lambda batch: self._run([windows[i] for i in batch], [texts[i] for i in batch])
        )
        for index, found in zip(todo, aligned, strict=True):
            words[index] = found
        return words

    @torch.inference_mode()
    def _run(self, audio: Sequence[np.ndarray], texts: Sequence[str]) -> list[tuple[Word, ...]]:
        # Every item padded to a full window, as the transcription pads them: a window's word times then do
        # not depend on its batch mates.
        audio_kwargs = {"sampling_rate": SAMPLE_RATE, "padding": "max_length", "max_length": WINDOW_SAMPLES}
        inputs, word_lists = self.processor.prepare_forced_aligner_inputs(
            list(audio), list(texts), language=None, processor_kwargs={"audio_kwargs": audio_kwargs}
        )
        inputs = inputs.to(self.device)
        logits = self.model(
            input_ids=inputs["input_ids"],
            attention_mask=inputs["attention_mask"],
            input_features=inputs["input_features"].to(self.dtype),
            input_features_mask=inputs["input_features_mask"],
        ).logits
        decoded = self.processor.decode_forced_alignment(
            logits, inputs["input_ids"], word_lists, self.model.config.timestamp_token_id
        )
        return [
            _words(text, items, len(window) / SAMPLE_RATE)
            for text, items, window in zip(texts, decoded, audio, strict=True)
        ]


def _words(text: str, items: list[dict[str, Any]], duration: float) -> tuple[Word, ...]:
    """The aligner's words, inside the window, each with the punctuation that follows it in `text`."""
    shown = _with_punctuation(text, [str(item["text"]) for item in items])
    words = []
    for item, display in zip(items, shown, strict=True):
        start = in_item(float(item["start_time"]), duration)
        end = max(in_item(float(item["end_time"]), duration), start)
        words.append(Word(start=start, end=end, text=display))
    return tuple(words)


def _with_punctuation(text: str, words: list[str]) -> list[str]:
    """Each word as the transcript writes it, up to the next word: "hello" -> "hello,", "wellknown" ->
    "well-known". A word the transcript does not hold (the splitter changed it) stays as it is. When every
    word is found, the words hold every character of the transcript but its spaces."""
    spans: list[tuple[int, int] | None] = []
    cursor = 0
    for word in words:
        span = _located(text, word, cursor)
        spans.append(span)
        if span is not None:
            cursor = span[1]
    shown = []
    for index, (word, span) in enumerate(zip(words, spans, strict=True)):
        if span is None:
            shown.append(word)
            continue
        following = next((later[0] for later in spans[index + 1 :] if later is not None), len(text))
        begin = 0 if index == 0 else span[0]  # what precedes the first word (an opening quote) is kept too
        shown.append(text[begin:following].strip())
    return shown


def _located(text: str, word: str, cursor: int) -> tuple[int, int] | None:
    """Where `word` is in `text` from `cursor` on, allowing the characters the aligner's splitter drops
    (punctuation, symbols) between its letters; None when it is not there."""
    for start in range(cursor, len(text)):
        if text[start] != word[0]:
            continue
        position, matched = start, 0
        while position < len(text) and matched < len(word):
            if text[position] == word[matched]:
                matched += 1
            elif text[position].isalnum() or text[position].isspace():
                break
            position += 1
        if matched == len(word):
            return start, position
    return None
