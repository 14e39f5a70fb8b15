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

MODEL = "Model"
GEN = "Generation"
OUT = "Output"

ModelOpt = Annotated[
    str | None,
    typer.Option(
        "--model",
        "-m",
        help="CogVideoX I2V pipeline: a Hugging Face id (from the cache offline) "
        "or a diffusers folder (default: configs/model.yaml, THUDM/CogVideoX-5b-I2V).",
        rich_help_panel=MODEL,
    ),
]
DeviceOpt = Annotated[
    str | None,
    typer.Option(
        "--device",
        help="auto, cpu or cuda[:i] (default: configs/model.yaml, auto).",
        rich_help_panel=MODEL,
    ),
]
ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        help="An inference YAML overriding configs/inference.yaml.",
        rich_help_panel=MODEL,
    ),
]
TrackOpt = Annotated[
    str | None,
    typer.Option(
        "--track",
        help="Log figures to an accelerate tracker when installed: tensorboard, "
        "wandb, mlflow, ... or all.",
    ),
]


def _tracker(name: str | None, folder: Path, run: str, config: dict[str, Any]) -> Any:
    from vt_cogvideo.tracking import Tracker

    tracker = Tracker(name, logging_dir=folder / "tracking", run=run, config=config)
    for note in tracker.notes:
        _echo_err(f"note: {note}")
    return tracker


def _echo_err(message: str) -> None:
    typer.echo(f"vt: {message}", err=True)


def generate(
    image: Annotated[
        str,
        typer.Option(
            "--image",
            "-i",
            help="Conditioning image (any size: fitted to the model's).",
            rich_help_panel=GEN,
        ),
    ],
    prompt: Annotated[
        str, typer.Option("--prompt", "-p", help="What happens in the clip.", rich_help_panel=GEN)
    ],
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Output MP4 (default: "
            "IMAGE_cogvideo.mp4 beside the image); a .json sidecar goes beside it.",
            rich_help_panel=OUT,
        ),
    ] = None,
    mode: Annotated[
        str | None,
        typer.Option(
            "--mode",
            help="baseline (plain pipeline, bf16 "
            "on CUDA / fp32 on CPU) or optimized (DPM scheduler, model CPU offload, "
            "VAE tiling; CUDA).",
            rich_help_panel=GEN,
        ),
    ] = None,
    lora: Annotated[
        str | None,
        typer.Option(
            "--lora",
            help="LoRA folder (with pytorch_lora_weights.safetensors) or .safetensors file.",
            rich_help_panel=MODEL,
        ),
    ] = None,
    lora_scale: Annotated[
        float | None, typer.Option("--lora-scale", help="LoRA strength.", rich_help_panel=MODEL)
    ] = None,
    model: ModelOpt = None,
    num_frames: Annotated[
        int | None,
        typer.Option(
            "--num-frames",
            help="Frames (default: the model's own, 49 for CogVideoX-5B-I2V).",
            rich_help_panel=GEN,
        ),
    ] = None,
    height: Annotated[
        int | None,
        typer.Option("--height", help="Height (default: the model's, 480).", rich_help_panel=GEN),
    ] = None,
    width: Annotated[
        int | None,
        typer.Option("--width", help="Width (default: the model's, 720).", rich_help_panel=GEN),
    ] = None,
    fps: Annotated[
        int | None,
        typer.Option("--fps", help="Output frame rate (default 8).", rich_help_panel=OUT),
    ] = None,
    steps: Annotated[
        int | None,
        typer.Option("--steps", help="Denoising steps (default 50).", rich_help_panel=GEN),
    ] = None,
    guidance: Annotated[
        float | None,
        typer.Option(
            "--guidance", help="Classifier-free guidance scale (default 6.0).", rich_help_panel=GEN
        ),
    ] = None,
    seed: Annotated[
        int | None,
        typer.Option(
            "--seed", help="Random seed (default: random, reported).", rich_help_panel=GEN
        ),
    ] = None,
    scheduler: Annotated[
        str | None,
        typer.Option(
            "--scheduler",
            help="ddim or dpm (default: the mode's: ddim baseline, dpm optimized).",
            rich_help_panel=GEN,
        ),
    ] = None,
    negative_prompt: Annotated[
        str | None,
        typer.Option("--negative-prompt", "-n", help="What to avoid.", rich_help_panel=GEN),
    ] = None,
    fit: Annotated[
        str | None,
        typer.Option(
            "--fit",
            help="Fit the image to the model's size: "
            "crop (cover, cut the centre) or pad (fit, black bars).",
            rich_help_panel=GEN,
        ),
    ] = None,
    device: DeviceOpt = None,
    compile: Annotated[
        bool | None,
        typer.Option(
            "--compile/--no-compile",
            help="torch.compile the transformer in optimized mode (CUDA only).",
            rich_help_panel=MODEL,
        ),
    ] = None,
    config: ConfigOpt = None,
    overwrite: Annotated[
        bool,
        typer.Option(
            "--overwrite",
            "-y",
            help="Replace an existing output (and its sidecar).",
            rich_help_panel=OUT,
        ),
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the result as JSON.", rich_help_panel=OUT)
    ] = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No progress or notes.", rich_help_panel=OUT)
    ] = False,
) -> None:
    """Generate a clip from one image and a prompt (CogVideoX image-to-video)."""
    from vt_cogvideo.config import load_settings
    from vt_cogvideo.generation import GenerationRequest

    settings = load_settings(config)
    given = {
        "negative_prompt": negative_prompt,
        "num_frames": num_frames,
        "height": height,
        "width": width,
        "num_inference_steps": steps,
        "guidance_scale": guidance,
        "seed": seed,
        "fps": fps,
        "mode": mode,
        "scheduler": scheduler,
        "lora": lora,
        "lora_scale": lora_scale,
        "fit": fit,
    }
    request = GenerationRequest(image=image, prompt=prompt, **settings.request_defaults(given))
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
    return (
        f"{result.output}: {result.frames} frames {result.width}x{result.height} at "
        f"{result.fps} fps, seed {result.seed}, temporal score "
        f"{result.temporal_score:.3f}, {result.timings['total_s']:.1f} s "
        f"(generate {result.timings['generate_s']:.1f} s), peak "
        f"{'VRAM' if kind == 'vram' else 'RSS'} {mib:.0f} MiB"
    )


