"""Conversations made of real speech: utterances of different speakers from ../shared/speech, taken in
turns with short pauses between them and, now and then, a short overlap, with the truth of who spoke when.

A speaker's recordings are cut into utterances at the VAD's pauses (2 to 15 s each, as turns in a meeting
run); an utterance's true span is where the VAD finds its speech, so the reference starts and ends on
speech, not on the silence around it. Used by tests/worker/test_diarization.py and bench/diarization.py."""

import random
from dataclasses import dataclass
from functools import cache

import numpy as np

from tests.audio_fixtures import load_16k
from tests.corpus import SPEECH
from worker.audio.decode import SAMPLE_RATE
from worker.audio.plan import speech_regions

# One voice each; English ones first, so pocketsphinx's word times can be checked on them.
SPEAKERS: dict[str, tuple[str, ...]] = {
    "lucier": ("en/lucier.mp3",),
    "osr": ("en/OSR_us_000_0034_8k.wav",),
    "kennedy": ("en/jfk.wav",),
    "austen": ("en/sense_and_sensibility_01_austen_64kb-0870.wav", "en/sense_and_sensibility_01_austen_64kb-0880.wav"),
    "cantonese": ("yue/yue-8.wav",),
}
SHORTEST, LONGEST = 2.0, 15.0  # seconds of an utterance
EDGE = 0.15  # seconds of the recording kept around an utterance's speech


@dataclass(frozen=True)
class Utterance:
    speaker: str
    samples: np.ndarray  # its speech with EDGE seconds around it
    speech_start: float  # where its speech starts and ends in `samples`, by the VAD
    speech_end: float


@dataclass(frozen=True)
class Turn:
    speaker: str
    start: float  # where its speech starts and ends in the conversation
    end: float


@dataclass(frozen=True)
class Conversation:
    samples: np.ndarray
    turns: list[Turn]  # in time order; two may overlap

    @property
    def duration(self) -> float:
        return len(self.samples) / SAMPLE_RATE

    @property
    def speakers(self) -> set[str]:
        return {turn.speaker for turn in self.turns}


@cache
def utterances(speaker: str) -> tuple[Utterance, ...]:
    """The speaker's recordings cut at the pauses into utterances of SHORTEST to LONGEST seconds."""
    cut: list[Utterance] = []
    for name in SPEAKERS[speaker]:
        samples = load_16k(SPEECH / name)
        for start, end in _grouped(speech_regions(samples)):
            first = max(0, int((start - EDGE) * SAMPLE_RATE))
            last = min(len(samples), int((end + EDGE) * SAMPLE_RATE))
            cut.append(Utterance(speaker, samples[first:last], start - first / SAMPLE_RATE, end - first / SAMPLE_RATE))
    return tuple(cut)


