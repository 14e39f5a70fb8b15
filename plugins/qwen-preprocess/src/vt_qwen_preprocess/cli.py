"""``vt qwen-preprocess``: the command over ``pipeline.preprocess`` / ``pipeline.plan``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from vt.errors import UsageError
from vt_qwen_preprocess.config import load_config
from vt_qwen_preprocess.outputs import FORMATS, convert, save
from vt_qwen_preprocess.writers import stream_kind


def _summary(record: dict[str, Any], planned: bool) -> str:
    h, w = record["resolution"]
    sh, sw = record["source_resolution"]
    t, gh, gw = record["grid_thw"]
    text = (
        f"{record['input']}: {record['num_frames']} frames ({record['strategy']}, sample fps "
        f"{record['sample_fps']:.4g} of {record['original_fps']:.4g}) at {w}x{h} (from "
        f"{sw}x{sh}), grid {t}x{gh}x{gw}, {record['total_tokens']} tokens "
        f"[{record['profile']}, context {record['max_context_tokens']}]"
    )
    if not planned:
        timing = record.get("timing", {})
        hit = f", cache {record['cache_hit']}" if record.get("cache_hit") else ""
        text += f", decoder {record.get('decoder')}, {timing.get('total_time', 0):.2f}s{hit}"
    return text


def _output_path(out: Path, video: str, index: int, many: bool, fmt: str | None) -> Path:
    if not many:
        return out
    stem = Path(video.split("?")[0]).stem or f"video{index}"
    ext = {
        "tensor": ".pt",
        "hf": ".pt",
        "numpy": ".npz",
        "base64": ".json",
        "openai": ".json",
        "metadata": ".json",
    }.get(fmt or "tensor", "")
    return out / f"{index:03d}_{stem}{ext}"


def _decoder_order(decoders: str | None, decoder: str | None) -> tuple[str, ...] | None:
    """``--decoder NAME`` (the core's spelling: that one only) or ``--decoders A,B,C``."""
    if decoder and decoders:
        raise UsageError("give --decoder or --decoders, not both")
    if decoder:
        return (decoder.strip(),)
    return tuple(d.strip() for d in decoders.split(",") if d.strip()) if decoders else None


def qwen_preprocess(
    videos: Annotated[
        list[str],
        typer.Argument(
            help="Video files, file:// or http(s) URLs, data: URIs, or folders/globs of frames."
        ),
    ],
    profile: Annotated[
        str | None,
        typer.Option(
            "--profile",
            "-p",
            help="Model profile: qwen2.5-vl, qwen2-vl, qwen3-vl, llava, api, or one from --config.",
        ),
    ] = None,
    fps: Annotated[float | None, typer.Option(help="Frames per second to sample.")] = None,
    nframes: Annotated[
        int | None,
        typer.Option(
            "--nframes", "-n", help="Exact number of frames (rounded to the frame factor)."
        ),
    ] = None,
    strategy: Annotated[
        str | None, typer.Option(help="auto, uniform, fps, duration, keyframe or scene.")
    ] = None,
    min_frames: Annotated[int | None, typer.Option(help="Fewest frames (fps mode).")] = None,
    max_frames: Annotated[int | None, typer.Option(help="Most frames (fps mode).")] = None,
    base_interval: Annotated[
        float | None, typer.Option(help="Seconds per frame for --strategy duration.")
    ] = None,
    min_pixels: Annotated[float | None, typer.Option(help="Minimum pixels per frame.")] = None,
    max_pixels: Annotated[float | None, typer.Option(help="Maximum pixels per frame.")] = None,
    total_pixels: Annotated[
        float | None, typer.Option(help="Pixel budget for all frames together.")
    ] = None,
    resized_height: Annotated[int | None, typer.Option(help="Force the frame height.")] = None,
    resized_width: Annotated[int | None, typer.Option(help="Force the frame width.")] = None,
    start: Annotated[float | None, typer.Option(help="Start time in seconds.")] = None,
    end: Annotated[float | None, typer.Option(help="End time in seconds.")] = None,
    plan_only: Annotated[
        bool, typer.Option("--plan", help="Print frames, size and tokens without decoding pixels.")
    ] = False,
    out: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            "--out",
            help="Write FILE.npy, FILE.npz, FILE.safetensors (frames streamed as they are "
            "made), FILE.pt, FILE.json or a folder of images (streamed too).",
        ),
    ] = None,
    fmt: Annotated[
        str | None, typer.Option("--format", "-f", help=f"Output format: {', '.join(FORMATS)}.")
    ] = None,
    dtype: Annotated[str | None, typer.Option(help="uint8, float32, float16 or bfloat16.")] = None,
    rescale: Annotated[bool, typer.Option(help="Scale values to [0, 1].")] = False,
    normalize: Annotated[bool, typer.Option(help="Normalise with the profile's mean/std.")] = False,
    channel_order: Annotated[str | None, typer.Option(help="rgb or bgr.")] = None,
    layout: Annotated[str | None, typer.Option(help="TCHW or THWC.")] = None,
    resize: Annotated[
        str | None,
        typer.Option(
            help="bicubic (default: libswscale, the reference's kernel), bicubic-torch, "
            "bicubic-float (bit-exact reference) or swscale."
        ),
    ] = None,
    decoders: Annotated[
        str | None,
        typer.Option(help="Decoder priority, comma separated (default pyav,torchcodec,decord)."),
    ] = None,
    decoder: Annotated[
        str | None,
        typer.Option(help="Force one decoder (pyav, torchcodec, decord), as in every vt command."),
    ] = None,
    threads: Annotated[int | None, typer.Option(help="Decoder threads (0: auto).")] = None,
    device: Annotated[
        str | None, typer.Option(help="Where the output tensor lives: cpu, cuda, cuda:1...")
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option("--config", help="YAML with a video_processing block and/or models."),
    ] = None,
    prompt: Annotated[str | None, typer.Option(help="Text for --format openai.")] = None,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="Do not read or write caches.")
    ] = False,
    cache_dir: Annotated[Path | None, typer.Option(help="On-disk cache folder.")] = None,
    max_video_duration: Annotated[
        float | None, typer.Option(help="Reject longer videos (seconds).")
    ] = None,
    no_context_check: Annotated[
        bool, typer.Option("--no-context-check", help="Allow more tokens than the model's context.")
    ] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", "-y", help="Replace outputs.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON records.")] = False,
) -> None:
    """Sample, resize and tokenise videos for multimodal models (qwen-vl-utils compatible)."""
    from vt_qwen_preprocess.pipeline import plan, preprocess, preprocess_to_file

    if fmt is not None and fmt not in FORMATS:
        raise UsageError(f"unknown --format {fmt!r} (one of {', '.join(FORMATS)})")
    if plan_only and out is not None:
        raise UsageError("--plan decodes nothing: it cannot be combined with --output")
    cfg = load_config(
        config,
        profile=profile,
        fps=fps,
        nframes=nframes,
        strategy=strategy,
        min_frames=min_frames,
        max_frames=max_frames,
        base_interval=base_interval,
        min_pixels=min_pixels,
        max_pixels=max_pixels,
        total_pixels=total_pixels,
        resized_height=resized_height,
        resized_width=resized_width,
        start=start,
        end=end,
        dtype=dtype,
        rescale=rescale or None,
        normalize=normalize or None,
        channel_order=channel_order,
        layout=layout,
        resize=resize,
        threads=threads,
        device=device,
        decoders=_decoder_order(decoders, decoder),
        cache=False if no_cache else None,
        cache_dir=str(cache_dir) if cache_dir else None,
        max_video_duration=max_video_duration,
        check_context=False if no_context_check else None,
    )
    many = len(videos) > 1
    if out is not None and many:
        if out.exists() and not out.is_dir():
            raise UsageError(f"with several inputs --output must be a folder, not {out}")
        out.mkdir(parents=True, exist_ok=True)
    records: list[dict[str, Any]] = []
    for i, video in enumerate(videos):
        if plan_only:
            record = plan(video, cfg).to_dict()
        elif out is not None and stream_kind(target := _output_path(out, video, i, many, fmt), fmt):
            # frames go to the file as they are produced: memory stays a few frames
            result = preprocess_to_file(video, target, cfg, fmt=fmt, overwrite=overwrite)
            record = result.record()
            record["output"] = str(target)
            del result
        else:
            result = preprocess(video, cfg)
            record = result.record()
            record["input"] = video
            if out is not None:
                written = save(
                    result,
                    _output_path(out, video, i, many, fmt),
                    fmt,
                    overwrite=overwrite,
                    prompt=prompt,
                )
                record["output"] = str(written)
            elif fmt in ("base64", "openai"):
                data = convert(result, fmt, **({"prompt": prompt} if fmt == "openai" else {}))
                record["messages" if fmt == "openai" else "frames"] = data
            del result
        record["input"] = video
        records.append(record)
        if not as_json:
            typer.echo(_summary(record, plan_only))
            if "output" in record:
                typer.echo(f"  wrote {record['output']}")
            for key in ("frames", "messages"):
                if key in record:
                    sys.stdout.write(json.dumps(record[key]) + "\n")
    if as_json:
        typer.echo(json.dumps({"videos": records}, indent=2, default=str))
