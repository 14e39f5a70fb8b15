"""``vt stylize``: the command line over :class:`StylizeProcessor` and the core pipeline."""

from __future__ import annotations

import contextlib
import shutil
import warnings
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import typer

from vt.cli_media import MediaOptions, default_output, media_options, run_video_job
from vt.errors import UsageError
from vt_stylize.settings import (
    DEFAULT_MODEL,
    DEFAULT_MOTION_ADAPTER,
    MAX_SIDE,
    StylizeSettings,
    parse_resolution,
)

MODEL = "Model"
STYLE = "Style and coherence"
SIZE = "Size and upscaling"
DEVICE = "Device and memory"


@contextlib.contextmanager
def _messages(collected: list[str], quiet: bool) -> Iterator[None]:
    """vt's warnings and notes (this plugin's, vt-upscale's) as one ``vt: …`` line each on
    stderr, kept for the JSON report; other libraries' advice stays hidden."""
    from vt_stylize.errors import StylizeNote

    def show(
        message: Warning | str, category: type[Warning], *args: object, **kwargs: object
    ) -> None:
        if not category.__module__.startswith(("vt_", "vt.")):
            return
        kind = "note" if issubclass(category, StylizeNote) else "warning"
        collected.append(f"{kind}: {message}")
        if not quiet:
            typer.echo(f"vt: {kind}: {message}", err=True)

    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = show  # restored by catch_warnings
        yield


