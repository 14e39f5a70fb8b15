"""``vt cogvideo train-lora`` on the CPU with the tiny CogVideoX I2V model: time per step, peak
RSS, the loss on one fixed batch, and vt's overhead against a plain training loop.

* vt: ``vt cogvideo train-lora`` as a child process (three real clips, 16x16x9, rank 4,
  ``--max-steps N``, no sample clips), its per-step seconds from ``outputs/metrics.csv``,
  wall time and peak RSS from ``wait4``. The latent cache is warm (a first run fills it).
* plain: the loop one writes by hand after diffusers' CogVideoX I2V LoRA example (PyAV
  decode, the same VAE/T5 encoding held in memory, peft LoRA, AdamW, the same loss), without
  accelerate, the on-disk cache, metrics, adapters or checkpoints; same clips, sizes, rank,
  learning rate and steps; a child process too.
  The two alternate ``--repeats`` times with ``OMP_NUM_THREADS=1``.
* fixed batch: the loss over ``--fixed-steps`` AdamW steps on one batch with fixed latents,
  noise and timesteps (in this process): the model can fit it, so gradients reach the LoRA.
* the full-size CogVideoX-5B-I2V transformer built on the meta device (no memory) with LoRA
  rank 64 on to_q/to_k/to_v/to_out.0: the trainable share the spec bounds at 10%.

    flock /work/bench.lock python benchmarks/cogvideo_train_lora.py [--steps 40] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import vt_exe

CAPTIONS = {
    "bigbuckbunny": "a big white rabbit wakes up in a green meadow",
    "bikes": "cyclists ride down a city street",
    "carphone_pristine": "a man talks on a phone in a moving car",
}
RANK, LR, SEED = 4, 1e-2, 42


def measured(cmd: list[str], env: dict[str, str]) -> tuple[float, float, float, str]:
    """(wall s, CPU s, peak RSS MB, stdout) of a child process, from wait4."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    out_text = proc.stdout.read().decode() if proc.stdout else ""
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status):
        err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
        raise SystemExit(f"{' '.join(cmd)} failed:\n{err[-3000:]}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, out_text


def prepare(work: Path) -> tuple[Path, Path, Path]:
    """The tiny model, the metadata of three real clips and a training config."""
    import shutil

    import yaml

    from vt.testing import sample_clip
    from vt_cogvideo.tiny import save_tiny_i2v
    from vt_cogvideo.training.metadata import prepare_metadata

    model = save_tiny_i2v(work / "tiny")
    clips = work / "clips"
    clips.mkdir()
    for name in CAPTIONS:
        shutil.copy(sample_clip(name), clips / f"{name}.mp4")
    captions = work / "captions.json"
    captions.write_text(json.dumps([{"video": k, "caption": v} for k, v in CAPTIONS.items()]))
    metadata = prepare_metadata(clips, captions, work / "meta.json", num_frames=9, fps=8).output
    config = work / "lora.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "model": str(model),
                "data": {"height": 16, "width": 16, "num_frames": 9},
                "lora": {"rank": RANK, "alpha": RANK},
                "optimizer": {"learning_rate": LR},
                "training": {"seed": SEED, "report_to": "none", "epochs": 1000},
            }
        )
    )
    return model, metadata, config


