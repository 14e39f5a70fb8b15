"""``vt kizuna``: the KizunaSR chain over a video, through the Python API."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated

import typer

from vt.cli_media import MediaOptions, default_output, media_options
from vt.errors import UsageError

PANEL = "KizunaSR"


@media_options
def kizuna(
    input: Annotated[str, typer.Argument(help="Input video.")],
    media: MediaOptions,
    output: Annotated[
        str | None, typer.Option("--output", "-o", help="Output file (default: IN_kizuna.EXT).")
    ] = None,
    scale: Annotated[
        int, typer.Option("--scale", "-s", help="Upscale factor: 2 or 4.", rich_help_panel=PANEL)
    ] = 2,
    ai: Annotated[
        bool,
        typer.Option(
            "--ai",
            help="Upscale with an AI model instead of the "
            "edge-directed shader (default model: the packaged realesr-animevideov3; "
            "needs vt-upscale).",
            rich_help_panel=PANEL,
        ),
    ] = False,
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            help="Model name (`vt list models`) "
            "or file (.pth/.safetensors/.onnx/ncnn .param). Implies --ai.",
            rich_help_panel=PANEL,
        ),
    ] = None,
    tile: Annotated[
        int | None,
        typer.Option(
            "--tile", help="AI tile size in input pixels (0: whole frame).", rich_help_panel=PANEL
        ),
    ] = None,
    device: Annotated[
        str,
        typer.Option("--device", help="AI device: auto, cpu or cuda[:i].", rich_help_panel=PANEL),
    ] = "auto",
    batch: Annotated[
        int, typer.Option("--batch", help="Frames per AI model call.", rich_help_panel=PANEL)
    ] = 1,
    temporal: Annotated[
        bool,
        typer.Option(
            "--temporal",
            help="Remove frame-to-frame flicker (motion-compensated, holds a frame back).",
            rich_help_panel=PANEL,
        ),
    ] = False,
    temporal_strength: Annotated[
        float | None,
        typer.Option(
            "--temporal-strength",
            help="0..1 (default 0.5). Implies --temporal.",
            rich_help_panel=PANEL,
        ),
    ] = None,
    no_reconstruct: Annotated[
        bool,
        typer.Option(
            "--no-reconstruct", help="Skip deblocking and denoising.", rich_help_panel=PANEL
        ),
    ] = False,
    no_enhance: Annotated[
        bool,
        typer.Option(
            "--no-enhance",
            help="Skip line darkening/thinning, sharpening and contrast.",
            rich_help_panel=PANEL,
        ),
    ] = False,
) -> None:
    """Anime upscaling, quality path: normalize, reconstruct, upscale (edge-directed shader
    or AI), enhance, optional temporal stabilization; audio, subtitles and timestamps kept."""
    from vt_kizuna.api import OfflineProcessorConfig, OfflineVideoProcessor, PipelineConfig

    use_ai = ai or model is not None
    if tile is not None and not use_ai:
        raise UsageError("--tile is an AI option: add --ai or --model")
    if (batch != 1 or device != "auto") and not use_ai:
        raise UsageError("--device and --batch are AI options: add --ai or --model")
    strength = 0.5 if temporal_strength is None else temporal_strength
    if not 0.0 <= strength <= 1.0:
        raise UsageError(f"--temporal-strength must be between 0 and 1, got {strength}")
    pipeline = PipelineConfig(
        use_ai=use_ai,
        ai_model_path=model,
        ai_scale=scale,
        ai_tile=tile or 0,
        ai_device=device,
        ai_batch=batch,
        shader_scale=scale,
        enable_reconstruct=not no_reconstruct,
        enable_enhance=not no_enhance,
        enable_temporal=temporal or temporal_strength is not None,
        temporal_strength=strength,
    )
    pipeline.validate()  # bad options fail here, before the input is even opened
    p = media.pipeline
    config = OfflineProcessorConfig(
        input_path=input,
        output_path=output or str(default_output(Path(input), "kizuna")),
        pipeline_config=pipeline,
        encoder_config=media.encoder,
        audio=p.audio,
        subtitles=p.subtitles,
        overwrite=p.overwrite,
        start=p.start,
        end=p.end,
        error_policy=p.error_policy,
        decoder=p.decoder,
        threads=p.threads,
        resume=p.resume,
        workers=p.workers,
        segment_seconds=p.segment_seconds,
        engine=p.engine,
    )
    processor = OfflineVideoProcessor(config)
    report = _run(processor, media, Path(input).name)
    if media.json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
    elif not media.quiet:
        (w_in, h_in), (w_out, h_out) = report.size_in, report.size_out
        shares = ", ".join(
            f"{name.removeprefix('kizuna-')} {share:.0%}"
            for name, share in report.stage_share.items()
        )
        typer.echo(
            f"wrote {report.output}: {report.frames_out} frames, {w_in}x{h_in} -> "
            f"{w_out}x{h_out}, {report.pipeline['codec']}/"
            f"{report.pipeline['pixel_format']}, audio {report.audio}, "
            f"{report.wall_time:.1f} s ({report.fps:.2f} fps; {shares})"
        )
        for warning in report.warnings:
            typer.echo(f"vt: warning: {warning}", err=True)


def _run(processor: object, media: MediaOptions, label: str) -> object:
    """``process()`` with a Rich progress bar on a terminal."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    console = Console(stderr=True)
    if media.quiet:
        logging.getLogger("vt").setLevel(logging.ERROR)
    if not console.is_terminal or media.quiet or media.json:
        return processor.process()  # type: ignore[attr-defined]
    bar = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[fps]:.2f} fps"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )
    task = bar.add_task(label, total=None, fps=0.0)

    def update(done: int, total: int | None) -> None:
        elapsed = bar.tasks[0].elapsed or 0
        bar.update(task, completed=done, total=total, fps=done / elapsed if elapsed else 0.0)

    with bar:
        return processor.process(progress=update)  # type: ignore[attr-defined]
