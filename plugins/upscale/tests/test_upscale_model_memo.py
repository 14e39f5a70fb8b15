"""Models load once per process: the core's memo under vt-upscale's load path."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from vt.models import clear_model_memo, memo_stats
from vt_upscale.upscaler import Upscaler


@pytest.fixture(autouse=True)
def fresh_memo(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("VT_MODEL_MEMO", raising=False)
    clear_model_memo()
    yield
    clear_model_memo()


def _image() -> np.ndarray:
    return (np.random.default_rng(1).random((12, 10, 3)) * 255).astype(np.uint8)


def test_several_upscalers_load_the_weights_once(host, tiny_pth: Path) -> None:
    models = []
    for _ in range(4):  # what four batch jobs in one worker do
        with Upscaler(str(tiny_pth), device="cpu") as upscaler:
            assert upscaler.upscale(_image()).shape == (24, 20, 3)
            models.append(upscaler.model)
    assert all(m is models[0] for m in models)
    assert (memo_stats().loads, memo_stats().hits) == (1, 3)


def test_other_options_or_new_weights_load_again(host, tiny_pth: Path) -> None:
    with Upscaler(str(tiny_pth), device="cpu") as first:
        a = first.model
    with Upscaler(str(tiny_pth), device="cpu", dtype="bf16") as other_dtype:
        assert other_dtype.model is not a
    assert memo_stats().loads == 2
    stat = tiny_pth.stat()  # the same path rewritten: a new file, loaded afresh
    os.utime(tiny_pth, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    with Upscaler(str(tiny_pth), device="cpu") as changed:
        assert changed.model is not a
    assert memo_stats().loads == 3


def test_the_memo_is_a_small_lru(
    host, tiny_pth: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    monkeypatch.setenv("VT_MODEL_MEMO", "1")
    other = tmp_path / "copy.pth"
    shutil.copy(tiny_pth, other)
    with Upscaler(str(tiny_pth), device="cpu"):
        pass
    with Upscaler(str(other), device="cpu"):
        pass
    with Upscaler(str(tiny_pth), device="cpu"):  # evicted by the other file: loaded again
        pass
    assert memo_stats().loads == 3 and memo_stats().size == 1
