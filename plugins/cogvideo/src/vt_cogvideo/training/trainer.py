"""``train-lora``: LoRA fine-tuning of a CogVideoX image-to-video transformer with accelerate.

What one run writes under its output folder::

    run.json                                the configuration, model and data it trained on
    checkpoints/checkpoint-N/               accelerate state (LoRA weights, optimizer, LR
                                            scheduler, RNG) + training_state.json (step, epoch,
                                            batches done); every N steps, each epoch's end
    epoch-0001/pytorch_lora_weights.safetensors   the adapter after each epoch
    adapter_final/pytorch_lora_weights.safetensors
    outputs/metrics.csv                     step, epoch, loss, learning rate, seconds
    outputs/examples/epoch-0001-1.mp4       sample clips through vt_cogvideo.generation
    logs/                                   accelerate trackers' files (when installed)

Every folder and file is written atomically (a killed run leaves the previous one whole);
``--resume`` continues from the newest checkpoint, so a killed run repeats at most
``checkpointing_steps`` optimizer steps, with the same data order, noise and timesteps.
Only the main process writes; accelerate handles devices, mixed precision (bf16 on CUDA, fp32
on CPU by default) and gradient accumulation, under ``accelerate launch`` or a plain run.
"""

from __future__ import annotations

import csv
import gc
import json
import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vt.errors import InputError, OutputError, UsageError
from vt_cogvideo.training.config import (
    TrainingConfig,
    check_against_model,
    resolve_mixed_precision,
)
from vt_cogvideo.training.metadata import TrainingClip, load_metadata

log = logging.getLogger("vt")

METRICS_COLUMNS = ("step", "epoch", "loss", "learning_rate", "step_seconds")
CHECKPOINT_PREFIX = "checkpoint-"
STATE_FILE = "training_state.json"
RUN_FILE = "run.json"
#: config keys a resumed run must share with the run it continues
FIXED_ON_RESUME = (
    "model",
    "data",
    "lora",
    "training.batch_size",
    "training.gradient_accumulation_steps",
    "training.seed",
)


@dataclass
class TrainRequest:
    metadata: Path
    output_dir: Path
    config: TrainingConfig
    checkpointing_steps: int | None = None  # None: the config's
    resume: bool = False
    cache_dir: Path | None = None  # None: vt's cache folder, kind "cogvideo-train"
    samples: bool = True  # sample clips per epoch (config validation.max_samples)
    device: str | None = None  # "cpu" forces the CPU; None: accelerate's choice


@dataclass
class TrainResult:
    output_dir: Path
    global_step: int
    total_steps: int
    epochs: int
    resumed_from: int | None
    parameters: Any  # lora.ParameterCount
    metrics: Path
    adapters: list[Path] = field(default_factory=list)
    samples: list[Path] = field(default_factory=list)
    checkpoints: list[Path] = field(default_factory=list)
    final_adapter: Path | None = None
    precompute: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "output_dir": str(self.output_dir),
            "global_step": self.global_step,
            "total_steps": self.total_steps,
            "epochs": self.epochs,
            "resumed_from": self.resumed_from,
            "trainable_parameters": self.parameters.trainable,
            "total_parameters": self.parameters.total,
            "trainable_share": self.parameters.share,
            "metrics": str(self.metrics),
            "adapters": [str(p) for p in self.adapters],
            "final_adapter": str(self.final_adapter) if self.final_adapter else None,
            "samples": [str(p) for p in self.samples],
            "checkpoints": [str(p) for p in self.checkpoints],
            "precompute": self.precompute,
            "seconds": round(self.seconds, 3),
        }


# -- checkpoints -----------------------------------------------------------------------------
def list_checkpoints(output_dir: Path) -> list[tuple[int, Path]]:
    """(step, folder) of every complete checkpoint, oldest first."""
    root = output_dir / "checkpoints"
    found = []
    if root.is_dir():
        for path in root.iterdir():
            step = path.name[len(CHECKPOINT_PREFIX) :]
            if (
                path.name.startswith(CHECKPOINT_PREFIX)
                and step.isdigit()
                and (path / STATE_FILE).is_file()
            ):
                found.append((int(step), path))
    return sorted(found)


def _prune(output_dir: Path, keep: int | None) -> None:
    """Remove the oldest checkpoints beyond ``keep`` (only folders vt marked as its own)."""
    import shutil

    from vt.atomic import is_vt_folder

    if keep is None:
        return
    for _, path in list_checkpoints(output_dir)[:-keep]:
        if is_vt_folder(path):
            shutil.rmtree(path, ignore_errors=True)


