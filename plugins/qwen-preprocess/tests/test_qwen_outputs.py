"""Output formats, dtypes, scaling, channel order, layouts, streaming and writers."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
import torch

from vt.errors import OutputError, UsageError
from vt_qwen_preprocess import iter_frames, preprocess
from vt_qwen_preprocess.outputs import (
    convert,
    save,
    to_base64,
    to_hf,
    to_numpy,
    to_openai_messages,
    to_pil,
    uint8_frames,
)
from vt_qwen_preprocess.profiles import CLIP_MEAN, CLIP_STD


@pytest.fixture(scope="module")
def base(bikes_module):
    return preprocess(bikes_module, nframes=4, cache=False)


@pytest.fixture(scope="module")
def bikes_module():
    from vt.testing import sample_clip

    return sample_clip("bikes")


def test_default_is_float32_tchw_0_255(base):
    f = base.frames
    assert f.dtype == torch.float32 and f.shape == (4, 3, 280, 644)
    assert f.min() >= 0 and f.max() <= 255 and f.max() > 1
    assert torch.equal(f, f.round())


@pytest.mark.parametrize("dtype", ["uint8", "float16", "bfloat16"])
def test_dtypes_hold_the_same_pixels(base, bikes_module, dtype):
    r = preprocess(bikes_module, nframes=4, cache=False, dtype=dtype)
    assert str(r.frames.dtype) == f"torch.{dtype}"
    assert torch.equal(r.frames.float(), base.frames)  # 0..255 integers are exact in all


def test_rescale_normalize_bgr_and_thwc(base, bikes_module):
    r = preprocess(bikes_module, nframes=4, cache=False, rescale=True)
    assert torch.allclose(r.frames, base.frames / 255)
    r = preprocess(bikes_module, nframes=4, cache=False, normalize=True)
    mean = torch.tensor(CLIP_MEAN).view(3, 1, 1)
    std = torch.tensor(CLIP_STD).view(3, 1, 1)
    assert torch.allclose(r.frames, (base.frames / 255 - mean) / std, atol=1e-5)
    r = preprocess(bikes_module, nframes=4, cache=False, channel_order="bgr", layout="THWC")
    assert r.frames.shape == (4, 280, 644, 3)
    assert torch.equal(r.frames, base.frames.permute(0, 2, 3, 1).flip(-1))
    with pytest.raises(UsageError, match="float"):
        preprocess(bikes_module, nframes=4, cache=False, dtype="uint8", normalize=True)


def test_uint8_frames_invert_every_transform(base, bikes_module):
    expected = base.frames.permute(0, 2, 3, 1).to(torch.uint8).numpy()
    for opts in (
        {"normalize": True},
        {"rescale": True, "dtype": "bfloat16"},
        {"channel_order": "bgr", "layout": "THWC"},
    ):
        r = preprocess(bikes_module, nframes=4, cache=False, **opts)
        back = np.stack(list(uint8_frames(r)))
        assert np.abs(back.astype(int) - expected).max() <= (1 if "dtype" not in opts else 2)


def test_numpy_pil_base64(base):
    arr = to_numpy(base)
    assert isinstance(arr, np.ndarray) and arr.shape == (4, 3, 280, 644)
    images = to_pil(base)
    assert len(images) == 4 and images[0].size == (644, 280) and images[0].mode == "RGB"
    uris = to_base64(base)
    assert uris[0].startswith("data:image/jpeg;base64,")
    from PIL import Image

    img = Image.open(io.BytesIO(base64.b64decode(uris[0].split(",", 1)[1])))
    assert img.size == (644, 280)


def test_openai_messages_and_api_profile(bikes_module):
    r = preprocess(bikes_module, profile="api", cache=False)
    assert r.frames.shape[0] <= 64 and r.frames.shape[0] == 10  # 1 fps over 10 s
    msgs = to_openai_messages(r, prompt="What happens?")
    assert msgs[0]["role"] == "user"
    assert msgs[0]["content"][0] == {"type": "text", "text": "What happens?"}
    assert all(
        c["image_url"]["url"].startswith("data:image/jpeg;base64,") for c in msgs[0]["content"][1:]
    )
    assert r.plan.tokens.total_tokens == 10 * (85 + 170 * 2)  # 640x272 -> 2 tiles


def test_api_size_limit_is_enforced(bikes_module, tmp_path):
    import yaml

    cfg = tmp_path / "p.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {"models": {"tiny-api": {"base": "api", "api_constraints": {"max_image_size": "1KB"}}}}
        )
    )
    from vt_qwen_preprocess import load_config

    r = preprocess(bikes_module, load_config(cfg, profile="tiny-api", nframes=2), cache=False)
    with pytest.raises(OutputError, match="over the tiny-api limit"):
        to_base64(r)


def test_hf_dict_carries_real_temporal_positions(base):
    hf = to_hf(base)
    assert hf["do_sample_frames"] is False
    md = hf["video_metadata"][0]
    assert md["frames_indices"] == base.plan.indices == [0, 83, 166, 249]
    assert md["fps"] == 25.0 and md["total_num_frames"] == 250
    assert hf["fps"][0] == pytest.approx(4 / 250 * 25)
    assert hf["videos"][0] is base.frames


def test_metadata_record_has_the_spec_fields(base):
    md = base.metadata
    for key in (
        "num_frames",
        "original_fps",
        "sample_fps",
        "duration",
        "resolution",
        "total_tokens",
        "grid_thw",
    ):
        assert key in md
    assert md["grid_thw"] == [2, 20, 46]
    for key in ("extraction_time", "processing_time", "total_time"):
        assert base.timing[key] >= 0
    json.dumps(base.record())
    assert convert(base, "metadata")["num_frames"] == 4


def test_streaming_iterator_matches_batch(base, bikes_module):
    items = list(iter_frames(bikes_module, nframes=4))
    assert [i for i, _, _ in items] == [0, 83, 166, 249]
    assert items[1][1] == pytest.approx(83 / 25)
    assert torch.equal(torch.stack([f for _, _, f in items]), base.frames)


def test_writers(base, tmp_path):
    pt = save(base, tmp_path / "v.pt")
    data = torch.load(pt, weights_only=False)
    assert torch.equal(data["frames"], base.frames)
    assert data["video_metadata"]["frames_indices"] == [0, 83, 166, 249]
    npz = np.load(save(base, tmp_path / "v.npz"))
    assert npz["frames"].shape == (4, 3, 280, 644)
    assert json.loads(str(npz["metadata"]))["num_frames"] == 4
    js = json.loads(save(base, tmp_path / "v.json", "openai").read_text())
    assert len(js["messages"][0]["content"]) == 4
    folder = save(base, tmp_path / "frames")
    assert len(list(folder.glob("frame_*.png"))) == 4
    assert json.loads((folder / "metadata.json").read_text())["num_frames"] == 4
    with pytest.raises(OutputError, match="exists"):
        save(base, tmp_path / "v.pt")
    save(base, tmp_path / "v.pt", overwrite=True)
    with pytest.raises(UsageError, match="unknown output type"):
        save(base, tmp_path / "v.xyz")


def test_device_is_validated(bikes_module):
    if torch.cuda.is_available():
        r = preprocess(bikes_module, nframes=2, cache=False, device="cuda")
        assert r.frames.device.type == "cuda"
    else:
        with pytest.raises(UsageError, match="no CUDA GPU"):
            preprocess(bikes_module, nframes=2, cache=False, device="cuda")
    with pytest.raises(UsageError, match="unknown device"):
        preprocess(bikes_module, nframes=2, cache=False, device="toaster")


def test_writers_use_vt_temp_names_and_clean_stale_ones(base, tmp_path, monkeypatch):
    import os
    import subprocess

    from vt.tempfiles import owner_pid

    proc = subprocess.Popen(["true"])
    proc.wait()  # a dead PID: what a killed run leaves behind
    stale = tmp_path / f".v.npz.vt-tmp-{proc.pid}-0123abcd"
    stale.write_bytes(b"half an output")
    from vt import atomic

    renames = []

    def spying(rename):
        def spy(src, dst):
            renames.append((src, dst))
            rename(src, dst)

        return spy

    # the commit: a rename that never replaces (or, with --overwrite, one that does)
    monkeypatch.setattr(os, "replace", spying(os.replace))
    monkeypatch.setattr(atomic, "rename_noreplace", spying(atomic.rename_noreplace))
    save(base, tmp_path / "v.npz")
    assert not stale.exists()
    ((src, dst),) = renames
    assert dst == tmp_path / "v.npz" and owner_pid(src) == os.getpid()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.npz"]


def test_image_folders_appear_whole_and_replace_only_vt_folders(base, tmp_path):
    from vt.atomic import FRAMES_MARKER

    folder = save(base, tmp_path / "frames")
    assert (folder / FRAMES_MARKER).is_file()
    (folder / "frame_000009.png").write_bytes(b"from an older run")
    save(base, folder, overwrite=True)  # replaced whole: no stale frame survives
    assert len(list(folder.glob("frame_*.png"))) == 4
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "notes.txt").write_text("user data")
    with pytest.raises(OutputError, match="not written by vt"):
        save(base, theirs, overwrite=True)
    assert [p.name for p in theirs.iterdir()] == ["notes.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frames", "theirs"]


@pytest.mark.parametrize("dtype", ["uint8", "float32", "float16"])
def test_numpy_conversion_is_bit_identical_to_torch(dtype):
    # file outputs convert with NumPy (no torch import); in-memory results with torch
    import itertools

    from vt_qwen_preprocess.config import PreprocessConfig
    from vt_qwen_preprocess.convert import ArrayConverter, FrameConverter

    frame = np.random.default_rng(0).integers(0, 256, (37, 53, 3), dtype=np.uint8)
    for mode, order, layout in itertools.product(
        ["plain", "rescale", "normalize"], ["rgb", "bgr"], ["TCHW", "THWC"]
    ):
        if mode == "normalize" and dtype == "uint8":
            continue
        cfg = PreprocessConfig(
            dtype=dtype,
            rescale=mode == "rescale",
            normalize=mode == "normalize",
            channel_order=order,
            layout=layout,
        )
        ours = ArrayConverter(cfg, CLIP_MEAN, CLIP_STD).convert(frame)
        ref = FrameConverter(cfg, CLIP_MEAN, CLIP_STD).convert(frame).numpy()
        assert ours.dtype == ref.dtype and ours.shape == ref.shape
        assert ours.tobytes() == ref.tobytes(), (mode, order, layout)
