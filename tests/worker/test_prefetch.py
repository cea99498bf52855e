"""The decode-ahead thread hands over every item in order, its errors, and stops with its consumer."""

import threading
from collections.abc import Iterator

import pytest

from tingxie.errors import JobFailure
from worker.audio.prefetch import prefetched


def test_items_arrive_in_order_from_another_thread() -> None:
    producers: set[int] = set()

    def numbers() -> Iterator[int]:
        for number in range(1000):
            producers.add(threading.get_ident())
            yield number

    assert list(prefetched(numbers(), depth=8)) == list(range(1000))
    assert producers and threading.get_ident() not in producers


def test_an_error_in_the_producer_is_raised_in_the_consumer_after_its_items() -> None:
    def failing() -> Iterator[int]:
        yield 1
        yield 2
        raise JobFailure("the audio is longer than the limit", code="audio_too_long")

    received = []
    with pytest.raises(JobFailure) as error:
        for item in prefetched(failing()):
            received.append(item)
    assert received == [1, 2] and error.value.code == "audio_too_long"


def test_a_consumer_that_stops_early_closes_the_producer() -> None:
    closed = threading.Event()

    def endless() -> Iterator[int]:
        try:
            number = 0
            while True:
                yield number
                number += 1
        finally:
            closed.set()

    items = prefetched(endless(), depth=4)
    assert [next(items) for _ in range(3)] == [0, 1, 2]
    items.close()
    assert closed.is_set()
