"""Output formats: tensor, numpy, PIL, base64, OpenAI-style messages, an HF-ready dict, and
``save`` for in-memory results: ``.pt`` / ``.npy`` / ``.npz`` / ``.safetensors`` / ``.json``
files and image folders (``writers`` streams the array files and folders instead)."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from vt.atomic import atomic_file, atomic_folder
from vt.errors import OutputError, UsageError
from vt_qwen_preprocess.results import ProcessedVideo
from vt_qwen_preprocess.writers import (
    STREAM_SUFFIXES,
    SafetensorsWriter,
    check_array_format,
    check_target,
)

FORMATS = ("tensor", "numpy", "pil", "images", "base64", "openai", "hf", "metadata")


def uint8_frames(result: ProcessedVideo) -> Iterator[np.ndarray]:
    """Each frame back as (H, W, 3) uint8 RGB, whatever the output dtype/layout/scaling."""
    import torch

    cfg = result.config
    profile = cfg.get_profile()
    mean = torch.tensor(profile.image_mean, dtype=torch.float32)
    std = torch.tensor(profile.image_std, dtype=torch.float32)
    for frame in result.frames:
        x = frame.detach().to("cpu")
        if cfg.layout == "TCHW":
            x = x.permute(1, 2, 0)
        x = x.to(torch.float32)
        if cfg.channel_order == "bgr":
            x = x.flip(-1)
        if cfg.normalize:
            x = (x * std + mean) * 255.0
        elif cfg.rescale:
            x = x * 255.0
        yield x.round().clamp(0, 255).to(torch.uint8).numpy()


def to_numpy(result: ProcessedVideo) -> np.ndarray:
    frames = result.frames
    if hasattr(frames, "numpy"):
        import torch

        frames = frames.detach().to("cpu")
        if frames.dtype == torch.bfloat16:
            frames = frames.to(torch.float32)
        return frames.numpy()
    return np.asarray(frames)


def to_pil(result: ProcessedVideo) -> list[Any]:
    from PIL import Image

    return [Image.fromarray(f) for f in uint8_frames(result)]


def encode_image(frame: np.ndarray, fmt: str = "jpeg", quality: int = 90) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    image = Image.fromarray(frame)
    if fmt == "jpeg":
        image.save(buf, format="JPEG", quality=quality)
    else:
        image.save(buf, format=fmt.upper())
    return buf.getvalue()


def to_base64(
    result: ProcessedVideo, fmt: str = "jpeg", quality: int | None = None, data_uri: bool = True
) -> list[str]:
    """Frames as base64 strings (data URIs by default). JPEG quality steps down until each
    frame fits the profile's ``max_image_bytes``; a frame that never fits is an error."""
    profile = result.config.get_profile()
    quality = quality or profile.jpeg_quality
    limit = profile.max_image_bytes
    mime = "image/jpeg" if fmt == "jpeg" else f"image/{fmt}"
    out = []
    for i, frame in enumerate(uint8_frames(result)):
        q = quality
        data = encode_image(frame, fmt, q)
        while limit and len(data) > limit and fmt == "jpeg" and q > 20:
            q -= 15
            data = encode_image(frame, fmt, q)
        if limit and len(data) > limit:
            raise OutputError(
                f"frame {i} is {len(data)} bytes encoded, over the "
                f"{profile.name} limit of {limit} (lower --max-pixels)"
            )
        text = base64.b64encode(data).decode("ascii")
        out.append(f"data:{mime};base64,{text}" if data_uri else text)
    return out


def to_openai_messages(
    result: ProcessedVideo, prompt: str | None = None, detail: str = "auto"
) -> list[dict[str, Any]]:
    """One user message: optional text, then every frame as a base64 JPEG ``image_url``."""
    content: list[dict[str, Any]] = []
    if prompt:
        content.append({"type": "text", "text": prompt})
    for uri in to_base64(result, "jpeg"):
        content.append({"type": "image_url", "image_url": {"url": uri, "detail": detail}})
    return [{"role": "user", "content": content}]


def to_hf(result: ProcessedVideo) -> dict[str, Any]:
    """Keyword arguments for a transformers Qwen-VL processor call (``processor(text=...,
    **to_hf(r))``): frames already sampled, with their real indices and fps so temporal
    positions come out right."""
    return {
        "videos": [result.frames],
        "video_metadata": [result.video_metadata()],
        "do_sample_frames": False,
        "fps": [result.plan.sampling.sample_fps],
    }


def convert(result: ProcessedVideo, fmt: str, **kwargs: Any) -> Any:
    """``result`` in one of ``FORMATS``."""
    if fmt == "tensor":
        return result.frames
    if fmt == "numpy":
        return to_numpy(result)
    if fmt in ("pil", "images"):
        return to_pil(result)
    if fmt == "base64":
        return to_base64(result, **kwargs)
    if fmt == "openai":
        return to_openai_messages(result, **kwargs)
    if fmt == "hf":
        return to_hf(result)
    if fmt == "metadata":
        return result.record()
    raise UsageError(f"unknown format {fmt!r} (one of {', '.join(FORMATS)})")