def run_one(generator: Any, request: Any, output: Path, *, overwrite: bool, quiet: bool) -> Any:
    """One generation with a step progress bar on a terminal and the notes on stderr."""
    import sys

    progress = None
    bar = None
    if not quiet and sys.stderr.isatty():
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

        bar = Progress(
            "[bold]steps",
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        task = bar.add_task("steps", total=request.num_inference_steps)

        def progress(step: int, total: int) -> None:
            bar.update(task, completed=step, total=total)

    seen = len(generator.notes)
    try:
        if bar is not None:
            with bar:
                result = generator.generate(request, output, progress=progress, overwrite=overwrite)
        else:
            result = generator.generate(request, output, overwrite=overwrite)
    finally:
        if not quiet:
            for note in generator.notes[seen:]:
                _echo_err(f"note: {note}")
    return result


def check(
    model: ModelOpt = None,
    device: DeviceOpt = None,
    mode: Annotated[
        str,
        typer.Option(
            "--mode",
            help="Load the pipeline as this mode does (optimized: with offload where CUDA allows).",
        ),
    ] = "optimized",
    load: Annotated[
        bool,
        typer.Option(
            "--load/--no-load",
            help="Load the weights (slow for the 5B model) or only read the model's configs.",
        ),
    ] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print the checks as JSON.")] = False,
) -> None:
    """Is this machine ready? torch, CUDA, GPU and memory, dtypes, offload, and whether the
    pipeline loads from the model. Exits 1 with the reason when something is broken."""
    from vt_cogvideo.check import environment_checks, model_checks
    from vt_cogvideo.config import load_settings
    from vt_cogvideo.loading import MODES

    if mode not in MODES:
        from vt.errors import UsageError

        raise UsageError(f"--mode must be one of {', '.join(MODES)}, got {mode!r}")
    checks = environment_checks()
    if all(c.ok for c in checks):
        checks += model_checks(load_settings(), model=model, device=device, mode=mode, load=load)
    failed = [c for c in checks if not c.ok]
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "ok": not failed,
                    "checks": [
                        {"name": c.name, "ok": c.ok, "detail": c.detail, **c.data} for c in checks
                    ],
                },
                indent=2,
                default=str,
            )
        )
    else:
        for c in checks:
            typer.echo(f"{'ok  ' if c.ok else 'FAIL'} {c.name:<12} {c.detail}")
    if failed:
        _echo_err(f"check failed: {failed[0].name}: {failed[0].detail}")
        raise typer.Exit(1)


