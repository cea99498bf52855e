"""Multichannel audio to mono without cancelling the speech.

Averaging channels is only right when they carry the speech in step. Two microphones a few metres apart
hear the same voice tens of milliseconds apart, and their plain average is the voice plus a delayed copy
of itself: a dense comb filter that recognisers handle badly (Lucier's "I am sitting in a room", recorded
this way, goes from WER 1.00 to 0.76 with pocketsphinx once its channels are lined up). A channel wired
with inverted polarity is worse: the average of it and its partner is silence.

So each run of alike frames is mixed by a `ChannelMixer` that looks at its opening seconds, finds for every
channel the delay and sign that best match the loudest channel, and applies them for the rest of the run
(delay-and-sum). Channels that do not match at any small delay — two callers on the two sides of a phone
recording — are averaged as they are.

Delays are whole samples of the rate the mixer is given; the decoder mixes at the source's rate, before
resampling, where a sample is a third as long as at 16 kHz."""

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

ESTIMATE_SECONDS = 20.0  # the opening stretch the alignment is measured on; buffered, then streamed
MAX_DELAY_SECONDS = 0.1  # ~34 m of extra path: any two microphones in one room
MIN_CORRELATION = 0.3  # below this a channel carries different sound, not the same sound later
# Alignment is measured on the band speech is recognised from: room rumble below it can be louder than the
# voice and line up at a different delay.
SPEECH_BAND_HZ = (150.0, 4000.0)
# Recordings with more channels (microphone arrays, ambisonics) are averaged as they are: buffering and
# correlating dozens of channels would cost more memory than the rest of the prepare step.
MAX_ALIGNED_CHANNELS = 8


@dataclass(frozen=True)
class Alignment:
    """How to line channels up: channel i is held back `delays[i]` samples and multiplied by `signs[i]`."""

    delays: tuple[int, ...]
    signs: tuple[float, ...]

    @classmethod
    def identity(cls, channels: int) -> "Alignment":
        return cls(delays=(0,) * channels, signs=(1.0,) * channels)

    @property
    def is_identity(self) -> bool:
        return not any(self.delays) and all(sign > 0 for sign in self.signs)


def estimate_alignment(channels: np.ndarray, rate: int) -> Alignment:
    """The delays and signs that bring every channel of `channels` (channels, samples) in step with the
    loudest one. A channel whose speech band correlates with the loudest one's by less than
    MIN_CORRELATION at every delay up to MAX_DELAY_SECONDS is left as it is. Spectra are made one
    channel at a time, so memory holds two of them whatever the channel count."""
    max_lag = int(MAX_DELAY_SECONDS * rate)
    size = 1 << int(channels.shape[1] + max_lag).bit_length()  # no circular wrap-around within max_lag
    energy = [float(np.sum(np.abs(_speech_spectrum(channel, rate, size)) ** 2)) for channel in channels]
    reference = int(np.argmax(energy))
    reference_spectrum = _speech_spectrum(channels[reference], rate, size)
    arrivals, signs = [0] * len(channels), [1.0] * len(channels)
    for index, channel in enumerate(channels):
        if index == reference or energy[index] <= 0:
            continue
        lag, correlation = _best_lag(_speech_spectrum(channel, rate, size), reference_spectrum, size, max_lag)
        if abs(correlation) >= MIN_CORRELATION:
            arrivals[index], signs[index] = lag, float(np.sign(correlation))
    # Hold every channel back to meet the one that hears the voice last, so no delay is negative.
    latest = max(arrivals)
    return Alignment(delays=tuple(latest - arrival for arrival in arrivals), signs=tuple(signs))


def _speech_spectrum(channel: np.ndarray, rate: int, size: int) -> np.ndarray:
    spectrum = np.fft.rfft(channel, size)
    frequencies = np.fft.rfftfreq(size, 1 / rate)
    spectrum[(frequencies < SPEECH_BAND_HZ[0]) | (frequencies > SPEECH_BAND_HZ[1])] = 0
    return spectrum


def _best_lag(signal: np.ndarray, reference: np.ndarray, size: int, max_lag: int) -> tuple[int, float]:
    """From two spectra: the lag k in [-max_lag, max_lag] where the signals' normalised correlation is
    strongest, and that correlation; k > 0 means `signal` hears the sound k samples after `reference`."""
    norm = np.sqrt(np.sum(np.abs(signal) ** 2) * np.sum(np.abs(reference) ** 2)) / size
    correlation = np.fft.irfft(signal * np.conj(reference), size)
    lags = np.arange(-max_lag, max_lag + 1)
    values = correlation[lags % size]
    best = int(np.argmax(np.abs(values)))
    return int(lags[best]), float(values[best] / norm)


class ChannelMixer:
    """Mono from a stream of (channels, samples) blocks of one layout. Buffers ESTIMATE_SECONDS to measure
    the alignment, then streams; the output has exactly as many samples as the input."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self._pending: list[np.ndarray] = []
        self._pending_samples = 0
        self._alignment: Alignment | None = None
        self._history: np.ndarray | None = None  # the last max(delays) samples of every channel

    def push(self, block: np.ndarray) -> Iterator[np.ndarray]:
        if len(block) == 1:
            yield block[0]
            return
        if self._alignment is None and len(block) > MAX_ALIGNED_CHANNELS:
            self._start(Alignment.identity(len(block)))
        if self._alignment is not None:
            yield self._mix(block)
            return
        self._pending.append(block)
        self._pending_samples += block.shape[1]
        if self._pending_samples >= ESTIMATE_SECONDS * self.rate:
            yield from self._release()

    def flush(self) -> Iterator[np.ndarray]:
        """The buffered opening of a run shorter than ESTIMATE_SECONDS."""
        if self._alignment is None and self._pending:
            yield from self._release()

    def _release(self) -> Iterator[np.ndarray]:
        opening = np.concatenate(self._pending, axis=1)
        self._pending, self._pending_samples = [], 0
        self._start(estimate_alignment(opening, self.rate))
        yield self._mix(opening)

    def _start(self, alignment: Alignment) -> None:
        self._alignment = alignment
        self._history = np.zeros((len(alignment.delays), max(alignment.delays)), dtype=np.float32)

    def _mix(self, block: np.ndarray) -> np.ndarray:
        alignment, history = self._alignment, self._history
        assert alignment is not None and history is not None
        if alignment.is_identity:
            return block.mean(axis=0, dtype=np.float32)
        joined = np.concatenate([history, block], axis=1)
        width, length = history.shape[1], block.shape[1]
        mixed = np.zeros(length, dtype=np.float32)
        for channel, (delay, sign) in enumerate(zip(alignment.delays, alignment.signs, strict=True)):
            start = width - delay
            mixed += sign * joined[channel, start : start + length]
        self._history = joined[:, joined.shape[1] - width :]
        return mixed / len(block)
