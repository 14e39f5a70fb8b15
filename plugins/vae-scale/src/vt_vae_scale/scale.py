"""Scale a table of clips: rows -> ``vt.batch`` jobs -> the output table.

The loop over rows is the core's batch runner (``vt.batch.run_batch``): resumability (done
markers keyed on the parameters), retries, ``--workers``, ``--shard`` and ``--engine ray``
come from it. This module decides the autoencoder fallback once, before any row runs, turns
rows into jobs, and rewrites ``scaled_metadata.<ext>`` atomically as results land.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from vt.errors import ModelUnavailableError, UsageError
from vt_vae_scale.jobs import normalise_method
from vt_vae_scale.roundtrip import DEFAULT_MODEL, is_local_path
from vt_vae_scale.table import (
    COLUMNS,
    arrow_column,
    read_table,
    table_format,
    with_columns,
    write_table,
)

JOB_FN = "vt_vae_scale.jobs:scale_clip"
#: how often (seconds) the output table is rewritten while a batch runs; always at the end
TABLE_EVERY = 1.0


@dataclass
class ScaleSettings:
    """Everything a clip's job needs (and its done-marker key is computed from)."""

    method: str = "letterbox"
    target_size: int = 224
    pad_color: str = "black"
    model: str = DEFAULT_MODEL
    device: str = "auto"
    dtype: str | None = None
    chunk_size: int = 250
    batch: int = 8
    sample: bool = False
    vae_slicing: bool = False
    vae_tiling: bool = False
    audio: bool = True
    max_frames: int | None = None
    fps: str | None = None  # output frame rate ("8", "30000/1001"); None: the clip's own
    codec: str = "libx264"
    crf: int | None = 18
    preset: str | None = "medium"
    bitrate: str | None = None
    pix_fmt: str | None = None
    encoder_options: dict[str, str] = field(default_factory=dict)
    audio_codec: str = "aac"
    audio_bitrate: str = "192k"
    threads: int = 0
    decoder: str | None = None

    def check(self) -> None:
        self.method = normalise_method(self.method)
        if self.target_size < 2 or self.target_size % 2:
            raise UsageError(f"--target-size must be an even number >= 2, got {self.target_size}")
        if self.chunk_size < 1:
            raise UsageError(f"--chunk-size must be >= 1, got {self.chunk_size}")
        if self.max_frames is not None and self.max_frames < 1:
            raise UsageError(f"--max-frames must be >= 1, got {self.max_frames}")
        from vt.media.retime import parse_fps

        rate = parse_fps(self.fps)
        self.fps = None if rate is None else str(rate)  # one spelling per rate: one job key
        from vt_vae_scale.letterbox import parse_color

        parse_color(self.pad_color)
        from vt.media.encode import EncoderConfig

        EncoderConfig(
            codec=self.codec,
            crf=self.crf,
            preset=self.preset,
            bitrate=self.bitrate,
            audio_bitrate=self.audio_bitrate,
            options=self.encoder_options,
        ).validate()

    def job_options(self, fallback: str | None) -> dict[str, Any]:
        options = asdict(self)
        if self.method == "letterbox":  # model options do not change a letterbox output
            for name in (
                "model",
                "device",
                "dtype",
                "chunk_size",
                "batch",
                "sample",
                "vae_slicing",
                "vae_tiling",
            ):
                options.pop(name)
        if fallback:
            options["fallback_reason"] = fallback
        return options


def autoencoder_fallback(settings: ScaleSettings) -> str | None:
    """Why the autoencoder cannot be had (the batch then letterboxes), or None.

    Checked here without importing torch (workers then fork with nothing heavy loaded): the
    local folder exists, the hub id is cached or downloadable, the folder is something the
    diffusers adapter reads. A folder that passes but does not load falls back in the worker,
    row by row. A local path that does not exist raises ``UsageError``: a typo, not a fallback.
    """
    if settings.method != "autoencoder":
        return None
    from vt.models import choose_adapter, resolve_model

    text = settings.model
    if is_local_path(text) and not Path(text).expanduser().exists():
        raise UsageError(f"autoencoder model folder not found: {text}")
    try:
        ref = resolve_model(text)
        choose_adapter(ref, "diffusers")
    except ModelUnavailableError as exc:
        return f"autoencoder unavailable: {exc}"
    except UsageError as exc:
        if not Path(text).expanduser().exists():
            raise
        return f"autoencoder unavailable: {exc}"
    return None