@media_options(codec="libx265", crf=26)
def stylize(
    input: Annotated[str, typer.Argument(help="Input video (file, image folder or pattern).")],
    media: MediaOptions,
    prompt: Annotated[
        str,
        typer.Option(
            "--prompt", "-p", help="The style, e.g. 'anime style'.", rich_help_panel=STYLE
        ),
    ],
    negative_prompt: Annotated[
        str, typer.Option("--negative-prompt", "-n", help="What to avoid.", rich_help_panel=STYLE)
    ] = "",
    output: Annotated[
        str | None, typer.Option("--output", "-o", help="Output file (default: IN_stylized.EXT).")
    ] = None,
    model_id: Annotated[
        str,
        typer.Option(
            "--model-id",
            "-m",
            help="Stable Diffusion model: "
            "a Hugging Face id (from the cache offline), a diffusers folder, or a "
            ".safetensors/.ckpt checkpoint.",
            rich_help_panel=MODEL,
        ),
    ] = DEFAULT_MODEL,
    model_config: Annotated[
        str | None,
        typer.Option(
            "--model-config",
            help="For a single-"
            "file checkpoint: the diffusers folder (or id) whose configs to "
            "use, e.g. offline.",
            rich_help_panel=MODEL,
        ),
    ] = None,
    controlnet_id: Annotated[
        str | None,
        typer.Option(
            "--controlnet-id",
            "-c",
            help="A ControlNet (id, folder or file), conditioned on each frame.",
            rich_help_panel=MODEL,
        ),
    ] = None,
    control: Annotated[
        str,
        typer.Option(
            "--control",
            help="ControlNet conditioning from each "
            "frame: canny (OpenCV), depth (transformers) or lineart (controlnet_aux)"
            ".",
            rich_help_panel=MODEL,
        ),
    ] = "canny",
    control_model: Annotated[
        str | None,
        typer.Option(
            "--control-model",
            help="Weights of the depth/lineart detector (id or folder).",
            rich_help_panel=MODEL,
        ),
    ] = None,
    controlnet_scale: Annotated[
        float,
        typer.Option("--controlnet-scale", help="ControlNet strength.", rich_help_panel=MODEL),
    ] = 1.0,
    animatediff: Annotated[
        bool,
        typer.Option(
            "--animatediff",
            help="AnimateDiff video-to-"
            "video in overlapping windows (motion modules trained on SD 1.5: "
            "use an SD 1.5 --model-id).",
            rich_help_panel=MODEL,
        ),
    ] = False,
    motion_adapter: Annotated[
        str,
        typer.Option(
            "--motion-adapter",
            help="AnimateDiff motion adapter (id or folder).",
            rich_help_panel=MODEL,
        ),
    ] = DEFAULT_MOTION_ADAPTER,
    window: Annotated[
        int, typer.Option("--window", help="AnimateDiff frames per window.", rich_help_panel=MODEL)
    ] = 16,
    overlap: Annotated[
        int,
        typer.Option(
            "--overlap",
            help="Frames shared by consecutive windows, cross-faded.",
            rich_help_panel=MODEL,
        ),
    ] = 4,
    lora: Annotated[
        str | None,
        typer.Option(
            "--lora",
            help="SD LoRA weights (.safetensors, folder or id); needs peft.",
            rich_help_panel=MODEL,
        ),
    ] = None,
    lora_scale: Annotated[
        float, typer.Option("--lora-scale", help="LoRA weight.", rich_help_panel=MODEL)
    ] = 1.0,
    strength: Annotated[
        float,
        typer.Option(
            "--strength", "-s", help="How far from the input (0-1).", rich_help_panel=STYLE
        ),
    ] = 0.5,
    steps: Annotated[
        int,
        typer.Option("--steps", help="Denoising steps (x strength run).", rich_help_panel=STYLE),
    ] = 20,
    guidance: Annotated[
        float,
        typer.Option(
            "--guidance", help="Classifier-free guidance scale (<= 1: off).", rich_help_panel=STYLE
        ),
    ] = 7.5,
    seed: Annotated[
        int, typer.Option("--seed", help="Seed of every frame's noise.", rich_help_panel=STYLE)
    ] = 0,
    noise: Annotated[
        str,
        typer.Option(
            "--noise",
            help="shared: the same initial noise for "
            "every frame (steadier); fresh: new noise per frame.",
            rich_help_panel=STYLE,
        ),
    ] = "shared",
    cross_frame_attention: Annotated[
        bool,
        typer.Option(
            "--cross-frame-attention",
            help="Every frame attends to the first frame's keys/values (img2img, ControlNet).",
            rich_help_panel=STYLE,
        ),
    ] = False,
    max_res: Annotated[
        str,
        typer.Option(
            "--max-res",
            help="Cap on the frames' shorter side "
            "before the model (480p, 720p, …; 'source' keeps it).",
            rich_help_panel=SIZE,
        ),
    ] = "480p",
    keep_size: Annotated[
        bool,
        typer.Option(
            "--keep-size", help="Scale the result back to the source's size.", rich_help_panel=SIZE
        ),
    ] = False,
    upscale: Annotated[
        bool,
        typer.Option(
            "--upscale",
            help="Real-ESRGAN x4plus (vt-upscale), then resized to --upscale-height lines.",
            rich_help_panel=SIZE,
        ),
    ] = False,
    upscale_height: Annotated[
        int,
        typer.Option(
            "--upscale-height", help="Lines after --upscale (0: the full x4).", rich_help_panel=SIZE
        ),
    ] = 1080,
    two_pass: Annotated[
        bool,
        typer.Option(
            "--two-pass",
            help="With --upscale: stylise to a "
            "lossless temporary file first, then upscale (one model on the GPU "
            "at a time; chosen by itself on out-of-memory).",
            rich_help_panel=SIZE,
        ),
    ] = False,
    device: Annotated[
        str, typer.Option("--device", help="auto, cpu or cuda[:i].", rich_help_panel=DEVICE)
    ] = "auto",
    dtype: Annotated[
        str,
        typer.Option(
            "--dtype",
            help="auto (fp16 on CUDA, else fp32), fp32, fp16 or bf16.",
            rich_help_panel=DEVICE,
        ),
    ] = "auto",
    batch_size: Annotated[
        int,
        typer.Option(
            "--batch-size",
            help="Frames per model call (0: auto, halved on out-of-memory).",
            rich_help_panel=DEVICE,
        ),
    ] = 0,
    cpu_offload: Annotated[
        bool,
        typer.Option(
            "--cpu-offload",
            help="Keep only the running component on the GPU (CUDA).",
            rich_help_panel=DEVICE,
        ),
    ] = False,
    attention_slicing: Annotated[
        bool,
        typer.Option(
            "--attention-slicing",
            help="Compute attention in slices (less memory, slower).",
            rich_help_panel=DEVICE,
        ),
    ] = False,
    vae_tiling: Annotated[
        bool,
        typer.Option(
            "--vae-tiling", help="Decode latents in tiles (large frames).", rich_help_panel=DEVICE
        ),
    ] = False,
    xformers: Annotated[
        bool,
        typer.Option(
            "--xformers", help="xformers attention (CUDA, where installed).", rich_help_panel=DEVICE
        ),
    ] = False,
) -> None:
    """Stylise a video with Stable Diffusion, frame by frame or in AnimateDiff windows, kept
    steady by shared noise (and optionally cross-frame attention); audio, timestamps and
    frame count follow the source."""
    settings = StylizeSettings(
        prompt=prompt,
        negative_prompt=negative_prompt,
        model=model_id,
        model_config=model_config,
        controlnet=controlnet_id,
        control=control,
        control_model=control_model,
        controlnet_scale=controlnet_scale,
        animatediff=animatediff,
        motion_adapter=motion_adapter,
        window=window,
        overlap=overlap,
        strength=strength,
        steps=steps,
        guidance=guidance,
        seed=seed,
        noise=noise,
        cross_frame_attention=cross_frame_attention,
        max_res=parse_resolution(max_res),
        keep_size=keep_size,
        lora=lora,
        lora_scale=lora_scale,
        device=device,
        dtype=dtype,
        batch_size=batch_size,
        cpu_offload=cpu_offload,
        attention_slicing=attention_slicing,
        vae_tiling=vae_tiling,
        xformers=xformers,
    )
    settings.validate()
    if upscale and keep_size:
        raise UsageError("--keep-size and --upscale both set the output size: choose one")
    if two_pass and not upscale:
        raise UsageError("--two-pass is for --upscale (it keeps one model on the GPU at a time)")
    if not 0 <= upscale_height <= MAX_SIDE:
        raise UsageError(f"--upscale-height must be between 0 and {MAX_SIDE}, got {upscale_height}")
    target = Path(output) if output else default_output(Path(input), "stylized")
    job = StylizeJob(
        input,
        target,
        settings,
        media,
        upscale_lines=(upscale_height or None) if upscale else 0,
        two_pass=two_pass,
    )
    with _messages(job.messages, media.quiet):
        job.run()


