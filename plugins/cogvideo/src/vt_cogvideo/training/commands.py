"""Training sub-commands of ``vt cogvideo``: data preparation and ``train-lora``.

``register(app)`` adds them to the group; only typer is imported here (torch, diffusers,
accelerate and peft load inside the commands, so ``vt --help`` stays fast).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

DATA = "Data"
MODEL = "Model overrides (else the config's)"
RUN = "Run"

JsonOpt = Annotated[bool, typer.Option("--json", help="Print the report as JSON.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Only errors on stderr.")]


def _err(message: str) -> None:
    typer.echo(message, err=True)


def prepare_metadata(
    videos: Annotated[
        Path,
        typer.Option(
            "--videos", help="Folder of clips (searched recursively).", rich_help_panel=DATA
        ),
    ],
    captions: Annotated[
        Path,
        typer.Option(
            "--captions",
            help="Captions: MSR-VTT JSON, VATEX "
            "JSON, a JSON list of {video, caption} or a CSV with video,caption.",
            rich_help_panel=DATA,
        ),
    ],
    output: Annotated[
        Path,
        typer.Option(
            "--output",
            "-o",
            help="The metadata JSON to write (first frames go to OUTPUT-STEM_frames/ beside it).",
        ),
    ] = Path("training_metadata.json"),
    limit: Annotated[
        int | None, typer.Option("--limit", help="Stop after N accepted clips.", min=1)
    ] = None,
    num_frames: Annotated[
        int,
        typer.Option(
            "--num-frames",
            help="Frames a training clip needs (the config's data.num_frames).",
            min=1,
        ),
    ] = 49,
    fps: Annotated[
        float,
        typer.Option(
            "--fps", help="Rate the clips are sampled at (the config's data.fps).", min=0.001
        ),
    ] = 8,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", "-y", help="Replace OUTPUT and its frames folder.")
    ] = False,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Build training metadata from clips and captions (each clip checked; rejects listed).

    A clip is accepted when it has a non-empty caption, decodes, and is long enough for
    --num-frames at --fps; its first frame is saved beside the metadata. Rejects are
    listed with their reason (and in OUTPUT.rejects.json); the run goes on."""
    from vt_cogvideo.training.metadata import iter_rejects
    from vt_cogvideo.training.metadata import prepare_metadata as prepare

    report = prepare(
        videos, captions, output, num_frames=num_frames, fps=fps, limit=limit, overwrite=overwrite
    )
    if as_json:
        typer.echo(json.dumps(report.as_dict(), indent=2))
        return
    if not quiet:
        for line in iter_rejects(report):
            _err(line)
        extra = (
            f"; {report.captions_without_video} captions name no video in {videos}"
            if report.captions_without_video
            else ""
        )
        typer.echo(
            f"{report.output}: {len(report.entries)} clips, {len(report.rejects)} rejected{extra}"
        )


def _dataset_summary(report: Any, as_json: bool, quiet: bool) -> None:
    if as_json:
        typer.echo(json.dumps(report.as_dict(), indent=2))
        return
    if quiet:
        return
    for note in report.notes:
        _err(f"note: {note}")
    typer.echo(
        f"{report.dataset}: {len(report.videos)} clips in {report.output_dir / 'videos'} "
        f"({report.copied} copied, {report.kept} already there), captions "
        f"{report.captions}"
    )
    if report.captions:
        typer.echo(
            f"next: vt cogvideo prepare-metadata --videos {report.output_dir / 'videos'} "
            f"--captions {report.captions} -o training_metadata.json"
        )


SourceOpt = Annotated[
    Path | None,
    typer.Option(
        "--source",
        help="A local copy of the dataset (clips and caption JSON anywhere under it): "
        "nothing is downloaded.",
    ),
]
OutDirOpt = Annotated[
    Path, typer.Option("--output-dir", "-o", help="Where videos/ and captions.json go.")
]
LimitOpt = Annotated[
    int | None, typer.Option("--limit", help="At most N clips (first by name).", min=1)
]


