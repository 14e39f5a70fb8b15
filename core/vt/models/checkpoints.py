"""Tensors of ``.safetensors`` files and torch zip checkpoints, read without torch.

A backend that does not run torch (ncnn, onnxruntime) can take weights saved by torch
without importing it (~650 MB of RSS and a second or more of start-up with a CUDA build).
Nothing in a file runs as it is read: a torch checkpoint's pickle is read by an unpickler
that knows only the names ``torch.save`` writes for tensors in dicts, and refuses anything
else (:class:`CheckpointFormatError`); the caller then loads the file with torch itself,
under torch's own ``weights_only`` rules.
"""

from __future__ import annotations

import json
import pickle
import struct
import zipfile
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vt.lazy import lazy_module

if TYPE_CHECKING:
    import numpy as np
else:
    np = lazy_module("numpy")  # the adapters' probes read headers only, without numpy

_MAX_HEADER = 100_000_000

#: torch storage class names -> numpy dtype names ("bfloat16": widened to float32 on read)
_STORAGES = {
    "FloatStorage": "<f4",
    "DoubleStorage": "<f8",
    "HalfStorage": "<f2",
    "BFloat16Storage": "bfloat16",
    "LongStorage": "<i8",
    "IntStorage": "<i4",
    "ShortStorage": "<i2",
    "CharStorage": "i1",
    "ByteStorage": "u1",
    "BoolStorage": "?",
}
_SAFETENSORS_DTYPES = {
    "F32": "<f4",
    "F64": "<f8",
    "F16": "<f2",
    "BF16": "bfloat16",
    "I64": "<i8",
    "I32": "<i4",
    "I16": "<i2",
    "I8": "i1",
    "U8": "u1",
    "BOOL": "?",
}


class CheckpointFormatError(ValueError):
    """The file is not one this reader takes (legacy pickle, TorchScript, other objects)."""


@dataclass(frozen=True)
class TensorInfo:
    """A tensor's shape and dtype name, its data not read."""

    shape: tuple[int, ...]
    dtype: str


def safetensors_shapes(path: Path) -> dict[str, list[int]]:
    """Tensor names and shapes from a safetensors header (8-byte length, then JSON): no
    tensor is read. Empty when the file is not one."""
    try:
        header = _safetensors_header(path)[0]
    except CheckpointFormatError:
        return {}
    return {k: list(v.get("shape", [])) for k, v in header.items()}


def _safetensors_header(path: Path) -> tuple[dict[str, Any], int]:
    try:
        with open(path, "rb") as f:
            (length,) = struct.unpack("<Q", f.read(8))
            if length > _MAX_HEADER:
                raise CheckpointFormatError(f"{path.name}: safetensors header too large")
            header = json.loads(f.read(length))
    except (OSError, ValueError, struct.error) as exc:
        raise CheckpointFormatError(f"{path.name}: not a safetensors file ({exc})") from None
    if not isinstance(header, dict):
        raise CheckpointFormatError(f"{path.name}: not a safetensors file")
    tensors = {k: v for k, v in header.items() if k != "__metadata__" and isinstance(v, dict)}
    return tensors, 8 + length


def read_checkpoint(path: Path, *, data: bool = True) -> Any:
    """What the file holds, each tensor a numpy array (``data=False``: a :class:`TensorInfo`).

    ``.safetensors`` gives a flat dict; a torch zip checkpoint gives the object saved
    (a dict of tensors, or dicts nesting them such as ``{"params_ema": {...}}``). bfloat16
    tensors come back as float32 (exact). Raises :class:`CheckpointFormatError` for files
    this reader does not take."""
    path = Path(path)
    if path.suffix.lower() == ".safetensors":
        return _read_safetensors(path, data)
    if not zipfile.is_zipfile(path):
        raise CheckpointFormatError(f"{path.name}: not a zip checkpoint (legacy torch format?)")
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        pickles = [n for n in names if n.endswith("/data.pkl") or n == "data.pkl"]
        if len(pickles) != 1 or any(n.endswith("constants.pkl") for n in names):
            raise CheckpointFormatError(f"{path.name}: not a plain torch checkpoint")
        root = pickles[0][: -len("data.pkl")]
        order = f"{root}byteorder"
        if order in names and archive.read(order).strip() != b"little":
            raise CheckpointFormatError(f"{path.name}: big-endian checkpoint")
        with archive.open(pickles[0]) as f:
            try:
                return _Unpickler(f, archive, root, data).load()
            except CheckpointFormatError:
                raise
            except (pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError) as exc:
                raise CheckpointFormatError(f"{path.name}: unreadable pickle ({exc})") from None


