"""The core's own commands: ``vt info``, ``vt transcode``, ``vt compare`` and ``vt batch``."""

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from vt.cli_media import MediaOptions, media_options, run_video_job
from vt.errors import UsageError
from vt.hookspecs import hookimpl
from vt.registry import CommandSpec


def info(
    file: Annotated[str, typer.Argument(help="A video file, or an image folder/pattern.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    sheet: Annotated[
        Path | None,
        typer.Option(
            "--sheet",
            help="Also write a contact sheet (PNG grid of evenly spaced frames with timestamps).",
        ),
    ] = None,
    frames: Annotated[int, typer.Option("--frames", help="Frames on the contact sheet.")] = 12,
) -> None:
    """Everything about a video: streams, size, rotation, colour, fps, frame count, VFR."""
    from vt.media.info import probe

    data = probe(file)
    made = None
    if sheet is not None:
        from vt.sheet import contact_sheet

        made = contact_sheet(file, sheet, frames=frames)
    if as_json:
        payload = data.to_dict()
        if made is not None:
            payload["sheet"] = made.as_dict()
        typer.echo(json.dumps(payload, indent=2))
        return
    if made is not None:
        typer.echo(
            f"sheet: {made.path} ({len(made.indices)} frames, {made.width}x{made.height})", err=True
        )
    from rich.console import Console
    from rich.table import Table

    v = data.video
    table = Table(show_header=False, title=data.source)
    rows = [
        (
            "container",
            f"{data.container}, {data.duration or 0:.3f} s, {(data.bit_rate or 0) / 1000:.0f} kb/s",
        ),
        (
            "video",
            f"#{v.index} {v.codec} ({v.profile or '-'}) {v.width}x{v.height}, "
            f"{v.pixel_format} {v.bit_depth}-bit" + (" alpha" if v.has_alpha else ""),
        ),
        (
            "frame rate",
            f"{float(v.fps or 0):.3f} fps avg, {float(v.real_fps or 0):.3f} real"
            + (", VFR" if v.vfr else ""),
        ),
        ("frames", f"{v.frame_count} ({'counted' if v.frame_count_exact else 'from header'})"),
        (
            "display",
            f"SAR {v.sample_aspect_ratio or '1'}, rotation {v.rotation}°, shown "
            f"{v.display_size[0]}x{v.display_size[1]}",
        ),
        (
            "colour",
            f"range {v.color_range or '-'}, primaries {v.color_primaries or '-'}, "
            f"trc {v.color_trc or '-'}, space {v.color_space or '-'}",
        ),
    ]
    rows += [
        ("audio", f"#{a.index} {a.codec} {a.sample_rate} Hz {a.layout or a.channels}")
        for a in data.audio
    ]
    rows += [
        (s.type, f"#{s.index} {s.codec or '?'} {s.language or ''}")
        for s in data.subtitles + data.attachments + data.data
    ]
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
    reference: Annotated[
        Path, typer.Argument(help="Reference video (optical flow is computed on it).")
    ],
    candidates: Annotated[
        list[Path], typer.Argument(help="Video(s) to compare against the reference.")
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    per_frame: Annotated[
        bool, typer.Option("--per-frame", help="Include per-frame PSNR/SSIM.")
    ] = False,
    max_frames: Annotated[
        int | None, typer.Option("--max-frames", help="Compare at most N frames.")
    ] = None,
    report: Annotated[
        Path | None,
        typer.Option(
            "--report",
            help="Write a self-contained HTML "
            "page: charts, side-by-side frames, sliders, zoomed crops.",
        ),
    ] = None,
    at: Annotated[
        float | None,
        typer.Option("--at", help="Also show the frame at this time (seconds) in the report."),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", "-y", help="Replace an existing report.")
    ] = False,
    temporal_method: Annotated[
        str,
        typer.Option(
            "--temporal-method",
            help="Optical flow of "
            "the temporal consistency score: dis (fast), tvl1 (Dual TV-L1, "
            "slow) or farneback.",
        ),
    ] = "dis",
    temporal_sigma: Annotated[
        float,
        typer.Option(
            "--temporal-sigma",
            help="sigma (px at 256 "
            "px wide) of the temporal consistency score "
            "exp(-Var(mean flow magnitude)/sigma^2).",
        ),
    ] = 1.0,
    temporal: Annotated[
        bool,
        typer.Option("--temporal/--no-temporal", help="Score each video's temporal consistency."),
    ] = True,
) -> None:
    """Frame counts, timestamps, A/V offset, PSNR/SSIM, temporal warping error and temporal
    consistency of each candidate vs the reference; --report draws them."""
    from vt.compare import compare_many, format_comparison

    if max_frames is not None and max_frames < 1:
        raise UsageError(f"--max-frames must be 1 or more, got {max_frames}")
    if temporal_method not in ("dis", "tvl1", "farneback"):
        raise UsageError(
            f"--temporal-method must be dis, tvl1 or farneback, got {temporal_method!r}"
        )
    if not temporal_sigma > 0:
        raise UsageError(f"--temporal-sigma must be positive, got {temporal_sigma}")
    if report is not None:
        from vt.report import _require_matplotlib

        _require_matplotlib()  # say what to install before minutes of metrics
    results = compare_many(
        reference,
        list(candidates),
        per_frame=per_frame or bool(report),
        max_frames=max_frames,
        temporal=temporal,
        temporal_method=temporal_method,
        temporal_sigma=temporal_sigma,
    )
    if report is not None:
        from vt.report import render, write_report

        write_report(report, render(reference, list(candidates), results, at), overwrite)
        if not per_frame:  # --json prints what it always printed; the page has the details
            for r in results:
                _drop_per_frame(r)
    data: object = results[0] if len(results) == 1 else results
    if as_json:
        typer.echo(json.dumps(data, indent=2))
    else:
        for candidate, r in zip(candidates, results):
            if len(results) > 1:
                typer.echo(f"== {candidate}")
            typer.echo(format_comparison(r))
        if report is not None:
            typer.echo(f"report: {report}")


def _drop_per_frame(result: dict[str, Any]) -> None:
    for key in ("psnr_per_frame", "ssim_per_frame", "time_per_frame"):
        result["quality"].pop(key, None)
    (result.get("warping_error") or {}).pop("ratio_per_step", None)
    for side in (result.get("temporal_consistency") or {}).values():
        side.pop("magnitudes", None)


def doctor(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """What this installation can do: Python, GPU, FFmpeg encoders, optional backends,
    plugins, models available offline, caches; and how to fix what is missing."""
    from vt.doctor import as_dicts, collect

    rows = collect()
    if as_json:
        typer.echo(json.dumps(as_dicts(rows), indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    colours = {"ok": "green", "missing": "yellow", "warning": "yellow", "error": "red"}
    table = Table("area", "check", "found", "status", "fix")
    for r in rows:
        table.add_row(r.area, r.name, r.found, f"[{colours[r.status]}]{r.status}[/]", r.fix)
    Console().print(table)


@hookimpl
def register_commands(register: Callable[[CommandSpec], None]) -> None:
    register(CommandSpec("info", info))
    register(CommandSpec("transcode", transcode))
    register(CommandSpec("compare", compare))
    register(CommandSpec("doctor", doctor))
    from vt.batch.command import batch  # light: the runner's modules load when it runs

    register(CommandSpec("batch", batch))
