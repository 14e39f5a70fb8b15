"""Caches of sampled, resized uint8 frames.

Keys combine the input's identity (path, size, mtime and a content hash) with every parameter
that changes the frames (sampling, sizes, resize method, decoder order). The on-disk cache
stores ``<key>.npy`` (T, H, W, 3) uint8 plus ``<key>.json`` metadata and is trimmed to a byte
limit, oldest-used first; the in-memory LRU holds a bounded number of bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

CACHE_VERSION = 1
_HASH_WHOLE_LIMIT = 64 * 1024**2  # files up to this size are hashed whole
_HASH_SAMPLE = 4 * 1024**2  # larger files: head, middle and tail samples


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "vt" / "qwen-preprocess"


def file_fingerprint(path: Path) -> str:
    """A content hash: the whole file when small, else size plus head/middle/tail samples."""
    st = path.stat()
    h = hashlib.sha256(f"{st.st_size}".encode())
    with open(path, "rb") as fh:
        if st.st_size <= _HASH_WHOLE_LIMIT:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        else:
            for offset in (0, st.st_size // 2 - _HASH_SAMPLE // 2, st.st_size - _HASH_SAMPLE):
                fh.seek(offset)
                h.update(fh.read(_HASH_SAMPLE))
    return h.hexdigest()


def make_key(identity: Any, params: Mapping[str, Any]) -> str:
    payload = json.dumps({"v": CACHE_VERSION, "id": identity, "params": params},
                         sort_keys=True, default=str)
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
            while self._items and (len(self._items) > self.max_entries
                                   or self._bytes > self.max_bytes):
                _, (_, size) = self._items.popitem(last=False)
                self._bytes -= size

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0

    def __len__(self) -> int:
        return len(self._items)


class DiskCache:
    """``<dir>/<key>.npy`` + ``<key>.json``, written atomically, trimmed to ``max_bytes``."""

    def __init__(self, directory: str | Path | None = None, max_bytes: int = 10 * 1024**3):
        self.directory = Path(directory) if directory else default_cache_dir()
        self.max_bytes = max_bytes

    def _paths(self, key: str) -> tuple[Path, Path]:
        return self.directory / f"{key}.npy", self.directory / f"{key}.json"

    def load(self, key: str) -> tuple[np.ndarray, dict[str, Any]] | None:
        """Memory-mapped frames and metadata, or None on a miss (or a damaged entry)."""
        data_path, meta_path = self._paths(key)
        try:
            meta = json.loads(meta_path.read_text())
            frames = np.load(data_path, mmap_mode="r")
        except (OSError, ValueError):
            return None
        if frames.dtype != np.uint8 or frames.ndim != 4:
            return None
        now = time.time()
        try:
            os.utime(meta_path, (now, now))
        except OSError:
            pass
        return frames, meta

    def writer(self, key: str, shape: tuple[int, int, int, int]) -> CacheWriter | None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            return CacheWriter(self, key, shape)
        except OSError:
            return None

    def entries(self) -> list[tuple[float, int, str]]:
        out = []
        if not self.directory.is_dir():
            return out
        for meta in self.directory.glob("*.json"):
            data = meta.with_suffix(".npy")
            try:
                out.append((meta.stat().st_mtime, data.stat().st_size + meta.stat().st_size,
                            meta.stem))
            except OSError:
                continue
        return sorted(out)

    def size(self) -> int:
        return sum(e[1] for e in self.entries())

    def trim(self, keep: str | None = None) -> None:
        entries = self.entries()
        total = sum(e[1] for e in entries)
        for _, nbytes, key in entries:
            if total <= self.max_bytes:
                break
            if key == keep:
                continue
            self.remove(key)
            total -= nbytes

    def remove(self, key: str) -> None:
        for p in self._paths(key):
            p.unlink(missing_ok=True)

    def clear(self) -> None:
        for _, _, key in self.entries():
            self.remove(key)


class CacheWriter:
    """Streams frames into a cache entry one at a time (no second copy in memory)."""

    def __init__(self, cache: DiskCache, key: str, shape: tuple[int, int, int, int]) -> None:
        self.cache, self.key, self.shape = cache, key, shape
        self.data_path, self.meta_path = cache._paths(key)
        self.tmp = self.data_path.with_suffix(f".npy.tmp{os.getpid()}")
        self.fh: BinaryIO = open(self.tmp, "wb")
        np.lib.format.write_array_header_1_0(
            self.fh, {"descr": "|u1", "fortran_order": False, "shape": shape}
        )
        self.count = 0

    def write(self, frame: np.ndarray) -> None:
        self.fh.write(np.ascontiguousarray(frame, dtype=np.uint8).tobytes())
        self.count += 1

    def commit(self, meta: dict[str, Any]) -> None:
        self.fh.close()
        if self.count != self.shape[0]:
            self.abort()
            return
        nbytes = int(np.prod(self.shape))
        if nbytes > self.cache.max_bytes:
            self.abort()
            return
        os.replace(self.tmp, self.data_path)
        tmp_meta = self.meta_path.with_suffix(f".json.tmp{os.getpid()}")
        tmp_meta.write_text(json.dumps(meta, default=str))
        os.replace(tmp_meta, self.meta_path)
        self.cache.trim(keep=self.key)

    def abort(self) -> None:
        if not self.fh.closed:
            self.fh.close()
        self.tmp.unlink(missing_ok=True)
