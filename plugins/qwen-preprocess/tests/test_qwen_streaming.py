"""Outputs streamed to files (``preprocess_to_file``, ``-o x.npy|.npz|.safetensors|folder``):
the same bytes as the in-memory save, nothing under the final name after a failure, memory
that does not grow with the frame count, the disk cache, and no torch import."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tracemalloc

import numpy as np
import pytest
import torch
from PIL import Image
from qwen_test_helpers import needs_decoder

from vt.errors import InputError, OutputError, UsageError
from vt_qwen_preprocess import pipeline, preprocess
from vt_qwen_preprocess.outputs import save, to_numpy
from vt_qwen_preprocess.pipeline import preprocess_to_file

CONFIGS = [
    {"dtype": "uint8"},
    {},  # float32, 0..255, TCHW
    {"dtype": "float16", "normalize": True, "channel_order": "bgr", "layout": "THWC"},
    {"dtype": "bfloat16", "rescale": True},
]


def _ids(opts: dict) -> str:
    return ",".join(f"{k}={v}" for k, v in opts.items()) or "float32"


def _leftovers(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize("opts", CONFIGS, ids=_ids)
def test_streamed_npy_is_byte_identical_to_the_in_memory_save(bikes, tmp_path, opts):
    streamed, saved = tmp_path / "streamed.npy", tmp_path / "saved.npy"
    result = preprocess_to_file(bikes, streamed, nframes=6, cache=False, **opts)
    save(preprocess(bikes, nframes=6, cache=False, **opts), saved)
    assert result.frames is None and result.output == streamed
    assert streamed.read_bytes() == saved.read_bytes()
    back = np.load(streamed)
    assert back.shape == tuple(result.shape) and back.shape[0] == 6


@pytest.mark.parametrize("opts", CONFIGS, ids=_ids)
def test_streamed_safetensors_is_what_the_safetensors_library_writes(bikes, tmp_path, opts):
    from safetensors.numpy import load_file
    from safetensors.torch import save_file

    streamed, saved = tmp_path / "streamed.safetensors", tmp_path / "saved.safetensors"
    reference = tmp_path / "library.safetensors"
    preprocess_to_file(bikes, streamed, nframes=6, cache=False, **opts)
    memory = preprocess(bikes, nframes=6, cache=False, **opts)
    save(memory, saved)
    save_file(
        {"frames": memory.frames.contiguous()},
        str(reference),
        metadata={"metadata": json.dumps(memory.file_metadata(), default=str)},
    )
    assert streamed.read_bytes() == saved.read_bytes() == reference.read_bytes()
    header = json.loads(load_metadata(streamed)["metadata"])
    assert header["frame_indices"] == memory.plan.indices and header["shape"] == list(
        memory.frames.shape
    )
    if opts.get("dtype") != "bfloat16":  # NumPy has no bfloat16 to read it back as
        assert np.array_equal(load_file(str(streamed))["frames"], to_numpy(memory))


def load_metadata(path) -> dict[str, str]:
    from safetensors import safe_open

    with safe_open(str(path), "np") as f:
        return f.metadata()


def test_frame_lists_stream_too(tmp_path):
    # 5 frames are padded to 6 with the last one (the frame factor), written in order
    frames = np.random.default_rng(1).integers(0, 256, (5, 90, 120, 3), dtype=np.uint8)
    preprocess_to_file(frames, tmp_path / "streamed.npy", cache=False)
    save(preprocess(frames, cache=False), tmp_path / "saved.npy")
    assert (tmp_path / "streamed.npy").read_bytes() == (tmp_path / "saved.npy").read_bytes()
    assert np.load(tmp_path / "streamed.npy").shape[0] == 6


def test_streamed_npz_holds_what_save_holds(bikes, tmp_path):
    streamed, saved = tmp_path / "streamed.npz", tmp_path / "saved.npz"
    preprocess_to_file(bikes, streamed, nframes=6, cache=False, dtype="float16")
    save(preprocess(bikes, nframes=6, cache=False, dtype="float16"), saved)
    with np.load(streamed) as a, np.load(saved) as b:
        assert a.files == b.files == ["frames", "frame_indices", "metadata"]
        assert a["frames"].dtype == np.float16
        assert a["frames"].tobytes() == b["frames"].tobytes()
        assert np.array_equal(a["frame_indices"], b["frame_indices"])
        ma, mb = json.loads(str(a["metadata"])), json.loads(str(b["metadata"]))
        for record in (ma, mb):
            record.pop("timing")
        assert ma == mb


def test_streamed_folder_holds_the_resized_frames(bikes, tmp_path):
    folder = tmp_path / "frames"
    result = preprocess_to_file(bikes, folder, nframes=4, cache=False, normalize=True)
    pixels = preprocess(bikes, nframes=4, cache=False, dtype="uint8", layout="THWC").frames
    names = _leftovers(folder)
    assert names == [".vt-frames", *(f"frame_{i:06d}.png" for i in range(4)), "metadata.json"]
    for i in range(4):  # lossless PNG of the frames before normalisation
        assert np.array_equal(
            np.asarray(Image.open(folder / f"frame_{i:06d}.png")), pixels[i].numpy()
        )
    meta = json.loads((folder / "metadata.json").read_text())
    assert meta["frame_indices"] == result.plan.indices and meta["num_frames"] == 4


def _failing_resizer(monkeypatch, after: int, exc: BaseException) -> None:
    real = pipeline.make_resizer

    def make(*args):
        resize, calls = real(*args), []

        def resize_or_fail(frame):
            calls.append(1)
            if len(calls) > after:
                raise exc
            return resize(frame)

        return resize_or_fail

    monkeypatch.setattr(pipeline, "make_resizer", make)


@pytest.mark.parametrize("name", ["out.npy", "out.npz", "out.safetensors", "frames"])
@pytest.mark.parametrize(
    "exc", [InputError("decoding failed mid-stream"), KeyboardInterrupt()], ids=["error", "ctrl-c"]
)
def test_a_failure_midway_leaves_nothing_under_the_final_name(
    bikes, tmp_path, monkeypatch, name, exc
):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    _failing_resizer(monkeypatch, 3, exc)
    with pytest.raises(type(exc)):
        preprocess_to_file(bikes, out_dir / name, nframes=8, cache=False, decoders=("pyav",))
    assert _leftovers(out_dir) == []  # no final file, no temporary left behind


def test_an_existing_file_is_kept_unless_overwrite(bikes, tmp_path, monkeypatch):
    target = tmp_path / "out.npy"
    target.write_bytes(b"keep me")
    with pytest.raises(OutputError, match="exists"):
        preprocess_to_file(bikes, target, nframes=2, cache=False)
    assert target.read_bytes() == b"keep me"
    _failing_resizer(monkeypatch, 1, InputError("boom"))  # a failed --overwrite keeps it too
    with pytest.raises(InputError):
        preprocess_to_file(bikes, target, nframes=4, cache=False, overwrite=True)
    assert target.read_bytes() == b"keep me"
    monkeypatch.undo()
    preprocess_to_file(bikes, target, nframes=2, cache=False, overwrite=True)
    assert np.load(target).shape[0] == 2


def test_pt_and_json_are_not_streamed(bikes, tmp_path):
    for name in ("x.pt", "x.json"):
        with pytest.raises(UsageError, match="streamed"):
            preprocess_to_file(bikes, tmp_path / name, nframes=2, cache=False)
    with pytest.raises(UsageError, match="holds arrays"):
        preprocess_to_file(bikes, tmp_path / "x.npy", nframes=2, cache=False, fmt="openai")


def _peak_bytes(clip, path, nframes: int) -> int:
    tracemalloc.start()
    try:
        preprocess_to_file(clip, path, nframes=nframes, cache=False, decoders=("pyav",), threads=1)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_does_not_grow_with_the_frame_count(bikes, tmp_path, monkeypatch):
    # NumPy reports its buffers to tracemalloc (the streamed path allocates nothing else):
    # the peak is what was held at once
    frame_bytes = 3 * 280 * 644 * 4  # one float32 output frame
    few = _peak_bytes(bikes, tmp_path / "few.npy", 8)
    many = _peak_bytes(bikes, tmp_path / "many.npy", 96)
    assert np.load(tmp_path / "many.npy", mmap_mode="r").shape == (96, 3, 280, 644)
    assert many < few + 2 * frame_bytes  # 88 more frames written, not held
    assert many < 12 * frame_bytes  # a few frames (decoded, resized, converted), not 96
    # the measure sees frames that are kept: a writer holding each one peaks at all of them
    from vt_qwen_preprocess.writers import NpyWriter

    kept, real_write = [], NpyWriter._write
    monkeypatch.setattr(NpyWriter, "_write", lambda self, f: (kept.append(f), real_write(self, f)))
    assert _peak_bytes(bikes, tmp_path / "kept.npy", 96) > 90 * frame_bytes


def test_disk_cache_fills_from_and_serves_streamed_outputs(bikes, tmp_path, monkeypatch):
    from vt.media.decoders.pyav_reader import PyAVReader

    cache = tmp_path / "cache"
    first = preprocess_to_file(
        bikes, tmp_path / "a.npy", nframes=6, cache_dir=str(cache), dtype="uint8", layout="THWC"
    )
    assert first.cache_hit is None
    entries = [p for p in cache.iterdir() if p.suffix == ".npy"]
    assert len(entries) == 1
    assert np.array_equal(np.load(entries[0]), np.load(tmp_path / "a.npy"))

    def no_decoding(self, *args, **kwargs):
        raise AssertionError("decoded although the disk cache holds the frames")

    monkeypatch.setattr(PyAVReader, "frames_at", no_decoding)
    second = preprocess_to_file(
        bikes, tmp_path / "b.safetensors", nframes=6, cache_dir=str(cache), normalize=True
    )
    assert second.cache_hit == "disk"
    monkeypatch.undo()
    memory = preprocess(bikes, nframes=6, cache=False, normalize=True)
    save(memory, tmp_path / "c.safetensors")
    assert (tmp_path / "b.safetensors").read_bytes() == (tmp_path / "c.safetensors").read_bytes()
    # and an in-memory run is served by the entry the streamed run wrote
    third = preprocess(bikes, nframes=6, cache_dir=str(cache), normalize=True)
    assert third.cache_hit == "disk" and torch.equal(third.frames, memory.frames)


NO_TORCH_CHILD = """
import sys
from vt_qwen_preprocess.pipeline import preprocess_to_file
kind, out = sys.argv[1], sys.argv[2]
opts = {"dtype": "uint8"} if kind == "uint8" else {"dtype": "bfloat16"} if kind == "bf16" else {}
preprocess_to_file(sys.argv[3], out, nframes=4, cache_dir=sys.argv[4], **opts)
print("torch" in sys.modules)
"""


@pytest.mark.parametrize(
    "kind,name,imports_torch",
    [
        ("uint8", "x.npy", False),
        ("float32", "x.safetensors", False),
        ("float32", "x.npz", False),
        ("float32", "frames", False),
        ("bf16", "x.npy", True),  # bfloat16 needs torch: checked too
    ],
)
def test_file_outputs_do_not_import_torch(bikes, tmp_path, kind, name, imports_torch):
    env = {**os.environ, "VT_LOAD_PLUGINS": "qwen-preprocess"}  # other plugins stay out
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            NO_TORCH_CHILD,
            kind,
            str(tmp_path / name),
            str(bikes),
            str(tmp_path / "cache"),
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(imports_torch)


def test_cli_streams_without_torch(bikes, tmp_path):
    child = (
        "import sys\nfrom vt.cli import main\ntry:\n    main()\nexcept SystemExit as e:\n"
        "    assert not e.code, e.code\nprint('torch' in sys.modules)\n"
    )
    out = tmp_path / "x.npy"
    env = {**os.environ, "VT_LOAD_PLUGINS": "qwen-preprocess"}
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            child,
            "qwen-preprocess",
            str(bikes),
            "--dtype",
            "uint8",
            "--nframes",
            "4",
            "-o",
            str(out),
            "--no-cache",
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "False"
    assert np.load(out).shape == (4, 3, 280, 644)


@needs_decoder("decord")
def test_a_decoder_failing_midway_restarts_the_streamed_file(bikes, tmp_path, monkeypatch):
    from vt.media.decoders.pyav_reader import PyAVReader

    original = PyAVReader.frames_at

    def crashes(self, indices, **kwargs):
        for i, batch in enumerate(original(self, indices, **kwargs)):
            if i == 1:  # after a batch has been written
                raise RuntimeError("simulated decoder crash")
            yield batch

    monkeypatch.setattr(PyAVReader, "frames_at", crashes)
    out = tmp_path / "out" / "x.npy"
    out.parent.mkdir()
    result = preprocess_to_file(bikes, out, nframes=12, cache=False, decoders=("pyav", "decord"))
    assert result.decoder == "decord"
    assert _leftovers(out.parent) == ["x.npy"]  # the failed attempt's temporary is gone
    save(preprocess(bikes, nframes=12, cache=False, decoders=("decord",)), tmp_path / "ref.npy")
    assert out.read_bytes() == (tmp_path / "ref.npy").read_bytes()


def test_cli_writes_safetensors_and_refuses_an_existing_file(bikes, tmp_path):
    from typer.testing import CliRunner

    from vt.cli import create_app

    out = tmp_path / "x.safetensors"
    app, runner = create_app(), CliRunner()
    args = ["qwen-preprocess", str(bikes), "--nframes", "2", "-o", str(out), "--no-cache"]
    first = runner.invoke(app, [*args, "--json"])
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout)["videos"][0]["output"] == str(out)
    assert json.loads(load_metadata(out)["metadata"])["num_frames"] == 2
    again = runner.invoke(app, args)
    assert again.exit_code == 1 and "exists" in again.output and "Traceback" not in again.output
