"""``vt cogvideo benchmark``: latency, temporal score, peak memory and frames/s per mode, one
CSV row per run, and a ``PROJECT_SUMMARY.json`` snapshot (figures and artifact paths)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from vt.errors import UsageError

CSV_COLUMNS = (
    "timestamp",
    "mode",
    "run",
    "model",
    "device",
    "dtype",
    "offload",
    "vae_tiling",
    "scheduler",
    "steps",
    "frames",
    "width",
    "height",
    "fps",
    "load_s",
    "latency_s",
    "encode_s",
    "score_s",
    "total_s",
    "frames_per_s",
    "temporal_score",
    "peak_memory_mb",
    "memory_kind",
    "seed",
    "output",
)


def modes_for(mode: str) -> tuple[str, ...]:
    if mode == "both":
        return ("baseline", "optimized")
    if mode in ("baseline", "optimized"):
        return (mode,)
    raise UsageError(f"--mode must be baseline, optimized or both, got {mode!r}")


def run_benchmark(
    generator: Any,
    request: Any,
    modes: tuple[str, ...],
    runs: int,
    output_dir: Path,
    on_row: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """``runs`` generations per mode (same seed, so the modes make comparable clips)."""
    if runs < 1:
        raise UsageError(f"--runs must be 1 or more, got {runs}")
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    rows = []
    for mode in modes:
        for run in range(1, runs + 1):
            out = _free_name(output_dir, f"benchmark-{stamp}-{mode}-{run}")
            r = generator.generate(replace(request, mode=mode), out)
            m = r.metadata
            t = r.timings
            row = {
                "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
                "mode": mode,
                "run": run,
                "model": m["model"],
                "device": m["device"],
                "dtype": m["dtype"],
                "offload": m["offload"],
                "vae_tiling": m["vae_tiling"],
                "scheduler": m["scheduler"],
                "steps": m["steps"],
                "frames": r.frames,
                "width": r.width,
                "height": r.height,
                "fps": r.fps,
                "load_s": t["load_s"],
                "latency_s": t["generate_s"],
                "encode_s": t["encode_s"],
                "score_s": t["score_s"],
                "total_s": t["total_s"],
                "frames_per_s": round(r.frames / t["generate_s"], 4) if t["generate_s"] else None,
                "temporal_score": r.temporal_score,
                "peak_memory_mb": round(r.peak_memory_bytes / 2**20, 1),
                "memory_kind": m["peak_memory_kind"],
                "seed": r.seed,
                "output": str(r.output),
            }
            rows.append(row)
            if on_row is not None:
                on_row(row)
    return rows


def _free_name(folder: Path, stem: str) -> Path:
    """``stem.mp4``, or ``stem-2.mp4``… when an earlier run (the same second) has it."""
    n = 1
    while True:
        name = stem if n == 1 else f"{stem}-{n}"
        if not any((folder / f"{name}{ext}").exists() for ext in (".mp4", ".json")):
            return folder / f"{name}.mp4"
        n += 1


def append_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    """Add ``rows`` to the CSV (created with a header; an existing one must have the same
    columns), atomically: a benchmark log grows run after run."""
    from vt.atomic import atomic_file

    old = ""
    if path.exists():
        old = path.read_text()
        header = old.splitlines()[0] if old.strip() else ""
        if header and header.split(",") != list(CSV_COLUMNS):
            raise UsageError(
                f"{path} has other columns than a vt cogvideo benchmark CSV: pass another --csv"
            )
        if old and not old.endswith("\n"):
            old += "\n"
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    if not old.strip():
        writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else row[k]) for k in CSV_COLUMNS})
    with atomic_file(path, overwrite=True) as tmp:
        tmp.write_text(old + buffer.getvalue())


def _mean(values: list[float]) -> float | None:
    values = [v for v in values if v is not None]
    return round(sum(values) / len(values), 4) if values else None


def update_summary(path: Path, rows: list[dict[str, Any]], csv_path: Path | None) -> dict:
    """Merge this run's figures per mode (means over runs, peak memory max) and artifact
    paths into the JSON snapshot at ``path``, keeping whatever else it holds."""
    from vt.atomic import atomic_file

    summary: dict[str, Any] = {}
    if path.exists():
        try:
            loaded = json.loads(path.read_text())
        except ValueError:
            raise UsageError(f"{path} is not JSON: pass another --summary") from None
        if not isinstance(loaded, dict):
            raise UsageError(f"{path} is not a JSON object: pass another --summary")
        summary = loaded
    benchmarks = summary.setdefault("benchmarks", {})
    for mode in dict.fromkeys(r["mode"] for r in rows):
        mine = [r for r in rows if r["mode"] == mode]
        first = mine[0]
        benchmarks[mode] = {
            "runs": len(mine),
            "model": first["model"],
            "device": first["device"],
            "dtype": first["dtype"],
            "offload": first["offload"],
            "steps": first["steps"],
            "frames": first["frames"],
            "width": first["width"],
            "height": first["height"],
            "latency_s": _mean([r["latency_s"] for r in mine]),
            "total_s": _mean([r["total_s"] for r in mine]),
            "frames_per_s": _mean([r["frames_per_s"] for r in mine]),
            "temporal_score": _mean([r["temporal_score"] for r in mine]),
            "peak_memory_mb": max(r["peak_memory_mb"] for r in mine),
            "memory_kind": first["memory_kind"],
            "measured_at": first["timestamp"],
            "artifacts": [r["output"] for r in mine],
        }
    summary["updated"] = datetime.now(UTC).isoformat(timespec="seconds")
    summary.setdefault("project", "vt-cogvideo")
    artifacts = summary.setdefault("artifacts", {})
    if csv_path is not None:
        artifacts["benchmark_csv"] = str(csv_path)
    artifacts["examples"] = sorted({*artifacts.get("examples", []), *(r["output"] for r in rows)})
    with atomic_file(path, overwrite=True) as tmp:
        tmp.write_text(json.dumps(summary, indent=2) + "\n")
    return summary
