"""The ``stylize`` processor and its settings: sizes, windows, determinism, validation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from stylize_helpers import batch, tiny_depth_model, tiny_lora

from vt.errors import UsageError
from vt.media.frames import FrameBatch, FrameFormat
from vt_stylize import StylizeProcessor, StylizeSettings, processing_size
from vt_stylize.settings import parse_resolution


@pytest.mark.parametrize(
    "size,max_res,multiple,expected",
    [
        ((854, 480), 480, 8, (856, 480)),  # 854/8 = 106.75 -> 107 * 8
        ((1920, 1080), 480, 8, (856, 480)),
        ((1080, 1920), 480, 8, (480, 856)),  # portrait: the shorter side is capped
        ((176, 144), 480, 8, (176, 144)),  # never enlarged
        ((176, 144), 48, 8, (56, 48)),
        ((100, 60), None, 8, (96, 64)),  # rounded to the model's multiple
        ((3, 3), None, 8, (8, 8)),
    ],
)
def test_processing_size(
    size: tuple[int, int], max_res: int | None, multiple: int, expected: tuple[int, int]
) -> None:
    assert processing_size(*size, max_res, multiple) == expected


def test_resolutions_parse() -> None:
    assert parse_resolution("480p") == 480 and parse_resolution("720") == 720
    assert parse_resolution("source") is None and parse_resolution("0") is None
    for bad in ("480i", "big", "-5", "4p", "99999p"):
        with pytest.raises(UsageError):
            parse_resolution(bad)


@pytest.mark.parametrize(
    "options,message",
    [
        ({"prompt": "  "}, "prompt is empty"),
        ({"strength": 1.5}, "--strength must be between 0 and 1"),
        ({"strength": float("nan")}, "--strength must be between"),
        ({"steps": 0}, "--steps must be between"),
        ({"steps": 2, "strength": 0.2}, "runs no denoising step"),
        ({"noise": "pink"}, "--noise must be one of shared, fresh"),
        ({"control": "pose"}, "--control must be one of"),
        ({"animatediff": True, "overlap": 16}, "--overlap must be between"),
        ({"animatediff": True, "cross_frame_attention": True}, "AnimateDiff's motion modules"),
        ({"batch_size": -1}, "--batch-size"),
        ({"dtype": "fp8"}, "--dtype must be one of"),
        ({"guidance": -1.0}, "--guidance"),
        ({"seed": -3}, "--seed"),
        ({"colour": "red"}, "no option"),
        ({"model_config": "/tmp"}, "--model-config is for single-file checkpoints"),
    ],
)
def test_settings_refuse_what_cannot_run(options: dict[str, object], message: str) -> None:
    options = {"prompt": "anime style", **options}
    with pytest.raises(UsageError, match=message):
        StylizeSettings.from_options(**options)


def _processor(models: dict[str, Path], **options: object) -> StylizeProcessor:
    options = {
        "prompt": "anime style",
        "model": str(models["sd"]),
        "steps": 2,
        "strength": 0.5,
        "max_res": 32,
        **options,
    }
    return StylizeProcessor(**options)


def _run(p: StylizeProcessor, frames: np.ndarray, chunk: int) -> list[FrameBatch]:
    """Frames through ``p`` the way the core does: batches, then flush."""
    h, w = frames.shape[1:3]
    p.configure(FrameFormat(w, h))
    out = []
    for start in range(0, len(frames), chunk):
        got = p.process(batch(frames[start : start + chunk], start))
        if got is not None and len(got):
            out.append(got)
    out.extend(p.flush())
    return out


def test_seed_makes_the_output_repeatable(
    models: dict[str, Path], carphone_frames: np.ndarray
) -> None:
    runs = []
    for seed in (3, 3, 4):
        p = _processor(models, seed=seed, noise="fresh")
        try:
            runs.append(np.concatenate([b.images for b in _run(p, carphone_frames[:2], 2)]))
        finally:
            p.close()
    assert np.array_equal(runs[0], runs[1]) and not np.array_equal(runs[0], runs[2])


def test_keep_size_returns_frames_at_the_source_size(
    models: dict[str, Path], carphone_frames: np.ndarray
) -> None:
    p = _processor(models, keep_size=True)
    try:
        fmt = p.configure(FrameFormat(176, 144))
        assert fmt.size == (176, 144) and p.size == (40, 32)
        out = p.process(batch(carphone_frames[:1]))
        assert out is not None and out.images.shape == (1, 144, 176, 3)
    finally:
        p.close()


@pytest.mark.parametrize(
    "frames,window,overlap,chunk", [(7, 4, 2, 2), (5, 4, 1, 3), (3, 4, 2, 2), (9, 4, 3, 1)]
)
def test_animatediff_windows_return_every_frame_once_in_order(
    models: dict[str, Path],
    carphone_frames: np.ndarray,
    frames: int,
    window: int,
    overlap: int,
    chunk: int,
) -> None:
    clip = carphone_frames[np.arange(frames) % len(carphone_frames)]
    p = _processor(
        models,
        animatediff=True,
        motion_adapter=str(models["motion"]),
        window=window,
        overlap=overlap,
    )
    try:
        out = _run(p, clip, chunk)
        assert p.batch_size == window - overlap  # what the core hands over at a time
    finally:
        p.close()
    indices = [i for b in out for i in b.indices]
    assert indices == list(range(frames)) and [p for b in out for p in b.pts] == indices
    assert all(b.images.shape[1:] == (32, 40, 3) for b in out)


def test_animatediff_overlap_blends_neighbouring_windows(
    models: dict[str, Path], carphone_frames: np.ndarray
) -> None:
    """Frames shared by two windows are a cross-fade of both windows' outputs: neither
    window's own output for them, and between the two."""
    clip = carphone_frames[[0, 1, 2, 3, 2, 1]]
    options = {"animatediff": True, "motion_adapter": str(models["motion"]), "window": 4}
    p = _processor(models, overlap=2, **options)
    try:
        blended = np.concatenate([b.images for b in _run(p, clip, 2)]).astype(int)
    finally:
        p.close()
    q = _processor(models, overlap=0, **options)  # the same first window, no blending
    try:
        alone = np.concatenate([b.images for b in _run(q, clip[:4], 4)]).astype(int)
    finally:
        q.close()
    assert np.array_equal(blended[:2], alone[:2])  # before the overlap: window 1 only
    assert not np.array_equal(blended[2:4], alone[2:4])


