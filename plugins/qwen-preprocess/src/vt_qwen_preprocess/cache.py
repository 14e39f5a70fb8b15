"""Caches of sampled, resized uint8 frames.

Keys combine the input's identity (size, mtime, inode and a fast hash of the whole file) with
every parameter that changes the frames (sampling, sizes, resize method, decoder order). The
on-disk cache (``vt.cache_dir("qwen")`` unless ``--cache-dir`` / ``VT_QWEN_CACHE_DIR`` says
otherwise) stores ``<key>.npy`` (T, H, W, 3) uint8 plus ``<key>.json`` metadata and is trimmed
to a byte limit, oldest-used first; the in-memory LRU holds a bounded number of bytes.

The disk cache never fails a run: an entry that cannot be read, or whose shape or dtype is not
the plan's, is a miss and is removed; a failed write (disk full, read-only folder) is a warning.
Temporary files carry their writer's PID (``vt.tempfiles``): opening the cache removes those of
killed runs, and those of live runs count towards the size limit.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from vt.atomic import atomic_file
from vt.cachedirs import cache_dir
from vt.errors import InputError
from vt.tempfiles import clean_stale, owner_pid, pid_alive, size_of

try:  # GB/s hashing; blake2b (several times slower) keeps keys sound without it
    import xxhash
except ImportError:  # pragma: no cover - xxhash is a declared dependency
    xxhash = None

log = logging.getLogger("vt.qwen")

CACHE_VERSION = 3  # 3: the default bicubic resize became libswscale's (other pixels)
HASH_CHUNK = 4 * 1024**2  # bytes read per hashing step (the whole file is always hashed)
_KEY = re.compile(r"^[0-9a-f]{40}$")  # what make_key returns


def file_fingerprint(path: Path) -> str:
    """A fast hash of every byte of the file (xxh3-128, or blake2b without xxhash)."""
    hasher: Any = xxhash.xxh3_128() if xxhash is not None else hashlib.blake2b(digest_size=16)
    buffer = bytearray(HASH_CHUNK)
    view = memoryview(buffer)
    with open(path, "rb") as fh:
        while n := fh.readinto(buffer):
            hasher.update(view[:n])
    return f"{'xxh3' if xxhash is not None else 'blake2b'}:{hasher.hexdigest()}"


def file_identity(path: Path, *, content_only: bool = False) -> list[Any]:
    """What a cache key needs to know about a file: size, mtime (ns), inode and content hash;
    only size and hash for ``content_only`` (downloads and spooled bytes, whose names and
    times are new each run)."""
    st = path.stat()
    digest = file_fingerprint(path)
    if content_only:
        return [st.st_size, digest]
    return [st.st_size, st.st_mtime_ns, st.st_ino, digest]


def make_key(identity: Any, params: Mapping[str, Any]) -> str:
    payload = json.dumps(
        {"v": CACHE_VERSION, "id": identity, "params": params}, sort_keys=True, default=str
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:40]


class MemoryCache:
    """A thread-safe LRU bounded by entry count and total bytes."""

    def __init__(self, max_entries: int = 16, max_bytes: int = 1024**3) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._items: OrderedDict[str, tuple[Any, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def get(self, key: str) -> Any | None:
        with self._lock:
            if key not in self._items:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return self._items[key][0]

    def put(self, key: str, value: Any, nbytes: int) -> None:
        if nbytes > self.max_bytes or self.max_entries <= 0:
            return
        with self._lock:
            if key in self._items:
                self._bytes -= self._items.pop(key)[1]
            self._items[key] = (value, nbytes)
            self._bytes += nbytes
            while self._items and (
                len(self._items) > self.max_entries or self._bytes > self.max_bytes
            ):
                _, (_, size) = self._items.popitem(last=False)
                self._bytes -= size

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0

    def __len__(self) -> int:
        return len(self._items)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


class DiskCache:
    """``<dir>/<key>.npy`` + ``<key>.json``, written atomically, trimmed to ``max_bytes``."""

    def __init__(self, directory: str | Path | None = None, max_bytes: int = 10 * 1024**3):
        self.directory = Path(directory) if directory else cache_dir("qwen")
        self.max_bytes = max_bytes
        clean_stale(self.directory)  # temporary files of killed runs (nothing else)

    def _paths(self, key: str) -> tuple[Path, Path]:
        return self.directory / f"{key}.npy", self.directory / f"{key}.json"

    def load(
        self, key: str, shape: tuple[int, ...] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]] | None:
        """Memory-mapped frames and metadata, or None on a miss. A damaged entry, or one whose
        shape is not ``shape`` (or not uint8 frames), is removed and is a miss too."""
        data_path, meta_path = self._paths(key)
        if not data_path.exists() and not meta_path.exists():
            return None
        try:
            meta = json.loads(meta_path.read_text())
            frames = np.load(data_path, mmap_mode="r", allow_pickle=False)
            exact_size = data_path.stat().st_size == frames.offset + frames.nbytes
        except Exception as exc:  # noqa: BLE001 - empty, truncated, garbage: all misses
            self._discard(key, f"unreadable: {_reason(exc)}")
            return None
        problem = None
        if not isinstance(meta, dict):
            problem = "metadata is not a mapping"
        elif frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
            problem = f"holds {frames.dtype} {frames.shape}, not uint8 frames"
        elif shape is not None and tuple(frames.shape) != tuple(shape):
            problem = f"shape {tuple(frames.shape)}, the plan needs {tuple(shape)}"
        elif not exact_size:
            problem = "file size does not match its header"
        if problem:
            del frames  # release the mapping before removing the file
            self._discard(key, problem)
            return None
        now = time.time()
        try:
            os.utime(meta_path, (now, now))
        except OSError:
            pass
        return frames, meta

    def load_stream(
        self, key: str, shape: tuple[int, ...]
    ) -> tuple[Iterator[np.ndarray], dict[str, Any]] | None:
        """Like ``load``, but the frames come one at a time from ordinary reads (for outputs
        streamed to a file: touching a memory map would keep every page read resident)."""
        loaded = self.load(key, shape)
        if loaded is None:
            return None
        frames, meta = loaded
        offset, count, frame_shape = frames.offset, len(frames), frames.shape[1:]
        del frames
        try:
            fh = open(self._paths(key)[0], "rb")  # noqa: SIM115 - closed by the generator
        except OSError:  # removed meanwhile (another run trimming the cache): a miss
            return None
        return _read_frames(fh, offset, count, frame_shape), meta

    def _discard(self, key: str, why: str) -> None:
        log.warning(
            "frame cache entry %s in %s is damaged (%s): removed, recomputing",
            key,
            self.directory,
            why,
        )
        self.remove(key)

    def writer(self, key: str, shape: tuple[int, int, int, int]) -> CacheWriter | None:
        """A writer for a new entry, or None (with a warning) when the cache is unwritable."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            return CacheWriter(self, key, shape)
        except OSError as exc:
            warn_unwritable(self.directory, exc)
            return None

    def entries(self) -> list[tuple[float, int, str]]:
        """(last use, bytes, key) of every entry, half-written ones included, oldest first."""
        found: dict[str, list[Any]] = {}
        try:
            listing = list(self.directory.iterdir())
        except OSError:
            return []
        for path in listing:
            if path.suffix not in (".npy", ".json") or not _KEY.match(path.stem):
                continue  # only our entries: a --cache-dir may hold other files
            try:
                st = path.stat()
            except OSError:
                continue
            record = found.setdefault(path.stem, [0.0, 0])
            record[0] = max(record[0], st.st_mtime)
            record[1] += st.st_size
        return sorted((used, size, key) for key, (used, size) in found.items())

    def temp_bytes(self) -> int:
        """Bytes in temporary files of live writers (entries being written right now)."""
        try:
            listing = list(self.directory.iterdir())
        except OSError:
            return 0
        total = 0
        for path in listing:
            pid = owner_pid(path)
            if pid is not None and pid_alive(pid):
                total += size_of(path)
        return total

    def size(self) -> int:
        """What the cache takes on disk, entries being written included."""
        return sum(e[1] for e in self.entries()) + self.temp_bytes()

    def trim(self, keep: str | None = None) -> None:
        entries = self.entries()
        total = sum(e[1] for e in entries) + self.temp_bytes()
        for _, nbytes, key in entries:
            if total <= self.max_bytes:
                break
            if key == keep:
                continue
            self.remove(key)
            total -= nbytes

    def remove(self, key: str) -> None:
        for p in self._paths(key):
            try:
                p.unlink(missing_ok=True)
            except OSError:  # a read-only cache: nothing to do about it here
                pass

    def clear(self) -> None:
        for _, _, key in self.entries():
            self.remove(key)


