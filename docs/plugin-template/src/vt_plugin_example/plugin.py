"""Hook implementations: vt calls these once at start-up, never per frame.

Everything here comes from vt's exported API (``import vt``): copy this file to start a plugin.
"""

from pathlib import Path
from typing import Annotated

import typer

import vt


class Invert(vt.FrameProcessor):
    """Inverts colours: the smallest useful processor."""

    name = "invert"
    # what the pipeline reads: the layouts it takes and how many frames per call
    layouts = ("rgb24", "rgb48")
    batch_size = 8

    def process(self, batch: vt.FrameBatch) -> vt.FrameBatch:
        peak = 65535 if batch.layout == "rgb48" else 255
        return batch.with_images(peak - batch.images)


class ApplyModel(vt.FrameProcessor):
    """Runs any image-to-image model vt can load (a file, a registered name, a Hugging Face
    id) on every frame: the model is loaded once, frames go to it as tensors in batches."""

    name = "apply-model"
    layouts = ("rgb24", "rgb48")
    devices = ("cpu", "cuda")
    batch_size = 4

    def __init__(self, model: str, device: str = "auto", dtype: str = "fp32") -> None:
        self.model = vt.load_model(model, device=device, dtype=dtype)
        if self.model.task not in ("super-resolution", "restoration"):
            raise vt.UsageError(
                f"{self.model.name} is a {self.model.task} model, not an image-to-image one"
            )

    def configure(self, fmt: vt.FrameFormat) -> vt.FrameFormat:
        scale = self.model.scale
        return vt.FrameFormat(round(fmt.width * scale), round(fmt.height * scale), fmt.layout)

    def process(self, batch: vt.FrameBatch) -> vt.FrameBatch:
        import torch

        with torch.inference_mode():
            out = self.model(batch.to_tensor(self.model.device))
        return batch.from_tensor(out)

    def close(self) -> None:
        self.model.close()


@vt.media_options
def invert(
    input: Annotated[str, typer.Argument(help="Input video.")],
    output: Annotated[str | None, typer.Option("--output", "-o", help="Output file.")] = None,
    *,
    media: vt.MediaOptions,
) -> None:
    """Invert the colours of a video (keeps audio, subtitles and timestamps)."""
    target = output or vt.default_output(Path(input), "inverted")
    vt.run_video_job(input, target, [Invert()], media)


@vt.media_options
def apply_model(
    input: Annotated[str, typer.Argument(help="Input video.")],
    model: Annotated[str, typer.Option("--model", "-m", help="Model file, name or hub id.")],
    output: Annotated[str | None, typer.Option("--output", "-o", help="Output file.")] = None,
    device: Annotated[str, typer.Option("--device", help="auto, cpu or cuda[:i].")] = "auto",
    *,
    media: vt.MediaOptions,
) -> None:
    """Run an image-to-image model (super-resolution, restoration) on every frame."""
    processor = ApplyModel(model, device=device)
    try:
        target = output or vt.default_output(Path(input), processor.model.name)
        vt.run_video_job(input, target, [processor], media)
    finally:
        processor.close()


@vt.hookimpl
def register_processors(register):
    # pixel formats, devices, batch size: read from each processor class itself
    register(vt.ProcessorInfo("invert", Invert, description="invert colours"))
    register(
        vt.ProcessorInfo(
            "apply-model", ApplyModel, description="run an image-to-image model on every frame"
        )
    )


@vt.hookimpl
def register_commands(register):
    register(vt.CommandSpec("invert", invert))
    register(vt.CommandSpec("apply-model", apply_model))
