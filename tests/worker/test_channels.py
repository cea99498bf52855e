"""Stereo recordings whose channels are out of step or out of phase decode to the speech, not to a comb
filter or to silence, and channels that carry different voices are still simply averaged.

The recordings are real speech written to WAV files with one channel shifted or inverted, as two spaced
microphones or a miswired one would record it, and decoded by the product's decoder."""

from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.audio_fixtures import decoded, load_16k, similarity, write_wav
from tests.corpus import manifest
from tests.helpers import wer
from worker.audio.channels import MAX_ALIGNED_CHANNELS, MAX_DELAY_SECONDS, ChannelMixer, estimate_alignment
from worker.audio.decode import SAMPLE_RATE
from worker.engines.pocketsphinx import PocketsphinxEngine

SPEECH, OTHER_SPEECH = "en/jfk.wav", "en/sense_and_sensibility_01_austen_64kb-0870.wav"
FRICATIVE_BAND_HZ = (4000.0, 7000.0)  # where a one-sample offset between channels cuts deepest
RATE_48K = 48_000


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    return load_16k(manifest()[SPEECH].path)


def _delayed(samples: np.ndarray, delay: int) -> np.ndarray:
    return np.concatenate([np.zeros(delay, dtype=np.float32), samples[: len(samples) - delay]])


def _at_48k(samples: np.ndarray) -> np.ndarray:
    """16 kHz samples resampled to 48 kHz by linear interpolation."""
    step = RATE_48K // SAMPLE_RATE
    return np.interp(np.arange(len(samples) * step) / step, np.arange(len(samples)), samples).astype(np.float32)


def _band_energy(samples: np.ndarray, band: tuple[float, float]) -> float:
    spectrum = np.abs(np.fft.rfft(samples)) ** 2
    frequencies = np.fft.rfftfreq(len(samples), 1 / SAMPLE_RATE)
    return float(spectrum[(frequencies >= band[0]) & (frequencies < band[1])].sum())


@pytest.mark.parametrize("delay", [1, 3, 160, 1200])
def test_channels_a_few_samples_to_75_ms_apart_are_lined_up(speech: np.ndarray, delay: int, tmp_path: Path) -> None:
    later = _delayed(speech, delay)
    path = write_wav(tmp_path / "spaced.wav", np.stack([speech, later]))
    mixed = decoded(path)
    assert len(mixed) == len(speech)
    # Lined up on the channel that hears the voice last, the mix is that channel, high frequencies and all.
    assert similarity(mixed, later) > 0.999
    kept = _band_energy(mixed, FRICATIVE_BAND_HZ) / _band_energy(later, FRICATIVE_BAND_HZ)
    assert kept > 0.95


def test_an_inverted_channel_does_not_cancel_the_speech(speech: np.ndarray, tmp_path: Path) -> None:
    path = write_wav(tmp_path / "inverted.wav", np.stack([speech, -speech]))
    mixed = decoded(path)
    assert similarity(mixed, speech) > 0.999
    assert np.sqrt(np.mean(mixed**2)) == pytest.approx(np.sqrt(np.mean(speech**2)), rel=0.01)
    reference = manifest()[SPEECH].reference
    engine = PocketsphinxEngine()
    heard = engine.transcribe([mixed])[0].text
    assert wer(reference, heard) == pytest.approx(wer(reference, engine.transcribe([speech])[0].text), abs=0.1)


def test_channels_with_different_voices_are_averaged(speech: np.ndarray, tmp_path: Path) -> None:
    other = load_16k(manifest()[OTHER_SPEECH].path)
    length = min(len(speech), len(other))
    pair = np.stack([speech[:length], other[:length]])
    mixed = decoded(write_wav(tmp_path / "two-voices.wav", pair))
    pcm = np.round(np.clip(pair, -1, 1) * 32767) / 32768  # what the 16-bit file holds
    np.testing.assert_allclose(mixed, pcm.mean(axis=0), atol=1e-4)


