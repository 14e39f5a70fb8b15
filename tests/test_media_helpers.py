"""The core's shared helpers that plugins use instead of their own copies: the prefetch
iterator (``vt.media.prefetch``)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from vt.errors import InputError
from vt.media.prefetch import prefetch


def _alive(name: str) -> bool:
    return any(t.name == name and t.is_alive() for t in threading.enumerate())


# -- prefetch ---------------------------------------------------------------------------------
def test_prefetch_is_bounded_and_keeps_order() -> None:
    produced: list[int] = []

    def source() -> Iterator[int]:
        for i in range(50):
            produced.append(i)
            yield i

    seen = []
    for item in prefetch(source(), size=2, name="t-bounded"):
        seen.append(item)
        assert len(produced) - len(seen) <= 3  # queue size + the item in hand
    assert seen == list(range(50))
    assert not _alive("t-bounded")


def test_prefetch_raises_the_producers_error_in_the_consumer() -> None:
    def failing() -> Iterator[int]:
        yield 1
        raise InputError("broken stream")

    with pytest.raises(InputError, match="broken stream"):
        list(prefetch(failing(), name="t-failing"))
    assert not _alive("t-failing")


def test_prefetch_stops_its_thread_when_the_consumer_breaks() -> None:
    closed = threading.Event()

    def endless() -> Iterator[int]:
        i = 0
        try:
            while True:
                yield i
                i += 1
        finally:
            closed.set()  # the source's cleanup ran (a decoder would release its file)

    for item in prefetch(endless(), size=2, name="t-endless"):
        if item == 3:
            break
    assert not _alive("t-endless")
    assert closed.is_set()


def test_prefetch_stops_its_thread_when_the_consumer_fails() -> None:
    def endless() -> Iterator[int]:
        i = 0
        while True:
            yield i
            i += 1

    def consume() -> None:
        for item in prefetch(endless(), size=2, name="t-consumer-fails"):
            if item == 2:
                raise RuntimeError("consumer failed")

    with pytest.raises(RuntimeError, match="consumer failed"):
        consume()
    assert not _alive("t-consumer-fails")
