"""Run a producer one step ahead in a thread, so decoding overlaps speech detection.

PyAV's decoder and onnxruntime's VAD both release the GIL, so on two cores the prepare step takes about
as long as the slower of the two instead of their sum."""

import threading
from collections.abc import Iterator
from queue import Empty, Full, Queue
from typing import TypeVar

Item = TypeVar("Item")

_POLL_SECONDS = 0.1  # how often a blocked producer checks whether the consumer has gone


class _End:
    def __init__(self, error: BaseException | None = None) -> None:
        self.error = error


def prefetched(items: Iterator[Item], depth: int = 256) -> Iterator[Item]:
    """`items`, produced in a background thread at most `depth` items ahead. An exception in the
    producer is raised here, in the consumer; a consumer that stops early stops the producer too."""
    queue: Queue[Item | _End] = Queue(maxsize=depth)
    stop = threading.Event()
    thread = threading.Thread(target=_produce, args=(items, queue, stop), daemon=True)
    thread.start()
    try:
        while True:
            item = queue.get()
            if isinstance(item, _End):
                if item.error is not None:
                    raise item.error
                return
            yield item
    finally:
        stop.set()
        _drain(queue)
        thread.join()


def _produce(items: Iterator[Item], queue: "Queue[Item | _End]", stop: threading.Event) -> None:
    try:
        for item in items:
            if not _put(queue, item, stop):
                return
        _put(queue, _End(), stop)
    except BaseException as error:  # handed to the consumer, which raises it
        _put(queue, _End(error), stop)
    finally:
        close = getattr(items, "close", None)
        if close is not None:
            close()  # a generator's cleanup (an open file, a container) runs in the thread that ran it


def _put(queue: "Queue[Item | _End]", item: "Item | _End", stop: threading.Event) -> bool:
    while not stop.is_set():
        try:
            queue.put(item, timeout=_POLL_SECONDS)
            return True
        except Full:
            continue
    return False


def _drain(queue: "Queue[Item | _End]") -> None:
    try:
        while True:
            queue.get_nowait()
    except Empty:
        pass
