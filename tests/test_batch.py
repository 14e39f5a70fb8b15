"""``vt batch`` and ``vt.batch``: manifests, retries, reruns, kills, shards, workers."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from vt.batch import Job, JobResult, read_status, run_batch
from vt.errors import UsageError
from vt.testing import make_video

VT = shutil.which("vt", path=str(Path(sys.executable).parent))
ENV = dict(os.environ, VT_LOAD_PLUGINS="")  # core commands only: plugins must not matter
FAST = {"preset": "ultrafast", "crf": 35}


def vt_batch(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    assert VT, "the vt console script is not installed in this environment"
    return subprocess.run(
        [VT, "batch", *args], capture_output=True, text=True, env=env or ENV, timeout=timeout
    )


def write_manifest(path: Path, rows: list[dict[str, Any]]) -> Path:
    fmt = path.suffix
    if fmt == ".json":
        path.write_text(json.dumps(rows))
    elif fmt == ".yaml":
        import yaml

        path.write_text(yaml.safe_dump(rows))
    elif fmt == ".csv":
        keys = list(dict.fromkeys(k for row in rows for k in row))
        with open(path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=keys)
            writer.writeheader()
            writer.writerows(rows)
    else:
        import pyarrow as pa

        keys = list(dict.fromkeys(k for row in rows for k in row))
        table = pa.Table.from_pylist([{k: row.get(k) for k in keys} for row in rows])
        if fmt == ".parquet":
            import pyarrow.parquet as pq

            pq.write_table(table, str(path))
        else:
            with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, table.schema) as w:
                w.write_table(table)
    return path


@pytest.fixture
def clips(tmp_path: Path) -> Path:
    """Two tiny clips with the same basename in different folders."""
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        make_video(tmp_path / folder / "clip.mp4", frames=6, width=32, height=24)
    return tmp_path


def rows_for(clips: Path, **extra: Any) -> list[dict[str, Any]]:
    return [
        {"command": "transcode", "input": "a/clip.mp4", "output": "out/a.mkv", **FAST, **extra},
        {"command": "transcode", "input": "missing.mp4", "output": "out/missing.mkv", **FAST},
        {"command": "transcode", "input": "b/clip.mp4", "output": "out/b.mp4", **FAST, **extra},
    ]


@pytest.mark.parametrize("suffix", [".json", ".yaml", ".csv", ".arrow", ".parquet"])
def test_each_format_retries_the_failing_job_and_finishes_the_rest(
    clips: Path, suffix: str
) -> None:
    if suffix == ".yaml":
        pytest.importorskip("yaml", reason="YAML manifests need the yaml extra")
    elif suffix in (".arrow", ".parquet"):
        pytest.importorskip("pyarrow", reason="Arrow manifests need the arrow extra")
    manifest = write_manifest(clips / f"jobs{suffix}", rows_for(clips))
    result = vt_batch(str(manifest), "--retries", "2")
    assert result.returncode == 1, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("vt: error: 1 of 3 jobs failed") and "Traceback" not in result.stderr
    status = clips / f"jobs.status{suffix}"
    rows = {r["row"]: r for r in read_status(status)}
    assert [rows[n]["status"] for n in (1, 2, 3)] == ["done", "failed", "done"]
    assert rows[2]["attempts"] == 3 and "not found" in rows[2]["error"]
    assert rows[1]["attempts"] == 1 and rows[1]["report"]["frames_out"] == 6
    assert (clips / "out/a.mkv").exists() and (clips / "out/b.mp4").exists()
    assert not (clips / "out/missing.mkv").exists()
    assert not (clips / "out/.missing.mkv.vt-batch.json").exists()  # nothing left behind


def test_rerun_skips_finished_jobs_and_reruns_changed_parameters(clips: Path) -> None:
    manifest = write_manifest(
        clips / "jobs.json", [r for r in rows_for(clips) if r["input"] != "missing.mp4"]
    )
    assert vt_batch(str(manifest)).returncode == 0
    a, b = clips / "out/a.mkv", clips / "out/b.mp4"
    stamps = (a.stat().st_mtime_ns, b.stat().st_mtime_ns)
    again = vt_batch(str(manifest), "--json")
    assert again.returncode == 0
    summary = json.loads(again.stdout)
    assert (summary["done"], summary["skipped"]) == (0, 2)
    assert (a.stat().st_mtime_ns, b.stat().st_mtime_ns) == stamps
    assert {r["status"] for r in read_status(clips / "jobs.status.json")} == {"skipped"}
    rows = json.loads(manifest.read_text())
    rows[1]["crf"] = 40  # new parameters for b: vt wrote b, so it may replace it
    manifest.write_text(json.dumps(rows))
    changed = vt_batch(str(manifest))
    assert changed.returncode == 0, changed.stderr
    status = {r["row"]: r["status"] for r in read_status(clips / "jobs.status.json")}
    assert status == {1: "skipped", 2: "done"}
    assert a.stat().st_mtime_ns == stamps[0] and b.stat().st_mtime_ns != stamps[1]


def test_an_output_vt_did_not_write_is_never_replaced_without_overwrite(clips: Path) -> None:
    (clips / "out").mkdir()
    mine = clips / "out/a.mkv"
    mine.write_bytes(b"the user's own file")
    manifest = write_manifest(clips / "jobs.json", rows_for(clips)[:1])
    refused = vt_batch(str(manifest))
    assert refused.returncode == 1 and "not written by vt batch" in refused.stderr
    assert mine.read_bytes() == b"the user's own file"
    [row] = read_status(clips / "jobs.status.json")
    assert row["status"] == "failed" and row["attempts"] == 0
    assert vt_batch(str(manifest), "--overwrite").returncode == 0
    assert mine.read_bytes() != b"the user's own file"


def test_kill_mid_batch_then_rerun_redoes_no_finished_job(tmp_path: Path) -> None:
    src = make_video(tmp_path / "src.mp4", frames=120, width=320, height=240)
    rows = [
        {
            "command": "transcode",
            "input": "src.mp4",
            "output": f"out/{n}.mp4",
            "preset": "slow",
            "threads": 1,
            "encoder_option": "threads=1",
        }
        for n in range(8)
    ]
    manifest = write_manifest(tmp_path / "jobs.json", rows)
    status = tmp_path / "jobs.status.json"
    proc = subprocess.Popen(
        [VT, "batch", str(manifest), "--workers", "1"],
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 90
    done_before: list[dict[str, Any]] = []
    while time.monotonic() < deadline and proc.poll() is None:
        if status.exists():
            done_before = [r for r in read_status(status) if r["status"] == "done"]
            if done_before:
                break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    assert 1 <= len(done_before) < len(rows), "the batch must be killed mid-way"
    worker_pid = int(done_before[0]["worker"].rsplit(":", 1)[1])
    for _ in range(100):  # the worker follows its runner (PR_SET_PDEATHSIG)
        if not _alive(worker_pid):
            break
        time.sleep(0.05)
    assert not _alive(worker_pid)
    after_kill = {r["row"]: r["status"] for r in read_status(status)}
    finished = {r["row"] for r in done_before}
    assert all(after_kill[n] == "done" for n in finished)  # the table lost nothing finished
    stamps = {n: (tmp_path / f"out/{n - 1}.mp4").stat().st_mtime_ns for n in finished}
    rerun = vt_batch(str(manifest), "--workers", "1")
    assert rerun.returncode == 0, rerun.stderr
    final = {r["row"]: r for r in read_status(status)}
    assert all(final[n]["status"] == "skipped" for n in finished)
    assert all(final[n]["status"] == "done" for n in final if n not in finished)
    assert all((tmp_path / f"out/{n - 1}.mp4").stat().st_mtime_ns == stamps[n] for n in finished)
    leftovers = [
        p.name
        for p in (tmp_path / "out").iterdir()
        if ".vt-partial-" in p.name or ".vt-tmp-" in p.name
    ]
    assert leftovers == []
    assert src.exists()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead too
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def test_shards_split_the_manifest_and_keep_their_own_status(clips: Path) -> None:
    rows = [
        {"command": "transcode", "input": "a/clip.mp4", "output": f"out/{n}.mkv", **FAST}
        for n in range(5)
    ]
    manifest = write_manifest(clips / "jobs.csv", rows)
    for shard in ("0/2", "1/2"):
        assert vt_batch(str(manifest), "--shard", shard).returncode == 0
    first = read_status(clips / "jobs.status.shard-0-of-2.csv")
    second = read_status(clips / "jobs.status.shard-1-of-2.csv")
    assert [r["row"] for r in first] == [1, 3, 5] and [r["row"] for r in second] == [2, 4]
    assert all(r["status"] == "done" for r in first + second)
    assert sorted(p.name for p in (clips / "out").glob("*.mkv")) == [f"{n}.mkv" for n in range(5)]
    bad = vt_batch(str(manifest), "--shard", "2/2")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1


def test_two_workers_share_the_jobs(clips: Path) -> None:
    rows = [
        {"command": "transcode", "input": "b/clip.mp4", "output": f"out/{n}.mkv", **FAST}
        for n in range(6)
    ]
    manifest = write_manifest(clips / "jobs.json", rows)
    result = vt_batch(str(manifest), "--workers", "2", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["workers"] == 2
    rows_out = read_status(clips / "jobs.status.json")
    assert all(r["status"] == "done" for r in rows_out)
    assert len({r["worker"] for r in rows_out}) == 2


def test_a_folder_of_videos_with_equal_basenames(clips: Path) -> None:
    out = clips / "converted"
    result = vt_batch(
        str(clips),
        "--command",
        "transcode",
        "--output-dir",
        str(out),
        "--output-ext",
        ".mkv",
        "--set",
        "preset=ultrafast",
    )
    assert result.returncode == 0, result.stderr
    outputs = sorted(p.name for p in out.glob("*.mkv"))
    assert len(outputs) == 2 and outputs[0] != outputs[1]  # a/clip and b/clip: two keys
    assert all(name.startswith("clip-") for name in outputs)
    status = read_status(out / f"{clips.name}.status.csv")
    assert {Path(r["input"]).parent.name for r in status} == {"a", "b"}
    # the name carries the parameters: other settings write next to, not over, the first
    other = vt_batch(
        str(clips),
        "--command",
        "transcode",
        "--output-dir",
        str(out),
        "--output-ext",
        ".mkv",
        "--set",
        "preset=ultrafast",
        "--set",
        "crf=40",
    )
    assert other.returncode == 0 and len(list(out.glob("*.mkv"))) == 4


BAD_MANIFESTS = {
    "unknown command": (
        [{"command": "transcod", "input": "a/clip.mp4", "output": "o.mkv"}],
        "row 1: unknown command 'transcod' (did you mean 'transcode'?)",
    ),
    "missing input": (
        [
            {"command": "transcode", "input": "a/clip.mp4", "output": "o.mkv"},
            {"command": "transcode", "output": "p.mkv"},
        ],
        "row 2: missing the 'input' key",
    ),
    "unknown option": (
        [{"command": "transcode", "input": "a/clip.mp4", "output": "o.mkv", "crff": 3}],
        "row 1: unknown option 'crff' for transcode",
    ),
    "bad value": (
        [{"command": "transcode", "input": "a/clip.mp4", "output": "o.mkv", "crf": "high"}],
        "row 1: Invalid value for '--crf'",
    ),
    "same output": (
        [
            {"command": "transcode", "input": "a/clip.mp4", "output": "o.mkv"},
            {"command": "transcode", "input": "b/clip.mp4", "output": "./o.mkv"},
        ],
        "rows 1 and 2 write the same output",
    ),
    "no output file": (
        [{"command": "info", "input": "a/clip.mp4", "output": "o.json"}],
        "writes no output file",
    ),
    "not a list": ({"command": "transcode"}, "a manifest is a list of objects"),
}


@pytest.mark.parametrize("case", list(BAD_MANIFESTS))
def test_bad_manifests_exit_2_with_one_line_naming_the_row(clips: Path, case: str) -> None:
    rows, message = BAD_MANIFESTS[case]
    manifest = clips / "jobs.json"
    manifest.write_text(json.dumps(rows))
    result = vt_batch(str(manifest))
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr
    assert "jobs.json" in result.stderr or case == "not a list"
    assert not (clips / "jobs.status.json").exists()  # nothing ran, nothing written


def test_unreadable_manifests_exit_2(tmp_path: Path) -> None:
    broken = tmp_path / "jobs.json"
    broken.write_text("[{")
    other = tmp_path / "jobs.txt"
    other.write_text("x")
    for path in (broken, other, tmp_path / "absent.json"):
        result = vt_batch(str(path))
        assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr


def test_the_ray_engine_without_ray_says_how_to_install_it(clips: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "noray"
    blocker.mkdir()
    (blocker / "ray.py").write_text("raise ImportError('ray is not installed')\n")
    env = dict(ENV, PYTHONPATH=os.pathsep.join([str(blocker), os.environ.get("PYTHONPATH", "")]))
    manifest = write_manifest(clips / "jobs.json", rows_for(clips)[:1])
    result = vt_batch(str(manifest), "--engine", "ray", env=env)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "vt: error: the Ray engine needs Ray: pip install 'vt[ray]' (or: pip install 'ray[data]')"
    )


# -- the Python API ---------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_callables_retries_and_progress_through_the_api(
    tmp_path: Path, method: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # workers are forked when torch is not loaded here, spawned otherwise: both must work
    monkeypatch.setattr("vt.batch.engines.start_method", lambda: method)
    src = tmp_path / "in.bin"
    src.write_bytes(b"x" * 100)
    seen: list[tuple[int, str, int]] = []
    jobs = [
        Job(
            str(src), str(tmp_path / "copy.bin"), fn="batch_helpers:copy_file", options={"level": 3}
        ),
        Job(str(src), str(tmp_path / "never.bin"), fn="batch_helpers:always_fails"),
        Job(
            str(src),
            str(tmp_path / "flaky.bin"),
            fn="batch_helpers:fails_until",
            options={"marker": str(tmp_path / "calls"), "failures": 1},
        ),
    ]
    report = run_batch(
        jobs,
        retries=1,
        status=tmp_path / "status.jsonl",
        progress=lambda r, c: seen.append((r.row, r.status, c.finished)),
    )
    by_row = {r.row: r for r in report.results}
    assert isinstance(by_row[1], JobResult)
    assert by_row[1].status == "done" and by_row[1].report["options"] == {"level": 3}
    assert by_row[1].report["pid"] != os.getpid()  # it ran in a worker process
    assert by_row[2].status == "failed" and by_row[2].attempts == 2
    assert by_row[2].error == "RuntimeError: cannot process in.bin"
    assert by_row[3].status == "done" and by_row[3].attempts == 2
    assert (report.done, report.failed, report.skipped) == (2, 1, 0)
    assert sorted(s[:2] for s in seen) == [(1, "done"), (2, "failed"), (3, "done")]
    assert sorted(s[2] for s in seen) == [1, 2, 3]
    assert (tmp_path / "copy.bin").read_bytes() == src.read_bytes()
    assert [
        json.loads(line)["row"] for line in (tmp_path / "status.jsonl").read_text().splitlines()
    ] == [1, 2, 3]
    again = run_batch(jobs[:1], status=tmp_path / "status.jsonl")
    assert again.results[0].status == "skipped" and again.results[0].report["bytes"] == 100


def test_the_api_validates_before_running(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="module-level function"):
        run_batch([Job("a", str(tmp_path / "b"), fn=lambda i, o: None)])
    with pytest.raises(UsageError, match="no output"):
        run_batch([Job("a", None, fn="batch_helpers:copy_file")])
    with pytest.raises(UsageError, match="--shard"):
        run_batch([], shard="3/2")


def test_derived_outputs_are_keyed_by_input_and_parameters(tmp_path: Path) -> None:
    from vt.batch.manifest import prepare

    def jobs(**options: Any) -> list[Job]:
        return [
            Job(str(tmp_path / d / "clip.mp4"), fn="batch_helpers:copy_file", options=dict(options))
            for d in ("a", "b")
        ]

    first = prepare(jobs(), output_dir=tmp_path / "out", base=tmp_path)
    again = prepare(jobs(), output_dir=tmp_path / "out", base=tmp_path)
    other = prepare(jobs(level=2), output_dir=tmp_path / "out", base=tmp_path)
    assert [j.output for j in first] == [j.output for j in again]  # deterministic
    assert first[0].output != first[1].output  # equal basenames, different folders
    assert {j.output for j in first}.isdisjoint(j.output for j in other)
    assert all(Path(j.output).name.startswith("clip-") for j in first)
