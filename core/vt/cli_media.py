"""Shared options and runner for every command that reads a video and writes a video.

``@media_options`` adds the encoder and pipeline options to a Typer command and hands the
function one ``MediaOptions``; ``run_video_job`` runs the pipeline with a Rich progress bar
(on a TTY) and prints a summary, or a JSON report with ``--json``.
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer

from vt.errors import UsageError
from vt.media.encode import EncoderConfig
from vt.media.pipeline import PipelineOptions, PipelineReport, process_video
from vt.media.processing import FrameProcessor

PANEL = "Encoding and streams"
SEGMENTS_PANEL = "Resume and workers"


@dataclass
class MediaOptions:
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    pipeline: PipelineOptions = field(default_factory=PipelineOptions)
    json: bool = False
    quiet: bool = False
    sheet: Path | None = None  # a contact sheet of the output, written after it


def parse_encoder_options(pairs: Sequence[str]) -> dict[str, str]:
    options: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"encoder option must be key=value, got {pair!r}")
        options[key.strip()] = value.strip()
    return options


def _media_parameters(
    defaults: dict[str, Any] | None = None, taken: frozenset[str] = frozenset()
) -> list[inspect.Parameter]:
    """The shared options; ``defaults`` replaces some defaults, and the flags in ``taken``
    (short aliases the command uses itself, such as ``-c``) are left out."""
    defaults = defaults or {}

    def opt(name: str, annotation: Any, default: Any) -> inspect.Parameter:
        return inspect.Parameter(
            name,
            inspect.Parameter.KEYWORD_ONLY,
            default=defaults.get(name, default),
            annotation=annotation,
        )

    def o(*decls: str, **kwargs: Any) -> Any:
        return typer.Option(*[d for d in decls if d not in taken], **kwargs)

    params = [
        opt(
            "codec",
            Annotated[
                str,
                o(
                    "--codec",
                    "-c",
                    help="Video encoder (libx264, libx265, "
                    "libvpx-vp9, libsvtav1, ffv1, prores_ks…).",
                    rich_help_panel=PANEL,
                ),
            ],
            "libx264",
        ),
        opt(
            "crf",
            Annotated[
                int, o("--crf", help="Constant quality (lower is better).", rich_help_panel=PANEL)
            ],
            18,
        ),
        opt(
            "preset",
            Annotated[str, o("--preset", help="Speed/compression preset.", rich_help_panel=PANEL)],
            "medium",
        ),
        opt(
            "bitrate",
            Annotated[
                str | None,
                o(
                    "--bitrate",
                    "-b",
                    help="Target bitrate, e.g. 10M (overrides --crf).",
                    rich_help_panel=PANEL,
                ),
            ],
            None,
        ),
        opt(
            "pix_fmt",
            Annotated[
                str | None,
                o(
                    "--pix-fmt",
                    help="Output pixel format (default: the encoder's closest to the input).",
                    rich_help_panel=PANEL,
                ),
            ],
            None,
        ),
        opt(
            "encoder_option",
            Annotated[
                list[str] | None,
                o(
                    "--encoder-option",
                    "-e",
                    help="Any encoder option as key=value (repeatable).",
                    rich_help_panel=PANEL,
                ),
            ],
            None,
        ),
        opt(
            "audio_codec",
            Annotated[
                str,
                o(
                    "--audio-codec",
                    help="Audio codec when audio must be re-encoded.",
                    rich_help_panel=PANEL,
                ),
            ],
            "aac",
        ),
        opt(
            "audio_bitrate",
            Annotated[
                str,
                o("--audio-bitrate", help="Bitrate for re-encoded audio.", rich_help_panel=PANEL),
            ],
            "192k",
        ),
        opt(
            "no_audio",
            Annotated[bool, o("--no-audio", help="Drop audio streams.", rich_help_panel=PANEL)],
            False,
        ),
        opt(
            "no_subtitles",
            Annotated[
                bool, o("--no-subtitles", help="Drop subtitle streams.", rich_help_panel=PANEL)
            ],
            False,
        ),
        opt(
            "overwrite",
            Annotated[
                bool,
                o("--overwrite", "-y", help="Replace an existing output.", rich_help_panel=PANEL),
            ],
            False,
        ),
        opt(
            "on_frame_error",
            Annotated[
                str,
                o(
                    "--on-frame-error",
                    help="abort, or pass the source frame through with a warning.",
                    rich_help_panel=PANEL,
                ),
            ],
            "abort",
        ),
        opt(
            "start",
            Annotated[
                float | None,
                o(
                    "--start",
                    "-ss",
                    help="Start time in seconds (frame-accurate; the output starts at zero).",
                    rich_help_panel=PANEL,
                ),
            ],
            None,
        ),
        opt(
            "end",
            Annotated[
                float | None, o("--end", "-to", help="End time in seconds.", rich_help_panel=PANEL)
            ],
            None,
        ),
        opt(
            "decoder",
            Annotated[
                str | None,
                o(
                    "--decoder",
                    help="Force a decoder (pyav, torchcodec, decord).",
                    rich_help_panel=PANEL,
                ),
            ],
            None,
        ),
        opt(
            "threads",
            Annotated[
                int, o("--threads", help="Decoder threads (0 = auto).", rich_help_panel=PANEL)
            ],
            0,
        ),
        opt(
            "single_thread",
            Annotated[
                bool,
                o(
                    "--single-thread",
                    help="Use one core: one "
                    "decoder and encoder thread, no overlap (for jobs run side by side).",
                    rich_help_panel=PANEL,
                ),
            ],
            False,
        ),
        opt(
            "json_",
            Annotated[
                bool, o("--json", help="Print a JSON report at the end.", rich_help_panel=PANEL)
            ],
            False,
        ),
        opt(
            "quiet",
            Annotated[
                bool, o("--quiet", "-q", help="No progress or summary.", rich_help_panel=PANEL)
            ],
            False,
        ),
        opt(
            "sheet",
            Annotated[
                Path | None,
                o(
                    "--sheet",
                    help="Also write a contact sheet of "
                    "the output: a PNG grid of frames with timestamps.",
                    rich_help_panel=PANEL,
                ),
            ],
            None,
        ),
        opt(
            "resume",
            Annotated[
                bool,
                o(
                    "--resume",
                    help="Process in segments kept in "
                    "OUT.vt-resume/, so an interrupted run continues where it stopped.",
                    rich_help_panel=SEGMENTS_PANEL,
                ),
            ],
            False,
        ),
        opt(
            "segment_workers",
            Annotated[
                int | None,
                o(
                    "--workers",
                    help="Process segments in N processes at once (0: one per GPU).",
                    rich_help_panel=SEGMENTS_PANEL,
                ),
            ],
            None,
        ),
        opt(
            "segment_seconds",
            Annotated[
                float | None,
                o(
                    "--segment-seconds",
                    help="Segment "
                    "length in seconds (cut at keyframes; default 5); processes in segments.",
                    rich_help_panel=SEGMENTS_PANEL,
                ),
            ],
            None,
        ),
        opt(
            "segment_engine",
            Annotated[
                str,
                o(
                    "--engine",
                    help="Where --workers run: local processes or ray (RAY_ADDRESS).",
                    rich_help_panel=SEGMENTS_PANEL,
                ),
            ],
            "local",
        ),
    ]
    # an option whose every flag the command declares itself is the command's alone (the
    # shared value then stays at its default)
    return [p for p in params if _declared_flags([p])]


def media_options_from(values: dict[str, Any]) -> MediaOptions:
    encoder = EncoderConfig(
        codec=values["codec"],
        crf=values["crf"],
        preset=values["preset"],
        bitrate=values["bitrate"],
        pixel_format=values["pix_fmt"],
        audio_codec=values["audio_codec"],
        audio_bitrate=values["audio_bitrate"],
        options=parse_encoder_options(values["encoder_option"] or []),
    )
    pipeline = PipelineOptions(
        overwrite=values["overwrite"],
        audio=not values["no_audio"],
        subtitles=not values["no_subtitles"],
        error_policy=values["on_frame_error"],
        decoder=values["decoder"],
        threads=values["threads"],
        single_thread=values["single_thread"],
        start=values["start"],
        end=values["end"],
        resume=values["resume"],
        workers=values["segment_workers"],
        segment_seconds=values["segment_seconds"],
        engine=values["segment_engine"],
    )
    sheet = values["sheet"]
    if sheet is not None and Path(sheet).suffix.lower() not in (".png", ".jpg", ".jpeg", ".webp"):
        raise UsageError(f"--sheet writes an image: give a .png path, got {Path(sheet).name}")
    if pipeline.threads < 0:
        raise UsageError(f"--threads must be 0 (auto) or more, got {pipeline.threads}")
    if pipeline.error_policy not in ("abort", "pass"):
        raise UsageError("--on-frame-error must be 'abort' or 'pass'")
    from vt.media.segments import check_options

    check_options(pipeline)
    return MediaOptions(
        encoder, pipeline, json=values["json_"], quiet=values["quiet"], sheet=values["sheet"]
    )


def _declared_flags(params: Sequence[inspect.Parameter]) -> frozenset[str]:
    """Every option flag (``--prompt``, ``-p``) a command's own parameters declare."""
    flags: set[str] = set()
    for p in params:
        infos = [*getattr(p.annotation, "__metadata__", ()), p.default]
        for info in infos:
            # in Annotated form Typer keeps an option's first flag as its ``default``
            decls = [getattr(info, "default", None), *(getattr(info, "param_decls", None) or ())]
            flags.update(d for d in decls if isinstance(d, str) and d.startswith("-"))
    return frozenset(flags)


