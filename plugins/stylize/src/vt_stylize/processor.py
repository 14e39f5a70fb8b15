"""The ``stylize`` frame processor: frames in, stylised frames out, at the source's timing.

Registered with ``register_processors`` so any command can chain it. Frames are scaled to the
processing size (``max_res``, the model's multiple of 8), stylised in batches (img2img,
ControlNet) or overlapping windows (AnimateDiff), and optionally scaled back to the source's
size. Every frame comes out once with its PTS; memory holds one batch or one window.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vt.errors import UsageError, VtError
from vt.media.frames import FrameBatch, FrameFormat
from vt.media.processing import FrameProcessor
from vt.processors.resize import resize_images
from vt_stylize.coherence import WindowBlender
from vt_stylize.control import Detector, make_detector, to_tensor
from vt_stylize.errors import free_memory, is_oom, oom_error, warn
from vt_stylize.pipelines import StylizePipeline
from vt_stylize.settings import StylizeSettings


def processing_size(
    width: int, height: int, max_res: int | None, multiple: int = 8
) -> tuple[int, int]:
    """(width, height) the model sees: the shorter side capped at ``max_res`` (never
    enlarged), the aspect ratio kept, each side rounded to ``multiple``."""
    short = min(width, height)
    scale = max_res / short if max_res and short > max_res else 1.0
    w, h = width * scale, height * scale
    return (
        max(multiple, round(w / multiple) * multiple),
        max(multiple, round(h / multiple) * multiple),
    )


def _slice(batch: FrameBatch, start: int, stop: int) -> FrameBatch:
    return batch[start:stop]


class StylizeProcessor(FrameProcessor):
    """Stylise frames with a :class:`StylizePipeline` (loaded when the stream's format is
    known, so input and output errors come before a slow model load).

    ``StylizeProcessor(prompt="anime style", steps=20, …)`` takes :class:`StylizeSettings`
    fields; a ``pipeline`` handed in stays the caller's (it may serve several passes).
    ``measure=True`` feeds the core's warping-error meter with (input, output) pairs at the
    processing size.
    """

    name = "stylize"
    layouts = ("rgb24",)
    # cross-frame attention anchors every frame to the clip's first; AnimateDiff windows
    # start at the stream's start: a segment cannot reproduce either
    segmentable = False

    def __init__(
        self,
        settings: StylizeSettings | None = None,
        *,
        pipeline: StylizePipeline | None = None,
        measure: bool = False,
        **options: Any,
    ) -> None:
        given = [settings is not None, pipeline is not None, bool(options)]
        if sum(given) > 1:
            raise UsageError("give StylizeProcessor settings, a pipeline or options: one")
        if pipeline is not None:
            settings = pipeline.settings
        elif settings is None:
            settings = StylizeSettings.from_options(**options)
        settings.validate()
        self.settings = settings
        self._owns_pipeline = pipeline is None
        self.pipeline = pipeline if pipeline is not None else StylizePipeline(settings)
        self.batch_size = max(1, settings.batch_size)
        self.call_batch = self.batch_size  # halved on out-of-memory
        self.size: tuple[int, int] | None = None
        self.source_size: tuple[int, int] | None = None
        self.detector: Detector | None = None
        self.meter: Any = None
        if measure:
            from vt.metrics import WarpingErrorMeter

            self.meter = WarpingErrorMeter()
        self._anchor: FrameBatch | None = None
        self._pending: FrameBatch | None = None
        self._blender = WindowBlender(settings.overlap)
        self.frames_done = 0

    # -- setup -----------------------------------------------------------------------------
    def configure(self, fmt: FrameFormat) -> FrameFormat:
        if fmt.layout != "rgb24":
            raise VtError(f"stylize takes rgb24 frames, not {fmt.layout}")
        s = self.settings
        pipeline = self.pipeline.load()
        if not s.batch_size:  # auto: two frames per call fit 8 GB at 480p fp16
            self.batch_size = 2 if pipeline.device.startswith("cuda") else 1
        self.call_batch = self.batch_size
        if s.animatediff:  # the core hands over one window's worth of new frames at a time
            self.batch_size = s.window - s.overlap
        self.source_size = fmt.size
        self.size = processing_size(fmt.width, fmt.height, s.max_res, pipeline.multiple_of)
        if s.controlnet and self.detector is None:
            self.detector = make_detector(s.control, s.control_model, pipeline.device)
        out = self.source_size if s.keep_size else self.size
        return FrameFormat(out[0], out[1], "rgb24")

    def describe(self) -> str:
        text = self.pipeline.describe()
        if self.size:
            text += f", {self.size[0]}x{self.size[1]}"
        return text

    # -- frames ----------------------------------------------------------------------------
    def process(self, batch: FrameBatch) -> FrameBatch | None:
        assert self.size is not None, "configure() first"
        small = batch.with_images(resize_images(batch.images, self.size, "lanczos"))
        if self.settings.animatediff:
            self._pending = (
                small if self._pending is None else FrameBatch.concat([self._pending, small])
            )
            ready = []
            while self._pending is not None and len(self._pending) >= self.settings.window:
                ready.append(self._window(final=False))
            return FrameBatch.concat(ready) if ready else None
        done = []
        start = 0
        while start < len(small):
            count = min(self.call_batch, len(small) - start)
            try:
                done.append(self._img2img(_slice(small, start, start + count)))
            except Exception as exc:
                if not is_oom(exc):
                    raise
                free_memory()
                if self.call_batch == 1:
                    w, h = self.size
                    raise oom_error(
                        f"stylizing {w}x{h} frames",
                        exc,
                        "--max-res 360p, --cpu-offload or --batch-size 1",
                    ) from None
                self.call_batch //= 2
                warn(f"out of GPU memory: continuing with {self.call_batch} frame(s) per call")
                continue
            start += count
        return self._finish(small, np.concatenate([d.images for d in done]))

    def flush(self) -> list[FrameBatch]:
        if not self.settings.animatediff or self._pending is None:
            return []
        out = self._window(final=True)
        return [out] if out is not None and len(out) else []

    def _img2img(self, chunk: FrameBatch) -> FrameBatch:
        """One model call; with cross-frame attention the anchor (the clip's first frame)
        leads the call so every frame can attend to it."""
        calls = chunk
        lead = 0
        if self.settings.cross_frame_attention:
            if self._anchor is None:
                self._anchor = _slice(chunk, 0, 1)
            elif self._anchor.indices[0] not in chunk.indices:
                calls = FrameBatch.concat([self._anchor, chunk])
                lead = 1
        p = self.pipeline
        x = calls.to_tensor(p.execution_device, p.compute_dtype)
        control = self._control(calls)
        out = p.img2img(x, list(calls.indices), control)
        return chunk.from_tensor(out[lead:])

    def _window(self, final: bool) -> FrameBatch | None:
        """Run AnimateDiff on the next window (or what is left at the end) and hand out the
        frames no later window will touch."""
        pending = self._pending
        assert pending is not None
        s = self.settings
        covered = self._blender.covered
        if final:
            if len(pending) > covered:
                self._blender.add(self._animate(pending))
            count = len(pending)
        else:
            self._blender.add(self._animate(_slice(pending, 0, s.window)))
            count = s.window - s.overlap
        images = self._blender.take(count)
        emitted = _slice(pending, 0, count)
        self._pending = None if count >= len(pending) else _slice(pending, count, len(pending))
        return self._finish(emitted, images)

    def _animate(self, window: FrameBatch) -> np.ndarray:
        p = self.pipeline
        x = window.to_tensor(p.execution_device, p.compute_dtype)
        try:
            out = p.video2video(
                x, list(window.indices), self._control(window), chunk=self.call_batch
            )
        except Exception as exc:
            if not is_oom(exc):
                raise
            free_memory()
            w, h = self.size or (0, 0)
            raise oom_error(
                f"stylizing a {len(window)}-frame AnimateDiff window at {w}x{h}",
                exc,
                "--window 8, --max-res 360p or --cpu-offload",
            ) from None
        return window.from_tensor(out).images

    def _control(self, frames: FrameBatch) -> Any:
        if self.detector is None:
            return None
        p = self.pipeline
        return to_tensor(self.detector(frames.images), p.execution_device, p.compute_dtype)

    def _finish(self, small: FrameBatch, images: np.ndarray) -> FrameBatch:
        """Stylised ``images`` for the frames of ``small``: measured, then scaled back to the
        source's size with ``keep_size``."""
        if self.meter is not None:
            for before, after in zip(small.images, images):
                self.meter.update(before, after)
        if self.settings.keep_size and self.source_size and self.source_size != self.size:
            images = resize_images(images, self.source_size, "lanczos")
        self.frames_done += len(images)
        return small.with_images(images)

    # -- results ---------------------------------------------------------------------------
    def warping_error(self) -> dict[str, Any] | None:
        """The core's warping error of the stylised frames against the input (flow from the
        input), when measured."""
        if self.meter is None or not self.meter.per_frame:
            return None
        return self.meter.result().as_dict()

    def close(self) -> None:
        if self._owns_pipeline:
            self.pipeline.close()
