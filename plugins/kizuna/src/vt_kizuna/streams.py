"""Finishing an output: the input's stream tags, tags stripped, or audio re-encoded.

The core's writer copies the container's tags and the video's language and copies audio
packets as they are (re-encoding only when the container cannot hold them). The KizunaSR
API promises more: ``preserve_metadata`` copies every stream's tags too (titles, languages,
handler names) and ``False`` writes none; ``audio_passthrough=False`` re-encodes audio even
when it could be copied. Both are done by one remux of the finished file: packets copied,
audio decoded and encoded only when asked, the result moved into place atomically.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import av

from vt.media.encode import parse_bitrate
from vt.media.output import atomic_output
from vt.registry import OutputTarget

log = logging.getLogger("vt")

#: tags muxers write themselves (or statistics of the old file): never copied
_TECHNICAL = {
    "duration",
    "encoder",
    "vendor_id",
    "major_brand",
    "minor_version",
    "compatible_brands",
    "number_of_frames",
    "number_of_bytes",
    "bps",
    "_statistics_tags",
    "_statistics_writing_app",
    "_statistics_writing_date_utc",
}
_KINDS = ("video", "audio", "subtitle")


def _clean(tags: Any) -> dict[str, str]:
    return {k: v for k, v in dict(tags).items() if k.lower() not in _TECHNICAL}


def read_tags(path: str | Path) -> dict[str, Any]:
    """``{"container": {...}, "video": [{...}], "audio": [...], "subtitle": [...]}``; the first
    video stream only (the one vt processes)."""
    with av.open(str(path)) as c:
        found: dict[str, Any] = {"container": _clean(c.metadata)}
        for kind in _KINDS:
            streams = [s for s in c.streams if s.type == kind]
            if kind == "video":
                streams = streams[:1]
            found[kind] = [_clean(s.metadata) for s in streams]
    return found


def _writable(tags: dict[str, str]) -> dict[str, str]:
    """Stream tags as muxers take them: MP4's demuxer reads a track title back as "name",
    its muxer writes it from "title"."""
    out = dict(tags)
    if "name" in out and "title" not in out:
        out["title"] = out["name"]
    return out


def _lower(tags: dict[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in tags.items()}


def needs_finish(
    input_path: str | Path,
    output_path: str | Path,
    preserve_metadata: bool,
    reencode_audio: bool,
    audio_mode: str,
) -> bool:
    """Whether the written file differs from what was asked (tags, audio copied)."""
    if reencode_audio and audio_mode == "copied":
        return True
    want, have = read_tags(input_path), read_tags(output_path)
    if not preserve_metadata:
        return bool(have["container"]) or any(t for k in _KINDS for t in have[k])
    if any(k not in _lower(have["container"]) for k in _lower(want["container"])):
        return True
    for kind in _KINDS:
        for wanted, written in zip(want[kind], have[kind]):
            if any(_lower(written).get(k) != v for k, v in _lower(wanted).items()):
                return True
    return False


def finish(
    written: Path,
    target: OutputTarget,
    input_path: str | Path,
    *,
    preserve_metadata: bool,
    reencode_audio: bool,
    audio_codec: str,
    audio_bitrate: str,
    overwrite: bool,
    container_format: str | None = None,
) -> list[str]:
    """Remux ``written`` into ``target`` with the input's tags (or none) and, when asked,
    audio re-encoded; returns warnings. ``written`` is left for the caller to remove."""
    warnings: list[str] = []
    want = read_tags(input_path) if preserve_metadata else None
    # the temporary name keeps the suffix: FFmpeg picks the same muxer the core did
    with (
        atomic_output(target, overwrite) as tmp,
        av.open(str(written)) as src,
        av.open(str(tmp.path), "w", format=container_format) as out,
    ):
        if want is not None:
            out.metadata.update(want["container"])
        streams: dict[int, Any] = {}
        encoders: dict[int, Any] = {}
        seen = {kind: 0 for kind in _KINDS}
        for s in src.streams:
            kind = s.type
            if kind == "audio" and reencode_audio:
                ctx = s.codec_context
                enc = out.add_stream(
                    audio_codec,
                    rate=ctx.sample_rate,
                    layout=ctx.layout.name if ctx.layout else "stereo",
                )
                enc.bit_rate = parse_bitrate(audio_bitrate)
                encoders[s.index] = [enc, None]
                made = enc
            else:
                try:
                    made = out.add_stream_from_template(s)
                except (av.error.FFmpegError, ValueError, NotImplementedError) as exc:
                    warnings.append(f"stream {s.index} ({kind}) not copied: {exc}")
                    continue
                streams[s.index] = made
            if want is not None and kind in _KINDS:
                tags = want[kind]
                if seen[kind] < len(tags):
                    made.metadata.update(_writable(tags[seen[kind]]))
                seen[kind] += 1
        for packet in src.demux():
            index = packet.stream.index
            if index in encoders:
                _encode_audio(out, packet, encoders[index])
                continue
            if index not in streams or (packet.dts is None and packet.size == 0):
                continue  # a stream not copied, or a flush packet
            packet.stream = streams[index]
            out.mux(packet)
        for state in encoders.values():
            enc, resampler = state
            if resampler is not None:
                for frame in resampler.resample(None):
                    out.mux(enc.encode(frame))
            out.mux(enc.encode(None))
    if reencode_audio and encoders:
        warnings.append(
            f"audio re-encoded to {audio_codec} {audio_bitrate} (audio_passthrough=False)"
        )
    return warnings


def _encode_audio(out: Any, packet: Any, state: list[Any]) -> None:
    enc, resampler = state
    frames = packet.decode() if packet.size else packet.stream.decode(None)
    for frame in frames:
        if resampler is None:
            fmt = enc.codec_context.codec.audio_formats[0].name
            resampler = state[1] = av.AudioResampler(
                format=fmt, layout=enc.layout.name, rate=enc.sample_rate
            )
        for converted in resampler.resample(frame):
            out.mux(enc.encode(converted))