def test_controlnet_conditions_on_canny_edges(
    models: dict[str, Path], carphone_frames: np.ndarray
) -> None:
    """The control image reaches the UNet: at conditioning scale 0 the ControlNet pipeline
    gives plain img2img's frames, at 1 it does not."""
    outputs = []
    for options in (
        {},
        {"controlnet": str(models["controlnet"]), "controlnet_scale": 0.0},
        {"controlnet": str(models["controlnet"])},
    ):
        p = _processor(models, **options)
        try:
            outputs.append(_run(p, carphone_frames[:2], 2)[0].images)
            if options:
                assert p.detector is not None and p.detector.name == "canny"
                edges = p.detector(carphone_frames[:1])
                assert set(np.unique(edges)) <= {0, 255} and edges.max() == 255
        finally:
            p.close()
    plain, off, on = outputs
    assert np.abs(plain.astype(int) - off).max() <= 1
    assert not np.array_equal(plain, on)


def test_processor_is_registered_for_other_commands(host: object) -> None:
    from vt.plugins import get_host

    info = get_host().processors.get("stylize")
    assert info.temporal and info.layouts == ("rgb24",)
    with pytest.raises(UsageError, match="prompt is empty"):
        info.factory(prompt="")


def test_depth_control_from_a_transformers_model(
    models: dict[str, Path], carphone_frames: np.ndarray, tmp_path: Path
) -> None:
    depth = tiny_depth_model(tmp_path / "dpt")
    p = _processor(
        models, controlnet=str(models["controlnet"]), control="depth", control_model=str(depth)
    )
    try:
        out = _run(p, carphone_frames[:2], 2)
        assert p.detector is not None and p.detector.name == "depth"
        maps = p.detector(carphone_frames[:1])
    finally:
        p.close()
    assert out[0].images.shape == (2, 32, 40, 3)
    assert maps.shape == (1, 144, 176, 3) and maps.dtype == np.uint8
    assert maps.max() > maps.min() and np.array_equal(maps[..., 0], maps[..., 2])


