"""Encoding: ``EncoderConfig`` and the writers that turn frames into files.

- ``config``: ``EncoderConfig`` and the pixel-format policy;
- ``container``: ``ContainerWriter``, encoded video at every frame's own PTS with rotation,
  SAR, colour tags and container metadata;
- ``side_streams``: the source's audio (copied, or re-encoded when the container cannot
  hold its codec), subtitles (copied or converted) and attachments, muxed as the video
  reaches their time;
- ``images``: ``ImageSequenceWriter``, one image file per frame.

The names below are the package's public API: import them from ``vt.media.encode``.
"""

from vt.media.encode.config import EncoderConfig, choose_pixel_format, parse_bitrate
from vt.media.encode.container import (
    CONTAINER_EXTENSIONS,
    ContainerWriter,
    fix_garbage_dts,
    open_container_writer,
)
from vt.media.encode.images import ImageSequenceWriter, open_image_writer
from vt.media.encode.side_streams import SideStreams

__all__ = [
    "CONTAINER_EXTENSIONS",
    "ContainerWriter",
    "EncoderConfig",
    "ImageSequenceWriter",
    "SideStreams",
    "choose_pixel_format",
    "fix_garbage_dts",
    "open_container_writer",
    "open_image_writer",
    "parse_bitrate",
]
