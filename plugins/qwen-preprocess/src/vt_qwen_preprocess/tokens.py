"""Token and memory accounting, and the check against the model's context window."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from vt.errors import UsageError
from vt_qwen_preprocess.profiles import ModelProfile

BYTES_PER_ELEMENT = {"fp32": 4.0, "bf16": 2.0, "fp16": 2.0, "int8": 1.0, "int4": 0.5}


@dataclass(frozen=True)
class TokenReport:
    nframes: int
    height: int
    width: int
    grid_thw: tuple[int, int, int]  # temporal patches, patch rows, patch columns
    tokens_per_frame: float  # per input frame (a tubelet of temporal_patch_size shares tokens)
    total_tokens: int
    max_context_tokens: int
    memory_bytes: dict[str, int]  # the (T, 3, H, W) frames tensor at each precision

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["grid_thw"] = list(self.grid_thw)
        return data


def count_tokens(profile: ModelProfile, nframes: int, height: int, width: int) -> TokenReport:
    """Tokens for ``nframes`` frames of ``height`` x ``width`` under ``profile``.

    Patch profiles (Qwen): grid = (ceil(T / temporal_patch), H / patch, W / patch) and
    tokens = t * h * w / merge^2. Tile profiles (API): 85 + 170 per 512-px tile, per frame.
    """
    elements = nframes * 3 * height * width
    memory = {k: int(math.ceil(elements * b)) for k, b in BYTES_PER_ELEMENT.items()}
    if profile.token_model == "tiles":
        tiles = math.ceil(height / 512) * math.ceil(width / 512)
        per_frame = 85 + 170 * tiles
        grid = (nframes, math.ceil(height / 512), math.ceil(width / 512))
        return TokenReport(nframes, height, width, grid, per_frame, per_frame * nframes,
                           profile.max_context_tokens, memory)
    p = profile.patch_size
    t = math.ceil(nframes / profile.temporal_patch_size)
    grid = (t, height // p, width // p)
    total = t * grid[1] * grid[2] // (profile.merge_size**2)
    per_frame = total / nframes if nframes else 0.0
    return TokenReport(nframes, height, width, grid, per_frame, total,
                       profile.max_context_tokens, memory)


def check_context(report: TokenReport, profile: ModelProfile, *, fps: float | None,
                  sample_fps: float, reserve: int = 0) -> None:
    """Raise a one-line ``UsageError`` when the video alone overflows the context window,
    suggesting an fps and a max_pixels that fit."""
    limit = report.max_context_tokens - reserve
    if report.total_tokens <= limit:
        return
    scale = limit / report.total_tokens
    rate = fps if fps is not None else sample_fps
    fps_hint = math.floor(rate * scale * 100) / 100
    per_frame_limit = limit / max(report.nframes, 1)
    if profile.token_model == "tiles":
        pixels_hint = 512 * 512 * max(1, int((per_frame_limit - 85) // 170))
    else:
        tokens_per_frame = per_frame_limit * profile.temporal_patch_size
        pixels_hint = int(tokens_per_frame * (profile.patch_size * profile.merge_size) ** 2)
    hint = f"try --fps {fps_hint:g}" if fps_hint > 0 else "use a shorter --start/--end range"
    if pixels_hint >= (profile.patch_size * profile.merge_size) ** 2:
        hint += f" or --max-pixels {pixels_hint}"
    raise UsageError(
        f"the video needs {report.total_tokens} tokens ({report.nframes} frames of "
        f"{report.width}x{report.height}) but {profile.name} has a {limit}-token context: {hint}"
    )
