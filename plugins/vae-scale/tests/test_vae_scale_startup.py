"""What the CLI process costs before the first clip: pyarrow's pandas import stays out."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from vt.testing import make_video


@pytest.mark.parametrize(
    ("kind", "values"),
    [
        ("string", ["a", None, "ünï", "", "x" * 300]),
        ("int64", [1, None, -7, 2**40]),
        ("float64", [1.5, None, 0.0, float("inf")]),
        ("string", []),
    ],
)
def test_arrow_columns_built_from_buffers_round_trip(kind: str, values: list[object]) -> None:
    import pyarrow as pa

    from vt_vae_scale.table import arrow_column

    array = arrow_column(values, kind)
    array.validate(full=True)
    assert array.to_pylist() == values
    assert array.type == {"string": pa.string(), "int64": pa.int64(), "float64": pa.float64()}[kind]
    assert array.null_count == sum(v is None for v in values)


@pytest.mark.parametrize("suffix", [".parquet", ".arrow", ".csv"])
def test_the_cli_never_imports_pandas(tmp_path: Path, suffix: str) -> None:
    import pyarrow as pa
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq
    from pyarrow import ipc

    make_video(tmp_path / "a.mp4", frames=3, width=32, height=24)
    table = pa.table({"video_path": ["a.mp4", "missing.mp4"], "label": [1, 2]})
    meta = tmp_path / f"meta{suffix}"
    if suffix == ".parquet":
        pq.write_table(table, str(meta))
    elif suffix == ".csv":
        pcsv.write_csv(table, str(meta))
    else:
        with ipc.new_file(str(meta), table.schema) as w:
            w.write_table(table)
    code = (
        "import sys\n"
        f"sys.argv = ['vt', 'vae-scale', '--metadata', {str(meta)!r}, '-o', 'out', "
        "'--target-size', '32', '--preset', 'ultrafast', '-q']\n"
        "from vt.cli import main\n"
        "try:\n    main()\nexcept SystemExit as exc:\n    print('exit', exc.code)\n"
        "print('pandas' in sys.modules)\n"
    )
    env = {**os.environ, "VT_LOAD_PLUGINS": "vae-scale"}
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.stdout.split() == ["exit", "1", "False"], done.stderr  # row 2 failed
    from vt_vae_scale.table import read_table

    rows = read_table(tmp_path / "out" / f"scaled_metadata{suffix}").to_pylist()
    assert [r["status"] for r in rows] == ["done", "failed"]
    assert rows[0]["frame_count"] == 3 and rows[0]["label"] == 1