@dataclass
class ScaleResult:
    table: Any  # pyarrow.Table: the input columns plus COLUMNS
    report: Any  # vt.batch.BatchReport
    table_path: Path | None
    fallback: str | None

    @property
    def failed(self) -> int:
        return int(self.report.failed) + self.unrunnable

    unrunnable: int = 0  # rows without a video path

    def summary(self) -> dict[str, Any]:
        data = self.report.as_dict()
        data["failed"] = self.failed
        data["table"] = str(self.table_path) if self.table_path else None
        data["fallback"] = self.fallback
        data["frames"] = sum(
            int(r.report.get("frame_count") or 0)
            for r in self.report.results
            if isinstance(r.report, dict)
        )
        return data


def _row_columns(table: Any, results: dict[int, Any], missing: dict[int, str]) -> dict[str, list]:
    columns: dict[str, list[Any]] = {name: [] for name in COLUMNS}
    for row in range(1, table.num_rows + 1):
        result, report = results.get(row), {}
        if result is not None and isinstance(result.report, dict):
            report = result.report
        values = {
            "output_path": result.output
            if result is not None and result.status in ("done", "skipped")
            else None,
            "method": report.get("method"),
            "fallback_reason": report.get("fallback_reason"),
            "original_width": report.get("original_width"),
            "original_height": report.get("original_height"),
            "scaled_width": report.get("scaled_width"),
            "scaled_height": report.get("scaled_height"),
            "frame_count": report.get("frame_count"),
            "fps": report.get("fps"),
            "duration": report.get("duration"),
            "status": result.status
            if result is not None
            else ("failed" if row in missing else None),
            "error": result.error if result is not None else missing.get(row),
            "wall_time": round(result.seconds, 3)
            if result is not None and result.seconds is not None
            else None,
        }
        for name in COLUMNS:
            columns[name].append(values[name])
    return columns