class StylizeJob:
    """One ``vt stylize`` run: single pass, or two passes when upscaling must not share the
    GPU with the diffusion model."""

    def __init__(
        self,
        input: str,
        target: Path,
        settings: StylizeSettings,
        media: MediaOptions,
        *,
        upscale_lines: int | None = 0,
        two_pass: bool = False,
    ) -> None:
        self.input, self.target, self.settings, self.media = input, target, settings, media
        self.upscale = upscale_lines != 0
        self.lines = upscale_lines or None
        self.two_pass = two_pass
        self.messages: list[str] = []
        self.stylizer: Any = None
        self.upscaler: Any = None

    def run(self) -> Any:
        from vt_stylize.errors import GpuOutOfMemory, free_memory, warn
        from vt_stylize.pipelines import StylizePipeline

        pipeline = StylizePipeline(self.settings)
        try:
            if self.two_pass:
                return self._two_passes(pipeline)
            try:
                return self._one_pass(pipeline)
            except GpuOutOfMemory:
                if not (self.upscaler is not None and self.upscaler.size is not None):
                    raise
                warn(
                    "out of GPU memory with both models loaded: running in two passes (--two-pass)"
                )
                free_memory()
                self.two_pass = True
                return self._two_passes(pipeline)
        finally:
            pipeline.close()

    def _upscale_stage(self, pipeline: Any) -> Any:
        from vt_stylize.upscaling import UpscaleStage

        return UpscaleStage(
            self.lines, device=pipeline.device, dtype="fp16" if pipeline.cuda else "fp32"
        )

    def _announce(self, pipeline: Any) -> str:
        text = f"stylizing with {pipeline.describe()}"
        if self.upscale:
            text += " + Real-ESRGAN x4" + (f" to {self.lines} lines" if self.lines else "")
        return text

    def _one_pass(self, pipeline: Any) -> Any:
        from vt_stylize.processor import StylizeProcessor

        self.stylizer = StylizeProcessor(pipeline=pipeline, measure=self.media.json)
        stages = [self.stylizer]
        if self.upscale:
            self.upscaler = self._upscale_stage(pipeline)
            stages.append(self.upscaler)
        return run_video_job(
            self.input,
            self.target,
            stages,
            self.media,
            announce=self._announce(pipeline),
            extra=self._extra,
        )

    def _two_passes(self, pipeline: Any) -> Any:
        from vt.media.encode import EncoderConfig
        from vt.media.output import check_output, resolve_target
        from vt.media.source import Source
        from vt.tempfiles import temp_path
        from vt_stylize.processor import StylizeProcessor
        from vt_stylize.upscaling import ReplayProcessor

        # refuse a bad output now, not after the long first pass
        check_output(
            resolve_target(self.target), Source.parse(self.input), self.media.pipeline.overwrite
        )
        folder = temp_path(self.target.resolve())
        folder.mkdir()
        try:
            frames = folder / "stylized.mkv"
            lossless = MediaOptions(
                encoder=EncoderConfig(codec="ffv1", pixel_format="bgr0", crf=None, preset=None),
                pipeline=replace(
                    self.media.pipeline, audio=False, subtitles=False, overwrite=False
                ),
                quiet=self.media.quiet,
            )
            self.stylizer = StylizeProcessor(pipeline=pipeline, measure=self.media.json)
            run_video_job(
                self.input,
                frames,
                [self.stylizer],
                lossless,
                announce=self._announce(pipeline),
                label="stylize (pass 1/2)",
                summary=False,
            )
            pipeline.close()  # the GPU is the upscaler's now
            self.upscaler = self._upscale_stage(pipeline)
            return run_video_job(
                self.input,
                self.target,
                [ReplayProcessor(frames), self.upscaler],
                self.media,
                label="upscale (pass 2/2)",
                extra=self._extra,
            )
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def _extra(self, report: Any) -> dict[str, Any]:
        s = self.settings
        stylizer = self.stylizer
        return {
            "stylize": {
                "model": stylizer.pipeline.loaded_from.get("model") if stylizer else None,
                "components": {
                    k: v
                    for k, v in (stylizer.pipeline.loaded_from.items() if stylizer else [])
                    if k != "model"
                },
                "pipeline": s.kind,
                "device": stylizer.pipeline.device if stylizer else None,
                "dtype": stylizer.pipeline.dtype if stylizer else None,
                "size": list(stylizer.size) if stylizer and stylizer.size else None,
                "batch_size": stylizer.call_batch if stylizer else None,
                "prompt": s.prompt,
                "negative_prompt": s.negative_prompt,
                "strength": s.strength,
                "steps": s.steps,
                "guidance": s.guidance,
                "seed": s.seed,
                "noise": s.noise,
                "cross_frame_attention": s.cross_frame_attention,
                "animatediff": {"window": s.window, "overlap": s.overlap}
                if s.animatediff
                else None,
                "control": s.control if s.controlnet else None,
                "lora": s.lora,
                "two_pass": self.two_pass,
                "upscale": self.upscaler.report() if self.upscaler is not None else None,
                "warping_error": stylizer.warping_error() if stylizer else None,
                "messages": list(self.messages),
            }
        }
