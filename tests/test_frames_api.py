"""The frame contracts plugins build on: FrameBatch forms, processor attributes, frame order,
the ProcessorChain session API, generated video and colour tags."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from vt.errors import UsageError, VtError
from vt.media import frames as frames_module
from vt.media.encode import EncoderConfig
from vt.media.frames import FrameBatch, FrameFormat
from vt.media.info import probe
from vt.media.pipeline import PipelineOptions, process_video, write_video
from vt.media.processing import FrameProcessor, ProcessorChain
from vt.testing import make_video

FAST = EncoderConfig(preset="ultrafast")
CPU = torch.device("cpu")


def video_pts(path: Path) -> list[int]:
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        return sorted(round(float(f.pts * f.time_base) * 1e6) for f in c.decode(s))


def host_batch(n: int = 4, start: int = 0, width: int = 8, height: int = 6) -> FrameBatch:
    rng = np.random.default_rng(start)
    images = rng.integers(0, 256, (n, height, width, 3), dtype=np.uint8)
    return FrameBatch(
        images, list(range(start, start + n)), Fraction(1, 25), list(range(start, start + n))
    )


# -- FrameBatch forms -------------------------------------------------------------------------
def test_tensor_batch_converts_once_lazily_and_keeps_the_tensor(monkeypatch) -> None:
    calls: list[int] = []
    original = frames_module.tensor_to_array
    monkeypatch.setattr(
        frames_module, "tensor_to_array", lambda t, fmt: calls.append(1) or original(t, fmt)
    )
    tensor = torch.rand(2, 3, 6, 8)
    before = tensor.clone()
    batch = FrameBatch(tensor, [0, 1], Fraction(1, 25), [0, 1])
    assert (len(batch), batch.width, batch.height) == (2, 8, 6)
    assert batch.has_tensor and not batch.has_array and batch.device == CPU
    assert batch.to_tensor() is tensor and batch.to_tensor(CPU, torch.float32) is tensor
    assert calls == []  # nothing converted yet
    images = batch.images
    assert batch.images is images and calls == [1]  # converted once, cached
    assert images.dtype == np.uint8 and images.shape == (2, 6, 8, 3)
    assert np.array_equal(images[0, 2, 3], np.round(tensor[0, :, 2, 3].numpy() * 255))
    assert torch.equal(tensor, before)  # the conversion did not touch the caller's tensor


def test_host_batch_round_trips_through_the_tensor_form() -> None:
    for layout, dtype, top in (("rgb24", np.uint8, 255), ("rgb48", np.uint16, 65535)):
        images = np.random.default_rng(1).integers(0, top + 1, (3, 5, 7, 3), dtype=dtype)
        batch = FrameBatch(images, [0, 1, 2], Fraction(1, 25), [0, 1, 2], layout)
        t = batch.to_tensor()
        assert t.shape == (3, 3, 5, 7) and t.dtype == torch.float32
        assert batch.to_tensor() is t  # cached: one conversion
        back = batch.from_tensor(t * 1.0)
        assert not back.has_array and np.array_equal(back.images, images)
        assert back.pts == batch.pts and back.layout == layout


def test_slices_and_concat_keep_the_form() -> None:
    tensor = torch.rand(5, 3, 4, 6)
    batch = FrameBatch(tensor, [10, 20, 30, 40, 50], Fraction(1, 100), [0, 1, 2, 3, 4])
    head, tail = batch[:2], batch[2:]
    assert head.pts == [10, 20] and tail.indices == [2, 3, 4] and not tail.has_array
    joined = FrameBatch.concat([head, tail])
    assert not joined.has_array and torch.equal(joined.to_tensor(), tensor)
    mixed = FrameBatch.concat([host_batch(2), host_batch(3, start=2)])
    assert mixed.has_array and not mixed.has_tensor and len(mixed) == 5
    with pytest.raises(ValueError, match="floating point"):
        FrameBatch(torch.zeros(1, 3, 4, 4, dtype=torch.uint8), [0], Fraction(1), [0])


class TorchGain(FrameProcessor):
    """A torch processor: works on the tensor form, records what it was given."""

    layouts = ("rgb24", "rgb48")

    def __init__(self, name: str, gain: float, batch_size: int = 1) -> None:
        self.name, self.gain, self.batch_size = name, gain, batch_size
        self.seen: list[tuple[bool, bool, torch.device | None, int]] = []
        self.outputs: list[int] = []

    def process(self, batch: FrameBatch) -> FrameBatch:
        self.seen.append(
            (
                batch.has_tensor,
                batch.has_array,
                batch.device,
                batch.to_tensor(CPU).data_ptr() if batch.has_tensor else 0,
            )
        )
        out = batch.to_tensor(CPU) * self.gain
        self.outputs.append(out.data_ptr())
        return batch.from_tensor(out)


def test_two_torch_processors_chain_without_a_host_copy(tmp_path: Path, monkeypatch) -> None:
    conversions: list[str] = []
    original = frames_module.tensor_to_array

    def counting(tensor, layout):
        conversions.append(threading.current_thread().name)
        return original(tensor, layout)

    monkeypatch.setattr(frames_module, "tensor_to_array", counting)
    src = make_video(tmp_path / "in.mp4", frames=12)
    first, second = TorchGain("sd", 0.5, batch_size=2), TorchGain("upscaler", 2.0, batch_size=2)
    report = process_video(src, tmp_path / "out.mp4", [first, second], config=FAST)
    assert report.frames_out == 12
    # the second processor got the first one's tensor itself: same storage, no host array
    assert [s[:3] for s in second.seen] == [(True, False, CPU)] * 6
    assert [s[3] for s in second.seen] == first.outputs
    # one host conversion per written batch, in the encoder thread, none inside the chain
    assert len(conversions) == 6 and set(conversions) == {"vt-encode"}


def test_images_are_never_touched_inside_a_torch_chain(monkeypatch) -> None:
    def refuse(tensor, layout):
        raise AssertionError("host conversion inside the chain")

    monkeypatch.setattr(frames_module, "tensor_to_array", refuse)
    chain = ProcessorChain([TorchGain("a", 0.5, 3), TorchGain("b", 1.5, 2)])
    out = [b for batch in (host_batch(4), host_batch(4, start=4)) for b in chain.feed(batch)]
    out += list(chain.flush())
    assert [b.pts for b in out] == [[0, 1], [2, 3], [4, 5], [6, 7]]
    assert all(b.has_tensor and not b.has_array and b.device == CPU for b in out)
    # the next stream may have another size: its first batch configures the chain again
    small = list(chain.feed(host_batch(2, width=4, height=2))) + list(chain.flush())
    assert [b.format.size for b in small] == [(4, 2)] and chain.formats[0].size == (4, 2)
    list(chain.feed(host_batch(1)))
    with pytest.raises(VtError, match="frames changed from 8x6 rgb24 to 4x2 rgb24 mid-stream"):
        list(chain.feed(host_batch(1, width=4, height=2)))


# -- processor attributes ---------------------------------------------------------------------
class Recorder(FrameProcessor):
    """Identity on the host form; records the batch sizes and the flushes it got."""

    def __init__(
        self, name: str, batch_size: int = 1, temporal: bool = False, hold: int = 0
    ) -> None:
        self.name, self.batch_size, self.temporal, self.hold = name, batch_size, temporal, hold
        self.sizes: list[int] = []
        self.flushes = 0
        self.held: list[FrameBatch] = []

    def process(self, batch: FrameBatch) -> FrameBatch | None:
        self.sizes.append(len(batch))
        if not self.hold:
            return batch.with_images(batch.images.copy())
        self.held.append(batch)  # temporal: keep the last ``hold`` frames back
        joined = FrameBatch.concat(self.held)
        ready, self.held = joined[: -self.hold], [joined[-self.hold :]]
        return ready if len(ready) else None

    def flush(self) -> list[FrameBatch]:
        self.flushes += 1
        out, self.held = self.held, []
        return out


def test_each_stage_gets_its_own_batch_size(tmp_path: Path) -> None:
    src = make_video(tmp_path / "in.mp4", frames=10)
    one, four, three, single = (
        Recorder("one", 1),
        Recorder("four", 4),
        Recorder("three", 3),
        Recorder("single", 1),
    )
    report = process_video(src, tmp_path / "out.mp4", [one, four, three, single], config=FAST)
    assert report.frames_out == 10
    assert one.sizes == [1] * 10
    assert four.sizes == [4, 4, 2]  # rebatched; only the tail is short
    assert three.sizes == [3, 3, 3, 1]
    assert single.sizes == [1] * 10  # a big batch is cut down again


def test_temporal_processor_is_flushed_at_the_end_and_at_end_time(tmp_path: Path) -> None:
    src = make_video(tmp_path / "in.mkv", frames=24, fps=24)
    whole = Recorder("hold3", batch_size=2, temporal=True, hold=3)
    report = process_video(src, tmp_path / "all.mkv", [whole], config=FAST)
    assert report.frames_out == 24 and whole.flushes == 1
    assert video_pts(tmp_path / "all.mkv") == video_pts(src)
    cut = Recorder("hold3", batch_size=2, temporal=True, hold=3)
    report = process_video(
        src, tmp_path / "cut.mkv", [cut], config=FAST, options=PipelineOptions(end=0.5)
    )
    assert report.frames_out == 12 and cut.flushes == 1  # the held frames came out at --end
    assert sum(cut.sizes) == 12
    assert len(video_pts(tmp_path / "cut.mkv")) == 12


def test_layouts_and_devices_are_checked_when_configuring() -> None:
    class DeepOnly(FrameProcessor):
        name, layouts = "deep-only", ("rgb48",)

    with pytest.raises(UsageError, match="deep-only takes rgb48 frames, not rgb24"):
        ProcessorChain([DeepOnly()]).configure(FrameFormat(8, 6))
    assert ProcessorChain([DeepOnly()]).layout_for(10) == "rgb48"
    assert ProcessorChain([DeepOnly(), Recorder("r")]).layout_for(10) == "rgb24"

    class OldName(FrameProcessor):  # a plugin written against the old attribute name
        name, pixel_formats = "old-name", ("rgb24", "rgb48")

    with pytest.raises(TypeError, match="OldName.pixel_formats is now called 'layouts'"):
        ProcessorChain([OldName()]).configure(FrameFormat(8, 6))

    class GpuOnly(FrameProcessor):
        name, devices = "gpu-only", ("cuda",)

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(VtError, match="gpu-only runs on cuda, and none is available here"):
        ProcessorChain([GpuOnly()]).configure(FrameFormat(8, 6))


# -- frame order ------------------------------------------------------------------------------
class Reverser(FrameProcessor):
    name, batch_size = "reverser", 4

    def process(self, batch: FrameBatch) -> FrameBatch:
        return FrameBatch(
            batch.images[::-1].copy(), batch.pts[::-1], batch.time_base, batch.indices[::-1]
        )


class Repeater(FrameProcessor):
    name, batch_size = "repeater", 2

    def process(self, batch: FrameBatch) -> FrameBatch:
        return batch.with_timing([batch.pts[0]] * len(batch))


def test_a_processor_that_reorders_frames_is_an_error_naming_it(tmp_path: Path) -> None:
    src = make_video(tmp_path / "in.mp4", frames=8)
    with pytest.raises(
        VtError,
        match=r"processor reverser returned frames out of order "
        r"\(pts \d+ after pts \d+\)",
    ):
        process_video(src, tmp_path / "out.mp4", [Reverser()], config=FAST)
    assert not (tmp_path / "out.mp4").exists()


def test_a_processor_that_repeats_a_pts_is_an_error(tmp_path: Path) -> None:
    src = make_video(tmp_path / "in.mp4", frames=8)
    with pytest.raises(VtError, match="processor repeater returned pts 0 twice"):
        process_video(src, tmp_path / "out.mp4", [Repeater()], config=FAST)
    chain = ProcessorChain([Recorder("ok")])
    list(chain.feed(host_batch(2)))

    class Inventor(FrameProcessor):
        name = "inventor"

        def process(self, batch: FrameBatch) -> FrameBatch:
            return batch.with_timing([p + 100 for p in batch.pts])

    with pytest.raises(VtError, match="inventor returned pts 100, which it was not given"):
        list(ProcessorChain([Inventor()]).feed(host_batch(1)))


class HoldOneFailOn(FrameProcessor):
    """Temporal: returns each frame one call late; fails on the frames in ``bad``."""

    name, temporal = "delay", True

    def __init__(self, bad: set[int]) -> None:
        self.bad = bad
        self.held: FrameBatch | None = None

    def process(self, batch: FrameBatch) -> FrameBatch | None:
        if set(batch.indices) & self.bad:
            raise RuntimeError("model exploded")
        out, self.held = self.held, batch.with_images(255 - batch.images)
        return out

    def flush(self) -> list[FrameBatch]:
        out, self.held = self.held, None
        return [out] if out is not None else []


def test_passed_through_frames_wait_behind_held_frames(tmp_path: Path) -> None:
    chain = ProcessorChain([HoldOneFailOn({5})], "pass")
    chain.configure(FrameFormat(8, 6))
    order: list[int] = []
    for i in range(10):
        for out in chain.feed(host_batch(1, start=i)):
            order += out.indices
    for out in chain.flush():
        order += out.indices
    # frame 4 was still held when frame 5 failed: 5 (passed through) comes after it
    assert order == list(range(10)) and chain.frame_errors == 1
    src = make_video(tmp_path / "in.mkv", frames=10)
    report = process_video(
        src,
        tmp_path / "out.mkv",
        [HoldOneFailOn({5})],
        config=FAST,
        options=PipelineOptions(error_policy="pass"),
    )
    assert report.frame_errors == 1 and report.frames_out == 10
    assert not any("repeats timestamps" in w for w in report.warnings)
    assert video_pts(tmp_path / "out.mkv") == video_pts(src)
    with av.open(str(tmp_path / "out.mkv")) as c:
        frames = [f.to_ndarray(format="rgb24").astype(int) for f in c.decode(video=0)]
    with av.open(str(src)) as c:
        source = [f.to_ndarray(format="rgb24").astype(int) for f in c.decode(video=0)]
    assert np.abs(frames[5] - source[5]).mean() < 6  # passed through, in its place
    assert np.abs(frames[4] - (255 - source[4])).mean() < 6


# -- the session API --------------------------------------------------------------------------
class FakeModel(FrameProcessor):
    """Stands for a processor that loads weights when built: counts builds and configures."""

    builds = 0
    name = "fake-model"

    def __init__(self) -> None:
        FakeModel.builds += 1
        self.weights = np.full(3, 0.5)  # "loaded" once
        self.configured: list[FrameFormat] = []
        self.closed = 0

    def configure(self, fmt: FrameFormat) -> FrameFormat:
        self.configured.append(fmt)
        return fmt

    def process(self, batch: FrameBatch) -> FrameBatch:
        return batch.with_images((batch.images * self.weights).astype(np.uint8))

    def close(self) -> None:
        self.closed += 1


class FailOnce(FrameProcessor):
    name = "fail-once"

    def __init__(self) -> None:
        self.armed = False

    def process(self, batch: FrameBatch) -> FrameBatch:
        if self.armed and 3 in batch.indices:
            self.armed = False
            raise RuntimeError("bad frame")
        return batch


def test_one_chain_processes_several_files_with_the_model_built_once(tmp_path: Path) -> None:
    FakeModel.builds = 0
    sizes = [(64, 48), (64, 48), (32, 24)]
    inputs = [
        make_video(tmp_path / f"in{i}.mp4", frames=6 + i, width=w, height=h)
        for i, (w, h) in enumerate(sizes)
    ]
    model, failing = FakeModel(), FailOnce()
    delay = Recorder("hold2", temporal=True, hold=2)
    with ProcessorChain([model, failing, delay]) as chain:
        reports = [
            chain.run(src, tmp_path / f"out{i}.mp4", config=FAST) for i, src in enumerate(inputs)
        ]
        with pytest.raises(VtError, match="input not found"):
            chain.run(tmp_path / "missing.mp4", tmp_path / "x.mp4", config=FAST)
        failing.armed = True  # this file fails half-way, with frames held in ``delay``
        with pytest.raises(VtError, match="fail-once failed on frame 3"):
            chain.run(inputs[1], tmp_path / "failed.mp4", config=FAST)
        assert model.closed == 0  # still open between files
        again = chain.run(inputs[0], tmp_path / "again.mp4", config=FAST)
    assert FakeModel.builds == 1 and model.closed == 1
    # configured again only when the format changed (64x48 -> 32x24 -> 64x48)
    assert [f.size for f in model.configured] == [(64, 48), (32, 24), (64, 48)]
    assert [r.frames_out for r in reports] == [6, 7, 8] and again.frames_out == 6
    # nothing the failed file left in ``delay`` leaked into the next one
    assert video_pts(tmp_path / "again.mp4") == video_pts(inputs[0])
    assert not (tmp_path / "failed.mp4").exists()
    assert delay.flushes == 5  # flushed at the end of every file (and to drop the failed one)
    for i, src in enumerate(inputs):
        assert video_pts(tmp_path / f"out{i}.mp4") == video_pts(src)
        assert probe(tmp_path / f"out{i}.mp4").video.width == sizes[i][0]


def test_a_run_without_torch_processors_never_imports_torch(tmp_path: Path) -> None:
    src = make_video(tmp_path / "in.mp4", frames=4)
    script = f"""
