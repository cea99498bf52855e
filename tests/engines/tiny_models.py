"""Tiny random-weight Qwen3-ASR and Whisper checkpoints, built offline in a few seconds.

They are saved with save_pretrained so the engines load them exactly like real weights.
Their transcripts are gibberish; they exercise shapes, prompts, batching and decoding.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from tokenizers import AddedToken, Tokenizer, models, pre_tokenizers, trainers
from transformers import (
    GenerationConfig,
    Qwen2Tokenizer,
    Qwen3ASRConfig,
    Qwen3ASRFeatureExtractor,
    Qwen3ASRForConditionalGeneration,
    Qwen3ASRForTokenClassification,
    Qwen3ASRProcessor,
    WhisperConfig,
    WhisperFeatureExtractor,
    WhisperForConditionalGeneration,
    WhisperProcessor,
    WhisperTokenizer,
)
from transformers.models.qwen3_asr.processing_qwen3_asr import LANGUAGE_CODE_TO_NAME
from transformers.models.whisper.tokenization_whisper import LANGUAGES as WHISPER_LANGUAGES

CORPUS = (
    "language English<asr_text>and so my fellow americans ask not what your country can do for you",
    "language Chinese<asr_text>欢迎大家来体验达摩院推出的语音识别模型",
    "language Cantonese<asr_text>香港嘅消费市场从此不一样",
    "language None<asr_text>",
    " ".join(f"language {name}" for name in LANGUAGE_CODE_TO_NAME.values()),
)

# The special tokens of the Qwen3-ASR tokenizer that its prompts and outputs use.
QWEN_AUDIO_TOKENS = {
    "audio_token": "<|audio_pad|>",
    "audio_bos_token": "<|audio_start|>",
    "audio_eos_token": "<|audio_end|>",
}
QWEN_CHAT_TEMPLATE = (
    "{% if messages[0].role != 'system' %}<|im_start|>system\n<|im_end|>\n{% endif %}"
    "{% for message in messages %}<|im_start|>{{ message.role }}\n"
    "{% if message.content is string %}{{ message.content }}{% else %}{% for part in message.content %}"
    "{% if part.type == 'audio' %}<|audio_start|><|audio_pad|><|audio_end|>"
    "{% elif part.type == 'text' %}{{ part.text }}{% endif %}"
    "{% endfor %}{% endif %}"
    "<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
# Large enough that a tiny random model's greedy output depends on its audio.
INIT_RANGE = 0.3


def train_byte_level_bpe(texts: tuple[str, ...], vocab_size: int = 400) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """A byte-level BPE vocabulary and merges, trained in-process on a few strings."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(texts, trainer)
    model = json.loads(tokenizer.to_str())["model"]
    return model["vocab"], [tuple(merge) for merge in model["merges"]]


def qwen_tokenizer(*special: str) -> Qwen2Tokenizer:
    """Qwen's tokenizer shape over a small BPE of the corpus: its chat and audio tokens, and `special`."""
    vocab, merges = train_byte_level_bpe(CORPUS)
    return Qwen2Tokenizer(
        vocab=vocab,
        merges=merges,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        extra_special_tokens=["<|im_start|>", *special],
        model_specific_special_tokens=QWEN_AUDIO_TOKENS,
    )


def build_qwen3_asr_processor() -> Qwen3ASRProcessor:
    tokenizer = qwen_tokenizer()
    # Not special: decoding with skip_special_tokens must keep it for output parsing.
    tokenizer.add_tokens([AddedToken("<asr_text>", special=False, normalized=False)])
    return Qwen3ASRProcessor(Qwen3ASRFeatureExtractor(), tokenizer, chat_template=QWEN_CHAT_TEMPLATE)


def qwen3_asr_token_ids(processor: Qwen3ASRProcessor) -> dict[str, Any]:
    """Token-id fields of a Qwen3ASRConfig that must agree with the tokenizer."""
    ids = processor.tokenizer.convert_tokens_to_ids
    end_of_text, end_of_turn = ids("<|endoftext|>"), ids("<|im_end|>")
    return {
        "audio_token_id": processor.audio_token_id,
        "pad_token_id": end_of_turn,
        "eos_token_id": [end_of_text, end_of_turn],
    }


def tiny_qwen3_asr_config(processor: Qwen3ASRProcessor) -> Qwen3ASRConfig:
    hidden = 32
    return Qwen3ASRConfig(
        audio_config={
            "encoder_layers": 2,
            "encoder_attention_heads": 2,
            "encoder_ffn_dim": 64,
            "d_model": 32,
            "downsample_hidden_size": 8,
            "output_dim": hidden,
            "initializer_range": INIT_RANGE,
        },
        text_config={
            "vocab_size": len(processor.tokenizer),
            "hidden_size": hidden,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "num_key_value_heads": 1,
            "head_dim": 16,
            "max_position_embeddings": 2048,
            "initializer_range": INIT_RANGE,
        },
        initializer_range=INIT_RANGE,
        **qwen3_asr_token_ids(processor),
    )


