"""Frame processors this plugin registers: classical resamplers and the AI upscaler."""

from __future__ import annotations

from typing import Any

from vt.media.frames import FrameBatch, FrameFormat
from vt.media.processing import FrameProcessor
from vt.registry import ProcessorInfo
from vt_upscale.upscaler import Upscaler


class UpscaleProcessor(FrameProcessor):
    """Runs an :class:`Upscaler` on every batch; stateless, keeps PTS."""

    name = "upscale"
    layouts = ("rgb24", "rgb48")
    devices = ("cpu", "cuda", "mps")

    def __init__(self, upscaler: Upscaler | None = None, **options: Any) -> None:
        # an upscaler handed in belongs to the caller (it may serve many files): not closed here
        self._owned = upscaler is None
        self.upscaler = upscaler if upscaler is not None else Upscaler(**options)
        self.batch_size = self.upscaler.frames_per_call

    def configure(self, fmt: FrameFormat) -> FrameFormat:
        if fmt.layout not in ("rgb24", "rgb48"):
            from vt.errors import VtError

            raise VtError(f"upscale takes rgb24 or rgb48 frames, not {fmt.layout}")
        # the thread plan may depend on the frame size, and the batch on the plan
        self.upscaler.prepare(fmt.width, fmt.height)
        self.batch_size = self.upscaler.frames_per_call
        width, height = self.upscaler.output_size(fmt.width, fmt.height)
        return FrameFormat(width, height, fmt.layout)

    def process(self, batch: FrameBatch) -> FrameBatch:
        # a model's output stays on its device for the next torch processor (or the encoder)
        return self.upscaler.upscale_batch(batch)

    # -- native frames: the core pipeline scales decoded YUV frames directly -------------------
    @property
    def accepts_av_frames(self) -> bool:
        """True when classical: the resize can run on decoded frames in their own pixel format
        (YUV), like ffmpeg's scale filter, with no RGB round trip."""
        return self.upscaler.model is None

    def process_frame(self, frame: Any) -> Any:
        """Resize one decoded ``av.VideoFrame`` in its own pixel format; keeps PTS."""
        from vt.media.swscale import reformat
        from vt.processors.resize import METHODS

        width, height = self.upscaler.output_size(frame.width, frame.height)
        return reformat(
            frame, width=width, height=height, interpolation=METHODS[self.upscaler.method]
        )

    def close(self) -> None:
        if self._owned:
            self.upscaler.close()

    def describe(self) -> str:
        return self.upscaler.describe()


def _sr_factory(model: Any = None, **options: Any) -> UpscaleProcessor:
    options.setdefault("ai", True)
    return UpscaleProcessor(model=model, **options)


def _upscale_factory(model: Any = None, **options: Any) -> UpscaleProcessor:
    return UpscaleProcessor(model=model, **options)


def processor_infos() -> list[ProcessorInfo]:
    """Classical resizing is the core's ``resize`` processor; these add the AI upscaler."""
    infos = [
        ProcessorInfo(
            name="upscale",
            factory=_upscale_factory,
            description="vt upscale as a processor: classical (method=lanczos…) or AI (ai=True or "
            "model=…), with Lanczos fallback",
            layouts=UpscaleProcessor.layouts,
            devices=UpscaleProcessor.devices,
        )
    ]
    infos.append(
        ProcessorInfo(
            name="sr-model",
            factory=_sr_factory,
            description="AI super-resolution with any model (name or .pth/.safetensors/.onnx/"
            ".param); options: model, scale, tile, tile_pad, device, dtype, batch, backend, strict",
            layouts=UpscaleProcessor.layouts,
            devices=UpscaleProcessor.devices,
            batch_size=1,
        )
    )
    return infos