def scale_table(
    table_path: str | os.PathLike[str] | None,
    *,
    inputs: Sequence[str] = (),
    project_root: str | os.PathLike[str] = ".",
    output_dir: str | os.PathLike[str] = "data/scaled_videos",
    column: str = "video_path",
    settings: ScaleSettings | None = None,
    workers: int | None = None,
    shard: str | None = None,
    engine: str = "local",
    address: str | None = None,
    retries: int = 0,
    progress: Callable[[Any, Any], None] | None = None,
    warn: Callable[[str], None] | None = None,
    frame_progress: Callable[[Any, int, int | None], None] | None = None,
    single_thread: bool | None = None,
) -> ScaleResult:
    """Scale every row of ``table_path`` (or every path in ``inputs``) into ``output_dir``.

    ``progress(result, counts)`` is called as each clip finishes, ``frame_progress(result,
    frames_done, frames_total)`` while one runs (local workers). ``single_thread`` None lets
    the batch runner decide (one core per clip when the workers fill the cores).

    Bad options, a missing table or column, or a missing local model path raise ``UsageError``
    before anything is written. The output table (for a table input) is
    ``<output_dir>/scaled_metadata<.shard-i-of-n>.<ext>``.
    """
    import pyarrow as pa

    from vt.batch import Job, parse_shard, run_batch

    settings = settings or ScaleSettings()
    settings.check()
    root = Path(project_root).expanduser().resolve()
    out_dir = Path(output_dir).expanduser()
    out_dir = (out_dir if out_dir.is_absolute() else root / out_dir).resolve()
    parts = parse_shard(shard)
    if table_path is not None:
        if inputs:
            raise UsageError("give input videos or --metadata, not both")
        fmt_suffix = Path(table_path).suffix.lower()
        table_format(table_path)
        table = read_table(table_path)
        if column not in table.column_names:
            raise UsageError(
                f"{Path(table_path).name} has no column {column!r} (columns: "
                f"{', '.join(table.column_names)}); use --video-column"
            )
        paths = table.column(column).to_pylist()
    else:
        if not inputs:
            raise UsageError("give input videos or --metadata TABLE")
        paths = [str(p) for p in inputs]
        table = pa.Table.from_arrays([arrow_column(paths, "string")], names=[column])
        fmt_suffix = None
    fallback = autoencoder_fallback(settings)
    if fallback and warn is not None:
        warn(f"{fallback}: every clip is letterboxed instead (recorded in each row)")
    options = settings.job_options(fallback)
    jobs, missing = [], {}
    for row, value in enumerate(paths, 1):
        if value is None or str(value).strip() == "":
            missing[row] = f"no {column} in this row"
            continue
        path = Path(str(value)).expanduser()
        jobs.append(
            Job(
                str(path if path.is_absolute() else root / path),
                fn=JOB_FN,
                options=dict(options),
                row=row,
            )
        )
    shard_part = f".shard-{parts[0]}-of-{parts[1]}" if parts else ""
    table_out = (out_dir / f"scaled_metadata{shard_part}{fmt_suffix}") if fmt_suffix else None
    if parts:  # rows of other shards are not this run's to report
        missing = {r: e for r, e in missing.items() if (r - 1) % parts[1] == parts[0]}
    results: dict[int, Any] = {}
    last_write = [0.0]

    def rewrite(final: bool = False) -> None:
        if table_out is None or (not final and time.monotonic() - last_write[0] < TABLE_EVERY):
            return
        write_table(with_columns(table, _row_columns(table, results, missing)), table_out)
        last_write[0] = time.monotonic()

    def on_result(result: Any, counts: Any) -> None:
        results[result.row] = result
        reason = result.report.get("fallback_reason") if isinstance(result.report, dict) else None
        if reason and reason != fallback and warn is not None:  # a worker fell back
            warn(f"{reason}: letterboxed instead (recorded in the row)")
        rewrite()
        if progress is not None:
            progress(result, counts)

    out_dir.mkdir(parents=True, exist_ok=True)
    report = run_batch(
        jobs,
        workers=workers,
        retries=retries,
        engine=engine,
        address=address,
        status=out_dir / f"scaled_metadata.status{shard_part}.json",
        shard=parts,
        output_dir=out_dir,
        output_ext=".mp4",
        base=root,
        progress=on_result,
        name=Path(table_path).name if table_path else "inputs",
        job_progress=frame_progress,
        single_thread=single_thread,
    )
    for result in report.results:
        results[result.row] = result
    rewrite(final=True)
    final = with_columns(table, _row_columns(table, results, missing))
    return ScaleResult(final, report, table_out, fallback, unrunnable=len(missing))


def stage3_scale_videos(
    project_root: str | os.PathLike[str] = ".",
    augmented_metadata_path: str | os.PathLike[str] = "data/augmented_videos/"
    "augmented_metadata.arrow",
    output_dir: str | os.PathLike[str] = "data/scaled_videos",
    method: str = "letterbox",
    target_size: int = 224,
    chunk_size: int = 250,
    autoencoder_model: str | None = None,
    *,
    video_column: str = "video_path",
    workers: int | None = None,
    shard: str | None = None,
    engine: str = "local",
    as_pandas: bool = False,
    **options: Any,
) -> Any:
    """The spec's stage 3: scale the clips of ``augmented_metadata_path`` (paths relative to
    ``project_root``) and return the output table (a ``pyarrow.Table``; a pandas DataFrame
    with ``as_pandas``). Further ``options`` are :class:`ScaleSettings` fields."""
    table_path = Path(augmented_metadata_path)
    if not table_path.is_absolute():
        candidate = Path(project_root) / table_path
        table_path = candidate if candidate.exists() or not table_path.exists() else table_path
    settings = ScaleSettings(
        method=method,
        target_size=int(target_size),
        chunk_size=int(chunk_size),
        model=autoencoder_model or DEFAULT_MODEL,
        **options,
    )
    warned: set[str] = set()

    def warn(text: str) -> None:  # once per reason
        if text not in warned:
            warned.add(text)
            print(f"vt: warning: {text}", file=sys.stderr)

    result = scale_table(
        table_path,
        project_root=project_root,
        output_dir=output_dir,
        column=video_column,
        settings=settings,
        workers=workers,
        shard=shard,
        engine=engine,
        warn=warn,
    )
    return result.table.to_pandas() if as_pandas else result.table