def batch(
    jobs_file: Annotated[
        Path,
        typer.Option(
            "--jobs-file",
            "-j",
            help="JSON or YAML list of "
            "jobs; each a mapping of generate's options (image, prompt, output, "
            "seed, lora, ...). Relative paths are from the file's folder.",
        ),
    ],
    output_dir: Annotated[
        Path,
        typer.Option(
            "--output-dir", "-o", help="Where the clips go (a job's relative output is inside it)."
        ),
    ],
    mode: Annotated[
        str | None,
        typer.Option(
            "--mode",
            help="baseline or optimized for jobs "
            "that do not say (default: configs/inference.yaml).",
        ),
    ] = None,
    model: ModelOpt = None,
    device: DeviceOpt = None,
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            "-w",
            help="Worker processes, each with its own pipeline (one per GPU is the sensible most).",
        ),
    ] = 1,
    retries: Annotated[int, typer.Option("--retries", help="Retries of a failing job.")] = 0,
    status: Annotated[
        Path | None,
        typer.Option(
            "--status",
            help="Status table (.json, .csv, "
            ".jsonl): each job's state, error, timings and score, rewritten as jobs "
            "finish (default: OUTPUT_DIR/batch_status.json).",
        ),
    ] = None,
    config: ConfigOpt = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", "-y", help="Replace outputs vt batch did not write.")
    ] = False,
    track: TrackOpt = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the batch report as JSON.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress.")] = False,
) -> None:
    """Generate many clips from a jobs file: pipeline loaded once per worker, per-job status
    written as jobs finish, failures do not stop the rest, a rerun skips finished jobs."""
    from vt_cogvideo.batch import build_jobs, run_jobs
    from vt_cogvideo.config import load_settings

    settings = load_settings(config)
    if output_dir.exists() and not output_dir.is_dir():
        from vt.errors import UsageError

        raise UsageError(f"--output-dir is a file: {output_dir}")
    jobs = build_jobs(jobs_file, output_dir, settings, mode=mode, model=model, device=device)
    output_dir.mkdir(parents=True, exist_ok=True)
    status_path = status or output_dir / "batch_status.json"
    tracker = _tracker(track, output_dir, "batch", {"jobs": len(jobs.jobs), "mode": mode or ""})

    def progress(result: Any, counts: Any) -> None:
        report = result.report if isinstance(result.report, dict) else {}
        if result.status == "done":
            tracker.log(
                {
                    "temporal_score": report.get("temporal_score"),
                    "seconds": result.seconds,
                    **(report.get("timings") or {}),
                },
                step=result.row,
            )
        if quiet or as_json:
            return
        detail = (
            f"score {report['temporal_score']:.3f}, {result.seconds or 0:.1f} s"
            if "temporal_score" in report
            else (result.error or "")
        )
        _echo_err(
            f"[{counts.finished}/{counts.total}] {result.status:<7} "
            f"{Path(result.output).name}" + (f": {detail}" if detail else "")
        )

    try:
        report = run_jobs(
            jobs,
            status=status_path,
            workers=workers,
            retries=retries,
            overwrite=overwrite,
            progress=progress,
        )
    finally:
        tracker.close()
    if as_json:
        typer.echo(json.dumps(report.as_dict(), indent=2))
    elif not quiet:
        typer.echo(report.summary())
        typer.echo(f"status: {status_path}")
    if report.failed:
        raise typer.Exit(1)