def _grouped(regions: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Neighbouring speech regions joined into utterances no longer than LONGEST; short ones dropped."""
    groups: list[tuple[float, float]] = []
    for start, end in regions:
        if groups and end - groups[-1][0] <= LONGEST and start - groups[-1][1] < 1.0:
            groups[-1] = (groups[-1][0], end)
        else:
            groups.append((start, end))
    return [(start, end) for start, end in groups if SHORTEST <= end - start <= LONGEST]


def conversation(
    speakers: list[str], seed: int, seconds_each: float = 40.0, overlap_share: float = 0.2
) -> Conversation:
    """The speakers taking turns (never the same one twice in a row while another has something left),
    each with up to `seconds_each` of its utterances; about `overlap_share` of the changes of speaker
    overlap by 0.2-0.6 s, the others leave a pause of 0.3-1.0 s."""
    rng = random.Random(seed)
    queues = {speaker: _shuffled_up_to(utterances(speaker), seconds_each, rng) for speaker in speakers}
    order = _taking_turns(queues, rng)
    pieces: list[tuple[float, Utterance]] = []
    position = 0.5
    for index, said in enumerate(order):
        if index:
            overlapping = rng.random() < overlap_share
            position += -rng.uniform(0.2, 0.6) if overlapping else rng.uniform(0.3, 1.0)
        start = position - said.speech_start  # where its samples go
        pieces.append((start, said))
        position = start + said.speech_end
    return _mixed(pieces, position + 0.5)


def _shuffled_up_to(pool: tuple[Utterance, ...], seconds: float, rng: random.Random) -> list[Utterance]:
    chosen, total = [], 0.0
    for said in rng.sample(list(pool), len(pool)):
        if total + said.speech_end - said.speech_start > seconds and chosen:
            continue
        chosen.append(said)
        total += said.speech_end - said.speech_start
    return chosen


def _taking_turns(queues: dict[str, list[Utterance]], rng: random.Random) -> list[Utterance]:
    order: list[Utterance] = []
    last = None
    while any(queues.values()):
        ready = [speaker for speaker, left in queues.items() if left and speaker != last]
        speaker = rng.choice(ready or [speaker for speaker, left in queues.items() if left])
        order.append(queues[speaker].pop())
        last = speaker
    return order


def _mixed(pieces: list[tuple[float, Utterance]], seconds: float) -> Conversation:
    samples = np.zeros(int(seconds * SAMPLE_RATE) + 1, dtype=np.float32)
    turns = []
    for start, said in pieces:
        first = round(start * SAMPLE_RATE)
        samples[first : first + len(said.samples)] += said.samples
        turns.append(Turn(said.speaker, first / SAMPLE_RATE + said.speech_start, first / SAMPLE_RATE + said.speech_end))
    return Conversation(np.clip(samples, -1.0, 1.0), turns)


@dataclass(frozen=True)
class DiarizationError:
    """The textbook diarization error rate, in seconds of reference speech: missed speech, false alarm and
    speaker confusion, with speakers mapped one to one for the most overlap (Hungarian), and `collar`
    seconds either side of each reference turn's edges left out of the scoring."""

    missed: float
    false_alarm: float
    confusion: float
    scored: float  # reference speech scored, speakers counted once each (an overlap counts twice)

    @property
    def rate(self) -> float:
        return (self.missed + self.false_alarm + self.confusion) / self.scored if self.scored else 0.0


STEP = 0.01  # seconds per scoring frame


def diarization_error(
    reference: list[Turn], hypothesis: list[tuple[float, float, str]], duration: float, collar: float = 0.25
) -> DiarizationError:
    from scipy.optimize import linear_sum_assignment

    frames = int(np.ceil(duration / STEP)) + 1
    ref_names = sorted({turn.speaker for turn in reference})
    hyp_names = sorted({speaker for _, _, speaker in hypothesis})
    ref = _activity([(t.start, t.end, ref_names.index(t.speaker)) for t in reference], len(ref_names), frames)
    hyp = _activity([(s, e, hyp_names.index(name)) for s, e, name in hypothesis], len(hyp_names), frames)
    scored = np.ones(frames, dtype=bool)
    for turn in reference:
        for edge in (turn.start, turn.end):
            scored[max(0, int((edge - collar) / STEP)) : int((edge + collar) / STEP) + 1] = False
    ref, hyp = ref[scored], hyp[scored]
    overlap = ref.T.astype(np.int64) @ hyp.astype(np.int64)  # frames each pair of speakers share
    rows, cols = linear_sum_assignment(-overlap) if overlap.size else ([], [])
    n_ref, n_hyp = ref.sum(axis=1), hyp.sum(axis=1)
    correct = sum((ref[:, r] & hyp[:, c]).astype(np.int64) for r, c in zip(rows, cols, strict=True))
    correct = correct if isinstance(correct, np.ndarray) else np.zeros(len(ref), dtype=np.int64)
    return DiarizationError(
        missed=float(np.maximum(n_ref - n_hyp, 0).sum() * STEP),
        false_alarm=float(np.maximum(n_hyp - n_ref, 0).sum() * STEP),
        confusion=float((np.minimum(n_ref, n_hyp) - correct).sum() * STEP),
        scored=float(n_ref.sum() * STEP),
    )


def _activity(spans: list[tuple[float, float, int]], speakers: int, frames: int) -> np.ndarray:
    active = np.zeros((frames, max(speakers, 1)), dtype=bool)
    for start, end, index in spans:
        active[round(start / STEP) : round(end / STEP), index] = True
    return active[:, :speakers] if speakers else np.zeros((frames, 0), dtype=bool)
