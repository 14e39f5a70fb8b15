"""The core's shared helpers that plugins use instead of their own copies: the prefetch
iterator (``vt.media.prefetch``) and atomic files and folders (``vt.atomic``)."""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from vt.atomic import FRAMES_MARKER, atomic_file, atomic_folder
from vt.errors import InputError, OutputError
from vt.media.prefetch import prefetch
from vt.tempfiles import owner_pid


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


# -- atomic files -----------------------------------------------------------------------------
def test_atomic_file_appears_only_when_complete(tmp_path: Path) -> None:
    final = tmp_path / "out.json"
    with atomic_file(final) as tmp:
        assert owner_pid(tmp) == os.getpid() and tmp.parent == tmp_path
        tmp.write_text("{}")
        assert not final.exists()
    assert final.read_text() == "{}"
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_atomic_file_removes_its_temporary_on_error(tmp_path: Path) -> None:
    final = tmp_path / "out.bin"
    final.write_bytes(b"old")
    with (
        pytest.raises(RuntimeError, match="writer failed"),
        atomic_file(final, overwrite=True) as tmp,
    ):
        tmp.write_bytes(b"half")
        raise RuntimeError("writer failed")
    assert final.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_atomic_file_never_replaces_a_file_that_appeared(tmp_path: Path) -> None:
    final = tmp_path / "out.bin"
    with (
        pytest.raises(OutputError, match="appeared while vt was writing it"),
        atomic_file(final) as tmp,
    ):
        tmp.write_bytes(b"mine")
        final.write_bytes(b"another job's")
    assert final.read_bytes() == b"another job's"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]
    with atomic_file(final, overwrite=True) as tmp:  # unless told to
        tmp.write_bytes(b"mine")
    assert final.read_bytes() == b"mine"


def test_atomic_file_removes_stale_temporaries_of_dead_runs(tmp_path: Path) -> None:
    proc = subprocess.Popen(["true"])
    proc.wait()  # a dead PID: what a killed run leaves behind
    stale = tmp_path / f".out.bin.vt-tmp-{proc.pid}-0123abcd"
    stale.write_bytes(b"half an output")
    with atomic_file(tmp_path / "out.bin") as tmp:
        tmp.write_bytes(b"new")
    assert not stale.exists()


def test_atomic_folder_is_marked_and_replaces_only_marked_folders(tmp_path: Path) -> None:
    final = tmp_path / "frames"
    with atomic_folder(final) as tmp:
        (tmp / "a.png").write_bytes(b"1")
    assert sorted(p.name for p in final.iterdir()) == [FRAMES_MARKER, "a.png"]
    with atomic_folder(final, overwrite=True) as tmp:  # ours: replaced whole
        (tmp / "b.png").write_bytes(b"2")
    assert sorted(p.name for p in final.iterdir()) == [FRAMES_MARKER, "b.png"]
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "keep.txt").write_text("user data")
    with pytest.raises(OutputError, match="appeared"), atomic_folder(theirs, overwrite=True) as tmp:
        (tmp / "c.png").write_bytes(b"3")
    assert [p.name for p in theirs.iterdir()] == ["keep.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frames", "theirs"]
