"""``vt.batch``: when jobs run single-threaded, changed inputs run again, and the leftovers of
killed runs are cleaned from the output folders."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from vt.batch import Job, run_batch
from vt.batch.runner import single_thread_rule


@pytest.mark.parametrize(
    ("engine", "at_once", "cpus", "cores", "expected"),
    [
        ("local", 2, 1.0, 2, True),  # one job per core: each gets one thread
        ("local", 3, 1.0, 2, True),
        ("local", 1, 1.0, 2, False),  # a lone job may use every core
        ("local", 2, 1.0, 8, False),
        ("ray", 2, 1.0, 2, True),  # an actor asking for one CPU gets one
        ("ray", 2, 0.5, 2, True),
        ("ray", 2, 4.0, 2, False),
    ],
)
def test_single_thread_rule(
    engine: str, at_once: int, cpus: float, cores: int, expected: bool
) -> None:
    assert single_thread_rule(engine, at_once, cpus, cores=cores) is expected


def _copies(tmp_path: Path, count: int, **options: object) -> list[Job]:
    src = tmp_path / "in.bin"
    src.write_bytes(b"x" * 100)
    return [
        Job(
            str(src),
            str(tmp_path / f"out{n}.bin"),
            fn="batch_helpers:copy_and_tell_threads",
            options=dict(options),
        )
        for n in range(count)
    ]


@pytest.mark.parametrize(
    ("workers", "forced", "expected"),
    [(2, None, True), (1, None, False), (2, False, False), (1, True, True)],
)
def test_callables_are_told_the_single_thread_choice(
    tmp_path: Path,
    workers: int,
    forced: bool | None,
    expected: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("vt.batch.runner.usable_cores", lambda: 2)
    report = run_batch(_copies(tmp_path, 2), workers=workers, single_thread=forced)
    assert report.single_thread is expected
    assert [r.report["single_thread"] for r in report.results] == [expected, expected]
    assert report.as_dict()["single_thread"] is expected


def test_a_job_that_sets_single_thread_keeps_its_own(tmp_path: Path) -> None:
    report = run_batch(_copies(tmp_path, 1, single_thread=False), single_thread=True)
    assert report.results[0].report["single_thread"] is False


def test_commands_get_single_thread_on_their_command_line(tmp_path: Path) -> None:
    from vt.batch.manifest import CommandTable, prepare
    from vt.batch.runner import _task

    table = CommandTable()
    row = Job(
        str(tmp_path / "a.mp4"),
        str(tmp_path / "b.mp4"),
        command="transcode",
        options={"preset": "ultrafast"},
    )
    own = Job(
        str(tmp_path / "a.mp4"),
        str(tmp_path / "c.mp4"),
        command="transcode",
        options={"single_thread": True},
    )
    prepare([row, own], base=tmp_path, table=table)
    assert "--single-thread" in _task(row, 0, 1, False, table, True).argv
    assert "--single-thread" not in _task(row, 0, 1, False, table, False).argv
    assert _task(own, 1, 1, False, table, True).argv.count("--single-thread") == 1
    # the choice is not a parameter of the job: its key (and derived output name) ignore it
    assert (
        row.key
        == prepare(
            [Job(row.input, row.output, command="transcode", options={"preset": "ultrafast"})],
            base=tmp_path,
            table=table,
        )[0].key
    )


def test_a_changed_input_runs_again(tmp_path: Path) -> None:
    src = tmp_path / "in.bin"
    src.write_bytes(b"a" * 300_000)  # over 3 x 16 KiB: the hash samples it
    out = tmp_path / "out.bin"

    def run() -> str:
        return run_batch([Job(str(src), str(out), fn="batch_helpers:copy_file")]).results[0].status

    assert run() == "done"
    assert run() == "skipped"
    # same size, same modification time, different bytes at the start
    st = src.stat()
    with open(src, "r+b") as f:
        f.write(b"b")
    os.utime(src, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert run() == "done" and out.read_bytes()[:1] == b"b"
    assert run() == "skipped"
    os.utime(src, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # touched
    assert run() == "done"
    src.write_bytes(b"a" * 10)  # smaller
    assert run() == "done" and out.read_bytes() == b"a" * 10
    assert run() == "skipped"


def test_a_changed_input_in_a_manifest_runs_again(tmp_path: Path) -> None:
    from vt.testing import make_video

    make_video(tmp_path / "clip.mp4", frames=4, width=32, height=24)
    manifest = tmp_path / "jobs.json"
    manifest.write_text(
        json.dumps(
            [
                {
                    "command": "transcode",
                    "input": "clip.mp4",
                    "output": "out/clip.mp4",
                    "preset": "ultrafast",
                }
            ]
        )
    )
    env = dict(os.environ, VT_LOAD_PLUGINS="")

    def batch() -> dict[str, int]:
        done = subprocess.run(
            [sys.executable, "-m", "vt", "batch", str(manifest), "--json"],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    assert batch()["done"] == 1
    assert batch()["skipped"] == 1
    make_video(tmp_path / "clip.mp4", frames=6, width=32, height=24)  # replaced in place
    again = batch()
    assert (again["done"], again["skipped"]) == (1, 0)
    from vt.media.info import probe

    assert probe(str(tmp_path / "out/clip.mp4")).video.frame_count == 6


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_temporaries_of_killed_runs_are_removed_from_output_folders(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    src = tmp_path / "in.bin"
    src.write_bytes(b"x" * 10)
    dead = _dead_pid()
    stale_file = out / f".a.bin.vt-tmp-{dead}-0123abcd.bin"
    stale_file.write_bytes(b"half an output")
    stale_dir = out / f".frames.vt-tmp-{dead}-89abcdef"
    stale_dir.mkdir()
    (stale_dir / "000001.png").write_bytes(b"png")
    alive = out / f".b.bin.vt-tmp-{os.getpid()}-0123abcd.bin"  # a live process's: kept
    alive.write_bytes(b"being written")
    users = out / ".notes.vt-tmp-x"  # not vt's pattern: kept
    users.write_bytes(b"mine")
    job = Job(str(src), str(out / "a.bin"), fn="batch_helpers:copy_file")
    first = run_batch([job], status=tmp_path / "status.json")
    assert first.stale_removed == 2
    assert not stale_file.exists() and not stale_dir.exists()
    assert alive.exists() and users.exists() and (out / "a.bin").exists()
    # a rerun where every job is skipped cleans too
    again_stale = out / f".a.bin.vt-tmp-{dead}-fedcba98.bin"
    again_stale.write_bytes(b"x")
    second = run_batch(
        [Job(str(src), str(out / "a.bin"), fn="batch_helpers:copy_file")],
        status=tmp_path / "status.json",
    )
    assert second.results[0].status == "skipped" and second.stale_removed == 1
    assert not again_stale.exists()
    # a dry run removes nothing
    again_stale.write_bytes(b"x")
    run_batch([Job(str(src), str(out / "a.bin"), fn="batch_helpers:copy_file")], dry_run=True)
    assert again_stale.exists()


def test_a_running_job_reports_its_progress(tmp_path: Path) -> None:
    src = tmp_path / "in.bin"
    src.write_bytes(b"x")
    seen: list[tuple[int, int, int | None, str]] = []
    finished: list[int] = []
    jobs = [
        Job(
            str(src),
            str(tmp_path / f"out{n}.bin"),
            fn="batch_helpers:copy_with_progress",
            options={"steps": 3 + n},
        )
        for n in range(2)
    ]
    report = run_batch(
        jobs,
        workers=2,
        job_progress=lambda r, done, total: seen.append((r.row, done, total, r.status)),
        progress=lambda r, c: finished.append(r.row),
    )
    assert report.done == 2
    for row, steps in ((1, 3), (2, 4)):
        mine = [(done, total) for r, done, total, _ in seen if r == row]
        assert mine[-1] == (steps, steps)  # the last step always arrives
        assert [d for d, _ in mine] == sorted(d for d, _ in mine) and len(mine) >= 2
    assert {status for *_, status in seen} == {"pending"}  # all while the jobs ran
    assert sorted(finished) == [1, 2]