def download_msr_vtt(
    output_dir: OutDirOpt = Path("data/raw/msr-vtt"),
    source: SourceOpt = None,
    limit: LimitOpt = None,
    url: Annotated[str | None, typer.Option("--url", help="Archive URL (a mirror).")] = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """MSR-VTT clips and captions, from --source or the public archive (about 6.3 GB)."""
    from vt_cogvideo.training.datasets import MSR_VTT_URL
    from vt_cogvideo.training.datasets import download_msr_vtt as fetch

    _dataset_summary(
        fetch(output_dir, source=source, limit=limit, url=url or MSR_VTT_URL), as_json, quiet
    )


def download_vatex(
    output_dir: OutDirOpt = Path("data/raw/vatex"),
    source: SourceOpt = None,
    limit: LimitOpt = None,
    url: Annotated[str | None, typer.Option("--url", help="Captions JSON URL (a mirror).")] = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """VATEX captions (downloaded) and clips (from --source: they are YouTube segments)."""
    from vt_cogvideo.training.datasets import VATEX_URL
    from vt_cogvideo.training.datasets import download_vatex as fetch

    _dataset_summary(
        fetch(output_dir, source=source, limit=limit, url=url or VATEX_URL), as_json, quiet
    )


def download_panda70m() -> None:
    """How to get Panda-70M (access is granted by its authors; vt downloads nothing)."""
    from vt_cogvideo.training.datasets import PANDA_70M_GUIDANCE

    typer.echo(PANDA_70M_GUIDANCE)


def train_lora(
    metadata: Annotated[
        Path,
        typer.Option(
            "--metadata", help="training_metadata.json from prepare-metadata.", rich_help_panel=DATA
        ),
    ],
    output_dir: Annotated[
        Path,
        typer.Option(
            "--output-dir",
            "-o",
            help="Adapters, checkpoints, outputs/metrics.csv and outputs/examples/ go here.",
            rich_help_panel=RUN,
        ),
    ],
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            help="Training YAML (default: configs/training/lora_default.yaml).",
            rich_help_panel=RUN,
        ),
    ] = None,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume",
            help="Continue from the newest checkpoint in OUTPUT_DIR.",
            rich_help_panel=RUN,
        ),
    ] = False,
    checkpointing_steps: Annotated[
        int | None,
        typer.Option(
            "--checkpointing-steps",
            help="Save the training state every N optimizer steps "
            "(default: the config's training.checkpointing_steps, 100).",
            min=1,
            rich_help_panel=RUN,
        ),
    ] = None,
    cache_dir: Annotated[
        Path | None,
        typer.Option(
            "--cache-dir",
            help="Latent cache folder (default: vt's cache, cogvideo-train).",
            rich_help_panel=RUN,
        ),
    ] = None,
    samples: Annotated[
        bool,
        typer.Option(
            "--samples/--no-samples",
            help="Write sample clips after each epoch.",
            rich_help_panel=RUN,
        ),
    ] = True,
    cpu: Annotated[
        bool,
        typer.Option(
            "--cpu", help="Train on the CPU even where CUDA is present.", rich_help_panel=RUN
        ),
    ] = False,
    model: Annotated[
        str | None,
        typer.Option("--model", "-m", help="Hub id or pipeline folder.", rich_help_panel=MODEL),
    ] = None,
    height: Annotated[int | None, typer.Option("--height", rich_help_panel=MODEL)] = None,
    width: Annotated[int | None, typer.Option("--width", rich_help_panel=MODEL)] = None,
    num_frames: Annotated[int | None, typer.Option("--num-frames", rich_help_panel=MODEL)] = None,
    max_steps: Annotated[int | None, typer.Option("--max-steps", rich_help_panel=MODEL)] = None,
    epochs: Annotated[int | None, typer.Option("--epochs", rich_help_panel=MODEL)] = None,
    rank: Annotated[int | None, typer.Option("--rank", rich_help_panel=MODEL)] = None,
    learning_rate: Annotated[
        float | None, typer.Option("--learning-rate", "--lr", rich_help_panel=MODEL)
    ] = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Fine-tune a CogVideoX image-to-video model with LoRA (accelerate; resumable)."""
    from vt_cogvideo.training.config import load_config
    from vt_cogvideo.training.trainer import TrainRequest
    from vt_cogvideo.training.trainer import train_lora as run

    settings = load_config(
        config if config is not None else default_config(),
        {
            "model": model,
            "height": height,
            "width": width,
            "num_frames": num_frames,
            "max_steps": max_steps,
            "epochs": epochs,
            "rank": rank,
            "learning_rate": learning_rate,
        },
    )
    result = run(
        TrainRequest(
            metadata=metadata,
            output_dir=output_dir,
            config=settings,
            checkpointing_steps=checkpointing_steps,
            resume=resume,
            cache_dir=cache_dir,
            samples=samples,
            device="cpu" if cpu else None,
        ),
        echo=(lambda _: None) if quiet else _err,
    )  # stdout keeps the JSON
    if as_json:
        typer.echo(json.dumps(result.as_dict(), indent=2))
    elif not quiet:
        typer.echo(
            f"{result.output_dir}: {result.global_step} steps, final adapter {result.final_adapter}"
        )


def default_config() -> Path | None:
    """The plugin's configs/training/lora_default.yaml when it ships beside the code."""
    from vt_cogvideo.config import config_dir

    folder = config_dir()
    path = folder / "training" / "lora_default.yaml" if folder else None
    return path if path is not None and path.is_file() else None


COMMANDS = (
    ("prepare-metadata", prepare_metadata),
    ("download-msr-vtt", download_msr_vtt),
    ("download-vatex", download_vatex),
    ("download-panda70m", download_panda70m),
    ("train-lora", train_lora),
)


def register(app: typer.Typer) -> None:
    """Add the training sub-commands to the ``vt cogvideo`` group."""
    for name, function in COMMANDS:
        app.command(name)(function)
