"""The disk cache never fails a run or serves wrong frames: damaged or mismatched entries are
misses (and removed), write failures are warnings, keys see every byte of the input, and
temporary files of killed runs are cleaned while live ones count towards the limit."""

from __future__ import annotations

import builtins
import errno
import logging
import os
import shutil
import subprocess

import numpy as np
import pytest
import torch

from vt.media.source import Source
from vt_qwen_preprocess import cache as cache_module
from vt_qwen_preprocess import preprocess
from vt_qwen_preprocess.cache import DiskCache, make_key
from vt_qwen_preprocess.inputs import VideoInput
from vt_qwen_preprocess.pipeline import _identity, clear_memory_cache

ARGS = {"nframes": 4, "decoders": ("pyav",)}


@pytest.fixture
def clip(tmp_path, bikes):
    path = tmp_path / "clip.mp4"
    shutil.copy(bikes, path)
    return path


@pytest.fixture
def warnings_seen(caplog, monkeypatch):
    """vt.qwen warnings (the CLI's logging setup may have stopped them propagating)."""
    monkeypatch.setattr(logging.getLogger("vt"), "propagate", True)
    caplog.set_level(logging.WARNING, logger="vt.qwen")
    return caplog


def _entry(cache_dir):
    (npy,) = cache_dir.glob("*.npy")
    return npy


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


@pytest.mark.parametrize(
    "damage", ["empty", "cut-in-header", "cut-in-data", "extra-bytes", "empty-metadata"]
)
def test_damaged_entry_is_a_miss_and_is_rewritten(clip, tmp_path, damage):
    cache_dir = tmp_path / "cache"
    first = preprocess(clip, cache_dir=str(cache_dir), **ARGS)
    npy = _entry(cache_dir)
    good = npy.read_bytes()
    if damage == "empty-metadata":
        npy.with_suffix(".json").write_bytes(b"")
    else:
        npy.write_bytes(
            {
                "empty": b"",
                "cut-in-header": good[:60],
                "cut-in-data": good[: len(good) // 2],
                "extra-bytes": good + b"\0" * 100,
            }[damage]
        )
    clear_memory_cache()
    again = preprocess(clip, cache_dir=str(cache_dir), **ARGS)
    assert again.cache_hit is None  # recomputed, not served from the damaged entry
    assert torch.equal(again.frames, first.frames)
    assert npy.read_bytes() == good  # rewritten whole
    clear_memory_cache()
    assert preprocess(clip, cache_dir=str(cache_dir), **ARGS).cache_hit == "disk"


@pytest.mark.parametrize("frames", [2, 6])
def test_entry_with_the_wrong_frame_count_is_a_miss(clip, tmp_path, frames):
    cache_dir = tmp_path / "cache"
    first = preprocess(clip, cache_dir=str(cache_dir), **ARGS)
    npy = _entry(cache_dir)
    np.save(npy, np.zeros((frames, 280, 644, 3), np.uint8))  # a well-formed, wrong entry
    clear_memory_cache()
    again = preprocess(clip, cache_dir=str(cache_dir), **ARGS)
    assert again.cache_hit is None and again.frames.shape == (4, 3, 280, 644)
    assert torch.equal(again.frames, first.frames)
    assert np.load(npy, mmap_mode="r").shape == (4, 280, 644, 3)


def test_entry_with_the_wrong_dtype_is_a_miss(clip, tmp_path):
    cache_dir = tmp_path / "cache"
    first = preprocess(clip, cache_dir=str(cache_dir), **ARGS)
    npy = _entry(cache_dir)
    np.save(npy, np.zeros((4, 280, 644, 3), np.float32))
    clear_memory_cache()
    again = preprocess(clip, cache_dir=str(cache_dir), **ARGS)
    assert again.cache_hit is None and torch.equal(again.frames, first.frames)
    assert np.load(npy, mmap_mode="r").dtype == np.uint8


class _FullDisk:
    """A file whose writes fail with ENOSPC after ``allowed`` successful ones."""

    def __init__(self, fh, allowed: int) -> None:
        self._fh, self._allowed = fh, allowed

    def write(self, data):
        if self._allowed <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self._allowed -= 1
        return self._fh.write(data)

    def __getattr__(self, name):
        return getattr(self._fh, name)


@pytest.mark.parametrize("allowed", [0, 2], ids=["full-from-the-start", "full-mid-entry"])
def test_cache_write_failure_is_a_warning_not_a_failed_run(
    clip, tmp_path, monkeypatch, warnings_seen, bikes, allowed
):
    def open_on_full_disk(file, mode="r", *args, **kwargs):
        fh = builtins.open(file, mode, *args, **kwargs)
        return _FullDisk(fh, allowed) if "w" in mode or "x" in mode else fh

    # the cache module's own open(): the writer streams frames through it
    monkeypatch.setattr(cache_module, "open", open_on_full_disk, raising=False)
    cache_dir = tmp_path / "cache"
    result = preprocess(clip, cache_dir=str(cache_dir), **ARGS)
    assert result.frames.shape == (4, 3, 280, 644)
    assert torch.equal(result.frames, preprocess(bikes, cache=False, **ARGS).frames)
    assert "cannot write the frame cache" in warnings_seen.text
    assert "No space left on device" in warnings_seen.text
    assert list(cache_dir.iterdir()) == []  # nothing half-written left behind


def test_edit_in_the_middle_changes_the_key(clip, monkeypatch):
    # The scheme this replaces hashed only head/middle/tail windows of files over
    # _HASH_WHOLE_LIMIT; shrinking it (where it still exists) puts this clip in that regime.
    monkeypatch.setattr(cache_module, "_HASH_WHOLE_LIMIT", 16 * 1024, raising=False)
    monkeypatch.setattr(cache_module, "_HASH_SAMPLE", 4 * 1024, raising=False)
    monkeypatch.setattr(cache_module, "HASH_CHUNK", 4 * 1024, raising=False)  # many chunks
    stamp = 1_600_000_000_000_000_000
    os.utime(clip, ns=(stamp, stamp))
    before = os.stat(clip)

    def key() -> str:
        return make_key(_identity(VideoInput(source=Source.parse(clip))), {})

    original = key()
    offset = before.st_size // 4  # far from the head, middle and tail windows
    with open(clip, "r+b") as fh:
        fh.seek(offset)
        byte = fh.read(1)
        fh.seek(offset)
        fh.write(bytes([byte[0] ^ 0xFF]))
    os.utime(clip, ns=(stamp, stamp))
    after = os.stat(clip)
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    assert key() != original


def test_cache_open_cleans_dead_temp_files_and_counts_live_ones(tmp_path):
    cache_dir = tmp_path / "cache"
    cache_dir.mkdir()
    entry = "0" * 40
    (cache_dir / f"{entry}.npy").write_bytes(b"n" * 100)
    (cache_dir / f"{entry}.json").write_bytes(b"{}")
    stale = cache_dir / f".{'1' * 40}.npy.vt-tmp-{_dead_pid()}-0123abcd"
    live = cache_dir / f".{'2' * 40}.npy.vt-tmp-{os.getppid()}-89abcdef"
    stale.write_bytes(b"s" * 5000)
    live.write_bytes(b"l" * 3000)
    resume = cache_dir / "out.mp4.vt-resume"
    resume.mkdir()
    cache = DiskCache(cache_dir, max_bytes=3050)
    assert not stale.exists()
    assert live.exists() and resume.is_dir()
    assert cache.size() == 100 + 2 + 3000  # the live temp file counts
    cache.trim()  # over the limit only because of the live temp file: the entry goes
    assert not (cache_dir / f"{entry}.npy").exists() and live.exists()
