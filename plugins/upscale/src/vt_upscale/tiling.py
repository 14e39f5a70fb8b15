"""Tiled inference: run a model over overlapping tiles and stitch the centres, seam-free.

Each tile of ``tile`` input pixels is run with (at least) ``tile_pad`` pixels of real
neighbouring image around it, and only the tile's own area of the output is kept. With
``tile_pad`` at least the model's receptive radius the result equals the untiled output (up to
float rounding).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import numpy as np

MIN_TILE = 32


def is_oom(exc: BaseException) -> bool:
    """Whether ``exc`` is a device out-of-memory error (CUDA, MPS or the allocator's).
    Torch is asked only when loaded: a torch-free run has no torch errors."""
    torch = sys.modules.get("torch")
    oom_type = getattr(getattr(torch, "cuda", None), "OutOfMemoryError", None)
    if oom_type is not None and isinstance(exc, oom_type):
        return True
    if isinstance(exc, (RuntimeError, MemoryError)):
        text = str(exc).lower()
        return (
            isinstance(exc, MemoryError) or "out of memory" in text or "failed to allocate" in text
        )
    return False


def free_device_memory() -> None:
    torch = sys.modules.get("torch")  # nothing to free on a device torch never used
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


def run_tiled(
    model: Callable[[Any], Any],
    image: Any,
    scale: int,
    tile: int,
    tile_pad: int = 10,
    *,
    spatial: tuple[int, int] = (-2, -1),
) -> Any:
    """``model`` over ``image`` in tiles of ``tile`` px (0: whole image). ``image`` is an
    (N, C, H, W) tensor, or with ``spatial=(0, 1)`` an (H, W, C) host array; ``spatial``
    names its height and width axes."""
    y_axis, x_axis = spatial
    h, w = image.shape[y_axis], image.shape[x_axis]
    if tile <= 0 or (h <= tile and w <= tile):
        return model(image)

    def window(top: int, bottom: int, left: int, right: int) -> tuple[slice, ...]:
        index = [slice(None)] * image.ndim
        index[y_axis], index[x_axis] = slice(top, bottom), slice(left, right)
        return tuple(index)

    output: Any = None
    # every window has the same size: edge windows shift inwards and take real pixels
    # rather than padding (the same as the untiled run, and what static-shape models need)
    win_h, win_w = min(tile + 2 * tile_pad, h), min(tile + 2 * tile_pad, w)
    for y0 in range(0, h, tile):
        for x0 in range(0, w, tile):
            y1, x1 = min(y0 + tile, h), min(x0 + tile, w)
            py0 = min(max(y0 - tile_pad, 0), h - win_h)
            px0 = min(max(x0 - tile_pad, 0), w - win_w)
            py1, px1 = py0 + win_h, px0 + win_w
            result = model(image[window(py0, py1, px0, px1)])
            if output is None:
                shape = list(result.shape)
                shape[y_axis], shape[x_axis] = h * scale, w * scale
                output = (
                    np.empty(shape, result.dtype)
                    if isinstance(result, np.ndarray)
                    else result.new_empty(shape)
                )
            oy, ox = (y0 - py0) * scale, (x0 - px0) * scale
            output[window(y0 * scale, y1 * scale, x0 * scale, x1 * scale)] = result[
                window(oy, oy + (y1 - y0) * scale, ox, ox + (x1 - x0) * scale)
            ]
    assert output is not None
    return output


def pre_pad(image: Any, pad: int) -> Any:
    """Reflect-pad bottom/right by ``pad`` px (less border ringing; cropped after the model):
    an (N, C, H, W) tensor, or an (H, W, C) host array."""
    if pad <= 0:
        return image
    if isinstance(image, np.ndarray):
        h, w = image.shape[:2]
        return np.pad(image, ((0, min(pad, h - 1)), (0, min(pad, w - 1)), (0, 0)), mode="reflect")
    import torch.nn.functional as F

    h, w = image.shape[-2:]
    return F.pad(image, (0, min(pad, w - 1), 0, min(pad, h - 1)), mode="reflect")


def next_tile(tile: int, height: int, width: int) -> int | None:
    """The tile size to retry with after an out-of-memory error (None: cannot go lower)."""
    if tile <= 0:
        tile = 1 << (max(height, width) - 1).bit_length()  # next power of two >= the image
    tile //= 2
    return tile if tile >= MIN_TILE else None
