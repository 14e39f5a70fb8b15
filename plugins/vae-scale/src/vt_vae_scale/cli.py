"""``vt vae-scale``: many clips (or a metadata table) to a square training size."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from vt.cli_media import MediaOptions, media_options
from vt.errors import UsageError

PANEL = "Scaling"
BATCH = "Batch"


def _progress(quiet: bool, console: Any = None) -> tuple[Any, Any, Any]:
    """A Rich display on a terminal (else nothing): one bar over the videos with the frames
    done so far, and one bar per running clip over its frames. Returns the display and the
    two callbacks: ``(bar, on_video(result, counts), on_frames(result, done, total))``."""
    if quiet or (console is None and not sys.stderr.isatty()):
        return None, None, None  # before importing rich: a pipe or a log shows no bars
    from rich.console import Console

    console = console or Console(stderr=True)
    if not console.is_terminal:
        return None, None, None
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TaskID,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[note]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )
    videos = bar.add_task("[bold]videos", total=None, note="0 frames")
    clips: dict[int, TaskID] = {}  # row -> its bar while it runs
    running: dict[int, int] = {}  # row -> frames done so far
    finished = [0]  # frames of the clips that are done

    def note() -> str:
        return f"{finished[0] + sum(running.values())} frames"

    def on_frames(result: Any, done: int, total: int | None) -> None:
        task = clips.get(result.row)
        if task is None:
            task = clips[result.row] = bar.add_task(
                f"  {Path(result.input).name}", total=total, note="frames"
            )
        running[result.row] = done
        bar.update(task, completed=done, total=total)
        bar.update(videos, note=note())

    def on_video(result: Any, counts: Any) -> None:
        task = clips.pop(result.row, None)
        if task is not None:
            bar.remove_task(task)
        running.pop(result.row, None)
        if isinstance(result.report, dict) and result.status == "done":
            finished[0] += int(result.report.get("frame_count") or 0)
        bar.update(videos, completed=counts.finished, total=counts.total, note=note())

    return bar, on_video, on_frames


@media_options
def vae_scale(
    inputs: Annotated[
        list[str] | None,
        typer.Argument(help="Input videos (or use --metadata).", show_default=False),
    ] = None,
    *,
    media: MediaOptions,
    metadata: Annotated[
        Path | None,
        typer.Option(
            "--metadata",
            "-m",
            help="Metadata table (.arrow/.feather, .parquet, .csv) with a video path column.",
            rich_help_panel=BATCH,
        ),
    ] = None,
    project_root: Annotated[
        Path,
        typer.Option(
            "--project-root",
            help="Folder the table's paths (and a relative --output-dir) are relative to.",
            rich_help_panel=BATCH,
        ),
    ] = Path("."),
    output_dir: Annotated[
        Path,
        typer.Option(
            "--output-dir",
            "-o",
            help="Where scaled videos and scaled_metadata.<ext> go.",
            rich_help_panel=BATCH,
        ),
    ] = Path("data/scaled_videos"),
    video_column: Annotated[
        str,
        typer.Option(
            "--video-column", help="The table's video path column.", rich_help_panel=BATCH
        ),
    ] = "video_path",
    method: Annotated[
        str,
        typer.Option(
            "--method", help="letterbox (alias: resolution) or autoencoder.", rich_help_panel=PANEL
        ),
    ] = "letterbox",
    autoencoder_model: Annotated[
        str,
        typer.Option(
            "--autoencoder-model",
            help="Hugging Face id or local folder of an AutoencoderKL/AutoencoderTiny.",
            rich_help_panel=PANEL,
        ),
    ] = "stabilityai/sd-vae-ft-mse",
    target_size: Annotated[
        int, typer.Option("--target-size", "-s", help="Output is SIZExSIZE.", rich_help_panel=PANEL)
    ] = 224,
    pad_color: Annotated[
        str,
        typer.Option(
            "--pad-color", help="black, white, gray, #RRGGBB or R,G,B.", rich_help_panel=PANEL
        ),
    ] = "black",
    chunk_size: Annotated[
        int,
        typer.Option(
            "--chunk-size",
            help="Frames held per model step (bounds memory).",
            rich_help_panel=PANEL,
        ),
    ] = 250,
    batch: Annotated[
        int,
        typer.Option(
            "--batch",
            help="Frames per encode/decode call (halved on out-of-memory).",
            rich_help_panel=PANEL,
        ),
    ] = 8,
    sample: Annotated[
        bool,
        typer.Option(
            "--sample", help="Sample the latent instead of taking its mean.", rich_help_panel=PANEL
        ),
    ] = False,
    device: Annotated[
        str, typer.Option("--device", help="auto, cpu, cuda, cuda:N, mps.", rich_help_panel=PANEL)
    ] = "auto",
    dtype: Annotated[
        str | None,
        typer.Option(
            "--dtype",
            help="fp32, fp16, bf16 (default: fp16 on CUDA, fp32 elsewhere).",
            rich_help_panel=PANEL,
        ),
    ] = None,
    vae_slicing: Annotated[
        bool,
        typer.Option(
            "--vae-slicing",
            help="Decode one frame at a time inside a batch.",
            rich_help_panel=PANEL,
        ),
    ] = False,
    vae_tiling: Annotated[
        bool,
        typer.Option(
            "--vae-tiling", help="Tiled encode/decode for large frames.", rich_help_panel=PANEL
        ),
    ] = False,
    max_frames: Annotated[
        int | None,
        typer.Option(
            "--max-frames",
            help="Keep at most the first N frames of each clip (at the new rate with --fps).",
            rich_help_panel=PANEL,
        ),
    ] = None,
    fps: Annotated[
        str | None,
        typer.Option(
            "--fps",
            help="Resample each clip to this frame "
            "rate (8, 29.97, 30000/1001): frames picked by timestamp as FFmpeg's fps "
            "filter does, audio kept in sync.",
            rich_help_panel=PANEL,
        ),
    ] = None,
    workers: Annotated[
        int | None, typer.Option("--workers", "-j", help="Clips at once.", rich_help_panel=BATCH)
    ] = None,
    shard: Annotated[
        str | None, typer.Option("--shard", help="i/n: only rows i, i+n, …", rich_help_panel=BATCH)
    ] = None,
    engine: Annotated[
        str, typer.Option("--engine", help="local or ray.", rich_help_panel=BATCH)
    ] = "local",
    address: Annotated[
        str | None, typer.Option("--address", help="Ray cluster address.", rich_help_panel=BATCH)
    ] = None,
    retries: Annotated[
        int, typer.Option("--retries", help="Retries per failing clip.", rich_help_panel=BATCH)
    ] = 0,
) -> None:
    """Scale videos to a square training size keeping their aspect ratio: a letterbox resize,
    or an autoencoder round trip (any Hugging Face AutoencoderKL/AutoencoderTiny) then
    letterbox. Rows already done with the same parameters are skipped on a rerun."""
    from vt_vae_scale.scale import ScaleSettings, scale_table

    p = media.pipeline
    if media.sheet is not None or p.start is not None or p.end is not None:
        raise UsageError("vae-scale has no --sheet, --start or --end (use --max-frames)")
    enc = media.encoder
    settings = ScaleSettings(
        method=method,
        target_size=target_size,
        pad_color=pad_color,
        model=autoencoder_model,
        device=device,
        dtype=dtype,
        chunk_size=chunk_size,
        batch=batch,
        sample=sample,
        vae_slicing=vae_slicing,
        vae_tiling=vae_tiling,
        audio=p.audio,
        max_frames=max_frames,
        fps=fps,
        codec=enc.codec,
        crf=enc.crf,
        preset=enc.preset,
        bitrate=enc.bitrate,
        pix_fmt=enc.pixel_format,
        encoder_options=dict(enc.options),
        audio_codec=enc.audio_codec,
        audio_bitrate=enc.audio_bitrate,
        threads=p.threads,
        decoder=p.decoder,
    )
    warned: set[str] = set()

    def warn(text: str) -> None:
        if text not in warned and not media.quiet:
            warned.add(text)
            typer.echo(f"vt: warning: {text}", err=True)

    bar, on_video, on_frames = _progress(media.quiet or media.json)
    kwargs: dict[str, Any] = {
        "inputs": inputs or (),
        "project_root": project_root,
        "output_dir": output_dir,
        "column": video_column,
        "settings": settings,
        "workers": workers,
        "shard": shard,
        "engine": engine,
        "address": address,
        "retries": retries,
        "progress": on_video,
        "frame_progress": on_frames,
        "warn": warn,
        # --single-thread forces one core per clip; without it the batch runner decides
        "single_thread": True if p.single_thread else None,
    }
    if bar is not None:
        with bar:
            result = scale_table(metadata, **kwargs)
    else:
        result = scale_table(metadata, **kwargs)
    summary = result.summary()
    if media.json:
        typer.echo(json.dumps(summary, indent=2))
    elif not media.quiet:
        report = result.report
        text = report.summary()
        if result.unrunnable:
            text += f"; {result.unrunnable} rows without a video path"
        typer.echo(text, err=True)
        if result.table_path:
            typer.echo(f"table: {result.table_path}", err=True)
        for failure in summary["failures"][:10]:
            typer.echo(
                f"  failed row {failure['row']}: {failure['input']}: {failure['error']}", err=True
            )
    if result.failed:
        raise typer.Exit(1)
