"""One batcher per worker process: windows from every chunk (and job) the process holds go to the engine
together, in calls as large as the device takes.

In the manner of Triton's dynamic batcher and Ray Serve's `@serve.batch`: callers (the transcribe tasks,
one per thread of the worker's pool) hand in their windows and block; one thread cuts the waiting windows
into engine calls and gives each caller back exactly its own results, in its own order. A call is made as
soon as a full batch is waiting, or once the most urgent window has waited `max_wait_s`, so a lone short
job is never held back for batch mates that will not come.

Which windows share a call:
- the same prompt: a forced language and a context change the prompt, and the engine takes one of each
  per call;
- the most urgent first: lower `priority` (interactive work) before higher, then the longest waiting;
- one lane: windows of priority below `bulk_from` (interactive) never share a call with bulk windows, so
  an interactive job's call is as short as its own windows make it, not a full batch of bulk work;
- similar lengths: when more windows wait than one call takes, the call is filled with those closest in
  length to the most urgent one, so the items of one `generate` finish at about the same step.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np

from worker.engines.base import Engine, Transcription

log = logging.getLogger(__name__)

LENGTH_POOL_CALLS = 2  # windows grouped by length are drawn from the oldest two calls' worth


@dataclass(frozen=True)
class Prompt:
    """What the engine's prompt depends on; windows batched together share it."""

    language: str | None  # forced language code, None to detect
    context: str | None


@dataclass(eq=False)
class _Waiting:
    audio: np.ndarray
    prompt: Prompt
    priority: int  # lower goes first
    arrived: float
    caller: object  # the same for every window of one transcribe() call
    result: Future[Transcription] = field(default_factory=Future)

    @property
    def urgency(self) -> tuple[int, float]:
        return self.priority, self.arrived


@dataclass(frozen=True)
class _Batch:
    windows: list[_Waiting]
    left_waiting: int  # windows still waiting once this call was cut
    left_chunks: int  # the chunks (transcribe calls) those belong to


@dataclass(frozen=True)
class BatchStats:
    calls: int = 0
    windows: int = 0

    @property
    def mean_windows_per_call(self) -> float:
        return self.windows / self.calls if self.calls else 0.0


