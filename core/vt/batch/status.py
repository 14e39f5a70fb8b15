"""What a batch leaves on disk: the status table, the done markers, the run lock.

- The **status table** (``<manifest stem>.status.<ext>`` beside the manifest, in the
  manifest's own format) has one row per job: its state, attempts, error, timings, worker and
  report. It is rewritten atomically (temporary file + rename) after every finished job; when
  the table is large, at most as often as keeps writing under a tenth of the run's time.
- A **marker** beside each output (``.<output name>.vt-batch.json``) says which job made it.
  The worker writes it with ``state: started`` before the job runs and ``state: done`` (with
  the job's key and report) after the output is in place. A rerun skips a job whose marker is
  ``done`` with the same key and whose output exists; a marker proves vt wrote the output, so
  a job whose parameters changed may replace it. An output without a marker is someone
  else's: it is never replaced without ``--overwrite``.
- The **lock** (``.<status name>.lock``, an advisory ``flock``) stops two runs from writing
  one status table.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from vt.batch.jobs import PENDING, JobResult
from vt.errors import UsageError
from vt.tempfiles import temp_path

COLUMNS = (
    "row",
    "command",
    "input",
    "output",
    "key",
    "status",
    "attempts",
    "error",
    "started",
    "finished",
    "seconds",
    "worker",
    "model_loads",
    "report",
)
MARKER_SUFFIX = ".vt-batch.json"


def default_status_path(
    manifest: str | os.PathLike[str], fmt: str, shard: tuple[int, int] | None = None
) -> Path:
    """``<stem>.status.<ext>`` beside the manifest (``…status.shard-1-of-4.<ext>`` for a
    shard, so shards sharing a folder never write one file)."""
    path = Path(manifest)
    ext = {
        "json": ".json",
        "jsonl": ".jsonl",
        "yaml": ".yaml",
        "csv": ".csv",
        "arrow": ".arrow",
        "parquet": ".parquet",
    }[fmt]
    part = f".shard-{shard[0]}-of-{shard[1]}" if shard else ""
    return path.parent / f"{path.stem}.status{part}{ext}"


def _iso(t: float | None) -> str | None:
    if t is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1000):03d}Z"


def result_row(result: JobResult, fmt: str) -> dict[str, Any]:
    """A result as a status-table row: times in ISO 8601 (UTC); the report nested for JSON and
    YAML, as JSON text for the flat formats."""
    row = result.as_dict()
    row["started"], row["finished"] = _iso(result.started), _iso(result.finished)
    if row["seconds"] is not None:
        row["seconds"] = round(row["seconds"], 3)
    if fmt not in ("json", "jsonl", "yaml") and row["report"] is not None:
        row["report"] = json.dumps(row["report"], default=str)
    return {k: row[k] for k in COLUMNS}


def write_table(path: Path, rows: list[dict[str, Any]], fmt: str) -> None:
    """Write ``rows`` to ``path`` atomically (a temporary file beside it, then a rename)."""
    tmp = temp_path(path, path.suffix)
    try:
        _WRITERS[fmt](tmp, rows)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _write_json(path: Path, rows: list[dict[str, Any]]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(rows, f, indent=1, default=str)
        f.write("\n")


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, default=str) + "\n")


def _write_yaml(path: Path, rows: list[dict[str, Any]]) -> None:
    import yaml

    with open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump(json.loads(json.dumps(rows, default=str)), f, sort_keys=False)


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    import csv

    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def _arrow_table(rows: list[dict[str, Any]]) -> Any:
    import pyarrow as pa

    types = {
        "row": pa.int64(),
        "attempts": pa.int64(),
        "seconds": pa.float64(),
        "model_loads": pa.int64(),
    }
    schema = pa.schema([(c, types.get(c, pa.string())) for c in COLUMNS])
    columns = {
        c: [r[c] if c in types or r[c] is None else str(r[c]) for r in rows] for c in COLUMNS
    }
    return pa.table(columns, schema=schema)


def _write_arrow(path: Path, rows: list[dict[str, Any]]) -> None:
    import pyarrow as pa
    import pyarrow.ipc

    table = _arrow_table(rows)
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)


def _write_parquet(path: Path, rows: list[dict[str, Any]]) -> None:
    import pyarrow.parquet as pq

    pq.write_table(_arrow_table(rows), str(path))


_WRITERS = {
    "json": _write_json,
    "jsonl": _write_jsonl,
    "yaml": _write_yaml,
    "csv": _write_csv,
    "arrow": _write_arrow,
    "parquet": _write_parquet,
}


def read_status(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """A status table's rows (any format), reports decoded from JSON text where flat."""
    from vt.batch.manifest import read_rows

    rows = read_rows(path)
    for row in rows:
        report = row.get("report")
        if isinstance(report, str):
            try:
                row["report"] = json.loads(report)
            except ValueError:
                pass
        for key in ("row", "attempts", "model_loads"):
            if isinstance(row.get(key), str):
                row[key] = int(row[key])
        if isinstance(row.get("seconds"), str):
            row["seconds"] = float(row["seconds"])
    return rows