def test_a_48k_recording_with_channels_62_us_apart_keeps_its_high_frequencies(
    speech: np.ndarray, tmp_path: Path
) -> None:
    """Three samples at 48 kHz is one at 16 kHz: averaged unaligned, the channels lose most of 4-7 kHz."""
    upsampled = _at_48k(speech)
    mono = decoded(write_wav(tmp_path / "48k-mono.wav", upsampled, rate=RATE_48K))
    mixed = decoded(write_wav(tmp_path / "48k.wav", np.stack([upsampled, _delayed(upsampled, 3)]), rate=RATE_48K))
    unaligned = (mono + _delayed(mono, 1)) / 2
    kept = _band_energy(mixed, FRICATIVE_BAND_HZ) / _band_energy(mono, FRICATIVE_BAND_HZ)
    lost = _band_energy(unaligned, FRICATIVE_BAND_HZ) / _band_energy(mono, FRICATIVE_BAND_HZ)
    assert lost < 0.5 < 0.9 < kept


def test_channels_are_lined_up_at_the_source_rate(speech: np.ndarray, tmp_path: Path) -> None:
    """Two samples at 48 kHz (42 us) is two thirds of a 16 kHz sample: channels mixed after resampling can
    only be lined up to within a third of a sample, which still dulls 4-7 kHz; mixed at 48 kHz they match."""
    upsampled = _at_48k(speech)
    later = _delayed(upsampled, 2)
    mixed = decoded(write_wav(tmp_path / "48k.wav", np.stack([upsampled, later]), rate=RATE_48K))
    paths = [write_wav(tmp_path / f"channel-{i}.wav", c, rate=RATE_48K) for i, c in enumerate((upsampled, later))]
    each = np.stack([decoded(path) for path in paths])  # every channel on its own, resampled to 16 kHz
    after_resampling = _mix_in_blocks(each, [])
    later_16k = each[1]
    kept = _band_energy(mixed, FRICATIVE_BAND_HZ) / _band_energy(later_16k, FRICATIVE_BAND_HZ)
    kept_after = _band_energy(after_resampling, FRICATIVE_BAND_HZ) / _band_energy(later_16k, FRICATIVE_BAND_HZ)
    assert kept_after < 0.95 < 0.99 < kept


@pytest.mark.parametrize("arrival", [-1600, -37, -1, 0, 1, 37, 1600])
@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_estimate_finds_delay_and_sign(speech: np.ndarray, arrival: int, sign: float) -> None:
    assert abs(arrival) <= MAX_DELAY_SECONDS * SAMPLE_RATE
    shifted = sign * np.roll(speech, arrival)
    alignment = estimate_alignment(np.stack([speech, shifted]), SAMPLE_RATE)
    # The channel heard later is held back by nothing, the earlier one by the difference.
    assert alignment.delays == ((arrival, 0) if arrival > 0 else (0, -arrival))
    assert alignment.signs[0] * alignment.signs[1] == sign


def test_estimate_leaves_silence_alone() -> None:
    alignment = estimate_alignment(np.zeros((2, SAMPLE_RATE), dtype=np.float32), SAMPLE_RATE)
    assert alignment.is_identity


def test_many_channels_are_averaged_as_they_come(speech: np.ndarray) -> None:
    """A microphone array is not buffered or correlated: its first block is mixed at once."""
    array = np.stack([speech * (-1) ** index for index in range(MAX_ALIGNED_CHANNELS + 2)])
    mixed = list(ChannelMixer(SAMPLE_RATE).push(array[:, :SAMPLE_RATE]))
    assert len(mixed) == 1
    np.testing.assert_allclose(mixed[0], array[:, :SAMPLE_RATE].mean(axis=0), atol=1e-7)


@settings(max_examples=25, deadline=None)
@given(cuts=st.lists(st.integers(1, 25 * SAMPLE_RATE - 1), max_size=12, unique=True))
def test_mixing_is_the_same_whatever_the_block_sizes(cuts: list[int]) -> None:
    """Streaming: a run split into any blocks mixes to the same samples as the run in one block."""
    rng = np.random.default_rng(7)
    voice = rng.standard_normal(25 * SAMPLE_RATE).astype(np.float32)
    run = np.stack([voice, _delayed(voice, 40)])
    whole = _mix_in_blocks(run, [])
    pieces = _mix_in_blocks(run, sorted(cuts))
    assert len(pieces) == len(whole) == run.shape[1]
    np.testing.assert_allclose(pieces, whole, atol=1e-6)


def _mix_in_blocks(run: np.ndarray, cuts: list[int]) -> np.ndarray:
    mixer = ChannelMixer(SAMPLE_RATE)
    bounds = [0, *cuts, run.shape[1]]
    out = [block for start, end in pairwise(bounds) for block in mixer.push(run[:, start:end])]
    return np.concatenate([*out, *mixer.flush()])
