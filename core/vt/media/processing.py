"""The frame-processor interface every processor implements.

A processor is built once by its registered factory, told the incoming frame format by
``configure`` (it answers with the format it emits), then handed batches. Temporal processors
may hold frames back and return them later (from ``process`` or ``flush``), but every frame
that goes in must come out exactly once, with its PTS, or the pipeline reports an error.
"""

from __future__ import annotations

from vt.media.frames import FrameBatch, FrameFormat


class FrameProcessor:
    """Base class with the defaults of an identity, stateless processor."""

    name: str = "processor"
    #: frames per call the processor prefers (GPU models like larger batches)
    batch_size: int = 1
    #: True when ``process_frame`` can work on decoded ``av.VideoFrame``s in their own pixel
    #: format (e.g. scaling YUV in libswscale): a chain of such processors skips RGB entirely
    accepts_av_frames: bool = False

    def configure(self, fmt: FrameFormat) -> FrameFormat:
        """Accept the input format; return the output format (size may change)."""
        return fmt

    def process(self, batch: FrameBatch) -> FrameBatch | None:
        """Process one batch; return the frames ready now (None or empty when holding back)."""
        raise NotImplementedError

    def process_frame(self, frame: object) -> object:
        """Process one decoded ``av.VideoFrame`` (only when ``accepts_av_frames``); keep PTS."""
        raise NotImplementedError

    def flush(self) -> list[FrameBatch]:
        """Frames still held at end of stream."""
        return []

    def close(self) -> None:
        """Release resources (models, devices)."""

    def describe(self) -> str:
        return self.name
