"""The table batch end to end: formats, outputs, bad rows, resume after SIGKILL, fallback, CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from vae_scale_helpers import content_box, read_frames, solid_clip

CLIPS = {
    "land/clip.mp4": (64, 36),
    "port/clip.mp4": (36, 64),
    "sq.mp4": (48, 48),
    "odd.mp4": (45, 27),
}


def project(root: Path, clips: dict[str, tuple[int, int]] = CLIPS, frames: int = 3) -> Path:
    for rel, (w, h) in clips.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        solid_clip(root / rel, w, h, frames=frames)
    return root


def write(table: object, path: Path) -> Path:
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq
    from pyarrow import ipc

    if path.suffix == ".parquet":
        pq.write_table(table, str(path))
    elif path.suffix == ".csv":
        pcsv.write_csv(table, str(path))
    else:
        with ipc.new_file(str(path), table.schema) as w:
            w.write_table(table)
    return path


def vt(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "VT_LOAD_PLUGINS": "vae-scale"}
    return subprocess.run(
        [sys.executable, "-m", "vt", "vae-scale", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_letterbox_table_every_shape_is_square_with_its_aspect(tmp_path: Path) -> None:
    import pyarrow as pa

    from vt_vae_scale import stage3_scale_videos

    root = project(tmp_path)
    meta = write(
        pa.table({"video_path": list(CLIPS), "label": [0, 1, 2, 3]}),
        root / "augmented_metadata.arrow",
    )
    out = stage3_scale_videos(str(root), meta, "scaled", "resolution", 64, preset="ultrafast")
    rows = out.to_pylist()
    assert [r["status"] for r in rows] == ["done"] * 4
    assert [r["label"] for r in rows] == [0, 1, 2, 3]
    names = [Path(r["output_path"]).name for r in rows]
    assert len(set(names)) == 4 and names[0] != names[1]  # equal basenames, two outputs
    for row, (w, h) in zip(rows, CLIPS.values(), strict=True):
        assert row["method"] == "letterbox" and row["fallback_reason"] is None
        assert (row["original_width"], row["original_height"]) == (w, h)
        assert (row["scaled_width"], row["scaled_height"]) == (64, 64)
        assert row["frame_count"] == 3 and row["fps"] == pytest.approx(24)
        frames = read_frames(row["output_path"])
        assert frames.shape == (3, 64, 64, 3)
        bw, bh = content_box(frames[1])
        assert max(bw, bh) >= 62
        assert bw / bh == pytest.approx(w / h, rel=0.08)
    table = root / "scaled" / "scaled_metadata.arrow"
    assert table.is_file()


@pytest.mark.parametrize("suffix", [".arrow", ".parquet", ".csv"])
def test_table_formats_round_trip_extra_columns(tmp_path: Path, suffix: str) -> None:
    import pyarrow as pa

    from vt_vae_scale.table import read_table

    root = project(tmp_path, {"a/x.mp4": (32, 24)}, frames=2)
    src = pa.table(
        {
            "clip_id": ["c1", "c2"],
            "video_path": ["a/x.mp4", "gone.mp4"],
            "score": [0.5, 1.25],
            "n": [7, 8],
        }
    )
    meta = write(src, root / f"meta{suffix}")
    result = vt(
        "--metadata", str(meta), "--target-size", "32", "--preset", "ultrafast", "--json", cwd=root
    )
    assert result.returncode == 1, result.stderr  # one row failed
    summary = json.loads(result.stdout)
    assert summary["done"] == 1 and summary["failed"] == 1
    out = read_table(root / "data" / "scaled_videos" / f"scaled_metadata{suffix}")
    rows = out.to_pylist()
    for name in src.column_names:
        assert out.column(name).to_pylist() == src.column(name).to_pylist()
    assert rows[0]["status"] == "done" and rows[0]["scaled_width"] == 32
    assert rows[1]["status"] == "failed" and "not found" in rows[1]["error"]
    assert rows[1]["output_path"] is None


def test_bad_rows_fail_with_their_reason_and_the_rest_go_on(tmp_path: Path) -> None:
    import pyarrow as pa

    root = project(tmp_path, {"good.mp4": (32, 24)}, frames=2)
    (root / "corrupt.mp4").write_bytes(b"\x00not a video" * 100)
    (root / "empty.mp4").write_bytes(b"")
    meta = write(
        pa.table({"video_path": ["good.mp4", "missing.mp4", "corrupt.mp4", "empty.mp4", None]}),
        root / "meta.parquet",
    )
    result = vt(
        "--metadata",
        str(meta),
        "-o",
        "out",
        "--target-size",
        "32",
        "--preset",
        "ultrafast",
        cwd=root,
    )
    assert result.returncode == 1
    assert "failed row 2" in result.stderr and "Traceback" not in result.stderr
    from vt_vae_scale.table import read_table

    rows = read_table(root / "out" / "scaled_metadata.parquet").to_pylist()
    assert [r["status"] for r in rows] == ["done", "failed", "failed", "failed", "failed"]
    assert all(r["error"] for r in rows[1:])
    assert "no video_path" in rows[4]["error"]


def test_no_audio_is_honoured_and_audio_kept_by_default(tmp_path: Path) -> None:
    from vt.media.info import probe

    clip = solid_clip(tmp_path / "a.mp4", 32, 24, frames=12, audio=True)
    assert probe(clip).audio
    for flag, expect in (((), True), (("--no-audio",), False)):
        out = tmp_path / ("kept" if expect else "dropped")
        result = vt(
            str(clip),
            "-o",
            str(out),
            "--target-size",
            "32",
            "--preset",
            "ultrafast",
            *flag,
            cwd=tmp_path,
        )
        assert result.returncode == 0, result.stderr
        (video,) = out.glob("*.mp4")
        assert bool(probe(video).audio) is expect


def test_max_frames_caps_each_clip(tmp_path: Path) -> None:
    clip = solid_clip(tmp_path / "long.mp4", 32, 24, frames=10)
    result = vt(
        str(clip),
        "-o",
        "out",
        "--target-size",
        "32",
        "--max-frames",
        "4",
        "--preset",
        "ultrafast",
        "--json",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    (video,) = (tmp_path / "out").glob("*.mp4")
    assert len(read_frames(video)) == 4


def test_rerun_skips_done_rows_and_changed_parameters_redo(tmp_path: Path) -> None:
    import pyarrow as pa

    root = project(tmp_path, {"a.mp4": (32, 24), "b.mp4": (24, 32)}, frames=2)
    meta = write(pa.table({"video_path": ["a.mp4", "b.mp4"]}), root / "m.csv")
    args = ("--metadata", str(meta), "--target-size", "32", "--preset", "ultrafast", "--json")
    first = json.loads(vt(*args, cwd=root).stdout)
    again = json.loads(vt(*args, cwd=root).stdout)
    assert (first["done"], again["done"], again["skipped"]) == (2, 0, 2)
    changed = json.loads(vt(*args[:3], "16", *args[4:], cwd=root).stdout)
    assert changed["done"] == 2


def test_resume_after_sigkill_redoes_nothing_finished(tmp_path: Path) -> None:
    import pyarrow as pa

    clips = {f"c{i}.mp4": (160, 120) for i in range(6)}
    root = project(tmp_path, clips, frames=48)
    meta = write(pa.table({"video_path": list(clips)}), root / "m.arrow")
    env = {**os.environ, "VT_LOAD_PLUGINS": "vae-scale"}
    args = [
        sys.executable,
        "-m",
        "vt",
        "vae-scale",
        "--metadata",
        str(meta),
        "-o",
        "out",
        "--target-size",
        "96",
        "--preset",
        "slow",
        "--json",
    ]
    proc = subprocess.Popen(
        args, cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    out = root / "out"
    deadline = time.monotonic() + 120
    finished: list[Path] = []
    while time.monotonic() < deadline and proc.poll() is None:
        finished = [
            p
            for p in out.glob(".*.vt-batch.json")
            if json.loads(p.read_text() or "{}").get("state") == "done"
        ]
        if finished:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    time.sleep(0.5)  # workers die with the runner (PDEATHSIG)
    done_before = {p.name for p in finished}
    assert done_before, "nothing finished before the kill"
    mtimes = {p: p.stat().st_mtime_ns for p in out.glob("*.mp4")}
    rerun = subprocess.run(
        args, cwd=root, env=env, capture_output=True, text=True, check=False, timeout=300
    )
    assert rerun.returncode == 0, rerun.stderr
    summary = json.loads(rerun.stdout)
    assert summary["skipped"] >= len(done_before)
    assert summary["skipped"] + summary["done"] == 6 and summary["failed"] == 0
    for video, mtime in mtimes.items():  # finished outputs were not rewritten
        marker = out / f".{video.name}.vt-batch.json"
        if marker.name in done_before:
            assert video.stat().st_mtime_ns == mtime
    from vt_vae_scale.table import read_table

    rows = read_table(out / "scaled_metadata.arrow").to_pylist()
    assert sum(r["status"] == "skipped" for r in rows) == summary["skipped"]
    assert all(r["frame_count"] == 48 for r in rows)  # skipped rows keep their figures


def test_missing_model_path_exits_2_before_anything(tmp_path: Path) -> None:
    clip = solid_clip(tmp_path / "a.mp4", 32, 24, frames=2)
    result = vt(
        str(clip),
        "-o",
        "out",
        "--method",
        "autoencoder",
        "--autoencoder-model",
        str(tmp_path / "no-such-vae"),
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "not found" in result.stderr
    assert not (tmp_path / "out").exists()


def test_fallback_uncached_hub_id_and_unloadable_folder(tmp_path: Path) -> None:
    """Both still produce letterboxed outputs; the reason is in every row, warned once."""
    clips = [solid_clip(tmp_path / f"{n}.mp4", 32, 24, frames=2) for n in ("a", "b")]
    (tmp_path / "not-a-model").mkdir()
    for model, why in (
        ("someone/uncached-vae", "HF_HUB_OFFLINE"),
        (str(tmp_path / "not-a-model"), "cannot load"),
    ):
        out = tmp_path / f"out-{len(why)}"
        result = vt(
            *map(str, clips),
            "-o",
            str(out),
            "--method",
            "autoencoder",
            "--autoencoder-model",
            model,
            "--target-size",
            "32",
            "--preset",
            "ultrafast",
            "--json",
            cwd=tmp_path,
        )
        assert result.returncode == 0, result.stderr
        assert result.stderr.count("warning") == 1 and why in result.stderr
        summary = json.loads(result.stdout)
        assert summary["done"] == 2 and why in summary["fallback"]
        assert len(list(out.glob("*.mp4"))) == 2


def test_autoencoder_batch_and_a_folder_that_fails_to_load(tmp_path: Path, tiny_vae: Path) -> None:
    """The autoencoder method through the batch (workers load the model), and a folder that
    looks like a model but does not load: letterboxed, reason recorded per row."""
    import pyarrow as pa

    root = project(tmp_path, {"odd.mp4": (45, 27), "port.mp4": (24, 40)}, frames=2)
    broken = tmp_path / "broken-vae"
    broken.mkdir()
    (broken / "config.json").write_text(json.dumps({"_class_name": "AutoencoderKL"}))
    meta = write(pa.table({"video_path": ["odd.mp4", "port.mp4"]}), root / "m.parquet")
    from vt_vae_scale.table import read_table

    for model, method in ((tiny_vae, "autoencoder"), (broken, "letterbox")):
        out = root / f"out-{method}"
        result = vt(
            "--metadata",
            str(meta),
            "-o",
            str(out),
            "--method",
            "autoencoder",
            "--autoencoder-model",
            str(model),
            "--target-size",
            "32",
            "--device",
            "cpu",
            "--chunk-size",
            "2",
            "--preset",
            "ultrafast",
            cwd=root,
        )
        assert result.returncode == 0, result.stderr
        rows = read_table(out / "scaled_metadata.parquet").to_pylist()
        assert [r["method"] for r in rows] == [method, method]
        assert [(r["scaled_width"], r["scaled_height"]) for r in rows] == [(32, 32)] * 2
        if method == "letterbox":
            assert all("cannot load" in r["fallback_reason"] for r in rows)
            assert result.stderr.count("warning") == 1
        else:
            assert all(r["fallback_reason"] is None for r in rows)
            assert read_frames(rows[0]["output_path"]).shape == (2, 32, 32, 3)


def test_usage_errors_are_one_line_exit_2(tmp_path: Path) -> None:
    import pyarrow as pa

    meta = write(pa.table({"path": ["a.mp4"]}), tmp_path / "m.csv")
    for args, text in (
        (("--metadata", str(meta)), "no column 'video_path'"),
        (("--metadata", str(tmp_path / "nope.csv")), "not found"),
        (("x.mp4", "--method", "magic"), "unknown method"),
        (("x.mp4", "--target-size", "33"), "even"),
        ((), "give input videos"),
    ):
        result = vt(*args, cwd=tmp_path)
        assert result.returncode == 2, (args, result.stderr)
        assert text in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "data").exists()


def test_shards_split_the_rows_and_write_their_own_tables(tmp_path: Path) -> None:
    import pyarrow as pa

    from vt_vae_scale.table import read_table

    clips = {f"s{i}.mp4": (32, 24) for i in range(3)}
    root = project(tmp_path, clips, frames=2)
    meta = write(pa.table({"video_path": list(clips)}), root / "m.csv")
    statuses = []
    for shard in ("0/2", "1/2"):
        result = vt(
            "--metadata",
            str(meta),
            "--target-size",
            "32",
            "--preset",
            "ultrafast",
            "--shard",
            shard,
            "-q",
            cwd=root,
        )
        assert result.returncode == 0, result.stderr
        part = shard.replace("/", "-of-")
        rows = read_table(
            root / "data" / "scaled_videos" / f"scaled_metadata.shard-{part}.csv"
        ).to_pylist()
        statuses.append([r["status"] for r in rows])
    assert statuses == [["done", None, "done"], [None, "done", None]]
