"""``--upscale``: vt-upscale's ``sr-model`` processor after stylisation, found in the registry.

vt-upscale is never imported: the processor is looked up by name once, before frames flow.
When it is missing or its model cannot load, stylisation goes on without upscaling (with a
warning). When the two models cannot share the GPU, a two-pass run stores the stylised frames
losslessly (FFV1) and :class:`ReplayProcessor` feeds them to the upscaler in pass 2.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from vt.errors import VtError
from vt.media.frames import FrameBatch, FrameFormat
from vt.media.processing import FrameProcessor
from vt_stylize.errors import GpuOutOfMemory, is_oom, note, warn
from vt_stylize.settings import DEFAULT_UPSCALE_MODEL

SR_PROCESSOR = "sr-model"
#: upscaler tile (input pixels): bounded memory beside the resident diffusion model
TILE = 256


def upscaled_size(width: int, height: int, lines: int | None, scale: int = 4) -> tuple[int, int]:
    """The model's ``scale`` (``lines`` None/0), or the shorter side resized to ``lines``,
    the aspect ratio kept; even sides, which 4:2:0 encoders need."""
    if not lines:
        return width * scale, height * scale
    factor = lines / min(width, height)

    def even(v: float) -> int:
        return max(2, round(v / 2) * 2)

    return even(width * factor), even(height * factor)


class UpscaleStage(FrameProcessor):
    """Real-ESRGAN x4 (by default) through ``sr-model``, then resized to ``lines``; a pass-
    through, with a warning, when it cannot run."""

    name = "upscale"
    layouts = ("rgb24",)

    def __init__(
        self,
        lines: int | None = 1080,
        *,
        model: str = DEFAULT_UPSCALE_MODEL,
        device: str = "cpu",
        dtype: str = "fp32",
        tile: int = TILE,
    ) -> None:
        self.lines, self.model, self.device, self.dtype, self.tile = (
            lines,
            model,
            device,
            dtype,
            tile,
        )
        self.inner: FrameProcessor | None = None
        self.skipped: str | None = None
        self.size: tuple[int, int] | None = None
        self.model_description: str | None = None  # kept for the report after close()

    def configure(self, fmt: FrameFormat) -> FrameFormat:
        from vt.plugins import get_host

        if self.lines and min(fmt.width, fmt.height) >= self.lines:
            note(f"frames are already {min(fmt.width, fmt.height)} lines: --upscale skipped")
            self.skipped = "already at the target size"
            return fmt
        try:
            info = get_host().processors.get(SR_PROCESSOR)
        except VtError:
            return self._skip(
                fmt,
                "vt-upscale is not installed (pip install vt-upscale), so "
                "its sr-model processor is missing",
            )
        width, height = upscaled_size(fmt.width, fmt.height, self.lines)
        import torch

        try:
            # CPU backends (ncnn) get torch's thread budget: the two models take turns
            inner = info.factory(
                model=self.model,
                width=width,
                height=height,
                device=self.device,
                dtype=self.dtype,
                tile=self.tile,
                threads=torch.get_num_threads(),
                strict=True,
            )
            out = inner.configure(fmt)
        except Exception as exc:  # noqa: BLE001 - any failure: stylised frames as they are
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            return self._skip(fmt, f"{self.model} cannot run ({first[:200]})")
        self.inner = inner
        self.batch_size = int(getattr(inner, "batch_size", 1) or 1)
        self.size = out.size
        self.model_description = inner.describe()
        return out

    def _skip(self, fmt: FrameFormat, reason: str) -> FrameFormat:
        self.skipped = reason
        warn(f"upscaling skipped: {reason}; writing the stylised frames as they are")
        return fmt

    def process(self, batch: FrameBatch) -> FrameBatch | None:
        if self.inner is None:
            return batch
        try:
            return self.inner.process(batch)
        except Exception as exc:
            if is_oom(exc) or (isinstance(exc, VtError) and "out of memory" in str(exc)):
                raise GpuOutOfMemory(f"out of GPU memory upscaling: {str(exc)[:160]}") from None
            raise

    def describe(self) -> str:
        if self.inner is None:
            return f"no upscaling ({self.skipped})" if self.skipped else "upscaling"
        return self.inner.describe()

    def report(self) -> dict[str, Any]:
        return {
            "model": self.model_description,
            "size": list(self.size) if self.size else None,
            "skipped": self.skipped,
        }

    def close(self) -> None:
        if self.inner is not None:
            self.inner.close()
            self.inner = None


class ReplayProcessor(FrameProcessor):
    """Pass 2 of a two-pass run: each decoded source frame is replaced, in order, by the
    stylised frame pass 1 stored (so PTS, audio and metadata come from the source itself)."""

    name = "stylized-frames"
    layouts = ("rgb24",)
    segmentable = False  # replays pass 1's frames in order, from the start

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._reader: Any = None
        self._frames: Iterator[Any] | None = None
        self._held: Any = None

    def configure(self, fmt: FrameFormat) -> FrameFormat:
        from vt.media.decode import open_video

        self._reader = open_video(self.path, decoder="pyav")
        video = self._reader.info.video
        self._frames = (image for b in self._reader.frames(layout="rgb24") for image in b.images)
        return FrameFormat(video.width, video.height, "rgb24")

    def process(self, batch: FrameBatch) -> FrameBatch:
        import numpy as np

        assert self._frames is not None, "configure() first"
        images = []
        for _ in range(len(batch)):
            try:
                images.append(next(self._frames))
            except StopIteration:
                raise VtError(
                    "the stylised frames of pass 1 ran out before the source's: output discarded"
                ) from None
        return batch.with_images(np.stack(images))

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None
