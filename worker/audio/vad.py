"""Voice activity detection: silero-vad's sequence ONNX model through onnxruntime, streaming.

The model file ships inside the silero-vad wheel. The package itself is never imported: its `__init__`
imports torch and sets torch's thread count to 1 for the whole process, which would slow the engines."""

import importlib.util
from functools import cache
from pathlib import Path

import numpy as np
import onnxruntime as ort

FRAME_SAMPLES = 512  # 32 ms at 16 kHz: the model's frame
CONTEXT_SAMPLES = 64  # each frame is prefixed with the last 64 samples of the previous one
FRAME_SECONDS = FRAME_SAMPLES / 16_000
FRAMES_PER_CALL = 1024  # ~33 s of audio per onnxruntime call keeps Python overhead negligible


@cache
def _model_path() -> Path:
    spec = importlib.util.find_spec("silero_vad")  # locates the package without running it
    if spec is None or spec.origin is None:
        raise RuntimeError("silero-vad is not installed")
    return Path(spec.origin).parent / "data" / "silero_vad_16k_sequence.onnx"


@cache
def _session() -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(_model_path()), options, providers=["CPUExecutionProvider"])


class StreamingVad:
    """Speech probability per 32 ms frame, fed arbitrary-length blocks in order.

    Samples that do not fill a frame yet are held until the next block (or `flush`)."""

    def __init__(self) -> None:
        self._hidden = np.zeros((1, 1, 128), dtype=np.float32)
        self._cell = np.zeros((1, 1, 128), dtype=np.float32)
        self._context = np.zeros(CONTEXT_SAMPLES, dtype=np.float32)
        self._pending = np.zeros(0, dtype=np.float32)

    def feed(self, samples: np.ndarray) -> np.ndarray:
        audio = np.concatenate((self._pending, samples))
        usable = len(audio) // FRAME_SAMPLES * FRAME_SAMPLES
        self._pending = audio[usable:]
        return self._frames(audio[:usable])

    def flush(self) -> np.ndarray:
        """Probabilities for the final partial frame, zero-padded."""
        if not len(self._pending):
            return np.zeros(0, dtype=np.float32)
        padded = np.zeros(FRAME_SAMPLES, dtype=np.float32)
        padded[: len(self._pending)] = self._pending
        self._pending = np.zeros(0, dtype=np.float32)
        return self._frames(padded)

    def _frames(self, audio: np.ndarray) -> np.ndarray:
        frames = audio.reshape(-1, FRAME_SAMPLES)
        starts = range(0, len(frames), FRAMES_PER_CALL)
        probabilities = [self._run(frames[i : i + FRAMES_PER_CALL]) for i in starts]
        return np.concatenate(probabilities) if probabilities else np.zeros(0, dtype=np.float32)

    def _run(self, frames: np.ndarray) -> np.ndarray:
        contexts = np.empty((len(frames), CONTEXT_SAMPLES), dtype=np.float32)
        contexts[0] = self._context
        contexts[1:] = frames[:-1, -CONTEXT_SAMPLES:]
        self._context = frames[-1, -CONTEXT_SAMPLES:].copy()
        block = np.concatenate((contexts, frames), axis=1)
        probs, self._hidden, self._cell = _session().run(
            ["speech_probs", "hn", "cn"], {"input": block, "h": self._hidden, "c": self._cell}
        )
        return np.asarray(probs, dtype=np.float32).reshape(-1)


def speech_probabilities(samples: np.ndarray) -> np.ndarray:
    vad = StreamingVad()
    return np.concatenate((vad.feed(samples), vad.flush()))