# -- the plain loop (run as a child: ``plain MODEL METADATA STEPS``) -------------------------
def plain_loop(model: Path, metadata: Path, steps: int) -> dict[str, float]:
    import math

    import av
    import numpy as np
    import torch
    from diffusers import CogVideoXDPMScheduler, CogVideoXImageToVideoPipeline
    from diffusers.models.embeddings import get_3d_rotary_pos_embed
    from diffusers.pipelines.cogvideo.pipeline_cogvideox_image2video import (
        get_resize_crop_region_for_grid,
    )
    from peft import LoraConfig
    from PIL import Image

    torch.manual_seed(SEED)
    pipe = CogVideoXImageToVideoPipeline.from_pretrained(str(model))
    pipe.set_progress_bar_config(disable=True)
    vae, transformer = pipe.vae, pipe.transformer
    scheduler = CogVideoXDPMScheduler.from_config(pipe.scheduler.config)
    entries = json.loads(metadata.read_text())
    videos, images, prompts = [], [], []
    for entry in entries:
        with av.open(str(metadata.parent / entry["video_path"])) as container:
            stream = container.streams.video[0]
            rate = float(stream.average_rate)
            want = [math.floor(i * max(rate / 8, 1.0) + 1e-6) for i in range(9)]
            frames = []
            for i, frame in enumerate(container.decode(video=0)):
                if i in want:
                    img = frame.to_image()
                    scale = max(16 / img.width, 16 / img.height)
                    size = (
                        max(16, math.ceil(img.width * scale)),
                        max(16, math.ceil(img.height * scale)),
                    )
                    img = img.resize(size, Image.BICUBIC)
                    left, top = (size[0] - 16) // 2, (size[1] - 16) // 2
                    frames.append(np.asarray(img.crop((left, top, left + 16, top + 16))))
                if i >= want[-1]:
                    break
        video = torch.from_numpy(np.stack(frames)).float().div(127.5).sub(1)
        video = video.permute(3, 0, 1, 2).unsqueeze(0)
        with torch.no_grad():
            videos.append(vae.encode(video).latent_dist)
            sigma = math.exp(torch.normal(-3.0, 0.5, (1,)).item())
            image = video[:, :, :1] + torch.randn_like(video[:, :, :1]) * sigma
            images.append(vae.encode(image).latent_dist)
            ids = pipe.tokenizer(
                [entry["prompt"]],
                padding="max_length",
                max_length=16,
                truncation=True,
                return_tensors="pt",
            ).input_ids
            prompts.append(pipe.text_encoder(ids)[0])
    transformer.requires_grad_(False)
    transformer.enable_gradient_checkpointing()
    transformer.add_adapter(
        LoraConfig(
            r=RANK,
            lora_alpha=RANK,
            init_lora_weights=True,
            target_modules=["to_q", "to_k", "to_v", "to_out.0"],
        )
    )
    params = [p for p in transformer.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=LR, betas=(0.9, 0.95), weight_decay=1e-4, eps=1e-8)
    conf = transformer.config
    crops = get_resize_crop_region_for_grid((1, 1), conf.sample_width // 2, conf.sample_height // 2)
    rotary = get_3d_rotary_pos_embed(conf.attention_head_dim, crops, (1, 1), 3)
    factor = vae.config.scaling_factor
    transformer.train()
    seconds = []
    for step in range(steps):
        started = time.perf_counter()
        i = step % len(entries)
        video = (videos[i].sample() * factor).permute(0, 2, 1, 3, 4)
        image = (images[i].sample() * factor).permute(0, 2, 1, 3, 4)
        image = torch.cat([image, image.new_zeros(1, video.shape[1] - 1, *image.shape[2:])], 1)
        noise = torch.randn_like(video)
        t = torch.randint(0, scheduler.config.num_train_timesteps, (1,))
        noisy = scheduler.add_noise(video, noise, t)
        out = transformer(
            hidden_states=torch.cat([noisy, image], 2),
            encoder_hidden_states=prompts[i],
            timestep=t,
            image_rotary_emb=rotary,
            return_dict=False,
        )[0]
        pred = scheduler.get_velocity(out, noisy, t)
        weight = 1 / (1 - scheduler.alphas_cumprod[t])
        loss = (weight * (pred - video) ** 2).mean()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad()
        seconds.append(time.perf_counter() - started)
    return {"median_step_s": statistics.median(seconds[1:])}


# -- the fixed batch and the full-size share (in this process) -------------------------------
def fixed_batch_losses(model: Path, steps: int) -> list[float]:
    import torch
    from diffusers import CogVideoXDPMScheduler

    from vt.models import load_model
    from vt_cogvideo.loading import read_model_spec
    from vt_cogvideo.training import lora
    from vt_cogvideo.training.config import LoraSettings

    spec = read_model_spec(model)
    transformer = load_model(
        model, adapter="diffusers", subfolder="transformer", device="cpu", cache=False
    ).model
    transformer.enable_gradient_checkpointing()
    lora.add_lora(transformer, LoraSettings(rank=RANK, alpha=RANK))
    scheduler = CogVideoXDPMScheduler.from_pretrained(str(model), subfolder="scheduler")
    g = torch.Generator().manual_seed(0)
    batch = {
        "video_latent_dist": torch.randn(1, 8, 3, 2, 2, generator=g),
        "image_latent_dist": torch.randn(1, 8, 1, 2, 2, generator=g),
        "prompt_embeds": torch.randn(1, 16, 32, generator=g),
    }
    inputs = lora.sample_inputs(
        batch,
        scaling=lora.LatentScaling.from_config(spec.config["vae"]),
        num_train_timesteps=1000,
        image_dropout=0.0,
        device="cpu",
        dtype=torch.float32,
        generator=torch.Generator().manual_seed(1),
    )
    rotary = lora.rotary_embeddings(
        spec.config["transformer"],
        height=16,
        width=16,
        latent_frames=3,
        spatial_compression=8,
        device="cpu",
    )
    optimizer = torch.optim.AdamW([p for p in transformer.parameters() if p.requires_grad], lr=LR)
    transformer.train()
    losses = []
    for _ in range(steps):
        loss = lora.training_loss(transformer, scheduler, inputs, rotary)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    return losses


def full_size_share(rank: int = 64) -> tuple[int, int]:
    """(trainable, total) parameters of CogVideoX-5B-I2V's transformer with LoRA ``rank``,
    built on the meta device from the published config (anchors.md)."""
    from accelerate import init_empty_weights
    from diffusers import CogVideoXTransformer3DModel

    from vt_cogvideo.training import lora
    from vt_cogvideo.training.config import LoraSettings

    with init_empty_weights():
        transformer = CogVideoXTransformer3DModel(
            num_attention_heads=48,
            attention_head_dim=64,
            in_channels=32,
            out_channels=16,
            time_embed_dim=512,
            text_embed_dim=4096,
            num_layers=42,
            sample_width=90,
            sample_height=60,
            sample_frames=49,
            patch_size=2,
            temporal_compression_ratio=4,
            max_text_seq_length=226,
            use_rotary_positional_embeddings=True,
            use_learned_positional_embeddings=True,
        )
        counts = lora.add_lora(transformer, LoraSettings(rank=rank, alpha=rank))
    return counts.trainable, counts.total


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--fixed-steps", type=int, default=40)
    args = parser.parse_args()
    print(f"load average before: {Path('/proc/loadavg').read_text().split()[:3]}")
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "VT_LOAD_PLUGINS": "cogvideo",
        "HF_HUB_OFFLINE": "1",
    }
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model, metadata, config = prepare(work)
        cache = work / "latents"
        base = [
            vt_exe(),
            "cogvideo",
            "train-lora",
            "--metadata",
            str(metadata),
            "--config",
            str(config),
            "--cache-dir",
            str(cache),
            "--max-steps",
            str(args.steps),
            "--no-samples",
            "--cpu",
            "--quiet",
        ]
        measured(base + ["-o", str(work / "warm")], env)  # fills the latent cache
        rows = []
        for r in range(args.repeats):
            out = work / f"vt{r}"
            vt_wall, vt_cpu, vt_rss, _ = measured(base + ["-o", str(out)], env)
            from vt_cogvideo.training.trainer import read_metrics

            vt_step = statistics.median(
                m["step_seconds"] for m in read_metrics(out / "outputs" / "metrics.csv")[1:]
            )
            p_wall, p_cpu, p_rss, p_out = measured(
                [sys.executable, __file__, "plain", str(model), str(metadata), str(args.steps)], env
            )
            p_step = json.loads(p_out.strip().splitlines()[-1])["median_step_s"]
            rows.append((vt_step, p_step, vt_wall, p_wall, vt_cpu, p_cpu, vt_rss, p_rss))
            print(
                f"run {r + 1}: step vt {vt_step * 1000:.1f} ms plain {p_step * 1000:.1f} ms "
                f"(x{vt_step / p_step:.3f}); wall vt {vt_wall:.2f} s plain {p_wall:.2f} s; "
                f"CPU vt {vt_cpu:.2f} s plain {p_cpu:.2f} s; peak RSS vt {vt_rss:.0f} MB "
                f"plain {p_rss:.0f} MB",
                flush=True,
            )
        med = [statistics.median(col) for col in zip(*rows, strict=True)]
        ratio = statistics.median(r[0] / r[1] for r in rows)
        cpu_ratio = statistics.median(r[4] / r[5] for r in rows)
        print(
            f"medians of {args.repeats}: step vt {med[0] * 1000:.1f} ms, plain "
            f"{med[1] * 1000:.1f} ms; median of the per-run ratios vt/plain: step "
            f"{ratio:.3f}, process CPU {cpu_ratio:.3f}; best step vt "
            f"{min(r[0] for r in rows) * 1000:.1f} ms, plain "
            f"{min(r[1] for r in rows) * 1000:.1f} ms; peak RSS vt {med[6]:.0f} MB, "
            f"plain {med[7]:.0f} MB"
        )
        import torch

        torch.set_num_threads(1)
        losses = fixed_batch_losses(model, args.fixed_steps)
        marks = sorted({0, 9, 19, 29, len(losses) - 1} & set(range(len(losses))))
        print(
            "fixed batch loss: "
            + ", ".join(f"step {i + 1} {losses[i]:.4f}" for i in marks)
            + f" (last/first {losses[-1] / losses[0]:.3f})"
        )
    trainable, total = full_size_share()
    print(
        f"CogVideoX-5B-I2V transformer + LoRA rank 64: {trainable:,} trainable of {total:,} "
        f"({100 * trainable / total:.2f}%)"
    )
    print(f"load average after: {Path('/proc/loadavg').read_text().split()[:3]}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "plain":
        import torch

        torch.set_num_threads(1)
        result = plain_loop(Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4]))
        print(json.dumps(result))
    else:
        main()
