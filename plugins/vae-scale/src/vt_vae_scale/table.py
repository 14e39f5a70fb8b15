"""The metadata table: read in its own format (Arrow IPC/Feather, Parquet, CSV), written back in
the same format with the per-clip columns added, atomically."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from vt.errors import UsageError

FORMATS = {".arrow": "arrow", ".feather": "arrow", ".ipc": "arrow", ".parquet": "parquet",
           ".pq": "parquet", ".csv": "csv"}

#: what each row gains, in this order
COLUMNS = ("output_path", "method", "fallback_reason", "original_width", "original_height",
           "scaled_width", "scaled_height", "frame_count", "fps", "duration", "status",
           "error", "wall_time")


def table_format(path: str | os.PathLike[str]) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise UsageError(f"{Path(path).name}: the metadata table must be .arrow/.feather, "
                         ".parquet or .csv")
    return FORMATS[suffix]


def read_table(path: str | os.PathLike[str]) -> Any:
    """The table as a ``pyarrow.Table``; a missing or unreadable file is a usage error."""
    import pyarrow as pa

    path = Path(path)
    fmt = table_format(path)
    if not path.is_file():
        raise UsageError(f"metadata table not found: {path}")
    try:
        if fmt == "parquet":
            import pyarrow.parquet as pq

            return pq.read_table(str(path))
        if fmt == "csv":
            import pyarrow.csv as pcsv

            # an empty cell is a null, as the table we write back writes nulls
            return pcsv.read_csv(str(path), convert_options=pcsv.ConvertOptions(
                strings_can_be_null=True))
        from pyarrow import ipc

        with pa.memory_map(str(path)) as source:
            try:
                return ipc.open_file(source).read_all()
            except pa.ArrowInvalid:  # the streaming flavour of the IPC format
                source.seek(0)
                return ipc.open_stream(source).read_all()
    except (OSError, pa.ArrowException) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UsageError(f"{path.name}: not a readable {fmt} table: {first}") from None


def with_columns(table: Any, columns: dict[str, list[Any]]) -> Any:
    """``table`` with ``columns`` appended (replacing same-named ones from an earlier run)."""
    import pyarrow as pa

    for name in COLUMNS:
        values = columns[name]
        kind = pa.string() if name in ("output_path", "method", "fallback_reason", "status",
                                       "error") else None
        array = pa.array(values, type=kind) if kind else pa.array(values)
        if array.type == pa.null():
            array = pa.array(values, type=pa.float64() if name in ("fps", "duration",
                                                                   "wall_time") else pa.int64())
        if name in table.column_names:
            table = table.set_column(table.column_names.index(name), name, array)
        else:
            table = table.append_column(name, array)
    return table


def write_table(table: Any, path: str | os.PathLike[str]) -> None:
    """Write ``table`` to ``path`` in the format its suffix says, atomically."""
    from vt.tempfiles import temp_path

    path = Path(path)
    fmt = table_format(path)
    tmp = temp_path(path, path.suffix)
    try:
        if fmt == "parquet":
            import pyarrow.parquet as pq

            pq.write_table(table, str(tmp))
        elif fmt == "csv":
            import pyarrow.csv as pcsv

            pcsv.write_csv(table, str(tmp))
        else:
            from pyarrow import ipc

            with ipc.new_file(str(tmp), table.schema) as writer:
                writer.write_table(table)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