def media_options(fn: Callable[..., Any] | None = None, /, **defaults: Any) -> Callable[..., Any]:
    """Decorate a command taking ``media: MediaOptions`` with the shared media options.

    ``@media_options(codec="libx265", crf=26)`` gives one command other defaults. A short
    flag the command declares itself (e.g. ``-c``) is its own: the shared option keeps only
    its long form.
    """
    if fn is None:
        return lambda f: _with_media_options(f, defaults)
    return _with_media_options(fn, defaults)


def _with_media_options(fn: Callable[..., Any], defaults: dict[str, Any]) -> Callable[..., Any]:
    signature = inspect.signature(fn)
    names = {p.name for p in _media_parameters()}
    unknown = sorted(set(defaults) - names)
    if unknown:
        raise TypeError(f"@media_options: no shared option(s) {', '.join(unknown)}")
    clash = sorted(names & set(signature.parameters))
    if clash:
        raise TypeError(
            f"{fn.__module__}.{fn.__name__}: parameter(s) {', '.join(clash)} are "
            "already provided by @media_options (use media.* instead)"
        )
    hints = typing.get_type_hints(fn, include_extras=True)
    own = [
        p.replace(annotation=hints.get(p.name, p.annotation))
        for p in signature.parameters.values()
        if p.name != "media"
    ]
    extra = _media_parameters(defaults, _declared_flags(own))

    fallback = {p.name: p.default for p in _media_parameters(defaults)}

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        values = {name: kwargs.pop(name) for name in list(kwargs) if name in names}
        return fn(*args, media=media_options_from({**fallback, **values}), **kwargs)

    params = own + extra
    positional = [p for p in params if p.kind != inspect.Parameter.KEYWORD_ONLY]
    keyword = [
        p.replace(kind=inspect.Parameter.KEYWORD_ONLY)
        for p in params
        if p.kind == inspect.Parameter.KEYWORD_ONLY
    ]
    wrapper.__signature__ = inspect.Signature(positional + keyword)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in params}
    del wrapper.__wrapped__  # Typer must read our signature, not fn's
    return wrapper


