"""Checks on what a request brings: the uploaded image and the LoRA name."""

from __future__ import annotations

import io
import os
import re
import warnings
from pathlib import Path
from typing import BinaryIO

from fastapi import HTTPException
from PIL import Image, UnidentifiedImageError

#: formats PIL decodes in-process (no ghostscript or other helper programs)
IMAGE_FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "GIF", "TIFF")
LORA_WEIGHTS = "pytorch_lora_weights.safetensors"
_LORA_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*(/[A-Za-z0-9][A-Za-z0-9_.-]*)*")


def read_image(file: BinaryIO, size: int | None, *, max_bytes: int, max_pixels: int) -> bytes:
    """The upload's bytes once they decode fully as an image of at most ``max_pixels``
    (413 above ``max_bytes``, 422 for anything else wrong)."""
    if size is None:
        file.seek(0, os.SEEK_END)
        size = file.tell()
    if size > max_bytes:
        raise HTTPException(413, f"image: {size} bytes; the limit is {max_bytes}")
    if size == 0:
        raise HTTPException(422, "image: empty file")
    file.seek(0)
    data = file.read(max_bytes + 1)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # checked below
            with Image.open(io.BytesIO(data), formats=IMAGE_FORMATS) as image:
                width, height = image.size
                if width * height > max_pixels:
                    raise HTTPException(
                        422,
                        f"image: {width}x{height} is {width * height} "
                        f"pixels; the limit is {max_pixels}",
                    )
                image.load()  # a truncated or corrupt file fails here, not in the worker
    except UnidentifiedImageError as exc:
        raise HTTPException(422, "image: not a " + "/".join(IMAGE_FORMATS) + " image") from exc
    except Image.DecompressionBombError as exc:
        raise HTTPException(422, f"image: {exc}") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise HTTPException(422, f"image: cannot be decoded ({exc})") from exc
    return data


def open_image(data: bytes) -> Image.Image:
    """A lazily decoded image over checked bytes (decoded when the job runs)."""
    return Image.open(io.BytesIO(data), formats=IMAGE_FORMATS)


def resolve_lora(name: str, lora_dir: Path | None) -> Path:
    """The weights ``name`` means inside ``lora_dir``: a folder holding
    pytorch_lora_weights.safetensors or a .safetensors file; 422 for anything else,
    including names that lead (by ``..`` or a symlink) outside the folder."""
    if lora_dir is None:
        raise HTTPException(422, "lora: this server takes no LoRA (start it with --lora-dir)")
    unknown = HTTPException(422, f"lora: no LoRA named {name!r} (GET /loras lists them)")
    if not _LORA_NAME.fullmatch(name) or ".." in name.split("/"):
        raise unknown
    root = os.path.realpath(lora_dir)
    real = os.path.realpath(os.path.join(root, name))
    if os.path.commonpath([root, real]) != root or real == root:
        raise unknown
    path = Path(real)
    if path.is_dir() and (path / LORA_WEIGHTS).is_file():
        if os.path.commonpath([root, os.path.realpath(path / LORA_WEIGHTS)]) != root:
            raise unknown
        return path
    if path.is_file() and path.suffix == ".safetensors":
        return path
    raise unknown


def list_loras(lora_dir: Path | None, depth: int = 3) -> list[str]:
    """The names ``resolve_lora`` accepts, found up to ``depth`` folders deep."""
    if lora_dir is None:
        return []
    root = Path(os.path.realpath(lora_dir))
    names = []
    for folder, subfolders, files in os.walk(root):
        relative = Path(folder).relative_to(root)
        if len(relative.parts) >= depth:
            subfolders.clear()
        subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
        for file in sorted(files):
            name = (relative / file).as_posix()
            if file == LORA_WEIGHTS and relative.parts:
                name = relative.as_posix()
            elif not file.endswith(".safetensors"):
                continue
            try:
                resolve_lora(name, root)
            except HTTPException:
                continue
            names.append(name)
    return sorted(names)
