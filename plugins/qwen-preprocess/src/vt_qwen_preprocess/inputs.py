"""Normalising what users hand us: paths, URLs, data URIs, bytes, streams and frame lists.

A video becomes a ``vt.media.source.Source`` of kind ``file`` (bytes and downloads are spooled
to a temporary file so every decoder can seek them); a list of frames becomes a ``FrameList``.
Only ``file://``, ``http://``, ``https://`` and ``data:`` URIs are accepted.
"""

from __future__ import annotations

import base64
import binascii
import io
import os
import re
import tempfile
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vt.cachedirs import cache_dir
from vt.download import download as fetch_url
from vt.errors import DownloadError, InputError
from vt.media.source import IMAGE_EXTENSIONS, Source
from vt.tempfiles import clean_stale, temp_path

_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*):")


@dataclass
class FrameList:
    """Pre-extracted frames: loaded one at a time by ``load(i)`` -> (H, W, 3) uint8 RGB."""

    count: int
    load: Callable[[int], np.ndarray]
    fps: float | None = None  # the rate the frames were taken at, when known
    description: str = "<frames>"


@dataclass
class VideoInput:
    """A resolved input: exactly one of ``source`` (a video) or ``frames``."""

    source: Source | None = None
    frames: FrameList | None = None
    original: str = ""
    temp_files: list[Path] = field(default_factory=list)

    @property
    def is_video(self) -> bool:
        return self.source is not None

    def describe(self) -> str:
        return self.original or (self.source.describe() if self.source else "<frames>")

    def close(self) -> None:
        for path in self.temp_files:
            try:
                path.unlink()
            except OSError:
                pass
        self.temp_files.clear()

    def __enter__(self) -> VideoInput:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def scratch_dir() -> Path:
    """Where downloads and spooled bytes go: vt's ``downloads`` cache folder, or the system's
    temporary folder when that cannot be created. Stale leftovers of killed runs are removed."""
    folder = cache_dir("downloads")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        folder = Path(tempfile.gettempdir())
    clean_stale(folder)
    return folder


def _scratch_file(stem: str, suffix: str) -> Path:
    """A fresh ``vt.tempfiles`` name (PID-tagged, so a killed run's file is cleaned later)."""
    suffix = re.sub(r"[^A-Za-z0-9.]", "", suffix)[:8]
    return temp_path(scratch_dir() / stem, suffix)


def _spool(data: bytes, suffix: str = ".bin") -> Path:
    path = _scratch_file("qwen-bytes", suffix)
    try:
        with open(path, "xb") as fh:
            fh.write(data)
    except OSError as exc:
        path.unlink(missing_ok=True)
        raise InputError(
            f"cannot spool the input bytes to {path.parent}: {exc.strerror or exc}"
        ) from None
    return path


