"""worker.local: the pipeline in one process gives the platform's transcript, and tells its progress."""

import pytest
import redis

from tests.corpus import OSR
from tests.helpers import run_worker_steps, stored_job
from tingxie.settings import get_settings
from tingxie.transcript import from_rows
from worker.batching import Prompt
from worker.engines.registry import get_engine
from worker.local import LocalProgress, transcribe_file


def test_one_process_gives_the_transcript_the_tasks_give(idle_broker: redis.Redis) -> None:
    """The same recording and settings (12 s chunks, 6 s windows: several of each) through prepare,
    transcribe and finalize, and through `transcribe_file`: the same segments, in the same places."""
    job, chunks = run_worker_steps(stored_job(OSR))
    seen: list[LocalProgress] = []
    local = transcribe_file(OSR, get_engine(), get_settings(), Prompt(language=None, context=None), seen.append)
    assert job.status == "completed" and len(chunks) > 1
    assert local.segments == from_rows(job.segments)
    assert local.text == job.text and local.languages == job.languages
    assert local.duration_s == pytest.approx(job.duration_s)
    for field in ("decoded_s", "transcribed_s", "windows_done"):
        values = [getattr(progress, field) for progress in seen]
        assert values == sorted(values), field
    assert seen[-1].transcribed_s == seen[-1].decoded_s == local.duration_s
    assert seen[-1].windows_done == sum(len(chunk.windows) for chunk in chunks)
    assert seen[0].declared_s == pytest.approx(local.duration_s, abs=0.1)