def _read_safetensors(path: Path, data: bool) -> dict[str, Any]:
    header, start = _safetensors_header(path)
    out: dict[str, Any] = {}
    blob = path.read_bytes() if data else b""
    for name, entry in header.items():
        dtype = _SAFETENSORS_DTYPES.get(str(entry.get("dtype")))
        shape = tuple(int(d) for d in entry.get("shape", []))
        if dtype is None:
            raise CheckpointFormatError(f"{path.name}: tensor dtype {entry.get('dtype')}")
        if not data:
            out[name] = TensorInfo(shape, dtype)
            continue
        begin, end = (start + int(o) for o in entry["data_offsets"])
        if not start <= begin <= end <= len(blob):
            raise CheckpointFormatError(f"{path.name}: tensor {name} lies outside the file")
        out[name] = _array(blob[begin:end], dtype).reshape(shape)
    return out


def _array(raw: bytes, dtype: str) -> np.ndarray:
    if dtype == "bfloat16":  # the high half of a float32: widening is exact
        return (np.frombuffer(raw, "<u2").astype("<u4") << 16).view("<f4")
    return np.frombuffer(raw, dtype).copy()


class _Storage:
    def __init__(self, key: str, dtype: str, numel: int) -> None:
        self.key, self.dtype, self.numel = key, dtype, numel


class _Unpickler(pickle.Unpickler):
    """Only what ``torch.save`` writes for tensors in dicts, lists and tuples."""

    def __init__(self, f: Any, archive: zipfile.ZipFile, root: str, data: bool) -> None:
        super().__init__(f)
        self.archive, self.root, self.data = archive, root, data

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("collections", "OrderedDict"):
            return OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return self._rebuild_tensor
        if (module, name) == ("torch._utils", "_rebuild_parameter"):
            return _rebuild_parameter
        if module == "torch" and name in _STORAGES:
            return _STORAGES[name]
        raise CheckpointFormatError(f"the checkpoint holds {module}.{name}")

    def persistent_load(self, pid: Any) -> Any:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise CheckpointFormatError("unknown persistent record in the checkpoint")
        _, dtype, key, _location, numel = pid
        if dtype not in _STORAGES.values():
            raise CheckpointFormatError(f"storage of type {dtype!r}")
        return _Storage(str(key), dtype, int(numel))

    def _rebuild_tensor(
        self,
        storage: _Storage,
        offset: int,
        size: tuple[int, ...],
        stride: tuple[int, ...],
        *_: Any,
    ) -> Any:
        shape = tuple(int(d) for d in size)
        steps = tuple(int(s) for s in stride)
        start = int(offset)
        if len(steps) != len(shape) or min((start, *shape, *steps)) < 0:
            raise CheckpointFormatError(f"a tensor of storage {storage.key} has a bad layout")
        if not self.data:
            return TensorInfo(shape, storage.dtype)
        flat = _array(self.archive.read(f"{self.root}data/{storage.key}"), storage.dtype)
        if flat.size != storage.numel:
            raise CheckpointFormatError(f"storage {storage.key} holds {flat.size} values")
        # as_strided trusts its arguments: the last element must lie inside the storage
        if 0 not in shape and start + sum((d - 1) * s for d, s in zip(shape, steps)) >= flat.size:
            raise CheckpointFormatError(f"a tensor reaches past storage {storage.key}")
        view = np.lib.stride_tricks.as_strided(
            flat[start:],
            shape=shape,
            strides=tuple(s * flat.itemsize for s in steps),
            writeable=False,
        )
        return view.copy()  # C order, 0-d kept


def _rebuild_parameter(data: Any, requires_grad: bool, backward_hooks: Any) -> Any:
    return data