def default_output(input_path: Path, suffix: str, extension: str | None = None) -> Path:
    """``IN_suffix.EXT`` beside the input."""
    ext = extension or input_path.suffix or ".mp4"
    return input_path.with_name(f"{input_path.stem}_{suffix}{ext}")


def run_video_job(
    input: str | Path,
    output: str | Path,
    processors: Sequence[FrameProcessor],
    media: MediaOptions,
    announce: str | None = None,
    *,
    label: str | None = None,
    summary: bool = True,
    extra: Callable[[PipelineReport], dict[str, Any]] | None = None,
) -> PipelineReport:
    """Run the pipeline with progress on a TTY and print the summary (or the JSON report).

    ``announce`` (e.g. which model runs) goes to stderr once the first frame is written, so
    a bad input or option is reported first, and alone. ``label`` names the progress bar
    (default: the input's name); ``summary=False`` prints nothing at the end (a first pass of
    a multi-pass job); ``extra(report)`` adds the command's own fields to the JSON report."""
    import sys

    # Rich loads only for a progress bar on a terminal: piped and scripted runs start faster
    show_progress = sys.stderr.isatty() and not (media.quiet or media.json)
    if media.quiet:
        logging.getLogger("vt").setLevel(logging.ERROR)
    announced = not announce or media.quiet or media.json

    def tell() -> None:
        nonlocal announced
        if not announced:
            announced = True
            typer.echo(announce, err=True)

    if show_progress:
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
        progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[fps]:.1f} fps"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=True,
        )
        task = progress.add_task(label or Path(str(input)).name, total=None, fps=0.0)

        def update(done: int, total: int | None) -> None:
            tell()
            elapsed = progress.tasks[0].elapsed or 0
            progress.update(
                task, completed=done, total=total, fps=done / elapsed if elapsed else 0.0
            )

        with progress:
            report = process_video(input, output, processors, media.encoder, media.pipeline, update)
    else:
        report = process_video(
            input,
            output,
            processors,
            media.encoder,
            media.pipeline,
            None if announced else lambda done, total: tell(),
        )
    if not summary:
        return report
    data = {**report.to_dict(), **(extra(report) if extra else {})}
    if media.sheet is not None:
        from vt.sheet import contact_sheet

        sheet = contact_sheet(report.output, media.sheet)
        data["sheet"] = sheet.as_dict()
        if not (media.quiet or media.json):
            typer.echo(f"sheet: {sheet.path}", err=True)
    if media.json:
        typer.echo(json.dumps(data, indent=2))
    elif not media.quiet:
        w_in, h_in = report.size_in
        w_out, h_out = report.size_out
        typer.echo(
            f"wrote {report.output}: {report.frames_out} frames, {w_in}x{h_in} -> "
            f"{w_out}x{h_out}, {report.codec}/{report.pixel_format}, audio {report.audio}, "
            f"{report.wall_time:.1f} s ({report.fps:.1f} fps)"
        )
    return report