class WindowBatcher:
    def __init__(
        self, engine: Engine, max_batch: Callable[[], int], max_wait_s: float, bulk_from: int | None = None
    ) -> None:
        """`max_batch` is asked before every call: the engine may lower it (CUDA out of memory)."""
        self._engine = engine
        self._bulk_from = bulk_from
        self._max_batch = max_batch
        self._max_wait_s = max_wait_s
        self._waiting: list[_Waiting] = []
        self._changed = threading.Condition()
        self._closed = False
        self.stats = BatchStats()
        self._thread = threading.Thread(target=self._serve, name="window-batcher", daemon=True)
        self._thread.start()

    def transcribe(self, windows: Sequence[np.ndarray], prompt: Prompt, priority: int = 0) -> list[Transcription]:
        """Each window's transcription, in order; blocks until all are done. When a shared call fails, each
        of its callers' windows is run again on its own, so an error reaches only the caller it belongs to."""
        now = time.monotonic()
        caller = object()
        waiting = [_Waiting(audio, prompt, priority, now, caller) for audio in windows]
        with self._changed:
            if self._closed:
                raise RuntimeError("the batcher is closed")
            self._waiting += waiting
            self._changed.notify_all()
        return [item.result.result() for item in waiting]

    @property
    def waiting(self) -> int:
        """Windows handed in and not yet in a call."""
        with self._changed:
            return len(self._waiting)

    def close(self) -> None:
        with self._changed:
            self._closed = True
            self._changed.notify_all()
        self._thread.join()

    def _serve(self) -> None:
        """Never ends while the batcher is open: whatever goes wrong is handed to the callers concerned,
        since a caller whose future is never set would hold its chunk until the broker gives up on it."""
        while True:
            try:
                batch = self._next_batch()
            except BaseException as error:
                self._fail_waiting(error)
                continue
            if batch is None:
                return
            self._run(batch)

    def _fail_waiting(self, error: BaseException) -> None:
        log.exception("the batcher could not cut a call")
        with self._changed:
            failed, self._waiting = self._waiting, []
        for item in failed:
            item.result.set_exception(error)

    def _next_batch(self) -> _Batch | None:
        with self._changed:
            while True:
                if self._closed and not self._waiting:
                    return None
                batch, wait = self._cut(time.monotonic())
                if batch:
                    for item in batch:
                        self._waiting.remove(item)
                    return _Batch(batch, len(self._waiting), len({item.caller for item in self._waiting}))
                self._changed.wait(timeout=wait)

    def _cut(self, now: float) -> tuple[list[_Waiting], float | None]:
        """The next call's windows, or none and how long to wait for more."""
        if not self._waiting:
            return [], None
        limit = max(1, self._max_batch())
        urgent = min(self._waiting, key=lambda item: item.urgency)
        waited = now - urgent.arrived
        if waited >= self._max_wait_s or self._closed or not self._bulk(urgent):
            return choose([item for item in self._waiting if self._key(item) == self._key(urgent)], limit), None
        full = [group for group in self._groups() if len(group) >= limit]
        if full:
            group = min(full, key=lambda items: min(item.urgency for item in items))
            return choose(group, limit), None
        return [], self._max_wait_s - waited

    def _bulk(self, item: _Waiting) -> bool:
        """Bulk work may wait for batch mates; interactive work goes at once, whatever else is waiting."""
        return self._bulk_from is None or item.priority >= self._bulk_from

    def _key(self, item: _Waiting) -> tuple[Prompt, bool]:
        """Windows may share a call only when this is equal: the same prompt, the same lane."""
        return item.prompt, self._bulk(item)

    def _groups(self) -> list[list[_Waiting]]:
        groups: dict[tuple[Prompt, bool], list[_Waiting]] = {}
        for item in self._waiting:
            groups.setdefault(self._key(item), []).append(item)
        return list(groups.values())

    def _run(self, next_batch: _Batch) -> None:
        batch = next_batch.windows
        started = time.monotonic()
        try:
            results = self._call(batch)
        except BaseException as error:
            log.exception("engine call of %d windows failed", len(batch))
            self._run_each_caller_alone(batch, error)
            return
        self.stats = BatchStats(self.stats.calls + 1, self.stats.windows + len(batch))
        log.info(
            "engine call: %d windows in %.3f s; %d left waiting, of %d chunks",
            len(batch),
            time.monotonic() - started,
            next_batch.left_waiting,
            next_batch.left_chunks,
        )
        for item, result in zip(batch, results, strict=True):
            item.result.set_result(result)

    def _call(self, batch: list[_Waiting]) -> list[Transcription]:
        prompt = batch[0].prompt
        results = self._engine.transcribe([item.audio for item in batch], prompt.language, prompt.context)
        if len(results) != len(batch):
            raise RuntimeError(f"the engine returned {len(results)} results for {len(batch)} windows")
        return results

    def _run_each_caller_alone(self, batch: list[_Waiting], error: BaseException) -> None:
        """After a shared call failed: each caller's windows again, on their own; the error (or its own)
        reaches only the callers whose windows fail by themselves."""
        callers: dict[object, list[_Waiting]] = {}
        for item in batch:
            callers.setdefault(item.caller, []).append(item)
        for items in callers.values():
            try:
                results = self._call(items) if len(callers) > 1 else None
            except BaseException as own:
                results, error = None, own
            for number, item in enumerate(items):
                if results is None:
                    item.result.set_exception(error)
                else:
                    item.result.set_result(results[number])


def choose(candidates: list[_Waiting], limit: int) -> list[_Waiting]:
    """At most `limit` windows of one prompt: the most urgent priority level first; within the level that
    overflows the call, of its LENGTH_POOL_CALLS x `limit` longest-waiting windows, those closest in length
    to the longest-waiting one (which is always taken, so every window's turn comes). The pool keeps the
    chunks that came first finishing first, so their tasks end and free their slots one after another,
    not all together once every held chunk is nearly done."""
    if len(candidates) <= limit:
        return candidates
    chosen: list[_Waiting] = []
    for priority in sorted({item.priority for item in candidates}):
        level = [item for item in candidates if item.priority == priority]
        room = limit - len(chosen)
        if len(level) > room:
            level = _similar_lengths(sorted(level, key=lambda item: item.arrived)[: room * LENGTH_POOL_CALLS], room)
        chosen += level
        if len(chosen) == limit:
            break
    return chosen


def _similar_lengths(level: list[_Waiting], count: int) -> list[_Waiting]:
    by_length = sorted(level, key=lambda item: (len(item.audio), item.arrived))
    oldest = by_length.index(min(level, key=lambda item: item.arrived))
    start = min(max(0, oldest - count // 2), len(by_length) - count)
    return by_length[start : start + count]
