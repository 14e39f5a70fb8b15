"""``vt upscale``: the command line over :class:`vt_upscale.Upscaler` and the core pipeline."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer

from vt.cli_media import MediaOptions, default_output, media_options, run_video_job
from vt.errors import UsageError
from vt.media.info import MAX_DIMENSION

PANEL = "Upscaling"
AI_PANEL = "AI model"


@contextlib.contextmanager
def _warnings_to_stderr() -> Iterator[None]:
    """Show the upscaler's warnings as one ``vt: warning:`` line each."""
    from vt_upscale.upscaler import UpscaleWarning

    def show(
        message: Warning | str, category: type[Warning], *args: object, **kwargs: object
    ) -> None:
        typer.echo(f"vt: warning: {message}", err=True)

    with warnings.catch_warnings():
        warnings.simplefilter("always", UpscaleWarning)
        warnings.showwarning = show  # restored by catch_warnings
        yield


def _parse_size(text: str | None) -> tuple[int | None, int | None]:
    if not text:
        return None, None
    w, sep, h = text.lower().partition("x")
    try:
        width, height = int(w), int(h)
    except ValueError:
        raise UsageError(
            f"--size must be WIDTHxHEIGHT (-1 keeps the aspect), got {text!r}"
        ) from None
    if not sep or (width <= 0 and height <= 0):
        raise UsageError(f"--size must be WIDTHxHEIGHT, got {text!r}")
    if max(width, height) > MAX_DIMENSION:
        raise UsageError(f"--size {text}: at most {MAX_DIMENSION} pixels per side")
    return (width if width > 0 else None), (height if height > 0 else None)


@media_options
def upscale(
    input: Annotated[str, typer.Argument(help="Input video (file, image folder or pattern).")],
    media: MediaOptions,
    output: Annotated[
        str | None, typer.Option("--output", "-o", help="Output file (default: IN_upscaled.EXT).")
    ] = None,
    scale: Annotated[
        float | None,
        typer.Option(
            "--scale",
            "-s",
            help="Scale factor: 2, 3, 4 "
            "or any float (default: 2, or the model's own scale with --model).",
            rich_help_panel=PANEL,
        ),
    ] = None,
    size: Annotated[
        str | None,
        typer.Option(
            "--size",
            help="Exact output size WxH (-1 keeps the aspect ratio), instead of --scale.",
            rich_help_panel=PANEL,
        ),
    ] = None,
    method: Annotated[
        str,
        typer.Option(
            "--method",
            "-m",
            help="Classical resampler: lanczos, "
            "bicubic, bilinear, spline, area, nearest, gauss (libswscale).",
            rich_help_panel=PANEL,
        ),
    ] = "lanczos",
    ai: Annotated[
        bool,
        typer.Option(
            "--ai",
            help="Use an AI super-resolution model "
            "(default: the packaged realesr-animevideov3 for the scale, offline).",
            rich_help_panel=AI_PANEL,
        ),
    ] = False,
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            help="Model name (see `vt list "
            "models`) or file: .pth/.pt/.ckpt/.safetensors (spandrel), .onnx, ncnn "
            ".param. Implies --ai.",
            rich_help_panel=AI_PANEL,
        ),
    ] = None,
    backend: Annotated[
        str | None,
        typer.Option(
            "--backend",
            help="torch, onnx or ncnn "
            "(default: by file type; Real-ESRGAN ncnn files and SRVGGNetCompact "
            "torch weights run in ncnn for fp32 on the CPU, in torch on GPUs or in "
            "fp16/bf16)",
            rich_help_panel=AI_PANEL,
        ),
    ] = None,
    tile: Annotated[
        int,
        typer.Option(
            "--tile",
            help="Tile size in input pixels (0: whole frame; shrinks by itself on out-of-memory).",
            rich_help_panel=AI_PANEL,
        ),
    ] = 0,
    tile_pad: Annotated[
        int, typer.Option("--tile-pad", help="Overlap around each tile.", rich_help_panel=AI_PANEL)
    ] = 10,
    pre_pad: Annotated[
        int,
        typer.Option(
            "--pre-pad",
            help="Reflect padding at the frame's bottom/right edges before the model.",
            rich_help_panel=AI_PANEL,
        ),
    ] = 0,
    device: Annotated[
        str, typer.Option("--device", help="auto, cpu or cuda[:i].", rich_help_panel=AI_PANEL)
    ] = "auto",
    dtype: Annotated[
        str,
        typer.Option(
            "--dtype",
            help="auto, fp32, fp16 (CUDA) or bf16, where the model supports it. auto: bf16 "
            "on CPUs that compute it natively (AVX512-BF16, AMX), else fp32.",
            rich_help_panel=AI_PANEL,
        ),
    ] = "auto",
    batch: Annotated[
        int, typer.Option("--batch", help="Frames per model call.", rich_help_panel=AI_PANEL)
    ] = 1,
    strict: Annotated[
        bool,
        typer.Option(
            "--strict",
            help="Fail instead of falling back to Lanczos when the model cannot run.",
            rich_help_panel=AI_PANEL,
        ),
    ] = False,
    trust_model: Annotated[
        bool,
        typer.Option(
            "--trust-model",
            help="Allow TorchScript model "
            "files: loading one runs code from it, so only for sources you "
            "trust.",
            rich_help_panel=AI_PANEL,
        ),
    ] = False,
) -> None:
    """Upscale a video with a classical resampler or an AI model; audio, subtitles and
    timestamps are kept."""
    from vt_upscale.upscaler import Upscaler

    width, height = _parse_size(size)
    if size and scale is not None:
        raise UsageError("give --scale or --size, not both")
    target = output or str(default_output(Path(input), "upscaled"))
    with _warnings_to_stderr():
        upscaler = Upscaler(
            model,
            ai=ai or model is not None,
            scale=scale,
            width=width,
            height=height,
            method=method,
            backend=backend,
            device=device,
            dtype=dtype,
            tile=tile,
            tile_pad=tile_pad,
            pre_pad=pre_pad,
            batch=batch,
            strict=strict,
            trust_model=trust_model,
            cores=1 if media.pipeline.single_thread else None,
        )
        try:
            # decoder and encoder threads chosen with the model's (vt_upscale.threads)
            media.encoder, media.pipeline = upscaler.job_settings(media.encoder, media.pipeline)
            run_video_job(
                input,
                target,
                [upscaler.processor()],
                media,
                announce=f"upscaling with {upscaler.describe()}",
            )
        finally:
            upscaler.close()
