"""vt: a plugin-based command-line video toolkit for AI video work.

The plugin author's API is exported here (``vt.hookimpl``, ``vt.FrameProcessor``,
``vt.load_model``…). Names load on first use, so ``import vt`` stays cheap: a command that
needs no numpy, PyAV or torch never imports them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vt.lazy import lazy_exports

__version__ = "0.1.0"

#: exported name -> module that defines it
_EXPORTS = {
    "hookimpl": "vt.hookspecs",
    # plugins and registries
    "CommandSpec": "vt.registry",
    "DecoderInfo": "vt.registry",
    "EncoderInfo": "vt.registry",
    "ModelAdapterInfo": "vt.registry",
    "ModelRef": "vt.registry",
    "ModelSpec": "vt.registry",
    "ProcessorInfo": "vt.registry",
    "get_host": "vt.plugins",
    # frames and processors
    "FrameBatch": "vt.media.frames",
    "FrameFormat": "vt.media.frames",
    "FrameProcessor": "vt.media.processing",
    # running video jobs
    "EncoderConfig": "vt.media.encode",
    "PipelineOptions": "vt.media.pipeline",
    "PipelineReport": "vt.media.pipeline",
    "process_video": "vt.media.pipeline",
    "write_video": "vt.media.pipeline",
    "open_video": "vt.media.decode",
    "probe": "vt.media.info",
    "MediaOptions": "vt.cli_media",
    "media_options": "vt.cli_media",
    "run_video_job": "vt.cli_media",
    "default_output": "vt.cli_media",
    # models
    "ModelDescriptor": "vt.models",
    "SizeRequirements": "vt.models",
    "Tiling": "vt.models",
    "load_model": "vt.models",
    "resolve_model": "vt.models",
    # errors and shared helpers
    "VtError": "vt.errors",
    "UsageError": "vt.errors",
    "InputError": "vt.errors",
    "OutputError": "vt.errors",
    "ModelUnavailableError": "vt.errors",
    "cache_dir": "vt.cachedirs",
}

__all__ = ["__version__", *_EXPORTS]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs
    from vt.cachedirs import cache_dir
    from vt.cli_media import MediaOptions, default_output, media_options, run_video_job
    from vt.errors import InputError, ModelUnavailableError, OutputError, UsageError, VtError
    from vt.hookspecs import hookimpl
    from vt.media.decode import open_video
    from vt.media.encode import EncoderConfig
    from vt.media.frames import FrameBatch, FrameFormat
    from vt.media.info import probe
    from vt.media.pipeline import PipelineOptions, PipelineReport, process_video, write_video
    from vt.media.processing import FrameProcessor
    from vt.models import ModelDescriptor, SizeRequirements, Tiling, load_model, resolve_model
    from vt.plugins import get_host
    from vt.registry import (
        CommandSpec,
        DecoderInfo,
        EncoderInfo,
        ModelAdapterInfo,
        ModelRef,
        ModelSpec,
        ProcessorInfo,
    )
