"""vt.models.checkpoints: torch and safetensors weights read without torch, nothing run."""

from __future__ import annotations

import pickle
import subprocess
import sys
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from vt.models.checkpoints import (
    CheckpointFormatError,
    TensorInfo,
    read_checkpoint,
    safetensors_shapes,
)


def _tensors() -> dict[str, torch.Tensor]:
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6) / 7
    return {
        "fp32": torch.randn(3, 5),
        "transposed": base.t(),  # non-contiguous view of a shared storage
        "slice": base[1:3, 2:5],  # a storage offset
        "fp16": torch.randn(2, 3).half(),
        "bf16": torch.randn(7).bfloat16(),
        "int64": torch.tensor([1, -2, 3]),
        "bool": torch.tensor([True, False]),
        "scalar": torch.tensor(2.5),
        "empty": torch.zeros(0, 4),
    }


def _equal(ours: np.ndarray, theirs: torch.Tensor) -> bool:
    expected = theirs.float() if theirs.dtype == torch.bfloat16 else theirs
    return ours.shape == tuple(theirs.shape) and np.array_equal(ours, expected.numpy())


def test_torch_checkpoints_read_exactly(tmp_path: Path) -> None:
    tensors = _tensors()
    path = tmp_path / "w.pth"
    torch.save({"params_ema": tensors, "epoch": 3, "note": "x"}, path)
    got = read_checkpoint(path)
    assert got["epoch"] == 3 and got["note"] == "x"
    for name, tensor in tensors.items():
        assert _equal(got["params_ema"][name], tensor), name
    assert got["params_ema"]["bf16"].dtype == np.float32  # widened, exactly


def test_state_dicts_and_parameters(tmp_path: Path) -> None:
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.PReLU(4))
    path = tmp_path / "net.pth"
    torch.save(net.state_dict(), path)  # an OrderedDict carrying _metadata
    got = read_checkpoint(path)
    assert list(got) == list(net.state_dict())
    for name, tensor in net.state_dict().items():
        assert _equal(got[name], tensor)
    torch.save({"w": torch.nn.Parameter(torch.ones(2, 2))}, path)
    assert np.array_equal(read_checkpoint(path)["w"], np.ones((2, 2), np.float32))


def test_shapes_only(tmp_path: Path) -> None:
    path = tmp_path / "w.pth"
    torch.save(_tensors(), path)
    info = read_checkpoint(path, data=False)
    assert info["transposed"] == TensorInfo((6, 4), "<f4")
    assert info["bf16"] == TensorInfo((7,), "bfloat16")


def test_safetensors(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    tensors = {k: v.contiguous() for k, v in _tensors().items() if k != "scalar"}
    path = tmp_path / "w.safetensors"
    save_file(tensors, str(path))
    got = read_checkpoint(path)
    for name, tensor in tensors.items():
        assert _equal(got[name], tensor), name
    assert read_checkpoint(path, data=False)["fp16"] == TensorInfo((2, 3), "<f2")
    assert safetensors_shapes(path)["fp32"] == [3, 5]
    assert safetensors_shapes(tmp_path / "missing.safetensors") == {}


def _zip_with_pickle(path: Path, payload: bytes) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", payload)
        archive.writestr("archive/byteorder", "little")


class _RunsCode:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (subprocess.call, (["touch", str(self.marker)],))


def test_pickled_code_is_refused_and_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    path = tmp_path / "evil.pth"
    _zip_with_pickle(path, pickle.dumps({"w": _RunsCode(marker)}, protocol=2, fix_imports=False))
    with pytest.raises(CheckpointFormatError, match="holds subprocess.call"):
        read_checkpoint(path)
    assert not marker.exists()


def test_other_files_are_refused(tmp_path: Path) -> None:
    legacy = tmp_path / "legacy.pth"
    torch.save({"w": torch.ones(2)}, legacy, _use_new_zipfile_serialization=False)
    with pytest.raises(CheckpointFormatError, match="not a zip checkpoint"):
        read_checkpoint(legacy)

    script = tmp_path / "script.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated upstream
        torch.jit.script(torch.nn.Linear(2, 2)).save(str(script))
    with pytest.raises(CheckpointFormatError, match="not a plain torch checkpoint"):
        read_checkpoint(script)

    module = tmp_path / "module.pth"
    torch.save(torch.nn.Linear(2, 2), module)
    with pytest.raises(CheckpointFormatError, match="holds torch.nn"):
        read_checkpoint(module)

    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\xff" * 16)
    with pytest.raises(CheckpointFormatError, match="not a safetensors file"):
        read_checkpoint(garbage)


def _rewrite(src: Path, dst: Path, change: dict[str, bytes | None]) -> None:
    with zipfile.ZipFile(src) as old, zipfile.ZipFile(dst, "w") as new:
        for name in old.namelist():
            short = name.split("/", 1)[1]
            if short in change:
                if change[short] is not None:
                    new.writestr(name, change[short])
            else:
                new.writestr(name, old.read(name))


def test_damaged_checkpoints_are_refused(tmp_path: Path) -> None:
    good = tmp_path / "good.pth"
    torch.save({"w": torch.ones(4)}, good)
    big_endian = tmp_path / "be.pth"
    _rewrite(good, big_endian, {"byteorder": b"big"})
    with pytest.raises(CheckpointFormatError, match="big-endian"):
        read_checkpoint(big_endian)
    short = tmp_path / "short.pth"
    _rewrite(good, short, {"data/0": b"\0" * 8})
    with pytest.raises(CheckpointFormatError, match="holds 2 values"):
        read_checkpoint(short)
    missing = tmp_path / "missing.pth"
    _rewrite(good, missing, {"data/0": None})
    with pytest.raises(CheckpointFormatError, match="unreadable"):
        read_checkpoint(missing)


def test_reading_never_imports_torch(tmp_path: Path) -> None:
    path = tmp_path / "w.pth"
    torch.save({"params": {"a": torch.ones(2, 3)}}, path)
    code = (
        "import sys\nfrom vt.models.checkpoints import read_checkpoint\n"
        f"w = read_checkpoint({str(path)!r})['params']['a']\n"
        "assert w.shape == (2, 3) and float(w.sum()) == 6\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