import sys
import numpy as np
from vt.media.encode import EncoderConfig
from vt.media.pipeline import process_video
from vt.media.processing import FrameProcessor
from vt.processors.resize import Resize

class Invert(FrameProcessor):
    name = "invert"
    def process(self, batch):
        return batch.with_images(255 - batch.images)

fast = EncoderConfig(preset="ultrafast")
process_video({str(src)!r}, {str(tmp_path / "a.mp4")!r}, config=fast)
process_video({str(src)!r}, {str(tmp_path / "b.mp4")!r}, [Invert(), Resize(scale=2)], config=fast)
print("torch" in sys.modules)
"""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
    assert (tmp_path / "b.mp4").exists()


# -- generated video --------------------------------------------------------------------------
def green_frames(count: int, width: int, height: int, batch: int = 4):
    for start in range(0, count, batch):
        n = min(batch, count - start)
        images = np.zeros((n, height, width, 3), np.uint8)
        images[..., 1] = 255
        yield FrameBatch(images, [None] * n, Fraction(1, 24), list(range(start, start + n)))


class Invert(FrameProcessor):
    name = "invert"

    def process(self, batch: FrameBatch) -> FrameBatch:
        return batch.with_images(255 - batch.images)


def test_write_video_with_processors_progress_and_audio(tmp_path: Path) -> None:
    sound = make_video(tmp_path / "sound.mp4", frames=72, fps=24, audio=True)  # 3 s of audio
    seen: list[tuple[int, int | None]] = []
    out = tmp_path / "gen.mp4"
    report = write_video(
        green_frames(48, 64, 48),
        out,
        fps=24,
        processors=[Invert()],
        config=FAST,
        audio=sound,
        total=48,
        progress=lambda done, total: seen.append((done, total)),
    )
    assert report.frames_out == 48 and report.audio == "copied"
    assert seen[-1] == (48, 48) and [d for d, _ in seen] == sorted(d for d, _ in seen)
    info = probe(out)
    assert info.video.frame_count == 48 and len(info.audio) == 1
    with av.open(str(out)) as c:
        frame = next(c.decode(video=0)).to_ndarray(format="rgb24")
    with av.open(str(out)) as c:
        audio = c.streams.audio[0]
        end = max(float((p.pts + p.duration) * p.time_base) for p in c.demux(audio) if p.size)
    assert 2.0 - 0.025 <= end <= 2.0 + 0.025  # cut to the 2 s of video, to the packet
    assert frame[..., 1].mean() < 10 and frame[..., 0].mean() > 245  # inverted green
    with pytest.raises(UsageError, match="no audio stream"):
        write_video(
            green_frames(2, 64, 48),
            tmp_path / "x.mp4",
            fps=24,
            config=FAST,
            audio=make_video(tmp_path / "mute.mp4", frames=2),
        )
    with pytest.raises(UsageError, match="increasing PTS"):
        write_video(
            [FrameBatch(np.zeros((2, 8, 8, 3), np.uint8), [3, 3], Fraction(1, 24), [0, 1])],
            tmp_path / "y.mp4",
            fps=24,
            config=FAST,
        )


# -- colour -----------------------------------------------------------------------------------
def flat_yuv_video(
    path: Path, width: int, height: int, yuv: tuple[int, int, int], frames: int = 3
) -> Path:
    """A lossless, untagged yuv420p clip of one flat colour."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("ffv1", rate=24)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(frames):
            frame = av.VideoFrame(width, height, "yuv420p")
            for plane, value in zip(frame.planes, yuv):
                plane.update(np.full(plane.buffer_size, value, np.uint8).tobytes())
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def rgb_of(yuv: tuple[int, int, int], matrix: str) -> np.ndarray:
    """Limited-range YUV -> RGB with the BT.709 or BT.601 coefficients."""
    kr, kb = {"bt709": (0.2126, 0.0722), "bt601": (0.299, 0.114)}[matrix]
    y, u, v = (yuv[0] - 16) * 255 / 219, (yuv[1] - 128) * 255 / 224, (yuv[2] - 128) * 255 / 224
    r = y + 2 * (1 - kr) * v
    b = y + 2 * (1 - kb) * u
    g = (y - kr * r - kb * b) / (1 - kr - kb)
    return np.array([r, g, b])


