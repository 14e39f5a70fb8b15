"""Upscaler: tiling without seams, OOM recovery, fallbacks, scales, batches, rgb48."""

from __future__ import annotations

import warnings
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from upscale_helpers import psnr, tiny_compact

from vt.errors import ModelUnavailableError, UsageError, VtError
from vt.media.frames import FrameBatch
from vt.processors.resize import resize_images
from vt_upscale import Upscaler, UpscaleWarning
from vt_upscale.adapters.torch_spandrel import TorchSRModel
from vt_upscale.sr import SRModel


def _image(h: int = 40, w: int = 56, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).random((h, w, 3)) * 255).astype(np.uint8)


def _tiny_model(num_conv: int = 2) -> TorchSRModel:
    return TorchSRModel(tiny_compact(num_conv=num_conv), name="tiny", scale=2)


def test_tiled_and_untiled_agree_within_rounding(carphone_frame: np.ndarray) -> None:
    model = _tiny_model()  # 4 convs of 3x3: receptive radius 4 px
    crop = carphone_frame[:60, :76]
    whole = Upscaler(model, tile=0).upscale(crop)
    tiled = Upscaler(model, tile=16, tile_pad=6).upscale(crop)
    assert tiled.shape == whole.shape == (120, 152, 3)
    assert np.abs(tiled.astype(int) - whole.astype(int)).max() <= 1


def test_without_overlap_the_seams_show(carphone_frame: np.ndarray) -> None:
    """The check above can fail: with no tile padding, tiles disagree at their borders."""
    model = _tiny_model()
    crop = carphone_frame[:60, :76]
    whole = Upscaler(model, tile=0).upscale(crop)
    seamy = Upscaler(model, tile=16, tile_pad=0).upscale(crop)
    assert np.abs(seamy.astype(int) - whole.astype(int)).max() > 1


def test_real_weights_tiled_match_untiled(carphone_frame: np.ndarray) -> None:
    """The packaged animevideov3 network (18 convs: radius 18) tiled with a 20 px overlap."""
    crop = carphone_frame[40:88, 50:114]
    with Upscaler("realesr-animevideov3-x4", device="cpu") as whole_up:
        whole = whole_up.upscale(crop)
        whole_up.tile, whole_up.tile_pad = 24, 20
        tiled = whole_up.upscale(crop)
    assert whole.shape == (192, 256, 3)
    assert np.abs(tiled.astype(int) - whole.astype(int)).max() <= 1


class FakeCudaModel(SRModel):
    """Nearest-neighbour x2 that 'runs out of memory' on inputs larger than ``limit`` px."""

    backend, name, scale = "fake", "fake", 2

    def __init__(
        self, limit: int, error: type[BaseException] | None = None, batch_limit: int = 64
    ) -> None:
        self.limit, self.batch_limit, self.calls = limit, batch_limit, []
        self.error = error

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        n, _, h, w = image.shape
        self.calls.append((n, h, w))
        if max(h, w) > self.limit or n > self.batch_limit:
            if self.error is not None:
                raise self.error("CUDA out of memory. Tried to allocate 2.00 GiB")
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return torch.nn.functional.interpolate(image, scale_factor=2, mode="nearest")


@pytest.mark.parametrize("error", [None, torch.cuda.OutOfMemoryError])
def test_out_of_memory_shrinks_batch_then_tile(error) -> None:
    model = FakeCudaModel(limit=40, error=error, batch_limit=1)
    images = np.stack([_image(70, 90, seed=i) for i in range(3)])
    upscaler = Upscaler(model, batch=3, tile_pad=4)
    with pytest.warns(UpscaleWarning, match="out of memory") as record:
        out = upscaler.upscale(images)
    assert upscaler.batch == 1
    assert upscaler.tile == 32  # 128 -> 64 -> 32: windows of 40 px fit
    assert any("--batch 1" in str(w.message) for w in record)
    assert any("--tile 32" in str(w.message) for w in record)
    expected = images.repeat(2, axis=1).repeat(2, axis=2)
    assert np.array_equal(out, expected)


def test_out_of_memory_that_tiling_cannot_fix_falls_back_to_lanczos() -> None:
    model = FakeCudaModel(limit=4)
    image = _image(70, 90)
    upscaler = Upscaler(model)
    with pytest.warns(UpscaleWarning) as record:
        out = upscaler.upscale(image)
    assert "falling back to lanczos" in str(record[-1].message)
    assert upscaler.model is None and "out of memory" in upscaler.fallback_reason
    assert np.array_equal(out, resize_images(image, (180, 140), "lanczos"))


def test_strict_turns_the_oom_fallback_into_an_error() -> None:
    upscaler = Upscaler(FakeCudaModel(limit=4), strict=True)
    with (
        pytest.warns(UpscaleWarning, match="retrying"),
        pytest.raises(ModelUnavailableError, match="--strict"),
    ):
        upscaler.upscale(_image())