class StatusTable:
    """The run's results, written back after every job (throttled when large)."""

    def __init__(self, path: Path | None, fmt: str, results: Iterable[JobResult]) -> None:
        self.path, self.fmt = path, fmt
        self.results = list(results)
        self._by_row = {r.row: i for i, r in enumerate(self.results)}
        self._last_write = 0.0
        self._write_cost = 0.0

    def update(self, result: JobResult) -> None:
        self.results[self._by_row[result.row]] = result

    def write(self) -> None:
        if self.path is None:
            return
        started = time.monotonic()
        write_table(self.path, [result_row(r, self.fmt) for r in self.results], self.fmt)
        self._last_write = time.monotonic()
        self._write_cost = self._last_write - started

    def maybe_write(self) -> None:
        """Write now unless that would spend over a tenth of the time writing (large
        tables): the markers already keep every finished job safe."""
        if time.monotonic() - self._last_write >= 9 * self._write_cost:
            self.write()

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.results:
            out[r.status] = out.get(r.status, 0) + 1
        return out

    def pending(self) -> int:
        return sum(r.status == PENDING for r in self.results)


# -- markers ------------------------------------------------------------------------------------
def marker_path(output: str | os.PathLike[str]) -> str:
    """``.<name>.vt-batch.json`` beside the output (an image pattern's folder for
    ``out/%06d.png``, the folder itself for ``out/``). Strings, not pathlib: the runner
    checks every job's marker before a run."""
    text = os.fspath(output).rstrip(os.sep)
    folder, name = os.path.split(text)
    if "%" in name:
        folder, name = os.path.split(folder)
    return os.path.join(folder, f".{name}{MARKER_SUFFIX}")


def output_exists(output: str | os.PathLike[str]) -> bool:
    text = os.fspath(output)
    folder, name = os.path.split(text)
    if "%" in name:  # an image sequence: its folder, with something in it
        try:
            return any(os.scandir(folder))
        except OSError:
            return False
    return os.path.exists(text)


def read_marker(output: str | os.PathLike[str]) -> dict[str, Any] | None:
    try:
        with open(marker_path(output), encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_marker(output: str | os.PathLike[str], data: dict[str, Any]) -> None:
    path = Path(marker_path(output))
    tmp = temp_path(path)
    try:
        tmp.write_text(json.dumps(data, default=str), encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def remove_marker(output: str | os.PathLike[str]) -> None:
    Path(marker_path(output)).unlink(missing_ok=True)


# -- lock ---------------------------------------------------------------------------------------
class RunLock:
    """An advisory lock beside the status table: one run per table at a time."""

    def __init__(self, status: Path) -> None:
        self.status = status
        self.path = status.with_name(f".{status.name}.lock")
        self._fd: int | None = None

    def __enter__(self) -> RunLock:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not on POSIX: no lock
            return self
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            other = os.read(fd, 32).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise UsageError(
                f"another vt batch (pid {other}) is running with the status table {self.status}"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            os.close(self._fd)  # releases the flock; the empty-ish file stays (vt's own)
            self._fd = None
