"""The core's own commands: ``vt info``, ``vt transcode``, ``vt compare`` and ``vt batch``."""


import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from vt.cli_media import MediaOptions, media_options, run_video_job
from vt.hookspecs import hookimpl
from vt.registry import CommandSpec


def info(
    file: Annotated[str, typer.Argument(help="A video file, or an image folder/pattern.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Everything about a video: streams, size, rotation, colour, fps, frame count, VFR."""
    from vt.media.info import probe

    data = probe(file)
    if as_json:
        typer.echo(json.dumps(data.to_dict(), indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    v = data.video
    table = Table(show_header=False, title=data.source)
    rows = [
        ("container", f"{data.container}, {data.duration or 0:.3f} s, "
                      f"{(data.bit_rate or 0) / 1000:.0f} kb/s"),
        ("video", f"#{v.index} {v.codec} ({v.profile or '-'}) {v.width}x{v.height}, "
                  f"{v.pixel_format} {v.bit_depth}-bit" + (" alpha" if v.has_alpha else "")),
        ("frame rate", f"{float(v.fps or 0):.3f} fps avg, {float(v.real_fps or 0):.3f} real"
                       + (", VFR" if v.vfr else "")),
        ("frames", f"{v.frame_count} ({'counted' if v.frame_count_exact else 'from header'})"),
        ("display", f"SAR {v.sample_aspect_ratio or '1'}, rotation {v.rotation}°, shown "
                    f"{v.display_size[0]}x{v.display_size[1]}"),
        ("colour", f"range {v.color_range or '-'}, primaries {v.color_primaries or '-'}, "
                   f"trc {v.color_trc or '-'}, space {v.color_space or '-'}"),
    ]
    rows += [("audio", f"#{a.index} {a.codec} {a.sample_rate} Hz {a.layout or a.channels}")
             for a in data.audio]
    rows += [(s.type, f"#{s.index} {s.codec or '?'} {s.language or ''}")
             for s in data.subtitles + data.attachments + data.data]
    rows += [(f"tag {k}", v_) for k, v_ in data.metadata.items()]
    for k, v_ in rows:
        table.add_row(k, str(v_))
    Console().print(table)


@media_options
def transcode(
    input: Annotated[str, typer.Argument(help="Input video (file, image folder or pattern).")],
    output: Annotated[str, typer.Argument(help="Output file (.mp4, .mkv…) or image pattern.")],
    media: MediaOptions,
) -> None:
    """Re-encode a video through vt's pipeline, keeping audio, subtitles and timestamps."""
    run_video_job(input, output, [], media)


def compare(
    a: Annotated[Path, typer.Argument(help="Reference video (optical flow is computed on it).")],
    b: Annotated[Path, typer.Argument(help="Video to compare against the reference.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    per_frame: Annotated[bool, typer.Option("--per-frame", help="Include per-frame PSNR/SSIM.")]
    = False,
    max_frames: Annotated[int | None, typer.Option("--max-frames", help="Compare at most N "
                                                   "frames.")] = None,
) -> None:
    """Frame counts, timestamps, A/V offset, PSNR/SSIM and temporal warping error of B vs A."""
    from vt.compare import compare_videos, format_comparison

    result = compare_videos(a, b, per_frame=per_frame, max_frames=max_frames)
    if as_json:
        typer.echo(json.dumps(result, indent=2))
    else:
        typer.echo(format_comparison(result))


@hookimpl
def register_commands(register: Callable[[CommandSpec], None]) -> None:
    register(CommandSpec("info", info))
    register(CommandSpec("transcode", transcode))
    register(CommandSpec("compare", compare))
    from vt.batch.command import batch  # light: the runner's modules load when it runs

    register(CommandSpec("batch", batch))
