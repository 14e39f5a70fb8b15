"""Decoders: the fallback chain, forced backends, time ranges, random access, probing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vt.errors import InputError, UsageError
from vt.hookspecs import hookimpl
from vt.media.decode import open_video
from vt.media.decoders.optional_readers import decord_available, torchcodec_available
from vt.media.info import probe
from vt.media.source import Source
from vt.plugins import PluginHost
from vt.registry import DecoderInfo
from vt.testing import make_video

needs_torchcodec = pytest.mark.skipif(
    torchcodec_available() is not None, reason=str(torchcodec_available())
)
needs_decord = pytest.mark.skipif(decord_available() is not None, reason=str(decord_available()))


def test_pyav_is_the_default(host: PluginHost, carphone: Path) -> None:
    with open_video(carphone) as reader:
        assert reader.decoder_name == "pyav"
        batches = list(reader.frames(batch_size=16))
    assert sum(len(b) for b in batches) == 120
    assert [len(b) for b in batches][:7] == [16] * 7
    indices = [i for b in batches for i in b.indices]
    assert indices == list(range(120))


@pytest.mark.parametrize(
    "backend",
    [
        pytest.param("torchcodec", marks=needs_torchcodec),
        pytest.param("decord", marks=needs_decord),
    ],
)
def test_optional_backends_match_pyav(host: PluginHost, bikes: Path, backend: str) -> None:
    wanted = [0, 17, 100, 249]
    with open_video(bikes, decoder="pyav") as ref:
        expected = np.concatenate([b.images for b in ref.frames_at(wanted)])
        expected_pts = [p for b in ref.frames_at(wanted) for p in b.pts]
    with open_video(bikes, decoder=backend) as reader:
        assert reader.decoder_name == backend
        got = list(reader.frames_at(wanted, batch_size=4))
    images = np.concatenate([b.images for b in got])
    assert images.shape == expected.shape == (4, 272, 640, 3)
    assert np.abs(images.astype(int) - expected).mean() < 3  # same frames, RGB rounding aside
    assert [p for b in got for p in b.pts] == expected_pts


def test_priority_order_and_fallback_when_a_decoder_fails(host: PluginHost, carphone: Path) -> None:
    calls = []

    def broken_open(source, **kwargs):
        calls.append(source.describe())
        raise InputError("broken decoder cannot read this")

    @hookimpl
    def register_decoders(register):
        register(DecoderInfo("broken", open=broken_open, priority=1))
        register(
            DecoderInfo("absent", open=broken_open, priority=0, available=lambda: "not installed")
        )

    host.register(
        type("P", (), {"register_decoders": staticmethod(register_decoders)}), "brokenplugin"
    )
    with open_video(carphone) as reader:  # broken (priority 1) fails, pyav takes over
        assert reader.decoder_name == "pyav"
    assert calls == [str(carphone)]
    with pytest.raises(UsageError, match="not available: not installed"):
        open_video(carphone, decoder="absent")
    with open_video(carphone, priority=["pyav", "broken"]) as reader:
        assert reader.decoder_name == "pyav"
    assert len(calls) == 1  # pyav first in the priority: broken never tried


def test_env_priority(host: PluginHost, carphone: Path, monkeypatch) -> None:
    monkeypatch.setenv("VT_DECODER_PRIORITY", "images")
    with pytest.raises(UsageError, match="no decoder can read file sources"):
        open_video(carphone)


def test_time_range_is_frame_accurate(host: PluginHost, bikes: Path) -> None:
    src = Source.parse(bikes, start=2.0, end=3.0)  # 25 fps: frames 50..74
    with open_video(src) as reader:
        batches = list(reader.frames())
    indices = [i for b in batches for i in b.indices]
    times = [t for b in batches for t in b.times]
    assert indices == list(range(50, 75))
    assert times[0] == pytest.approx(2.0) and times[-1] == pytest.approx(2.96)
    with open_video(bikes) as whole:
        full = next(iter(whole.frames_at([50]))).images[0]
    assert np.array_equal(batches[0].images[0], full)


def test_frames_at_decodes_only_requested_and_resizes(host: PluginHost, bikes: Path) -> None:
    with open_video(bikes) as reader:
        got = list(reader.frames_at([3, 1, 3, 200], size=(320, 136), batch_size=2))
    assert [b.indices for b in got] == [[1, 3], [200]]
    assert got[0].images.shape == (2, 136, 320, 3)
    with open_video(bikes) as reader, pytest.raises(InputError, match="has only 250 frames"):
        list(reader.frames_at([10, 400]))


def test_probe_counts_frames_and_detects_vfr(tmp_path: Path) -> None:
    cfr = probe(make_video(tmp_path / "cfr.mkv", frames=30))
    assert cfr.video.frame_count == 30 and cfr.video.frame_count_exact and not cfr.video.vfr
    vfr = probe(make_video(tmp_path / "vfr.mkv", frames=6, pts=[0, 10, 50, 60, 200, 210]))
    assert vfr.video.vfr is True


def test_probe_reports_streams_and_metadata(bigbuckbunny: Path) -> None:
    info = probe(bigbuckbunny)
    v = info.video
    assert (v.codec, v.width, v.height, v.bit_depth, float(v.fps)) == ("h264", 1280, 720, 8, 25)
    assert v.frame_count == 132 and v.duration == pytest.approx(5.28)
    assert info.audio[0].codec == "aac" and info.audio[0].sample_rate == 48000
    data = info.to_dict()
    assert data["video"]["fps"] == {"num": 25, "den": 1, "value": 25.0}


def test_image_sequences(tmp_path: Path) -> None:
    import cv2

    folder = tmp_path / "seq"
    folder.mkdir()
    for i in range(1, 13):  # natural order: 2 before 10
        cv2.imwrite(str(folder / f"f{i}.png"), np.full((8, 10, 3), i * 10, np.uint8))
    with open_video(Source.parse(folder, fps=12)) as reader:
        frames = list(reader.frames())
        assert reader.info.video.duration == pytest.approx(1.0)
    assert [int(b.images[0, 0, 0, 0]) for b in frames] == [i * 10 for i in range(1, 13)]
    with open_video(Source.parse(str(folder / "f*.png"))) as reader:
        assert reader.info.video.frame_count == 12


def _sequential(path, indices, **kw):
    from vt.media.decoders.pyav_reader import PyAVReader

    with PyAVReader(Source.parse(path)) as reader:
        return [
            (b.indices, b.pts, b.images)
            for b in reader._frames_at_sequential(
                sorted(set(indices)), kw.get("size"), "rgb24", "bicubic", 1
            )
        ]


@pytest.mark.parametrize("clip", ["bigbuckbunny", "bikes", "gop10", "hevc", "vfr"])
def test_sparse_frames_at_equals_decoding_everything(clip: str, tmp_path: Path, request) -> None:
    """Seeking over GOPs and skipping unreferenced H.264 pictures changes no frame."""
    from vt.media.decoders.pyav_reader import PyAVReader

    if clip in ("bigbuckbunny", "bikes"):
        path = request.getfixturevalue(clip)
    elif clip == "gop10":  # B-frames and many GOPs: exercises seeking and dropping
        path = make_video(tmp_path / "gop.mp4", frames=90, options={"g": "10", "bf": "3"})
    elif clip == "hevc":
        path = make_video(
            tmp_path / "h.mkv",
            frames=40,
            codec="libx265",
            options={"x265-params": "log-level=error:keyint=10"},
        )
    else:
        path = make_video(
            tmp_path / "v.mkv", frames=12, pts=[0, 5, 9, 30, 31, 60, 90, 91, 150, 151, 152, 300]
        )
    total = probe(path).video.frame_count
    wanted = sorted({0, 1, total // 7, total // 3, total // 2 + 1, total - 2, total - 1})
    with PyAVReader(Source.parse(path)) as reader:
        sparse = [(b.indices, b.pts, b.images) for b in reader.frames_at(wanted)]
    reference = _sequential(path, wanted)
    assert [s[0] for s in sparse] == [r[0] for r in reference] == [[i] for i in wanted]
    assert [s[1] for s in sparse] == [r[1] for r in reference]
    for s, r in zip(sparse, reference):
        assert np.array_equal(s[2], r[2])


def test_disposable_h264_pictures_are_recognised() -> None:
    from vt.media.decoders.pyav_reader import _h264_disposable

    def avcc(*nals: bytes) -> bytes:
        return b"".join(len(n).to_bytes(4, "big") + n for n in nals)

    assert _h264_disposable(avcc(bytes([0x01, 0x88])), 4)  # non-IDR slice, nal_ref_idc 0
    assert not _h264_disposable(avcc(bytes([0x21, 0x88])), 4)  # nal_ref_idc 1
    assert not _h264_disposable(avcc(bytes([0x65, 0x88])), 4)  # IDR
    assert not _h264_disposable(avcc(bytes([0x06, 0x05])), 4)  # SEI only: no slice
    assert _h264_disposable(b"\x00\x00\x01\x01\x88", None)  # Annex B


def test_image_sequence_frames_at_reads_only_wanted(tmp_path: Path) -> None:
    import cv2

    folder = tmp_path / "seq"
    folder.mkdir()
    for i in range(6):
        cv2.imwrite(str(folder / f"{i:03d}.png"), np.full((8, 10, 3), i * 20, np.uint8))
    (folder / "002.png").write_bytes(b"broken")  # never read: not wanted
    with open_video(folder) as reader:
        got = list(reader.frames_at([5, 0, 3], batch_size=2))
    assert [b.indices for b in got] == [[0, 3], [5]]
    assert [int(b.images[i, 0, 0, 0]) for b in got for i in range(len(b))] == [0, 60, 100]


def test_mpeg_ts_with_a_start_offset(tmp_path: Path) -> None:
    """MPEG-TS streams start after zero; rewinding and range seeks must still find every frame."""
    from vt.media.decoders.pyav_reader import PyAVReader

    path = make_video(tmp_path / "t.ts", frames=48, options={"g": "12"})
    info = probe(path)
    assert info.video.frame_count == 48 and info.video.start_time > 0
    with PyAVReader(Source.parse(path)) as reader:
        assert len([f for _, f in reader.av_frames()]) == 48
        got = [i for b in reader.frames_at([0, 5, 30, 47]) for i in b.indices]
        assert got == [0, 5, 30, 47]
    with open_video(Source.parse(path, start=1.0, end=1.5)) as reader:
        indices = [i for b in reader.frames() for i in b.indices]
    assert indices == list(range(24, 36))


@pytest.mark.parametrize("name", ["clip.mp4", "clip.mkv"])
def test_processing_starts_without_a_packet_scan(
    tmp_path: Path, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vt.media import info as info_module
    from vt.media.decoders import pyav_reader
    from vt.media.pipeline import process_video

    src = make_video(tmp_path / name, frames=20, fps=10)
    scans: list[int] = []
    real = info_module.count_packets

    def counting(container: object, stream: object) -> object:
        scans.append(1)
        return real(container, stream)

    monkeypatch.setattr(info_module, "count_packets", counting)
    monkeypatch.setattr(pyav_reader, "count_packets", counting)
    totals: list[int | None] = []
    process_video(src, tmp_path / "out.mkv", progress=lambda done, total: totals.append(total))
    assert scans == []  # no whole-file scan before (or while) processing
    assert totals[-1] == 20  # the header's count, or duration x fps where it has none
    with open_video(src, decoder="pyav") as reader:
        assert scans == []
        assert reader.native_timing()[0] == 20 and reader.info.video.frame_count_exact
        assert scans == [1]  # counted on demand, once
        reader.native_timing()
        assert scans == [1]


# -- keyframes ---------------------------------------------------------------------------------
def _decoded_keyframes(path: Path) -> list[int]:
    """Presentation indices of the frames the decoder itself flags as keyframes."""
    import av

    with av.open(str(path)) as container:
        frames = sorted((f.pts, f.key_frame) for f in container.decode(video=0))
    return [i for i, (_, key) in enumerate(frames) if key]


@pytest.mark.parametrize(
    "backend",
    [
        "pyav",
        pytest.param("torchcodec", marks=needs_torchcodec),
        pytest.param("decord", marks=needs_decord),
    ],
)
def test_keyframes_of_a_real_clip(host: PluginHost, bikes: Path, backend: str) -> None:
    with open_video(bikes, decoder=backend) as reader:
        keys = reader.keyframes()
    assert keys == _decoded_keyframes(bikes) == [0, 30, 76, 137, 187, 242]


def test_keyframes_follow_the_gop_in_presentation_order(host: PluginHost, tmp_path: Path) -> None:
    # B-frames put packets out of presentation order; the indices must not follow them
    path = make_video(
        tmp_path / "gop.mp4", frames=48, options={"g": "12", "bf": "2", "sc_threshold": "0"}
    )
    with open_video(path, decoder="pyav") as reader:
        assert reader.keyframes() == [0, 12, 24, 36]
        # the scan is shared with random access, which still finds every frame
        assert [i for b in reader.frames_at([5, 30]) for i in b.indices] == [5, 30]
        assert reader.keyframes() == [0, 12, 24, 36]


def test_every_image_of_a_sequence_is_a_keyframe(tmp_path: Path) -> None:
    import cv2

    for i in range(4):
        cv2.imwrite(str(tmp_path / f"{i:03d}.png"), np.zeros((8, 10, 3), np.uint8))
    with open_video(tmp_path) as reader:
        assert reader.keyframes() == [0, 1, 2, 3]


# -- the fallback chain when decoding fails -----------------------------------------------------
class _CrashingReader:
    """Opens like a decoder, then fails on the first frame (a backend's own crash)."""

    decoder_name = "crashing"

    def __init__(self, source: Source, closed: list[str], **_: object) -> None:
        self.source = source
        self.closed = closed

    def frames_at(self, indices, **_: object):
        raise RuntimeError("simulated decoder crash\nsecond line")

    def close(self) -> None:
        self.closed.append(self.decoder_name)


@pytest.fixture
def crashing(host: PluginHost) -> list[str]:
    """Registers the ``crashing`` decoder first in the default order; returns the names of
    the readers closed so far."""
    closed: list[str] = []

    @hookimpl
    def register_decoders(register):
        register(
            DecoderInfo(
                "crashing",
                open=lambda source, **kw: _CrashingReader(source, closed, **kw),
                priority=1,
            )
        )

    host.register(
        type("P", (), {"register_decoders": staticmethod(register_decoders)}), "crashingplugin"
    )
    return closed


def _first_frame(reader) -> tuple[str, list[int]]:
    return reader.decoder_name, next(iter(reader.frames_at([7]))).indices


def test_with_fallback_moves_to_the_next_decoder_when_decoding_fails(
    crashing: list[str], carphone: Path, caplog, monkeypatch
) -> None:
    import logging

    from vt.media.decode import with_fallback

    monkeypatch.setattr(logging.getLogger("vt"), "propagate", True)
    with caplog.at_level(logging.WARNING, logger="vt"):
        assert with_fallback(carphone, _first_frame, describe="my clip") == ("pyav", [7])
    assert crashing == ["crashing"]  # the failed reader was closed before the next opened
    assert (
        "decoder crashing failed on my clip (simulated decoder crash); trying pyav" in caplog.text
    )


def test_with_fallback_reports_the_first_failure_when_every_decoder_fails(
    crashing: list[str], carphone: Path
) -> None:
    from vt.media.decode import with_fallback

    with pytest.raises(
        InputError,
        match=r"^cannot decode .*carphone.*: simulated decoder "
        r"crash$",
    ):
        with_fallback(carphone, _first_frame, priority=["crashing"])
    calls: list[str] = []

    def refuse(reader) -> None:
        calls.append(reader.decoder_name)
        raise UsageError("bad request")  # the caller's error: no other decoder is tried

    with pytest.raises(UsageError, match="bad request"):
        with_fallback(carphone, refuse, priority=["pyav", "crashing"])
    assert calls == ["pyav"]
