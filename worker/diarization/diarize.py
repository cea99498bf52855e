"""Diarization of a recording fed chunk by chunk: the speech regions of each chunk (the VAD's) are cut
into overlapping pieces of 1.6 s, each piece is embedded, and once the whole recording is in the pieces
are clustered into speakers. What is kept between chunks is one embedding (1 KB) and three times per
piece, so memory grows with the speech's length by about 1.3 MB an hour, whatever the chunk size."""

from dataclasses import dataclass

import numpy as np

from tingxie.transcript import SpeakerTurn
from worker.audio.plan import speech_regions
from worker.diarization.clustering import SpeakerCount, cluster
from worker.diarization.encoder import (
    EMBEDDING_SIZE,
    FRAME_STEP,
    PIECE_FRAMES,
    SAMPLE_RATE,
    SpeakerEncoder,
    loudness_normalised,
)

PIECE_SECONDS = PIECE_FRAMES * FRAME_STEP / SAMPLE_RATE  # 1.6 s
HOP_SECONDS = 0.8  # pieces overlap by half: a turn of 2 s gets two of its own
SHORTEST_REGION = 0.3  # seconds: shorter blips of speech get the speaker around them, no piece of their own
MERGE_GAP = 0.5  # seconds: a speaker's turns closer than this are one turn


@dataclass(frozen=True)
class _Piece:
    region_start: float  # the speech region it belongs to, in recording time
    region_end: float
    centre: float  # where in the region the piece is centred: it labels the times nearest to it


class Diarizer:
    """Feed it the recording's chunks in order (`add`), then ask for the speaker turns (`turns`)."""

    def __init__(self, encoder: SpeakerEncoder) -> None:
        self._encoder = encoder
        self._pieces: list[_Piece] = []
        self._embeddings: list[np.ndarray] = []

    def add(self, chunk_start: float, samples: np.ndarray) -> None:
        """One chunk of 16 kHz samples starting `chunk_start` seconds into the recording."""
        regions = [(a, b) for a, b in speech_regions(samples) if b - a >= SHORTEST_REGION]
        if not regions:
            return
        mel = self._encoder.mel_frames(samples)
        pieces, mels = [], []
        for start, end in regions:
            for centre in _piece_centres(start, end):
                first = _first_frame(centre, len(mel))
                piece_samples = samples[first * FRAME_STEP : (first + PIECE_FRAMES) * FRAME_STEP]
                mels.append(loudness_normalised(_padded(mel[first : first + PIECE_FRAMES]), piece_samples))
                pieces.append(_Piece(chunk_start + start, chunk_start + end, chunk_start + centre))
        self._embeddings.append(self._encoder.embed(mels))
        self._pieces += pieces

    @property
    def pieces(self) -> int:
        return len(self._pieces)

    def turns(self, count: SpeakerCount) -> list[SpeakerTurn]:
        """The recording's speaker turns in time order, speakers named S1, S2, ... by first appearance."""
        if not self._pieces:
            return []
        embeddings = np.concatenate(self._embeddings) if self._embeddings else np.zeros((0, EMBEDDING_SIZE))
        labels = cluster(embeddings, count)
        return _named(_merged(_labelled_spans(self._pieces, labels)))


def _piece_centres(start: float, end: float) -> list[float]:
    """Centres of pieces covering [start, end): every HOP_SECONDS, the first and last a half piece in
    from the ends; one in the middle of a region shorter than a piece."""
    length = end - start
    if length <= PIECE_SECONDS:
        return [start + length / 2]
    count = int(np.ceil((length - PIECE_SECONDS) / HOP_SECONDS)) + 1
    return list(np.linspace(start + PIECE_SECONDS / 2, end - PIECE_SECONDS / 2, count))


def _first_frame(centre: float, frames: int) -> int:
    first = round(centre * SAMPLE_RATE / FRAME_STEP) - PIECE_FRAMES // 2
    return max(0, min(first, frames - PIECE_FRAMES))


def _padded(mel: np.ndarray) -> np.ndarray:
    """A chunk shorter than a piece: its frames, then silence."""
    if len(mel) == PIECE_FRAMES:
        return mel
    return np.concatenate((mel, np.zeros((PIECE_FRAMES - len(mel), mel.shape[1]), dtype=mel.dtype)))


def _labelled_spans(pieces: list[_Piece], labels: np.ndarray) -> list[tuple[float, float, int]]:
    """Each region split between its pieces at the midpoints of their centres, each part with its
    piece's speaker."""
    spans = []
    for index, (piece, label) in enumerate(zip(pieces, labels, strict=True)):
        start, end = piece.region_start, piece.region_end
        if index and pieces[index - 1].region_start == piece.region_start:
            start = (pieces[index - 1].centre + piece.centre) / 2
        if index + 1 < len(pieces) and pieces[index + 1].region_start == piece.region_start:
            end = (piece.centre + pieces[index + 1].centre) / 2
        spans.append((start, end, int(label)))
    return spans


def _merged(spans: list[tuple[float, float, int]]) -> list[tuple[float, float, int]]:
    merged: list[tuple[float, float, int]] = []
    for start, end, label in spans:
        if merged and merged[-1][2] == label and start - merged[-1][1] < MERGE_GAP:
            merged[-1] = (merged[-1][0], end, label)
        else:
            merged.append((start, end, label))
    return merged


def _named(spans: list[tuple[float, float, int]]) -> list[SpeakerTurn]:
    names: dict[int, str] = {}
    for _, _, label in spans:
        names.setdefault(label, f"S{len(names) + 1}")
    return [SpeakerTurn(round(start, 3), round(end, 3), names[label]) for start, end, label in spans]