def validate(
    scenarios: Annotated[
        Path | None,
        typer.Option(
            "--scenarios",
            "-s",
            help="YAML/JSON list "
            "of {name, image, prompt} plus any generate option (default: "
            "configs/validation_prompts.yaml).",
        ),
    ] = None,
    lora: Annotated[
        str | None,
        typer.Option(
            "--lora",
            help="The LoRA to validate (folder or .safetensors); none validates the base model.",
        ),
    ] = None,
    lora_scale: Annotated[float | None, typer.Option("--lora-scale", help="LoRA strength.")] = None,
    threshold: Annotated[
        float | None,
        typer.Option(
            "--threshold",
            help="Temporal consistency a scenario needs (default 0.6, configs/inference.yaml).",
        ),
    ] = None,
    output_dir: Annotated[
        Path,
        typer.Option("--output-dir", "-o", help="Clips and validation_report.csv/.md go here."),
    ] = Path("outputs/validation"),
    mode: Annotated[str | None, typer.Option("--mode", help="baseline or optimized.")] = None,
    model: ModelOpt = None,
    device: DeviceOpt = None,
    config: ConfigOpt = None,
    overwrite: Annotated[
        bool,
        typer.Option("--overwrite", "-y", help="Replace the clips and reports of an earlier run."),
    ] = False,
    track: TrackOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the results as JSON.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No per-scenario lines.")] = False,
) -> None:
    """Generate each scenario, score temporal consistency, write CSV + Markdown reports;
    exit 1 when a scenario is below the threshold (or could not be generated)."""
    from vt_cogvideo.config import config_dir, load_settings
    from vt_cogvideo.validate import load_scenarios, run_validation, write_reports

    settings = load_settings(config)
    if scenarios is None:
        folder = config_dir()
        if folder is None or not (folder / "validation_prompts.yaml").is_file():
            from vt.errors import UsageError

            raise UsageError("no --scenarios and no configs/validation_prompts.yaml")
        scenarios = folder / "validation_prompts.yaml"
    items = load_scenarios(scenarios)
    limit = settings.inference.threshold if threshold is None else threshold
    if not 0.0 <= limit <= 1.0:
        from vt.errors import UsageError

        raise UsageError(f"--threshold must be within 0..1, got {limit}")
    if mode is not None:
        settings.inference.mode = mode
    generator = settings.generator(model=model, device=device)
    output_dir.mkdir(parents=True, exist_ok=True)
    tracker = _tracker(
        track,
        output_dir,
        "validate",
        {"lora": lora or "", "threshold": limit, "scenarios": str(scenarios)},
    )

    def show(row: Any, i: int, n: int) -> None:
        tracker.log(
            {
                "temporal_score": row.temporal_score,
                "generate_s": row.generate_s,
                "passed": int(row.status == "pass"),
            },
            step=i,
        )
        if quiet or as_json:
            return
        score = "-" if row.temporal_score is None else f"{row.temporal_score:.3f}"
        _echo_err(
            f"[{i}/{n}] {row.status.upper():<5} {row.name}: score {score}"
            + (f" ({row.error})" if row.error else "")
        )

    try:
        results = run_validation(
            items,
            settings,
            generator,
            lora=lora,
            lora_scale=lora_scale,
            threshold=limit,
            output_dir=output_dir,
            overwrite=overwrite,
            on_result=show,
        )
    finally:
        tracker.close()
    csv_path, md_path = write_reports(
        results, output_dir, threshold=limit, lora=lora, model=generator.model, overwrite=overwrite
    )
    passed = sum(r.status == "pass" for r in results)
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "passed": passed,
                    "total": len(results),
                    "threshold": limit,
                    "csv": str(csv_path),
                    "markdown": str(md_path),
                    "scenarios": [r.as_dict() for r in results],
                },
                indent=2,
            )
        )
    elif not quiet:
        typer.echo(
            f"{passed} of {len(results)} scenarios passed (threshold {limit}); report: {md_path}"
        )
    if passed < len(results):
        raise typer.Exit(1)


