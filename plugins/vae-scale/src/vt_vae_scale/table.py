"""The metadata table: read in its own format (Arrow IPC/Feather, Parquet, CSV), written back in
the same format with the per-clip columns added, atomically.

pandas is never imported here: pyarrow's converter from Python lists imports it (to recognise
pandas' missing values), which costs the CLI 0.3 s of CPU before the first clip, so the
added columns are built from buffers (:func:`arrow_column`) and Parquet is read with
``ParquetFile`` (``read_table`` imports it too).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from vt.errors import UsageError

FORMATS = {
    ".arrow": "arrow",
    ".feather": "arrow",
    ".ipc": "arrow",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".csv": "csv",
}

#: what each row gains, in this order
COLUMNS = (
    "output_path",
    "method",
    "fallback_reason",
    "original_width",
    "original_height",
    "scaled_width",
    "scaled_height",
    "frame_count",
    "fps",
    "duration",
    "status",
    "error",
    "wall_time",
)
#: their types (the rest are strings)
INT_COLUMNS = ("original_width", "original_height", "scaled_width", "scaled_height", "frame_count")
FLOAT_COLUMNS = ("fps", "duration", "wall_time")


def table_format(path: str | os.PathLike[str]) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise UsageError(
            f"{Path(path).name}: the metadata table must be .arrow/.feather, .parquet or .csv"
        )
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

            return pq.ParquetFile(str(path)).read()
        if fmt == "csv":
            import pyarrow.csv as pcsv

            # an empty cell is a null, as the table we write back writes nulls
            return pcsv.read_csv(
                str(path), convert_options=pcsv.ConvertOptions(strings_can_be_null=True)
            )
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


def arrow_column(values: list[Any], kind: str) -> Any:
    """A pyarrow array of ``kind`` (``string``, ``int64``, ``float64``) from Python values,
    None for a null, built from its buffers (see the module's note on pandas)."""
    import numpy as np
    import pyarrow as pa

    n = len(values)
    valid = np.fromiter((v is not None for v in values), dtype=bool, count=n)
    bitmap = pa.py_buffer(np.packbits(valid, bitorder="little").tobytes())
    nulls = n - int(valid.sum())
    if kind == "string":
        encoded = [b"" if v is None else str(v).encode() for v in values]
        offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum([len(e) for e in encoded], out=offsets[1:])
        large = offsets[-1] >= 2**31  # past 2 GiB of text: 64-bit offsets
        return pa.Array.from_buffers(
            pa.large_string() if large else pa.string(),
            n,
            [
                bitmap,
                pa.py_buffer(offsets if large else offsets.astype(np.int32)),
                pa.py_buffer(b"".join(encoded)),
            ],
            null_count=nulls,
        )
    dtype, arrow_type = {"int64": (np.int64, pa.int64()), "float64": (np.float64, pa.float64())}[
        kind
    ]
    data = np.fromiter((0 if v is None else v for v in values), dtype=dtype, count=n)
    return pa.Array.from_buffers(arrow_type, n, [bitmap, pa.py_buffer(data)], null_count=nulls)


def column_kind(name: str) -> str:
    return "int64" if name in INT_COLUMNS else "float64" if name in FLOAT_COLUMNS else "string"


def with_columns(table: Any, columns: dict[str, list[Any]]) -> Any:
    """``table`` with ``columns`` appended (replacing same-named ones from an earlier run)."""
    for name in COLUMNS:
        array = arrow_column(columns[name], column_kind(name))
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