def test_canny_takes_no_detector_model(models: dict[str, Path]) -> None:
    p = _processor(models, controlnet=str(models["controlnet"]), control_model="x/y")
    with pytest.raises(UsageError, match="--control-model is for depth and lineart"):
        p.configure(FrameFormat(64, 48))
    p.close()


def test_lora_changes_the_output_and_scale_zero_does_not(
    models: dict[str, Path], carphone_frames: np.ndarray, tmp_path: Path
) -> None:
    pytest.importorskip("peft")
    lora = tiny_lora(tmp_path / "lora", models["sd"])
    runs = {}
    for name, options in {
        "none": {},
        "file": {"lora": str(lora)},
        "folder": {"lora": str(lora.parent)},
        "zero": {"lora": str(lora), "lora_scale": 0.0},
    }.items():
        p = _processor(models, **options)
        try:
            runs[name] = _run(p, carphone_frames[:1], 1)[0].images.astype(int)
        finally:
            p.close()
    assert not np.array_equal(runs["none"], runs["file"])
    assert np.array_equal(runs["file"], runs["folder"])
    assert np.abs(runs["none"] - runs["zero"]).max() <= 1


def test_lora_without_peft_says_what_to_install(
    models: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vt.errors import ModelUnavailableError
    from vt_stylize import pipelines

    real = pipelines.importlib.util.find_spec
    monkeypatch.setattr(
        pipelines.importlib.util,
        "find_spec",
        lambda name, *a: None if name == "peft" else real(name, *a),
    )
    p = _processor(models, lora=str(tmp_path / "x.safetensors"))
    with pytest.raises(ModelUnavailableError, match=r"--lora needs peft.*pip install peft"):
        p.configure(FrameFormat(64, 48))
    p.close()


def test_out_of_memory_halves_the_batch_then_says_what_to_try(
    models: dict[str, Path], carphone_frames: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    from vt_stylize import GpuOutOfMemory, StylizeWarning

    p = _processor(models, batch_size=4)
    p.configure(FrameFormat(176, 144))
    calls: list[int] = []

    def fits_one(images: torch.Tensor, indices: list[int], control: object = None) -> object:
        calls.append(len(indices))
        if len(indices) > 1:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 3.00 GiB")
        return images

    monkeypatch.setattr(p.pipeline, "img2img", fits_one)
    with pytest.warns(StylizeWarning) as record:
        out = p.process(batch(carphone_frames))
    assert [str(w.message).split(": ")[1] for w in record] == [
        "continuing with 2 frame(s) per call",
        "continuing with 1 frame(s) per call",
    ]
    assert calls == [4, 2, 1, 1, 1, 1] and p.call_batch == 1
    assert out is not None and out.indices == [0, 1, 2, 3]

    def never(images: torch.Tensor, indices: list[int], control: object = None) -> object:
        raise torch.OutOfMemoryError("CUDA out of memory.")

    monkeypatch.setattr(p.pipeline, "img2img", never)
    with pytest.raises(GpuOutOfMemory, match="--max-res 360p, --cpu-offload or --batch-size 1"):
        p.process(batch(carphone_frames[:1]))
    p.close()