def max_encoded_length(max_bytes: int) -> int:
    """The longest base64 text that can decode to at most ``max_bytes``, plus room for line
    breaks (MIME wraps at 76 characters: CRLF adds under 3%)."""
    encoded = -(-max_bytes // 3) * 4
    return encoded + encoded // 32 + 64


def decode_data_uri(uri: str, max_bytes: int | None = None) -> tuple[str, bytes]:
    """``data:<mime>;base64,<payload>`` -> (mime, bytes); raises ``InputError`` when malformed,
    or (before decoding anything) when the payload cannot fit in ``max_bytes``."""
    head, sep, payload = uri.partition(",")
    if not sep:
        raise InputError("malformed data URI: no ',' before the payload")
    mime = head[5:].split(";")[0] or "application/octet-stream"
    base64_encoded = ";base64" in head
    if max_bytes is not None:
        # base64 spends 4 characters per 3 bytes, percent-encoding 1 to 3 per byte
        limit = max_encoded_length(max_bytes) if base64_encoded else 3 * max_bytes + 64
        if len(payload) > limit:
            raise InputError(
                f"data URI is too large: {len(payload)} characters encoded, over "
                f"the {max_bytes}-byte input limit (refused before decoding)"
            )
    if not base64_encoded:
        data = urllib.parse.unquote_to_bytes(payload)
    else:
        try:
            data = base64.b64decode("".join(payload.split()), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise InputError(f"invalid base64 in data URI: {exc}") from None
    if not data:
        raise InputError("data URI holds no data")
    return mime, data


def download(url: str, *, max_bytes: int, timeout: float) -> Path:
    """Fetch ``url`` into a temporary file (the caller deletes it) through the core's
    downloader: http(s) on every hop, size and time limits."""
    suffix = Path(urllib.parse.urlparse(url).path).suffix or ".bin"
    dest = _scratch_file("qwen-download", suffix)
    try:
        return fetch_url(url, dest, max_bytes=max_bytes, timeout=timeout)
    except DownloadError as exc:
        raise InputError(str(exc)) from None


def _check_format(path: Path, supported: Sequence[str]) -> None:
    ext = path.suffix.lower().lstrip(".")
    if ext and ext not in supported and ext not in ("bin", "tmp"):
        if f".{ext}" in IMAGE_EXTENSIONS:
            raise InputError(f"{path.name} is an image, not a video (pass a list of frames)")
        raise InputError(
            f"unsupported video format .{ext} for {path.name} (supported: {', '.join(supported)})"
        )


def resolve_input(
    value: Any,
    *,
    max_bytes: int = 4 * 1024**3,
    max_download_bytes: int = 2 * 1024**3,
    timeout: float = 60.0,
    supported_formats: Sequence[str] = (),
    fps: float | None = None,
) -> VideoInput:
    """Classify ``value`` and make it readable. Raises ``InputError`` (one line) when it is not."""
    if isinstance(value, VideoInput):
        return value
    if isinstance(value, Source):
        return VideoInput(source=value, original=value.describe())
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value)
        if not data:
            raise InputError("input bytes are empty")
        if len(data) > max_bytes:
            raise InputError(f"input is too large: {len(data)} bytes > limit {max_bytes}")
        path = _spool(data)
        return VideoInput(
            source=Source.parse(path), original=f"<{len(data)} bytes>", temp_files=[path]
        )
    if hasattr(value, "read") and not isinstance(value, str):
        data = value.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise InputError(f"input stream is too large: over the {max_bytes}-byte limit")
        return resolve_input(bytes(data), max_bytes=max_bytes)
    if isinstance(value, str):
        return _resolve_text(value, max_bytes, max_download_bytes, timeout, supported_formats, fps)
    if isinstance(value, np.ndarray) and value.ndim == 4:
        return VideoInput(frames=frames_from_array(value, fps), original="<array>")
    if _is_tensor(value) and value.ndim == 4:
        return VideoInput(frames=frames_from_array(_tensor_frames(value), fps), original="<tensor>")
    if isinstance(value, (list, tuple)):
        return VideoInput(frames=frame_list(value, fps=fps), original=f"<{len(value)} frames>")
    raise InputError(f"unsupported input type {type(value).__name__}")


def _resolve_text(
    text: str,
    max_bytes: int,
    max_download: int,
    timeout: float,
    supported: Sequence[str],
    fps: float | None,
) -> VideoInput:
    if not text.strip():
        raise InputError("input is an empty string")
    match = _SCHEME.match(text)
    scheme = match.group(1).lower() if match and len(match.group(1)) > 1 else None
    if scheme in ("http", "https"):
        path = download(text, max_bytes=max_download, timeout=timeout)
        try:
            src = Source.parse(path)
        except InputError:
            path.unlink(missing_ok=True)
            raise
        return VideoInput(source=src, original=text, temp_files=[path])
    if scheme == "data":
        mime, data = decode_data_uri(text, max_bytes)
        if mime.startswith("image/"):
            return VideoInput(frames=frame_list([text], fps=fps), original="<data:image>")
        inp = resolve_input(data, max_bytes=max_bytes)
        inp.original = f"<data:{mime}, {len(data)} bytes>"
        return inp
    if scheme == "file":
        text = urllib.parse.unquote(urllib.parse.urlparse(text).path)
    elif scheme is not None:
        raise InputError(
            f"unsupported URL scheme {scheme}:// (use a path, file://, http(s):// or a data: URI)"
        )
    src = Source.parse(text)
    if src.kind == "frames":
        paths = list(src.paths)
        return VideoInput(frames=frame_list(paths, fps=fps), original=text)
    if src.path is not None:
        if supported:
            _check_format(src.path, supported)
        size = src.path.stat().st_size
        if size > max_bytes:
            raise InputError(f"{text} is too large: {size} bytes > limit {max_bytes}")
    return VideoInput(source=src, original=text)


# -- frame lists ----------------------------------------------------------------------------
def _is_tensor(value: Any) -> bool:
    return type(value).__module__.startswith("torch") and hasattr(value, "ndim")


def _tensor_frames(t: Any) -> np.ndarray:
    """(T, C, H, W) or (T, H, W, C) tensor -> (T, H, W, 3) uint8 (floats in [0,1] or [0,255])."""
    arr = t.detach().cpu()
    if arr.ndim == 4 and arr.shape[1] in (1, 3, 4) and arr.shape[-1] not in (1, 3, 4):
        arr = arr.permute(0, 2, 3, 1)
    return arr.numpy() if str(arr.dtype) != "torch.bfloat16" else arr.float().numpy()


def to_rgb_array(frame: np.ndarray) -> np.ndarray:
    """Any (H, W[, C]) array -> (H, W, 3) uint8 RGB (alpha composited on white)."""
    arr = np.asarray(frame)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3:
        raise InputError(f"a frame must be (H, W, C), got shape {arr.shape}")
    if arr.shape[0] in (1, 3, 4) and arr.shape[2] not in (1, 3, 4):
        arr = arr.transpose(1, 2, 0)
    if arr.dtype != np.uint8:
        arr = arr.astype(np.float32)
        if arr.size and arr.max() <= 1.0:
            arr = arr * 255.0
        arr = np.clip(np.rint(arr), 0, 255).astype(np.uint8)
    channels = arr.shape[2]
    if channels == 1:
        arr = np.repeat(arr, 3, axis=2)
    elif channels == 4:
        alpha = arr[:, :, 3:4].astype(np.float32) / 255.0
        arr = np.rint(arr[:, :, :3] * alpha + 255.0 * (1 - alpha)).astype(np.uint8)
    elif channels != 3:
        raise InputError(f"a frame must have 1, 3 or 4 channels, got {channels}")
    return np.ascontiguousarray(arr)


def _pil_to_rgb(image: Any) -> np.ndarray:
    from PIL import Image

    if image.mode == "RGBA":
        background = Image.new("RGB", image.size, (255, 255, 255))
        background.paste(image, mask=image.split()[3])
        image = background
    return np.array(image.convert("RGB"))


def load_image(item: Any) -> np.ndarray:
    """One frame from a PIL image, array, tensor, path, file:// URL or data:image URI."""
    from PIL import Image, UnidentifiedImageError

    if isinstance(item, Image.Image):
        return _pil_to_rgb(item)
    if isinstance(item, np.ndarray):
        return to_rgb_array(item)
    if _is_tensor(item):
        return to_rgb_array(_tensor_frames(item[None])[0])
    if isinstance(item, os.PathLike):
        item = os.fspath(item)
    if isinstance(item, (bytes, bytearray)):
        opener: Any = io.BytesIO(bytes(item))
        label = f"<{len(item)} bytes>"
    elif isinstance(item, str):
        if item.startswith("data:"):
            _, data = decode_data_uri(item)
            opener, label = io.BytesIO(data), "<data URI>"
        elif item.startswith(("http://", "https://")):
            raise InputError("frames given as http(s) URLs are not fetched; download them first")
        else:
            path = item[7:] if item.startswith("file://") else item
            if not Path(path).is_file():
                raise InputError(f"frame not found: {item}")
            opener, label = path, path
    else:
        raise InputError(f"unsupported frame type {type(item).__name__}")
    try:
        with Image.open(opener) as image:
            return _pil_to_rgb(image)
    except (UnidentifiedImageError, OSError) as exc:
        raise InputError(f"not an image: {label} ({exc})") from None


def frame_list(items: Sequence[Any], fps: float | None = None) -> FrameList:
    if len(items) == 0:
        raise InputError("the frame list is empty")
    items = list(items)
    return FrameList(len(items), lambda i: load_image(items[i]), fps, f"<{len(items)} frames>")


def frames_from_array(array: np.ndarray, fps: float | None = None) -> FrameList:
    if array.shape[0] == 0:
        raise InputError("the frame array is empty")
    return FrameList(
        int(array.shape[0]), lambda i: to_rgb_array(array[i]), fps, f"<{array.shape[0]} frames>"
    )