def build_tiny_qwen3_asr(directory: Path) -> Path:
    processor = build_qwen3_asr_processor()
    config = tiny_qwen3_asr_config(processor)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = Qwen3ASRForConditionalGeneration(config)
    model.generation_config = GenerationConfig(
        eos_token_id=config.eos_token_id, pad_token_id=config.pad_token_id, do_sample=False
    )
    model.save_pretrained(directory)
    processor.save_pretrained(directory)
    return directory


# Qwen3-ForcedAligner's prompt: the audio, then each word followed by two markers, its start and its end,
# which the token-classification head puts into 80 ms slots.
ALIGNER_CHAT_TEMPLATE = (
    "{% for message in messages %}{% for part in message.content %}"
    "{% if part.type == 'audio' %}<|audio_start|><|audio_pad|><|audio_end|>"
    "{% elif part.type == 'text' %}{{ part.text }}<timestamp><timestamp>{% endif %}"
    "{% endfor %}{% endfor %}"
)
ALIGNER_SLOTS = 400  # 32 s of 80 ms slots: more than a window


def build_tiny_qwen3_aligner(directory: Path) -> Path:
    """A random-weight Qwen3-ForcedAligner: Qwen3-ASR's body under a token-classification head."""
    tokenizer = qwen_tokenizer("<timestamp>")
    processor = Qwen3ASRProcessor(Qwen3ASRFeatureExtractor(), tokenizer, chat_template=ALIGNER_CHAT_TEMPLATE)
    config = tiny_qwen3_asr_config(processor)
    config.num_labels = ALIGNER_SLOTS
    config.timestamp_token_id = tokenizer.convert_tokens_to_ids("<timestamp>")
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = Qwen3ASRForTokenClassification(config)
    model.save_pretrained(directory)
    processor.save_pretrained(directory)
    return directory


def build_whisper_tokenizer() -> WhisperTokenizer:
    vocab, merges = train_byte_level_bpe(CORPUS)
    languages = [f"<|{code}|>" for code in WHISPER_LANGUAGES]
    specials = ["<|startoftranscript|>", *languages, "<|translate|>", "<|transcribe|>"]
    specials += ["<|startoflm|>", "<|startofprev|>", "<|nospeech|>", "<|notimestamps|>"]
    return WhisperTokenizer(vocab=vocab, merges=merges, extra_special_tokens=specials)


def whisper_generation_config(tokenizer: WhisperTokenizer) -> GenerationConfig:
    # Built field by field: GenerationConfig.from_model_config() drops the Whisper fields.
    ids = tokenizer.convert_tokens_to_ids
    end = ids("<|endoftext|>")
    return GenerationConfig(
        decoder_start_token_id=ids("<|startoftranscript|>"),
        bos_token_id=end,
        eos_token_id=end,
        pad_token_id=end,
        lang_to_id={f"<|{code}|>": ids(f"<|{code}|>") for code in WHISPER_LANGUAGES},
        task_to_id={"transcribe": ids("<|transcribe|>"), "translate": ids("<|translate|>")},
        no_timestamps_token_id=ids("<|notimestamps|>"),
        prev_sot_token_id=ids("<|startofprev|>"),
        is_multilingual=True,
        max_length=448,
        begin_suppress_tokens=[end],
        suppress_tokens=[],
    )


def tiny_whisper_config(tokenizer: WhisperTokenizer) -> WhisperConfig:
    ids = tokenizer.convert_tokens_to_ids
    end = ids("<|endoftext|>")
    return WhisperConfig(
        vocab_size=len(tokenizer),
        num_mel_bins=80,
        d_model=32,
        encoder_layers=2,
        decoder_layers=2,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        max_target_positions=448,
        init_std=INIT_RANGE,
        pad_token_id=end,
        bos_token_id=end,
        eos_token_id=end,
        decoder_start_token_id=ids("<|startoftranscript|>"),
        begin_suppress_tokens=None,
        suppress_tokens=None,
    )


def build_tiny_whisper(directory: Path) -> Path:
    tokenizer = build_whisper_tokenizer()
    processor = WhisperProcessor(WhisperFeatureExtractor(feature_size=80), tokenizer)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = WhisperForConditionalGeneration(tiny_whisper_config(tokenizer))
    model.generation_config = whisper_generation_config(tokenizer)
    model.save_pretrained(directory)
    processor.save_pretrained(directory)
    return directory
