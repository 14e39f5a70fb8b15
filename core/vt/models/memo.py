"""The per-process model memo: a worker that runs many jobs loads each model once.

A long-lived worker (``vt batch``, a Ray actor, a ``ProcessorChain`` over many files) runs
many jobs with the same model: loading the weights once per process instead of once per job
is most of the saving on short clips. ``vt.models.load_model`` goes through here.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vt.registry import ModelAdapterInfo, ModelRef

#: how many loaded models a process keeps (``VT_MODEL_MEMO`` overrides; 0 turns the memo off)
DEFAULT_MEMO_SIZE = 2


@dataclass
class MemoStats:
    """Counters of this process's model memo: ``loads`` ran an adapter, ``hits`` reused one."""

    loads: int = 0
    hits: int = 0
    size: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"loads": self.loads, "hits": self.hits, "size": self.size}


_memo: OrderedDict[Hashable, Any] = OrderedDict()
_memo_lock = threading.Lock()
_stats = MemoStats()


def _memo_size() -> int:
    try:
        return max(0, int(os.environ.get("VT_MODEL_MEMO", DEFAULT_MEMO_SIZE)))
    except ValueError:
        return DEFAULT_MEMO_SIZE


def _freeze(value: Any) -> Hashable:
    """A hashable, order-independent stand-in for option values (dicts, lists, paths…)."""
    if isinstance(value, Mapping):
        return tuple(sorted((str(k), _freeze(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [_freeze(v) for v in value]
        return tuple(sorted(items, key=repr) if isinstance(value, (set, frozenset)) else items)
    if isinstance(value, os.PathLike):
        path: str | bytes = os.fspath(value)
        return path
    try:
        hash(value)
    except TypeError:
        return repr(value)
    hashable: Hashable = value
    return hashable


def memo_key(ref: ModelRef, adapter: str, options: Mapping[str, Any]) -> Hashable:
    """What makes two loads the same: the resolved weights file (path, size, mtime), the
    adapter, the load options and the reference's metadata (device, dtype…)."""
    path = Path(ref.path).expanduser()
    try:
        resolved = path.resolve()
        st = resolved.stat()
        identity: tuple[Any, ...] = (str(resolved), st.st_size, st.st_mtime_ns)
    except OSError:  # not a file we can stat: the adapter reports it; key on the text
        identity = (str(path), None, None)
    return (*identity, ref.format, adapter, _freeze(options), _freeze(ref.metadata))


def cached_load(ref: ModelRef, adapter: ModelAdapterInfo, **options: Any) -> Any:
    """``adapter.load(ref, **options)``, memoised per process in a small LRU.

    Evicted models are dropped, not closed: a caller may still hold one, and the garbage
    collector frees it once nobody does.
    """
    load = adapter.load
    size = _memo_size()
    if size == 0:
        _stats.loads += 1
        return load(ref, **options)
    key = memo_key(ref, adapter.name, options)
    with _memo_lock:
        if key in _memo:
            _memo.move_to_end(key)
            _stats.hits += 1
            return _memo[key]
    model = load(ref, **options)  # outside the lock: a load can take seconds
    with _memo_lock:
        _stats.loads += 1
        _memo[key] = model
        _memo.move_to_end(key)
        while len(_memo) > size:
            _memo.popitem(last=False)
        _stats.size = len(_memo)
    return model


def is_memoised(model: Any) -> bool:
    """Whether ``model`` is held by this process's memo (its owner, then: do not close it)."""
    with _memo_lock:
        return any(m is model for m in _memo.values())


def memo_stats() -> MemoStats:
    """A copy of this process's model-memo counters."""
    with _memo_lock:
        return MemoStats(_stats.loads, _stats.hits, len(_memo))


def clear_model_memo(close: bool = False) -> None:
    """Forget every memoised model (``close=True`` also calls their ``close()``)."""
    with _memo_lock:
        models = list(_memo.values())
        _memo.clear()
        _stats.loads = _stats.hits = _stats.size = 0
    if close:
        for model in models:
            closer = getattr(model, "close", None)
            if callable(closer):
                closer()
