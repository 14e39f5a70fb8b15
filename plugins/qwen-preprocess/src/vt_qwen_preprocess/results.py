"""Results: the converted frames of one video with their plan, config and timing."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vt_qwen_preprocess.config import PreprocessConfig
from vt_qwen_preprocess.planning import VideoPlan


@dataclass
class ProcessedVideo:
    """The frames (``(T, C, H, W)`` tensor unless configured otherwise) and their record.

    A result streamed to a file (``preprocess_to_file``) holds no frames: ``frames`` is None,
    ``shape`` their shape and ``output`` the file or folder written."""

    frames: Any
    plan: VideoPlan
    config: PreprocessConfig
    decoder: str | None
    timing: dict[str, float] = field(default_factory=dict)
    cache_hit: str | None = None  # None, "memory" or "disk"
    shape: tuple[int, ...] | None = None
    output: Path | None = None

    @property
    def frames_shape(self) -> tuple[int, ...]:
        if self.frames is not None:
            return tuple(self.frames.shape)
        assert self.shape is not None
        return tuple(self.shape)

    @property
    def metadata(self) -> dict[str, Any]:
        p = self.plan
        return {
            "num_frames": p.nframes,
            "original_fps": p.video_fps,
            "sample_fps": p.sampling.sample_fps,
            "duration": p.duration,
            "resolution": (p.resized_height, p.resized_width),
            "source_resolution": (p.height, p.width),
            "total_tokens": p.tokens.total_tokens,
            "grid_thw": list(p.tokens.grid_thw),
            "frame_indices": p.indices,
            "timestamps": [i / p.video_fps for i in p.indices],
            "total_frames": p.total_frames,
            "strategy": p.sampling.strategy,
            "profile": p.profile,
            "decoder": self.decoder,
            "dtype": self.config.dtype,
            "layout": self.config.layout,
        }

    def video_metadata(self) -> dict[str, Any]:
        """The ``video_metadata`` transformers' Qwen processors read (real temporal positions)."""
        p = self.plan
        return {
            "fps": p.video_fps,
            "frames_indices": p.indices,
            "total_num_frames": p.total_frames,
            "duration": p.duration,
            "width": p.width,
            "height": p.height,
            "video_backend": self.decoder or "frames",
        }

    def to_dict(self) -> dict[str, Any]:
        return {"frames": self.frames, "metadata": self.metadata, "timing": dict(self.timing)}

    def file_metadata(self) -> dict[str, Any]:
        """The record without what only the end of a run knows (timing, cache hits): what a
        streamed file's header carries, the same whether frames are streamed or saved."""
        data = {
            **self.plan.to_dict(),
            **{k: v for k, v in self.metadata.items() if k not in ("timestamps",)},
        }
        data["resolution"] = list(self.metadata["resolution"])
        data["source_resolution"] = list(self.metadata["source_resolution"])
        data["shape"] = list(self.frames_shape)
        return data

    def record(self) -> dict[str, Any]:
        """JSON-ready metadata and timing (no pixels)."""
        data = self.file_metadata()
        data["timing"] = dict(self.timing)
        data["cache_hit"] = self.cache_hit
        return data
