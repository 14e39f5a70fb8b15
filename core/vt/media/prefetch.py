"""Run an iterator ahead in a background thread, through a bounded queue.

Decoding releases the GIL, so a decoder in its own thread overlaps whatever the consumer does
with the frames; the queue bounds memory to a few items whatever the stream's length.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Generator, Iterable
from typing import TypeVar

T = TypeVar("T")

_ITEM, _END, _ERROR = 0, 1, 2


def prefetch(items: Iterable[T], size: int = 2, name: str = "vt-prefetch") -> Generator[T]:
    """Yield ``items`` as a daemon thread named ``name`` produces them, at most ``size`` ahead.

    An exception raised while producing is raised here, in the consumer. When the consumer
    stops (it breaks out, fails, or closes this generator), the thread stops at its next
    item and ``items`` is closed (a generator's cleanup runs), so no decoder is left running.
    """
    source = iter(items)
    q: queue.Queue[tuple[int, object]] = queue.Queue(maxsize=max(size, 1))
    stop = threading.Event()

    def put(entry: tuple[int, object]) -> bool:
        # never block for good: a consumer that has gone away reads nothing more
        while not stop.is_set():
            try:
                q.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in source:
                if not put((_ITEM, item)):
                    return
            put((_END, None))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            put((_ERROR, exc))

    thread = threading.Thread(target=produce, name=name, daemon=True)
    thread.start()
    try:
        while True:
            kind, value = q.get()
            if kind == _END:
                return
            if kind == _ERROR:
                assert isinstance(value, BaseException)
                raise value
            yield value  # type: ignore[misc]
    finally:
        stop.set()
        thread.join()  # returns once the item being produced is done
        close = getattr(source, "close", None)
        if close is not None:
            close()
