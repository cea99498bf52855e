"""Speaker embeddings: Resemblyzer's voice encoder (a GE2E d-vector model: three LSTM layers over 40-band
mel frames, 256 values per 1.6 s piece), with the weights its wheel ships (`pretrained.pt`, 17 MB).

The network is rebuilt here and only the weights file is read: the `resemblyzer` package is never
imported, because its `__init__` imports webrtcvad, which needs setuptools' `pkg_resources` at import
time. The mel frames are computed as Resemblyzer computes them (librosa, 25 ms windows every 10 ms,
power, not log), and each piece is brought to the loudness it was trained on (-30 dBFS), so a loud and a
quiet speaker are told apart by their voices, not their levels."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
import torch
from torch import nn

from tingxie.engines import speaker_encoder_weights
from tingxie.settings import Settings

SAMPLE_RATE = 16_000
MEL_BANDS = 40
FRAME_STEP = 160  # 10 ms
FRAME_LENGTH = 400  # 25 ms
PIECE_FRAMES = 160  # 1.6 s: the model's partial utterance
EMBEDDING_SIZE = 256
TARGET_DBFS = -30.0
BATCH = 64


class _VoiceEncoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(MEL_BANDS, EMBEDDING_SIZE, 3, batch_first=True)
        self.linear = nn.Linear(EMBEDDING_SIZE, EMBEDDING_SIZE)

    def forward(self, mels: torch.Tensor) -> torch.Tensor:
        _, (hidden, _) = self.lstm(mels)
        raw = torch.relu(self.linear(hidden[-1]))
        return raw / torch.norm(raw, dim=1, keepdim=True).clamp_min(1e-8)


class SpeakerEncoder:
    """Embeds pieces of 16 kHz speech; L2-normalised, so a dot product is their cosine similarity."""

    def __init__(self, weights: Path) -> None:
        checkpoint = torch.load(weights, map_location="cpu", weights_only=True)
        self._model = _VoiceEncoder()
        # The checkpoint also holds the training loss's two scalars (similarity_weight, _bias): not needed.
        wanted = self._model.state_dict().keys()
        self._model.load_state_dict({name: checkpoint["model_state"][name] for name in wanted})
        self._model.eval()

    def mel_frames(self, samples: np.ndarray) -> np.ndarray:
        """(frames, 40) mel power of a stretch of audio; frame i is centred on sample i * FRAME_STEP."""
        return _mel_power(samples)

    def embed(self, pieces: list[np.ndarray]) -> np.ndarray:
        """(len(pieces), 256) embeddings of mel pieces of PIECE_FRAMES frames each."""
        if not pieces:
            return np.zeros((0, EMBEDDING_SIZE), dtype=np.float32)
        out = []
        with torch.inference_mode():
            for first in range(0, len(pieces), BATCH):
                batch = torch.from_numpy(np.stack(pieces[first : first + BATCH]))
                out.append(self._model(batch).numpy())
        return np.concatenate(out)


def loudness_normalised(piece: np.ndarray, samples: np.ndarray) -> np.ndarray:
    """Mel power of a piece scaled as if its samples had been brought to TARGET_DBFS (power is quadratic
    in amplitude, and the mel filters are linear)."""
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64)))) if len(samples) else 0.0
    if rms <= 1e-6:
        return piece
    gain = 10 ** (TARGET_DBFS / 20) / rms
    return (piece * gain**2).astype(np.float32)


def _mel_power(samples: np.ndarray) -> np.ndarray:
    import librosa  # imported on first use: only diarization needs it, and it is slow to import

    frames = librosa.feature.melspectrogram(
        y=np.asarray(samples, dtype=np.float32),
        sr=SAMPLE_RATE,
        n_fft=FRAME_LENGTH,
        hop_length=FRAME_STEP,
        n_mels=MEL_BANDS,
    )
    return frames.astype(np.float32).T


@cache
def load_encoder(weights: Path) -> SpeakerEncoder:
    return SpeakerEncoder(weights)


def speaker_encoder(settings: Settings) -> SpeakerEncoder:
    """The encoder of TINGXIE_SPEAKER_ENCODER_PATH, else the bundled one; loaded once per process."""
    weights = speaker_encoder_weights(settings.speaker_encoder_path)
    if weights is None:
        raise RuntimeError("no speaker encoder: install resemblyzer or set TINGXIE_SPEAKER_ENCODER_PATH")
    return load_encoder(Path(weights))
