"""``vt cogvideo``: the Typer group and the generation sub-commands.

Only typer and vt's light modules are imported here, so ``vt --help`` stays fast; torch and
diffusers load inside the commands. The server (``serve``) and training sub-commands live in
their own packages and are added by their ``register(app)`` when those modules are present.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Annotated, Any

import typer

app = typer.Typer(
    name="cogvideo", no_args_is_help=True, add_completion=False,
    pretty_exceptions_enable=False,
    help="CogVideoX image-to-video: generate, batch, validate, benchmark, serve, train.")

MODEL = "Model"
GEN = "Generation"
OUT = "Output"

ModelOpt = Annotated[str | None, typer.Option(
    "--model", "-m", help="CogVideoX I2V pipeline: a Hugging Face id (from the cache offline) "
    "or a diffusers folder (default: configs/model.yaml, THUDM/CogVideoX-5b-I2V).",
    rich_help_panel=MODEL)]
DeviceOpt = Annotated[str | None, typer.Option(
    "--device", help="auto, cpu or cuda[:i] (default: configs/model.yaml, auto).",
    rich_help_panel=MODEL)]
ConfigOpt = Annotated[Path | None, typer.Option(
    "--config", help="An inference YAML overriding configs/inference.yaml.",
    rich_help_panel=MODEL)]


def _echo_err(message: str) -> None:
    typer.echo(f"vt: {message}", err=True)


@app.command("generate")
def generate(
    image: Annotated[str, typer.Option("--image", "-i", help="Conditioning image (any size: "
                     "fitted to the model's).", rich_help_panel=GEN)],
    prompt: Annotated[str, typer.Option("--prompt", "-p", help="What happens in the clip.",
                      rich_help_panel=GEN)],
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Output MP4 (default: "
                      "IMAGE_cogvideo.mp4 beside the image); a .json sidecar goes beside it.",
                      rich_help_panel=OUT)] = None,
    mode: Annotated[str | None, typer.Option("--mode", help="baseline (plain pipeline, bf16 "
                    "on CUDA / fp32 on CPU) or optimized (DPM scheduler, model CPU offload, "
                    "VAE tiling; CUDA).", rich_help_panel=GEN)] = None,
    lora: Annotated[str | None, typer.Option("--lora", help="LoRA folder (with "
                    "pytorch_lora_weights.safetensors) or .safetensors file.",
                    rich_help_panel=MODEL)] = None,
    lora_scale: Annotated[float | None, typer.Option("--lora-scale", help="LoRA strength.",
                          rich_help_panel=MODEL)] = None,
    model: ModelOpt = None,
    num_frames: Annotated[int | None, typer.Option("--num-frames", help="Frames (default: "
                          "the model's own, 49 for CogVideoX-5B-I2V).", rich_help_panel=GEN)]
    = None,
    height: Annotated[int | None, typer.Option("--height", help="Height (default: the "
                      "model's, 480).", rich_help_panel=GEN)] = None,
    width: Annotated[int | None, typer.Option("--width", help="Width (default: the model's, "
                     "720).", rich_help_panel=GEN)] = None,
    fps: Annotated[int | None, typer.Option("--fps", help="Output frame rate (default 8).",
                   rich_help_panel=OUT)] = None,
    steps: Annotated[int | None, typer.Option("--steps", help="Denoising steps (default 50).",
                     rich_help_panel=GEN)] = None,
    guidance: Annotated[float | None, typer.Option("--guidance", help="Classifier-free "
                        "guidance scale (default 6.0).", rich_help_panel=GEN)] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Random seed (default: random, "
                    "reported).", rich_help_panel=GEN)] = None,
    scheduler: Annotated[str | None, typer.Option("--scheduler", help="ddim or dpm (default: "
                         "the mode's: ddim baseline, dpm optimized).", rich_help_panel=GEN)]
    = None,
    negative_prompt: Annotated[str | None, typer.Option("--negative-prompt", "-n",
                               help="What to avoid.", rich_help_panel=GEN)] = None,
    fit: Annotated[str | None, typer.Option("--fit", help="Fit the image to the model's size: "
                   "crop (cover, cut the centre) or pad (fit, black bars).",
                   rich_help_panel=GEN)] = None,
    device: DeviceOpt = None,
    compile: Annotated[bool | None, typer.Option("--compile/--no-compile", help="torch.compile "
                       "the transformer in optimized mode (CUDA only).",
                       rich_help_panel=MODEL)] = None,
    config: ConfigOpt = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", "-y", help="Replace an existing "
                         "output (and its sidecar).", rich_help_panel=OUT)] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.",
                       rich_help_panel=OUT)] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress or notes.",
                     rich_help_panel=OUT)] = False,
) -> None:
    """Generate a clip from one image and a prompt (CogVideoX image-to-video)."""
    from vt_cogvideo.config import load_settings
    from vt_cogvideo.generation import GenerationRequest

    settings = load_settings(config)
    given = {"negative_prompt": negative_prompt, "num_frames": num_frames, "height": height,
             "width": width, "num_inference_steps": steps, "guidance_scale": guidance,
             "seed": seed, "fps": fps, "mode": mode, "scheduler": scheduler, "lora": lora,
             "lora_scale": lora_scale, "fit": fit}
    request = GenerationRequest(image=image, prompt=prompt,
                                **settings.request_defaults(given))
    out = output or default_output(image)
    generator = settings.generator(model=model, device=device, compile=compile)
    result = run_one(generator, request, out, overwrite=overwrite, quiet=quiet or as_json)
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2))
    elif not quiet:
        typer.echo(summary_line(result))


def default_output(image: str) -> Path:
    path = Path(image)
    return path.with_name(f"{path.stem}_cogvideo.mp4")


def summary_line(result: Any) -> str:
    mib = result.peak_memory_bytes / 2**20
    kind = result.metadata.get("peak_memory_kind", "rss")
    return (f"{result.output}: {result.frames} frames {result.width}x{result.height} at "
            f"{result.fps} fps, seed {result.seed}, temporal score "
            f"{result.temporal_score:.3f}, {result.timings['total_s']:.1f} s "
            f"(generate {result.timings['generate_s']:.1f} s), peak "
            f"{'VRAM' if kind == 'vram' else 'RSS'} {mib:.0f} MiB")


def run_one(generator: Any, request: Any, output: Path, *, overwrite: bool,
            quiet: bool) -> Any:
    """One generation with a step progress bar on a terminal and the notes on stderr."""
    import sys

    progress = None
    bar = None
    if not quiet and sys.stderr.isatty():
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

        bar = Progress("[bold]steps", BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                       console=Console(stderr=True), transient=True)
        task = bar.add_task("steps", total=request.num_inference_steps)

        def progress(step: int, total: int) -> None:
            bar.update(task, completed=step, total=total)
    seen = len(generator.notes)
    try:
        if bar is not None:
            with bar:
                result = generator.generate(request, output, progress=progress,
                                            overwrite=overwrite)
        else:
            result = generator.generate(request, output, overwrite=overwrite)
    finally:
        if not quiet:
            for note in generator.notes[seen:]:
                _echo_err(f"note: {note}")
    return result


def _register_optional(app: typer.Typer) -> None:
    """The server's and training's sub-commands, when their modules are present (they are
    built on other branches); their modules import their heavy dependencies lazily."""
    here = Path(__file__).parent
    for module, path in (("vt_cogvideo.server.command", here / "server" / "command.py"),
                         ("vt_cogvideo.training.commands",
                          here / "training" / "commands.py")):
        if path.is_file():
            importlib.import_module(module).register(app)


_register_optional(app)