def _read_frames(
    fh: BinaryIO, offset: int, count: int, shape: tuple[int, ...]
) -> Iterator[np.ndarray]:
    """``count`` uint8 frames of ``shape`` from ``fh`` at ``offset``, one array each (the
    open handle keeps the entry readable even if another run removes it meanwhile)."""
    size = int(np.prod(shape))
    with fh:
        fh.seek(offset)
        for _ in range(count):
            frame = np.empty(shape, dtype=np.uint8)
            if fh.readinto(memoryview(frame).cast("B")) != size:
                raise InputError(f"frame cache entry {fh.name} ended early")
            yield frame


def warn_unwritable(directory: Path, exc: BaseException) -> None:
    log.warning(
        "cannot write the frame cache in %s (%s): continuing without caching",
        directory,
        _reason(exc),
    )


class CacheWriter:
    """Streams frames into a cache entry one at a time (no second copy in memory).

    Best effort: a failed write or commit warns once and drops the entry, never raises."""

    def __init__(self, cache: DiskCache, key: str, shape: tuple[int, int, int, int]) -> None:
        self.cache, self.key, self.shape = cache, key, shape
        self.data_path, self.meta_path = cache._paths(key)
        # frames stream in across calls: the entry is committed or discarded explicitly
        self.entry = atomic_file(self.data_path, overwrite=True)
        self.tmp = self.entry.path
        self.failed = False
        self.count = 0
        try:
            self.fh: BinaryIO = open(self.tmp, "wb")
        except OSError:
            self.entry.discard()
            raise
        try:
            np.lib.format.write_array_header_1_0(
                self.fh, {"descr": "|u1", "fortran_order": False, "shape": shape}
            )
        except OSError:
            self.abort()
            raise

    def write(self, frame: np.ndarray) -> None:
        if self.failed:
            return
        try:
            self.fh.write(np.ascontiguousarray(frame, dtype=np.uint8).tobytes())
        except OSError as exc:
            self._fail(exc)
            return
        self.count += 1

    def commit(self, meta: dict[str, Any]) -> bool:
        """Publish the entry (atomically); False when it was not cached."""
        if self.failed:
            return False
        try:
            self.fh.close()  # flushes: a full disk may only show here
            if self.count != self.shape[0] or int(np.prod(self.shape)) > self.cache.max_bytes:
                self.abort()
                return False
            # the frames are published first, their metadata last (a reader needs both)
            with atomic_file(self.meta_path, overwrite=True) as tmp_meta:
                tmp_meta.write_text(json.dumps(meta, default=str))
                self.entry.commit()
        except OSError as exc:
            self.cache.remove(self.key)  # never leave frames without their metadata
            self._fail(exc)
            return False
        self.cache.trim(keep=self.key)
        return True

    def _fail(self, exc: BaseException) -> None:
        self.failed = True
        warn_unwritable(self.cache.directory, exc)
        self.abort()

    def abort(self) -> None:
        try:
            if not self.fh.closed:
                self.fh.close()
        except OSError:
            pass
        self.entry.discard()