class Capture(FrameProcessor):
    """An RGB processor (forces the RGB path) that keeps the first frame it sees."""

    name = "capture"

    def __init__(self) -> None:
        self.first: np.ndarray | None = None

    def process(self, batch: FrameBatch) -> FrameBatch:
        if self.first is None:
            self.first = batch.images[0].astype(float)
        return batch


def color_tags(path: Path) -> tuple[str, str, str]:
    from vt.media.info import COLOR_PRIMARIES, COLOR_SPACES, COLOR_TRCS

    with av.open(str(path)) as c:
        cc = c.streams.video[0].codec_context
        return (
            COLOR_SPACES[cc.colorspace],
            COLOR_PRIMARIES[cc.color_primaries],
            COLOR_TRCS[cc.color_trc],
        )


@pytest.mark.parametrize(
    ("height", "matrix", "tags"),
    [
        (720, "bt709", ("bt709", "bt709", "bt709")),
        (480, "bt601", ("smpte170m", "smpte170m", "smpte170m")),
    ],
)
def test_untagged_source_is_read_and_tagged_like_players_do(
    tmp_path: Path, height: int, matrix: str, tags: tuple
) -> None:
    yuv = (100, 90, 170)
    src = flat_yuv_video(tmp_path / "in.mkv", height * 16 // 9 // 2 * 2, height, yuv)
    assert probe(src).video.color_space is None  # untagged
    capture = Capture()
    out = tmp_path / "out.mkv"
    process_video(src, out, [capture], config=EncoderConfig(codec="ffv1"))
    assert capture.first is not None
    seen = capture.first[height // 2, height // 2]
    other = "bt601" if matrix == "bt709" else "bt709"
    assert np.abs(seen - rgb_of(yuv, matrix)).max() <= 3  # converted with that matrix
    assert np.abs(seen - rgb_of(yuv, other)).max() > 5  # (and the two differ here)
    assert color_tags(out) == tags
    with av.open(str(out)) as c:  # encoded back with the same matrix: Y survives (within
        planes = next(c.decode(video=0)).to_ndarray()  # libswscale's 8-bit rounding; the
    assert abs(int(np.median(planes[:height])) - yuv[0]) <= 2  # other matrix is 4-6 off)


@pytest.mark.parametrize("decoder", ["torchcodec", "decord"])
def test_decoders_that_convert_themselves_tag_what_they_used(tmp_path: Path, decoder: str) -> None:
    from vt.media.decoders.optional_readers import decord_available, torchcodec_available

    reason = {"torchcodec": torchcodec_available, "decord": decord_available}[decoder]()
    if reason:
        pytest.skip(reason)
    yuv = (100, 90, 170)
    src = flat_yuv_video(tmp_path / "in.mkv", 1280, 720, yuv)
    capture, out = Capture(), tmp_path / "out.mkv"
    process_video(
        src,
        out,
        [capture],
        config=EncoderConfig(codec="ffv1"),
        options=PipelineOptions(decoder=decoder),
    )
    # FFmpeg's default (BT.601) for an untagged source, whatever its height: say so
    assert np.abs(capture.first[360, 360] - rgb_of(yuv, "bt601")).max() <= 3
    assert color_tags(out) == ("smpte170m", "smpte170m", "smpte170m")


@pytest.mark.parametrize(
    ("size", "choice", "tags", "luma"),
    [
        ((1280, 720), None, ("bt709", "bt709", "bt709"), 173),
        ((640, 360), None, ("smpte170m", "smpte170m", "smpte170m"), 145),
        ((1280, 720), "bt601", ("smpte170m", "smpte170m", "smpte170m"), 145),
    ],
)
def test_write_video_tags_the_matrix_it_used(
    tmp_path: Path, size: tuple[int, int], choice: str | None, tags: tuple, luma: int
) -> None:
    out = tmp_path / "gen.mkv"
    write_video(
        green_frames(2, *size), out, fps=24, config=EncoderConfig(codec="ffv1"), colorspace=choice
    )
    assert color_tags(out) == tags
    with av.open(str(out)) as c:
        y = next(c.decode(video=0)).to_ndarray()[: size[1]]
    # pure green: Y = 16 + 219 * Kg, Kg 0.7152 (BT.709) or 0.587 (BT.601)
    assert abs(int(np.median(y)) - luma) <= 1
    with pytest.raises(UsageError, match="unknown colour matrix"):
        write_video(green_frames(1, 8, 8), tmp_path / "bad.mkv", fps=24, colorspace="xyz")


class ThreadSpy(FrameProcessor):
    """Records which vt threads exist while frames are processed."""

    name = "thread-spy"

    def __init__(self) -> None:
        self.seen: set[str] = set()

    def process(self, batch: FrameBatch) -> FrameBatch:
        self.seen |= {t.name for t in threading.enumerate() if t.name.startswith("vt-")}
        return batch.with_images(255 - batch.images)


@pytest.mark.parametrize("native", [False, True], ids=["rgb", "native"])
def test_single_thread_job_gives_the_same_output_without_helper_threads(
    tmp_path: Path, native: bool
) -> None:
    src = make_video(tmp_path / "in.mkv", frames=12, width=64, height=48, audio=True)
    lossless = EncoderConfig(codec="ffv1")
    outputs = []
    for single in (False, True):
        spy = ThreadSpy()
        out = tmp_path / f"out-{single}.mkv"
        report = process_video(
            src,
            out,
            [] if native else [spy],
            config=lossless,
            options=PipelineOptions(single_thread=single),
        )
        assert report.frames_out == 12 and report.audio == "copied"
        if not native:
            assert bool(spy.seen) is not single, (
                spy.seen
            )  # vt-decode/vt-encode only when overlapping
        with av.open(str(out)) as c:
            outputs.append([(f.pts, f.to_ndarray().tobytes()) for f in c.decode(video=0)])
    assert outputs[0] == outputs[1]


def test_single_thread_sets_one_encoder_and_decoder_thread(tmp_path: Path, monkeypatch) -> None:
    from vt.media.encode import container

    counts: list[int] = []
    original = container.ContainerWriter._setup_video

    def spy(self, *args, **kwargs):
        original(self, *args, **kwargs)
        counts.append(self.out.streams.video[0].codec_context.thread_count)

    monkeypatch.setattr(container.ContainerWriter, "_setup_video", spy)
    src = make_video(tmp_path / "in.mkv", frames=4, width=64, height=48)
    process_video(src, tmp_path / "a.mp4", config=FAST, options=PipelineOptions(single_thread=True))
    assert counts == [1]