# -- metrics ---------------------------------------------------------------------------------
class MetricsLog:
    """``outputs/metrics.csv``: one row per optimizer step, flushed as written. On resume
    the rows after the checkpoint's step (the steps about to be repeated) and a row a kill
    cut short are dropped first, by rewriting the file atomically."""

    def __init__(self, path: Path, resume_step: int | None) -> None:
        from vt.atomic import atomic_file

        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        rows = self._kept_rows(resume_step) if path.is_file() else []
        with atomic_file(path, overwrite=True) as tmp, open(tmp, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(METRICS_COLUMNS)
            writer.writerows(rows)
        self._fh = open(path, "a", newline="")  # noqa: SIM115 - kept open for the run
        self._writer = csv.writer(self._fh)

    def _kept_rows(self, resume_step: int | None) -> list[list[str]]:
        kept = []
        with open(self.path, newline="") as fh:
            for row in csv.reader(fh):
                if len(row) != len(METRICS_COLUMNS) or not row[0].isdigit():
                    continue  # the header, or a row cut short by a kill
                if resume_step is not None and int(row[0]) <= resume_step:
                    kept.append(row)
        return kept

    def write(self, step: int, epoch: int, loss: float, lr: float, seconds: float) -> None:
        self._writer.writerow([step, epoch, f"{loss:.6g}", f"{lr:.6g}", f"{seconds:.4f}"])
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()


def read_metrics(path: Path) -> list[dict[str, float]]:
    """The rows of a metrics file as numbers (a row cut short by a kill is left out)."""
    rows = []
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            try:
                rows.append({k: float(row[k]) for k in METRICS_COLUMNS})
            except (TypeError, ValueError, KeyError):
                continue
    return rows


# -- data ------------------------------------------------------------------------------------
class EpochSampler:
    """A permutation of the clips per epoch from (seed, epoch): a resumed run sees the same
    order and skips the batches already done."""

    def __init__(self, size: int, seed: int) -> None:
        self.size = size
        self.seed = seed
        self.epoch = 0

    def __iter__(self) -> Iterator[int]:
        import torch

        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        return iter(torch.randperm(self.size, generator=generator).tolist())

    def __len__(self) -> int:
        return self.size


def _dataset(cache: Any, items: list[Any]) -> Any:
    import torch

    from vt_cogvideo.training.precompute import PROMPT_TENSORS, VIDEO_TENSORS

    class CachedClips(torch.utils.data.Dataset):
        """Each clip's cached latent distributions and prompt embeddings, read per step."""

        def __len__(self) -> int:
            return len(items)

        def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
            item = items[index]
            video = cache.get("video", item.video_key, VIDEO_TENSORS)
            prompt = cache.get("prompt", item.prompt_key, PROMPT_TENSORS)
            if video is None or prompt is None:
                raise OutputError(
                    f"the latent cache entry of {item.clip.id} vanished under "
                    f"{cache.root} during training"
                )
            return {**video, **prompt}

    return CachedClips()


def _collate(examples: list[dict[str, Any]]) -> dict[str, Any]:
    import torch

    return {k: torch.stack([e[k] for e in examples]) for k in examples[0]}


# -- validation prompts ----------------------------------------------------------------------
@dataclass(frozen=True)
class SamplePrompt:
    prompt: str
    image: Path


def read_validation_prompts(config: TrainingConfig, first: TrainingClip) -> list[SamplePrompt]:
    """The sample prompts (validation.prompts YAML: a list of {prompt, image?}); an entry
    without an image, or no file at all, uses the first training clip's first frame."""
    path = config.validation_prompts_path()
    if path is None:
        return [SamplePrompt(first.prompt, first.image)]
    import yaml

    if not path.is_file():
        raise UsageError(f"validation.prompts: file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise UsageError(
            f"validation.prompts: cannot read {path}: {str(exc).splitlines()[0]}"
        ) from None
    if isinstance(data, dict) and isinstance(data.get("prompts"), list):
        data = data["prompts"]
    if not isinstance(data, list) or not data:
        raise UsageError(
            f"validation.prompts: {path} must be a non-empty list of {{prompt, image}} entries"
        )
    prompts = []
    for i, item in enumerate(data):
        if isinstance(item, str):
            item = {"prompt": item}
        if not isinstance(item, dict) or not str(item.get("prompt") or "").strip():
            raise UsageError(f"validation.prompts: {path}, entry {i}: needs a prompt")
        unknown = set(item) - {"prompt", "image"}
        if unknown:
            raise UsageError(
                f"validation.prompts: {path}, entry {i}: unknown key "
                f"{min(unknown)} (use prompt, image)"
            )
        image = first.image
        if item.get("image"):
            image = Path(str(item["image"])).expanduser()
            image = image if image.is_absolute() else path.parent / image
            if not image.is_file():
                raise UsageError(f"validation.prompts: {path}, entry {i}: image {image} not found")
        prompts.append(SamplePrompt(str(item["prompt"]).strip(), image))
    return prompts


# -- the run ---------------------------------------------------------------------------------
def _fixed_part(config: TrainingConfig) -> dict[str, Any]:
    data = config.to_dict()
    out: dict[str, Any] = {}
    for key in FIXED_ON_RESUME:
        section, _, name = key.partition(".")
        out[key] = data[section][name] if name else data[section]
    return out


def _check_output_dir(request: TrainRequest) -> tuple[int, Path] | None:
    """The checkpoint to resume from, or None; refuses to mix a new run into an old one."""
    out = request.output_dir
    if out.exists() and not out.is_dir():
        raise UsageError(f"--output-dir {out} is not a folder")
    checkpoints = list_checkpoints(out)
    previous = out / RUN_FILE
    if not request.resume:
        if checkpoints or previous.is_file():
            raise UsageError(
                f"{out} holds a previous training run: pass --resume to continue "
                "it, or choose another --output-dir"
            )
        return None
    if previous.is_file():
        try:
            saved = json.loads(previous.read_text())["fixed"]
        except (OSError, ValueError, KeyError):
            saved = None
        mine = json.loads(json.dumps(_fixed_part(request.config)))
        if saved is not None:
            for key, value in mine.items():
                if saved.get(key) != value:
                    raise UsageError(
                        f"--resume: {key} differs from the run in {out} "
                        f"({saved.get(key)!r} there, {value!r} now)"
                    )
    return checkpoints[-1] if checkpoints else None


def _write_json(path: Path, data: Any) -> None:
    from vt.atomic import atomic_file

    with atomic_file(path, overwrite=True) as tmp:
        tmp.write_text(json.dumps(data, indent=1, default=str) + "\n")


def _trackers(setting: str | list[str]) -> Any:
    """accelerate's ``log_with`` for ``training.report_to``: auto is TensorBoard when it is
    installed, else none; a tracker named but not installed is a usage error."""
    from accelerate.tracking import get_available_trackers

    available = [str(t) for t in get_available_trackers()]
    if setting == "none":
        return None
    if setting == "auto":
        return ["tensorboard"] if "tensorboard" in available else None
    if setting == "all":
        return available or None
    names = [setting] if isinstance(setting, str) else list(setting)
    missing = [n for n in names if n not in available]
    if missing:
        raise UsageError(
            f"training.report_to: {', '.join(missing)} is not installed here "
            f"(installed: {', '.join(available) or 'none'}; e.g. pip install "
            f"{missing[0]})"
        )
    return names


def _flat(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = (
                value if isinstance(value, (int, float, str, bool)) else str(value)
            )
    return out


def train_lora(request: TrainRequest, echo: Callable[[str], None] = print) -> TrainResult:
    """Run (or resume) one LoRA training; see the module docstring for what it writes."""
    import torch
    from accelerate import Accelerator
    from accelerate.utils import ProjectConfiguration, set_seed
    from diffusers import CogVideoXDPMScheduler
    from diffusers.optimization import get_scheduler

    from vt.atomic import atomic_folder
    from vt.cachedirs import cache_dir
    from vt.models.diffusers_adapter import quiet_libraries
    from vt_cogvideo.loading import read_model_spec
    from vt_cogvideo.training import lora as lora_mod
    from vt_cogvideo.training.precompute import LatentCache, precompute

    quiet_libraries()  # diffusers' and transformers' progress bars and advice off
    started = time.perf_counter()
    config = request.config
    every = request.checkpointing_steps or config.training.checkpointing_steps
    if every < 1:
        raise UsageError(f"--checkpointing-steps must be at least 1, got {every}")
    clips = load_metadata(request.metadata)
    spec = read_model_spec(config.model)
    check_against_model(config, spec)
    tconf, vconf = spec.config["transformer"], spec.config["vae"]
    if tconf.get("patch_size_t") is not None:
        raise UsageError(
            f"{spec.name} is a CogVideoX 1.5 model (temporal patches): "
            "train-lora trains CogVideoX 1.0 I2V models (CogVideoX-5b-I2V)"
        )
    samples_wanted = request.samples and config.validation.max_samples > 0
    prompts = read_validation_prompts(config, clips[0]) if samples_wanted else []
    trackers = _trackers(config.training.report_to)
    resume_from = _check_output_dir(request)
    out = request.output_dir
    out.mkdir(parents=True, exist_ok=True)

    accelerator = Accelerator(
        gradient_accumulation_steps=config.training.gradient_accumulation_steps,
        mixed_precision=resolve_mixed_precision(
            config.training.mixed_precision,
            "cpu" if request.device == "cpu" else ("cuda" if torch.cuda.is_available() else "cpu"),
        ),
        log_with=trackers,
        project_config=ProjectConfiguration(project_dir=str(out), logging_dir=str(out / "logs")),
        cpu=request.device == "cpu",
    )
    main = accelerator.is_main_process
    say = echo if main else (lambda _: None)
    device = accelerator.device
    weight_dtype = {"bf16": "bf16", "fp16": "fp16"}.get(accelerator.mixed_precision, "fp32")
    set_seed(config.training.seed)

    # 1. latents and prompt embeddings, once, cached (main process first, the others read)
    cache = LatentCache(request.cache_dir or cache_dir("cogvideo-train"))

    def load_encoders(need_vae: bool, need_text: bool) -> Any:
        from vt.models import load_model

        skip: dict[str, Any] = {"transformer": None}
        if not need_vae:
            skip["vae"] = None
        if not need_text:
            skip.update(text_encoder=None, tokenizer=None)
        pipe = load_model(
            spec.ref,
            adapter="diffusers",
            device=str(device),
            dtype=weight_dtype,
            cache=False,
            pipeline_class="CogVideoXImageToVideoPipeline",
            components=skip,
        ).model
        if need_vae and device.type == "cuda":
            pipe.vae.enable_slicing()
            pipe.vae.enable_tiling()
        return pipe

    with accelerator.main_process_first():
        report = precompute(
            clips,
            model_folder=spec.ref.path,
            data=config.data,
            max_tokens=spec.max_text_tokens,
            cache=cache,
            device=str(device),
            dtype=weight_dtype,
            seed=config.training.seed,
            load_encoders=load_encoders,
            echo=say,
        )
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    for clip_id, reason in report.skipped:
        say(f"warning: skipped {clip_id}: {reason}")
    if not report.clips:
        raise InputError(
            "no training clip could give the configured frames (see the warnings above)"
        )
    say(
        f"data: {len(report.clips)} clips ({report.video_hits} latents and "
        f"{report.prompt_hits} prompts from the cache under {cache.root})"
    )

    # 2. the transformer with its LoRA adapter
    from vt.models import load_model

    transformer = load_model(
        spec.ref,
        adapter="diffusers",
        subfolder="transformer",
        device=str(device),
        dtype=weight_dtype,
        cache=False,
    ).model
    if config.training.gradient_checkpointing:
        transformer.enable_gradient_checkpointing()
    set_seed(config.training.seed)  # the adapter's initial weights, whatever loading drew
    counts = lora_mod.add_lora(transformer, config.lora)
    say(counts.describe())
    if counts.share >= 0.10:
        say(
            f"warning: {100 * counts.share:.1f}% of the parameters are trainable (the spec "
            "keeps LoRA under 10%): lower lora.rank"
        )
    scheduler = CogVideoXDPMScheduler.from_pretrained(str(spec.ref.path), subfolder="scheduler")
    scaling = lora_mod.LatentScaling.from_config(vconf)
    latent_frames = (config.data.num_frames - 1) // spec.temporal_compression + 1
    rotary = lora_mod.rotary_embeddings(
        tconf,
        height=config.data.height,
        width=config.data.width,
        latent_frames=latent_frames,
        spatial_compression=spec.spatial_compression,
        device=device,
    )

    opt = config.optimizer
    trainable = [p for p in transformer.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        trainable,
        lr=opt.learning_rate,
        betas=(opt.adam_beta1, opt.adam_beta2),
        eps=opt.adam_epsilon,
        weight_decay=opt.weight_decay,
    )
    sampler = EpochSampler(len(report.clips), config.training.seed)
    loader = torch.utils.data.DataLoader(
        _dataset(cache, report.clips),
        batch_size=config.training.batch_size,
        sampler=sampler,
        collate_fn=_collate,
        # its own generator: making an iterator must not
        # draw from the global RNG that checkpoints restore
        generator=torch.Generator().manual_seed(config.training.seed),
    )
    ga = config.training.gradient_accumulation_steps
    steps_per_epoch = math.ceil(len(loader) / ga)
    total_steps = config.training.max_steps or config.training.epochs * steps_per_epoch
    epochs = math.ceil(total_steps / steps_per_epoch)
    lr_scheduler = get_scheduler(
        opt.lr_scheduler,
        optimizer=optimizer,
        num_warmup_steps=opt.lr_warmup_steps * accelerator.num_processes,
        num_training_steps=total_steps * accelerator.num_processes,
    )
    transformer, optimizer, loader, lr_scheduler = accelerator.prepare(
        transformer, optimizer, loader, lr_scheduler
    )
    batches_per_epoch = len(loader)

    def unwrap() -> Any:
        return accelerator.unwrap_model(transformer)

    # checkpoints hold the adapter only (not the frozen base weights) in diffusers' format
    def save_hook(models: list[Any], weights: list[Any], folder: str) -> None:
        for _ in models:
            weights.pop()
        if main:
            lora_mod.write_adapter(unwrap(), Path(folder))

    def load_hook(models: list[Any], folder: str) -> None:
        while models:
            models.pop()
        lora_mod.read_adapter(unwrap(), Path(folder))

    accelerator.register_save_state_pre_hook(save_hook)
    accelerator.register_load_state_pre_hook(load_hook)

    # the loop's draws (latent samples, noise, timesteps, dropout) start here, from the
    # seed, or from the checkpoint's RNG states on resume: the same either way
    set_seed(config.training.seed + 1)
    global_step, first_epoch, batches_done = 0, 0, 0
    resumed_from = None
    if resume_from is not None:
        step, folder = resume_from
        state = json.loads((folder / STATE_FILE).read_text())
        accelerator.load_state(str(folder))
        global_step, first_epoch = int(state["global_step"]), int(state["epoch"])
        batches_done = int(state["batches_done"])
        resumed_from = step
        say(
            f"resuming from {folder} (step {global_step}, epoch {first_epoch + 1}, "
            f"{batches_done} batches into it)"
        )
    elif request.resume:
        say(f"no checkpoint in {out / 'checkpoints'}: starting from step 0")

    result = TrainResult(
        out,
        global_step,
        total_steps,
        epochs,
        resumed_from,
        counts,
        out / "outputs" / "metrics.csv",
        precompute=report.as_dict(),
    )
    if main:
        _write_json(
            out / RUN_FILE,
            {
                "config": config.to_dict(),
                "fixed": _fixed_part(config),
                "metadata": str(request.metadata.resolve()),
                "model": str(spec.ref.path),
                "clips": len(report.clips),
                "steps_per_epoch": steps_per_epoch,
                "total_steps": total_steps,
                "processes": accelerator.num_processes,
                "mixed_precision": accelerator.mixed_precision,
                "device": str(device),
            },
        )
        accelerator.init_trackers("vt-cogvideo-lora", config=_flat(config.to_dict()))
    metrics = (
        MetricsLog(result.metrics, resumed_from if resumed_from is not None else 0)
        if main
        else None
    )

    def save_checkpoint(epoch: int, batches: int) -> None:
        if not main:
            return
        final = out / "checkpoints" / f"{CHECKPOINT_PREFIX}{global_step}"
        final.parent.mkdir(parents=True, exist_ok=True)
        with atomic_folder(final, overwrite=True) as tmp:
            accelerator.save_state(str(tmp))
            (tmp / STATE_FILE).write_text(
                json.dumps(
                    {
                        "global_step": global_step,
                        "epoch": epoch,
                        "batches_done": batches,
                        "total_steps": total_steps,
                    }
                )
                + "\n"
            )
        result.checkpoints.append(final)
        _prune(out, config.training.checkpoints_total_limit)

    def save_adapter(name: str) -> Path:
        folder = out / name
        with atomic_folder(folder, overwrite=True) as tmp:
            lora_mod.write_adapter(unwrap(), tmp)
        return folder

    def write_samples(adapter: Path, tag: str) -> None:
        if not samples_wanted:
            return
        from vt_cogvideo.generation import GenerationRequest, Generator

        generator = Generator(str(spec.ref.path), device=str(device))
        try:
            for i, sample in enumerate(prompts[: config.validation.max_samples], start=1):
                target = out / "outputs" / "examples" / f"{tag}-{i}.mp4"
                target.parent.mkdir(parents=True, exist_ok=True)
                generated = generator.generate(
                    GenerationRequest(
                        image=sample.image,
                        prompt=sample.prompt,
                        num_frames=config.data.num_frames,
                        height=config.data.height,
                        width=config.data.width,
                        num_inference_steps=config.validation.num_inference_steps,
                        guidance_scale=config.validation.guidance_scale,
                        seed=config.validation.seed,
                        fps=config.data.fps,
                        lora=adapter,
                        mode=config.validation.mode,
                    ),
                    target,
                    overwrite=True,
                )
                result.samples.append(generated.output)
                say(f"sample: {generated.output} (temporal score {generated.temporal_score:.3f})")
        finally:
            generator.close()
            del generator
            gc.collect()
            if device.type == "cuda":
                torch.cuda.empty_cache()

    say(
        f"training: {total_steps} steps ({steps_per_epoch} per epoch, {epochs} epochs), "
        f"{len(report.clips)} clips, batch {config.training.batch_size} x {ga} accumulated "
        f"x {accelerator.num_processes} processes, {accelerator.mixed_precision} precision, "
        f"{device}"
    )
    try:
        epoch = first_epoch
        while epoch < epochs and global_step < total_steps:
            sampler.epoch = epoch
            transformer.train()
            skip = batches_done if epoch == first_epoch else 0
            batches = accelerator.skip_first_batches(loader, skip) if skip else loader
            batch_index = skip
            losses: list[float] = []
            step_started = time.perf_counter()
            for batch in batches:
                with accelerator.accumulate(transformer):
                    inputs = lora_mod.sample_inputs(
                        batch,
                        scaling=scaling,
                        num_train_timesteps=scheduler.config.num_train_timesteps,
                        image_dropout=config.data.noised_image_dropout,
                        device=device,
                        dtype=torch.float32
                        if weight_dtype == "fp32"
                        else (torch.bfloat16 if weight_dtype == "bf16" else torch.float16),
                    )
                    loss = lora_mod.training_loss(transformer, scheduler, inputs, rotary)
                    accelerator.backward(loss)
                    if accelerator.sync_gradients:
                        accelerator.clip_grad_norm_(trainable, opt.max_grad_norm)
                    optimizer.step()
                    lr_scheduler.step()
                    optimizer.zero_grad()
                batch_index += 1
                losses.append(float(accelerator.gather(loss.detach()).mean()))
                if not accelerator.sync_gradients:
                    continue
                global_step += 1
                step_loss = sum(losses) / len(losses)
                if not math.isfinite(step_loss):
                    raise InputError(
                        f"the loss is {step_loss} at step {global_step}: lower "
                        "optimizer.learning_rate (the last checkpoint is intact)"
                    )
                losses = []
                lr = lr_scheduler.get_last_lr()[0]
                seconds = time.perf_counter() - step_started
                step_started = time.perf_counter()
                if metrics is not None:
                    metrics.write(global_step, epoch + 1, step_loss, lr, seconds)
                accelerator.log({"loss": step_loss, "lr": lr}, step=global_step)
                say(
                    f"step {global_step}/{total_steps} epoch {epoch + 1} loss {step_loss:.5g} "
                    f"lr {lr:.3g} {seconds:.2f} s"
                )
                result.global_step = global_step
                if global_step >= total_steps:
                    break
                if global_step % every == 0 and batch_index < batches_per_epoch:
                    save_checkpoint(epoch, batch_index)
            finished_epoch = batch_index >= batches_per_epoch
            if main:
                if finished_epoch:
                    adapter = save_adapter(f"epoch-{epoch + 1:04d}")
                    result.adapters.append(adapter)
                    say(f"adapter: {adapter}")
                    if (
                        epoch + 1
                    ) % config.validation.every_epochs == 0 or global_step >= total_steps:
                        write_samples(adapter, f"epoch-{epoch + 1:04d}")
                elif global_step >= total_steps:  # max_steps reached inside an epoch
                    adapter = save_adapter("adapter_final")
                    write_samples(adapter, f"step-{global_step}")
            accelerator.wait_for_everyone()
            if finished_epoch:
                epoch += 1
                batches_done = 0
                save_checkpoint(epoch, 0)
            else:
                save_checkpoint(epoch, batch_index)
        if main:
            result.final_adapter = save_adapter("adapter_final")
            say(f"final adapter: {result.final_adapter}")
    finally:
        if metrics is not None:
            metrics.close()
        accelerator.end_training()
    result.global_step = global_step
    result.seconds = time.perf_counter() - started
    return result