def _write_file(path: Path, overwrite: bool, write: Callable[[Path], Any]) -> None:
    """``write`` a temporary file that becomes ``path`` only when complete (vt's atomic
    writes: a killed run's temporary is cleaned by the next, another job's file is kept)."""
    with atomic_file(path, overwrite=overwrite) as tmp:
        write(tmp)


def default_format_for(path: Path) -> str:
    suffix = path.suffix.lower()
    return {
        ".pt": "tensor",
        ".pth": "tensor",
        ".npz": "numpy",
        ".npy": "numpy",
        ".safetensors": "numpy",
        ".json": "metadata",
    }.get(suffix, "images")


def file_frames(result: ProcessedVideo, raw_bfloat16: bool = False) -> Iterator[np.ndarray]:
    """An in-memory result's frames one at a time, as a file stores them (``file_dtype``:
    bfloat16 as float32, or as its raw bits for safetensors)."""
    import torch

    for frame in result.frames:
        frame = frame.detach().to("cpu")
        if frame.dtype == torch.bfloat16:
            yield (
                frame.contiguous().view(torch.int16).numpy().view(np.uint16)
                if raw_bfloat16
                else frame.to(torch.float32).numpy()
            )
        else:
            yield frame.numpy()


def save(
    result: ProcessedVideo,
    path: str | Path,
    fmt: str | None = None,
    *,
    overwrite: bool = False,
    prompt: str | None = None,
    image_format: str = "png",
) -> Path:
    """Write ``result`` to ``path``: ``.pt`` (torch dict), ``.npy``, ``.npz``,
    ``.safetensors``, ``.json`` (metadata, base64 or openai messages) or a folder of images
    plus ``metadata.json``. (``preprocess_to_file`` streams the same files without holding
    the frames.)"""
    path = Path(path)
    fmt = fmt or default_format_for(path)
    suffix = path.suffix.lower()
    record = result.record()
    if suffix in (".pt", ".pth"):
        if fmt not in ("tensor", "hf"):
            raise UsageError(f"a .pt file holds tensors; --format {fmt} needs .json or a folder")
        import torch

        check_target(path, overwrite)
        payload = {
            "frames": result.frames,
            "metadata": record,
            "video_metadata": result.video_metadata(),
            "fps": result.plan.sampling.sample_fps,
        }
        _write_file(path, overwrite, lambda p: torch.save(payload, p))
        return path
    if suffix in STREAM_SUFFIXES:
        check_array_format(suffix, fmt)
        check_target(path, overwrite)
        if suffix == ".safetensors":
            with SafetensorsWriter(
                path,
                result.plan.nframes,
                result.frames_shape[1:],
                result.config.dtype,
                result.file_metadata(),
                overwrite,
            ) as writer:
                for frame in file_frames(result, raw_bfloat16=True):
                    writer.write(frame)
                writer.finish(record)
            return path
        arr = to_numpy(result)
        meta = json.dumps(record, default=str)

        def write_npz(p: Path) -> None:
            with open(p, "wb") as fh:
                if suffix == ".npy":
                    np.save(fh, arr)
                else:
                    np.savez(
                        fh,
                        frames=arr,
                        frame_indices=np.asarray(result.plan.indices, dtype=np.int64),
                        metadata=np.asarray(meta),
                    )

        _write_file(path, overwrite, write_npz)
        return path
    if suffix == ".json":
        check_target(path, overwrite)
        if fmt == "base64":
            data: Any = {"frames": to_base64(result), "metadata": record}
        elif fmt == "openai":
            data = {"messages": to_openai_messages(result, prompt), "metadata": record}
        elif fmt in ("metadata", "tensor", "images"):
            data = record
        else:
            raise UsageError(f"--format {fmt} cannot be written as JSON (use .pt or .npz)")
        _write_file(
            path, overwrite, lambda p: p.write_text(json.dumps(data, indent=2, default=str))
        )
        return path
    if suffix:
        raise UsageError(
            f"unknown output type {suffix!r} (use .pt, .npy, .npz, .safetensors, .json or a folder)"
        )
    # a folder of images, written whole under a temporary name like vt's frame folders
    check_target(path, overwrite, folder=True)
    ext = "jpg" if image_format in ("jpg", "jpeg") else image_format
    with atomic_folder(path, overwrite=overwrite) as tmp:
        for i, frame in enumerate(uint8_frames(result)):
            data = encode_image(frame, "jpeg" if ext == "jpg" else ext)
            (tmp / f"frame_{i:06d}.{ext}").write_bytes(data)
        (tmp / "metadata.json").write_text(json.dumps(record, indent=2, default=str))
    return path
