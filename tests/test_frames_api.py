"""The frame contracts plugins build on: FrameBatch forms, processor attributes, frame order,
the ProcessorChain session API, generated video and colour tags."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import torch

from vt.media import frames as frames_module
from vt.media.frames import FrameBatch

CPU = torch.device("cpu")


def host_batch(n: int = 4, start: int = 0, width: int = 8, height: int = 6) -> FrameBatch:
    rng = np.random.default_rng(start)
    images = rng.integers(0, 256, (n, height, width, 3), dtype=np.uint8)
    return FrameBatch(images, list(range(start, start + n)), Fraction(1, 25),
                      list(range(start, start + n)))


# -- FrameBatch forms -------------------------------------------------------------------------
def test_tensor_batch_converts_once_lazily_and_keeps_the_tensor(monkeypatch) -> None:
    calls: list[int] = []
    original = frames_module.tensor_to_array
    monkeypatch.setattr(frames_module, "tensor_to_array",
                        lambda t, fmt: calls.append(1) or original(t, fmt))
    tensor = torch.rand(2, 3, 6, 8)
    before = tensor.clone()
    batch = FrameBatch(tensor, [0, 1], Fraction(1, 25), [0, 1])
    assert (len(batch), batch.width, batch.height) == (2, 8, 6)
    assert batch.has_tensor and not batch.has_array and batch.device == CPU
    assert batch.to_tensor() is tensor and batch.to_tensor(CPU, torch.float32) is tensor
    assert calls == []  # nothing converted yet
    images = batch.images
    assert batch.images is images and calls == [1]  # converted once, cached
    assert images.dtype == np.uint8 and images.shape == (2, 6, 8, 3)
    assert np.array_equal(images[0, 2, 3], np.round(tensor[0, :, 2, 3].numpy() * 255))
    assert torch.equal(tensor, before)  # the conversion did not touch the caller's tensor


def test_host_batch_round_trips_through_the_tensor_form() -> None:
    for pixel_format, dtype, top in (("rgb24", np.uint8, 255), ("rgb48", np.uint16, 65535)):
        images = np.random.default_rng(1).integers(0, top + 1, (3, 5, 7, 3), dtype=dtype)
        batch = FrameBatch(images, [0, 1, 2], Fraction(1, 25), [0, 1, 2], pixel_format)
        t = batch.to_tensor()
        assert t.shape == (3, 3, 5, 7) and t.dtype == torch.float32
        assert batch.to_tensor() is t  # cached: one conversion
        back = batch.from_tensor(t * 1.0)
        assert not back.has_array and np.array_equal(back.images, images)
        assert back.pts == batch.pts and back.pixel_format == pixel_format


def test_slices_and_concat_keep_the_form() -> None:
    tensor = torch.rand(5, 3, 4, 6)
    batch = FrameBatch(tensor, [10, 20, 30, 40, 50], Fraction(1, 100), [0, 1, 2, 3, 4])
    head, tail = batch[:2], batch[2:]
    assert head.pts == [10, 20] and tail.indices == [2, 3, 4] and not tail.has_array
    joined = FrameBatch.concat([head, tail])
    assert not joined.has_array and torch.equal(joined.to_tensor(), tensor)
    mixed = FrameBatch.concat([host_batch(2), host_batch(3, start=2)])
    assert mixed.has_array and not mixed.has_tensor and len(mixed) == 5
    with pytest.raises(ValueError, match="floating point"):
        FrameBatch(torch.zeros(1, 3, 4, 4, dtype=torch.uint8), [0], Fraction(1), [0])
