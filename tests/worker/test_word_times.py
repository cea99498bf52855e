"""Word times through the whole pipeline (decode, cut, pocketsphinx, the window-to-recording mapping):
on a recording joined from real clips with pauses between them, each word lands in the clip it was said in."""

from pathlib import Path

from tests.audio_fixtures import concatenate_with_pauses, write_wav
from tests.corpus import SPEECH
from tingxie.settings import Settings
from worker.batching import Prompt
from worker.engines.pocketsphinx import PocketsphinxEngine
from worker.local import transcribe_file

CLIPS = [
    SPEECH / "en" / "jfk.wav",
    SPEECH / "en" / "sense_and_sensibility_01_austen_64kb-0870.wav",
    SPEECH / "en" / "spk1_snt1.wav",
    SPEECH / "en" / "goforward.wav",
]
TOLERANCE = 0.3  # seconds: the decoder's word edges against the clips' energy-trimmed edges


def test_words_are_ordered_inside_their_segments_and_land_in_the_right_clip(tmp_path: Path) -> None:
    samples, spans = concatenate_with_pauses(CLIPS, pause_seconds=2.0)
    recording = write_wav(tmp_path / "joined.wav", samples)
    settings = Settings(chunk_seconds=20, window_seconds=8)  # several chunks and windows: offsets are added
    transcript = transcribe_file(recording, PocketsphinxEngine(), settings, Prompt(language=None, context=None))

    words = [word for segment in transcript.segments for word in segment.words]
    assert len(words) >= 40
    for segment in transcript.segments:
        assert segment.words and " ".join(word.text for word in segment.words) == segment.text
        assert all(segment.start <= word.start <= word.end <= segment.end for word in segment.words)
    assert [word.start for word in words] == sorted(word.start for word in words)

    def clip_of(time: float) -> int | None:
        inside = [i for i, (start, end) in enumerate(spans) if start - TOLERANCE <= time <= end + TOLERANCE]
        return inside[0] if inside else None

    for word in words:
        assert clip_of(word.start) is not None and clip_of(word.start) == clip_of(word.end), word
    assert {clip_of(word.start) for word in words} == set(range(len(CLIPS)))
