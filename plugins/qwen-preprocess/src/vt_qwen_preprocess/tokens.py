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
        return TokenReport(
            nframes,
            height,
            width,
            grid,
            per_frame,
            per_frame * nframes,
            profile.max_context_tokens,
            memory,
        )
    p = profile.patch_size
    t = math.ceil(nframes / profile.temporal_patch_size)
    grid = (t, height // p, width // p)
    total = t * grid[1] * grid[2] // (profile.merge_size**2)
    per_frame = total / nframes if nframes else 0.0
    return TokenReport(
        nframes, height, width, grid, per_frame, total, profile.max_context_tokens, memory
    )


def context_error(report: TokenReport, profile: ModelProfile, hint: str) -> UsageError:
    return UsageError(
        f"the video needs {report.total_tokens} tokens ({report.nframes} frames of "
        f"{report.width}x{report.height}) but {profile.name} has a "
        f"{report.max_context_tokens}-token context: {hint}"
    )