def test_other_model_errors_are_not_hidden() -> None:
    class Broken(FakeCudaModel):
        def __call__(self, image: torch.Tensor) -> torch.Tensor:
            raise ValueError("shape mismatch in layer 3")

    with pytest.raises(ValueError, match="layer 3"):
        Upscaler(Broken(limit=100)).upscale(_image())


def test_missing_weights_file_is_a_usage_error_not_a_fallback(host, tmp_path: Path) -> None:
    for strict in (False, True):
        with warnings.catch_warnings():
            warnings.simplefilter("error", UpscaleWarning)
            with pytest.raises(UsageError, match="model file not found"):
                Upscaler(str(tmp_path / "missing.pth"), scale=2, strict=strict)


def test_unsupported_dtype_is_an_error_not_a_fallback(host, tiny_pth: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", UpscaleWarning)
        with pytest.raises(VtError, match="fp16"):
            Upscaler(str(tiny_pth), device="cpu", dtype="fp16")


def test_scale_other_than_the_models_resamples_its_output() -> None:
    model = _tiny_model()
    image = _image(30, 40)
    out = Upscaler(model, scale=3).upscale(image)
    assert out.shape == (90, 120, 3)
    native = Upscaler(model).upscale(image)
    assert np.array_equal(out, resize_images(native, (120, 90), "lanczos"))
    assert Upscaler(model).scale == 2  # no --scale: the model's own


def test_explicit_output_size() -> None:
    out = Upscaler(_tiny_model(), width=100).upscale(_image(30, 40))
    assert out.shape == (75, 100, 3)


def test_batches_give_the_same_frames_as_single_frames() -> None:
    model = _tiny_model()
    images = np.stack([_image(seed=i) for i in range(3)])
    one = Upscaler(model, batch=1).upscale(images)
    three = Upscaler(model, batch=3).upscale(images)
    assert np.abs(one.astype(int) - three.astype(int)).max() <= 1


def test_rgb48_frames_stay_16_bit() -> None:
    image8 = _image(20, 24)
    image16 = image8.astype(np.uint16) * 257
    out = Upscaler(_tiny_model()).upscale(image16)
    assert out.dtype == np.uint16 and out.shape == (40, 48, 3)
    out8 = Upscaler(_tiny_model()).upscale(image8)
    assert np.abs(out.astype(int) / 257 - out8).max() <= 1


def test_pre_pad_keeps_the_size() -> None:
    out = Upscaler(_tiny_model(), pre_pad=6).upscale(_image(20, 24))
    assert out.shape == (40, 48, 3)


def test_frame_batch_keeps_pts_and_indices() -> None:
    batch = FrameBatch(
        np.stack([_image(10, 12)] * 2), pts=[0, 1001], time_base=Fraction(1, 30000), indices=[5, 6]
    )
    out = Upscaler(_tiny_model()).upscale_batch(batch)
    assert out.pts == [0, 1001] and out.indices == [5, 6] and out.width == 24


def test_ai_without_a_model_uses_packaged_weights_offline(host, carphone_frame: np.ndarray) -> None:
    """--ai with no model: packaged real weights; a downscaled real crop comes back close."""
    crop = carphone_frame[32:96, 48:112]
    small = resize_images(crop, (32, 32), "area")
    with warnings.catch_warnings():
        warnings.simplefilter("error", UpscaleWarning)  # no fallback allowed here
        upscaler = Upscaler(ai=True, scale=2, device="cpu")
    assert upscaler.model is not None
    assert upscaler.model.name == "realesr-animevideov3-x2"
    out = upscaler.upscale(small)
    assert out.shape == crop.shape
    assert psnr(out, crop) > 20


def test_a_model_handed_in_is_not_closed_by_the_upscaler(host, monkeypatch) -> None:
    from vt.models import clear_model_memo
    from vt_upscale.adapters import load_model

    model = load_model("realesr-animevideov3-x2", backend="ncnn", threads=1)
    with Upscaler(model) as upscaler:
        upscaler.upscale(_image(8, 8))
    assert upscaler.model is None
    assert model(torch.rand(1, 3, 8, 8)).shape == (1, 3, 16, 16)  # still usable
    # a memoised model belongs to the memo: it stays loaded for the next job
    with Upscaler("realesr-animevideov3-x2", backend="ncnn") as memoised:
        kept = memoised.model
    assert kept.net is not None
    with Upscaler("realesr-animevideov3-x2", backend="ncnn") as again:
        assert again.model is kept
    # without the memo, one it loaded itself is released
    clear_model_memo()
    monkeypatch.setenv("VT_MODEL_MEMO", "0")
    with Upscaler("realesr-animevideov3-x2", backend="ncnn") as owned:
        loaded = owned.model
    assert loaded is not kept and loaded.net is None