def benchmark(
    image: Annotated[str, typer.Option("--image", "-i", help="Conditioning image.")],
    prompt: Annotated[str, typer.Option("--prompt", "-p", help="Prompt.")],
    mode: Annotated[str, typer.Option("--mode", help="baseline, optimized or both.")] = "both",
    csv_path: Annotated[Path, typer.Option("--csv", help="CSV the rows are appended to.")] = Path(
        "outputs/benchmarks.csv"
    ),
    summary: Annotated[
        Path | None,
        typer.Option(
            "--summary", help="PROJECT_SUMMARY.json snapshot to update (default: beside the CSV)."
        ),
    ] = None,
    output_dir: Annotated[
        Path | None,
        typer.Option("--output-dir", "-o", help="Where the clips go (default: the CSV's folder)."),
    ] = None,
    runs: Annotated[
        int,
        typer.Option(
            "--runs", help="Generations per mode (the first includes loading, reported apart)."
        ),
    ] = 1,
    steps: Annotated[int | None, typer.Option("--steps", help="Denoising steps.")] = None,
    num_frames: Annotated[int | None, typer.Option("--num-frames", help="Frames.")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed (the same for every run).")] = 0,
    model: ModelOpt = None,
    device: DeviceOpt = None,
    config: ConfigOpt = None,
    track: TrackOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the rows as JSON.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No per-run lines.")] = False,
) -> None:
    """Latency, temporal score, peak memory and frames/s per mode: CSV rows plus a
    PROJECT_SUMMARY.json snapshot of the figures and artifacts."""
    from vt_cogvideo.benchmark import append_csv, modes_for, run_benchmark, update_summary
    from vt_cogvideo.config import load_settings
    from vt_cogvideo.generation import GenerationRequest

    settings = load_settings(config)
    modes = modes_for(mode)
    given = {"num_inference_steps": steps, "num_frames": num_frames, "seed": seed}
    request = GenerationRequest(image=image, prompt=prompt, **settings.request_defaults(given))
    folder = output_dir or csv_path.parent
    folder.mkdir(parents=True, exist_ok=True)
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    generator = settings.generator(model=model, device=device)
    generator.validate(request)  # refuse bad settings before loading anything
    tracker = _tracker(
        track, folder, "benchmark", {"mode": mode, "runs": runs, "model": generator.model}
    )
    step = [0]

    def show(row: dict[str, Any]) -> None:
        step[0] += 1
        tracker.log(
            {
                f"{row['mode']}/{k}": row[k]
                for k in (
                    "latency_s",
                    "total_s",
                    "frames_per_s",
                    "temporal_score",
                    "peak_memory_mb",
                )
            },
            step=step[0],
        )
        if not (quiet or as_json):
            _echo_err(
                f"{row['mode']} run {row['run']}: {row['latency_s']:.2f} s, "
                f"{row['frames_per_s']} frames/s, score {row['temporal_score']:.3f}, "
                f"peak {row['memory_kind'].upper()} {row['peak_memory_mb']} MiB"
            )

    try:
        rows = run_benchmark(generator, request, modes, runs, folder, on_row=show)
    finally:
        tracker.close()
    append_csv(csv_path, rows)
    summary_path = summary or csv_path.parent / "PROJECT_SUMMARY.json"
    update_summary(summary_path, rows, csv_path)
    if as_json:
        typer.echo(
            json.dumps({"csv": str(csv_path), "summary": str(summary_path), "rows": rows}, indent=2)
        )
    elif not quiet:
        typer.echo(f"{len(rows)} rows -> {csv_path}; summary: {summary_path}")


def build_app() -> typer.Typer:
    """A fresh ``vt cogvideo`` group (nothing is attached at import time)."""
    app = typer.Typer(
        name="cogvideo",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        help="CogVideoX image-to-video: generate, batch, validate, benchmark, serve, train.",
    )
    for name, command in (
        ("check", check),
        ("generate", generate),
        ("batch", batch),
        ("validate", validate),
        ("benchmark", benchmark),
    ):
        app.command(name)(command)
    _register_optional(app)
    return app


def _register_optional(app: typer.Typer) -> None:
    """The server's and training's sub-commands, when their modules are present (they are
    built on other branches); their modules import their heavy dependencies lazily."""
    here = Path(__file__).parent
    for module, path in (
        ("vt_cogvideo.server.command", here / "server" / "command.py"),
        ("vt_cogvideo.training.commands", here / "training" / "commands.py"),
    ):
        if path.is_file():
            importlib.import_module(module).register(app)
