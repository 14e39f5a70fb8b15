"""Stylize cannot be cut into segments (issue 17): cross-frame attention anchors every frame
to the clip's first and AnimateDiff windows start at the stream's start, so ``--resume`` and
``--workers`` run it in one pass and say why."""

from __future__ import annotations

from pathlib import Path

from vt.media.output import resolve_target
from vt.media.pipeline import PipelineOptions
from vt.media.segments.job import why_not
from vt.media.source import Source
from vt.testing import make_video
from vt_stylize.processor import StylizeProcessor
from vt_stylize.upscaling import ReplayProcessor, UpscaleStage


def test_stylize_and_its_replay_run_in_one_pass(tmp_path: Path) -> None:
    clip = Source.parse(make_video(tmp_path / "c.mp4", frames=2))
    target = resolve_target(tmp_path / "out.mp4")
    options = PipelineOptions(resume=True)
    stylizer = StylizeProcessor.__new__(StylizeProcessor)  # the attributes, no model
    assert (
        why_not(clip, target, [stylizer], options)
        == "processor stylize cannot be split into segments"
    )
    assert (
        why_not(clip, target, [ReplayProcessor(tmp_path / "x.mkv")], options)
        == "processor stylized-frames cannot be split into segments"
    )
    upscaler = UpscaleStage.__new__(UpscaleStage)
    assert why_not(clip, target, [upscaler], options) is None
