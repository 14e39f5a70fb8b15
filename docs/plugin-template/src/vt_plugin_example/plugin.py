"""Hook implementations: vt calls these once at start-up, never per frame."""

from typing import Annotated

import typer

from vt.cli_media import MediaOptions, default_output, media_options, run_video_job
from vt.hookspecs import hookimpl
from vt.media.frames import FrameBatch
from vt.media.processing import FrameProcessor
from vt.registry import CommandSpec, ProcessorInfo


class Invert(FrameProcessor):
    """Inverts colours: the smallest useful processor."""

    name = "invert"
    # what the pipeline reads: the layouts it takes and how many frames per call
    pixel_formats = ("rgb24", "rgb48")
    batch_size = 8

    def process(self, batch: FrameBatch) -> FrameBatch:
        peak = 65535 if batch.pixel_format == "rgb48" else 255
        return batch.with_images(peak - batch.images)


@media_options
def invert(
    input: Annotated[str, typer.Argument(help="Input video.")],
    output: Annotated[str | None, typer.Option("--output", "-o", help="Output file.")] = None,
    *,
    media: MediaOptions,
) -> None:
    """Invert the colours of a video (keeps audio, subtitles and timestamps)."""
    from pathlib import Path

    target = output or default_output(Path(input), "inverted")
    run_video_job(input, target, [Invert()], media)


@hookimpl
def register_processors(register):
    # pixel formats, devices, batch size: read from Invert itself
    register(ProcessorInfo("invert", Invert, description="invert colours"))


@hookimpl
def register_commands(register):
    register(CommandSpec("invert", invert))
