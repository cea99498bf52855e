"""Qwen3-ASR throughput by batch size, through Qwen3AsrEngine, with random weights.

The model has the Qwen3-ASR-1.7B-hf architecture (transformers' Qwen3ASRConfig defaults) and
runs in bfloat16 on CUDA. Every window is 30 s of real speech tiled from the shared corpus, and
every window yields exactly 4 tokens per second of audio (120), so batch sizes compare fairly.
Batch sizes grow until CUDA runs out of memory. Nothing is downloaded.

    python -m bench.gpu_throughput            # GPU, full size
    python -m bench.gpu_throughput --smoke    # CPU, tiny config, same table
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from transformers import Qwen3ASRConfig, Qwen3ASRForConditionalGeneration, Qwen3ASRProcessor

from tests.engines.speech import load_clip, wav_clips
from tests.engines.tiny_models import (
    build_qwen3_asr_processor,
    qwen3_asr_token_ids,
    tiny_qwen3_asr_config,
)
from worker.engines.base import WINDOW_SAMPLES, WINDOW_SECONDS
from worker.engines.qwen3_asr import Qwen3AsrEngine
from worker.engines.torch_support import TokenBudget

TOKENS_PER_SECOND = 4
OUTPUT_TOKENS = TOKENS_PER_SECOND * WINDOW_SECONDS
FULL_BATCH_SIZES = (1, 8, 32, 64, 128, 256, 512)
SMOKE_BATCH_SIZES = (1, 2, 4)


@dataclass(frozen=True)
class Measurement:
    batch_size: int
    wall_seconds: float
    peak_gib: float | None

    @property
    def audio_per_second(self) -> float:
        return self.batch_size * WINDOW_SECONDS / self.wall_seconds

    @property
    def tokens_per_second(self) -> float:
        return self.batch_size * OUTPUT_TOKENS / self.wall_seconds


class OutOfMemory(Exception):
    pass


def full_size_config(processor: Qwen3ASRProcessor) -> Qwen3ASRConfig:
    config = Qwen3ASRConfig(**qwen3_asr_token_ids(processor))
    # The class default output_dim (3584) is not the 1.7B text hidden size.
    config.audio_config.output_dim = config.text_config.hidden_size
    return config


def random_model(config: Qwen3ASRConfig, device: str, dtype: torch.dtype) -> Qwen3ASRForConditionalGeneration:
    with torch.random.fork_rng(), torch.device(device):
        torch.manual_seed(0)
        model = Qwen3ASRForConditionalGeneration(config)
    return model.to(dtype).eval()


def build_engine(smoke: bool) -> Qwen3AsrEngine:
    device, dtype = ("cpu", torch.float32) if smoke else ("cuda", torch.bfloat16)
    processor = build_qwen3_asr_processor()
    config = tiny_qwen3_asr_config(processor) if smoke else full_size_config(processor)
    label = "random weights, " + ("tiny config" if smoke else "Qwen3-ASR-1.7B-hf config")
    return Qwen3AsrEngine(
        label,
        device=device,
        dtype=dtype,
        budget=TokenBudget(per_second=TOKENS_PER_SECOND, margin=0, cap=OUTPUT_TOKENS),
        generate_kwargs={"min_new_tokens": OUTPUT_TOKENS},
        components=(random_model(config, device, dtype), processor),
    )


def speech_windows(count: int) -> list[np.ndarray]:
    """`count` different 30 s windows cut from the corpus clips played back to back, repeating."""
    stream = np.concatenate([load_clip(name) for name in wav_clips()])
    return list(np.resize(stream, count * WINDOW_SAMPLES).reshape(count, WINDOW_SAMPLES))


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def reset_peak_memory(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def peak_gib(device: str) -> float | None:
    return torch.cuda.max_memory_allocated() / 2**30 if device.startswith("cuda") else None


def timed_run(engine: Qwen3AsrEngine, windows: list[np.ndarray]) -> float:
    synchronize(engine.device)
    start = time.perf_counter()
    engine.transcribe(windows)
    synchronize(engine.device)
    return time.perf_counter() - start


def measure(engine: Qwen3AsrEngine, windows: list[np.ndarray], batch_size: int, repeats: int) -> Measurement:
    engine.batch_size = batch_size
    reset_peak_memory(engine.device)
    try:
        wall = min(timed_run(engine, windows[:batch_size]) for _ in range(repeats))
    except torch.cuda.OutOfMemoryError as error:
        raise OutOfMemory from error
    if engine.batch_size < batch_size:
        raise OutOfMemory
    return Measurement(batch_size, wall, peak_gib(engine.device))


def describe(engine: Qwen3AsrEngine) -> str:
    config = engine.hf_model.config
    text, audio = config.text_config, config.audio_config
    parameters = sum(parameter.numel() for parameter in engine.hf_model.parameters()) / 1e9
    return (
        f"{engine.model}: {parameters:.2f} B parameters, {engine.dtype}, {engine.device}, "
        f"attention {config._attn_implementation}\n"
        f"encoder {audio.encoder_layers} layers d={audio.d_model} (window {audio.n_window_infer} mel frames); "
        f"decoder {text.num_hidden_layers} layers hidden={text.hidden_size} heads={text.num_attention_heads}/"
        f"{text.num_key_value_heads} head_dim={text.head_dim} ffn={text.intermediate_size} vocab={text.vocab_size}\n"
        f"{WINDOW_SECONDS} s windows, {OUTPUT_TOKENS} output tokens each"
    )


def format_row(row: Measurement, baseline: Measurement) -> str:
    peak = "-" if row.peak_gib is None else f"{row.peak_gib:.1f}"
    ratio = row.audio_per_second / baseline.audio_per_second
    return (
        f"{row.batch_size:>6} {row.wall_seconds:>9.2f} {row.audio_per_second:>14.1f} "
        f"{row.tokens_per_second:>10.0f} {peak:>9} {ratio:>8.2f}x"
    )


HEADER = f"{'batch':>6} {'wall s':>9} {'audio s / s':>14} {'tokens/s':>10} {'peak GiB':>9} {'vs b=1':>9}"


def run(batch_sizes: tuple[int, ...], smoke: bool, repeats: int) -> list[Measurement]:
    engine = build_engine(smoke)
    print(describe(engine), flush=True)
    windows = speech_windows(max(batch_sizes))
    engine.transcribe(windows[:1])
    print(HEADER, flush=True)
    rows: list[Measurement] = []
    for batch_size in batch_sizes:
        try:
            rows.append(measure(engine, windows, batch_size, repeats))
        except OutOfMemory:
            print(f"{batch_size:>6} out of memory; stopping", flush=True)
            break
        print(format_row(rows[-1], rows[0]), flush=True)
    return rows


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny config on CPU, to check the script runs")
    parser.add_argument("--batch-sizes", type=lambda text: tuple(int(size) for size in text.split(",")))
    parser.add_argument("--repeats", type=int, default=2, help="runs per batch size; the fastest counts")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if not args.smoke and not torch.cuda.is_available():
        sys.exit("CUDA is not available; use --smoke to run the reduced CPU benchmark")
    batch_sizes = args.batch_sizes or (SMOKE_BATCH_SIZES if args.smoke else FULL_BATCH_SIZES)
    run(batch_sizes, args.smoke, args.repeats)


if __name__ == "__main__":
    main()
