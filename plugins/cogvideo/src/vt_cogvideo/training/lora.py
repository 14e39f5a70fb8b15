"""The LoRA pieces of training: adapters on the transformer, the I2V loss, adapter files.

Kept apart from the loop (``trainer``) so tests and benchmarks drive one step on a fixed
batch with the very code the loop runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vt_cogvideo.loading import LORA_WEIGHTS
from vt_cogvideo.training.config import LoraSettings

if TYPE_CHECKING:  # pragma: no cover
    import torch

ADAPTER_NAME = "default"


@dataclass(frozen=True)
class ParameterCount:
    trainable: int
    total: int

    @property
    def share(self) -> float:
        return self.trainable / self.total if self.total else 0.0

    def describe(self) -> str:
        return (
            f"trainable parameters: {self.trainable:,} of {self.total:,} ({100 * self.share:.3f}%)"
        )


def add_lora(transformer: Any, settings: LoraSettings) -> ParameterCount:
    """Freeze ``transformer`` and add a peft LoRA adapter on its attention projections;
    the adapter's parameters are fp32 whatever the base weights' dtype."""
    import torch
    from peft import LoraConfig

    transformer.requires_grad_(False)
    transformer.add_adapter(
        LoraConfig(
            r=settings.rank,
            lora_alpha=settings.alpha,
            lora_dropout=settings.dropout,
            init_lora_weights=True,
            target_modules=list(settings.target_modules),
        )
    )
    for param in transformer.parameters():
        if param.requires_grad:
            param.data = param.data.to(torch.float32)
    return count_parameters(transformer)


def count_parameters(model: Any) -> ParameterCount:
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return ParameterCount(trainable, sum(p.numel() for p in model.parameters()))


def lora_state(transformer: Any) -> dict[str, torch.Tensor]:
    """The adapter's weights in peft's naming (what diffusers' ``save_lora_weights`` takes)."""
    from peft.utils import get_peft_model_state_dict

    return get_peft_model_state_dict(transformer, adapter_name=ADAPTER_NAME)


def write_adapter(transformer: Any, folder: Path) -> Path:
    """``folder/pytorch_lora_weights.safetensors`` in diffusers' format (``transformer.``
    prefix, the LoRA config with its alpha in the metadata), written by diffusers' own
    ``save_lora_weights`` into ``folder``, which must exist. Returns the file."""
    from diffusers import CogVideoXImageToVideoPipeline

    config = transformer.peft_config[ADAPTER_NAME].to_dict()
    CogVideoXImageToVideoPipeline.save_lora_weights(
        str(folder),
        transformer_lora_layers={
            k: v.detach().float().cpu().contiguous() for k, v in lora_state(transformer).items()
        },
        transformer_lora_adapter_metadata=config,
    )
    return folder / LORA_WEIGHTS


def read_adapter(transformer: Any, folder: Path) -> None:
    """Load the adapter weights ``write_adapter`` wrote into ``transformer``'s adapter."""
    from peft.utils import set_peft_model_state_dict
    from safetensors.torch import load_file

    state = load_file(str(folder / LORA_WEIGHTS))
    prefix = "transformer."
    state = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    result = set_peft_model_state_dict(transformer, state, adapter_name=ADAPTER_NAME)
    unexpected = getattr(result, "unexpected_keys", None)
    if unexpected:
        raise ValueError(f"adapter weights do not fit this model: {unexpected[:3]}")


# -- the I2V training objective --------------------------------------------------------------
@dataclass(frozen=True)
class LatentScaling:
    """How the VAE's latents are scaled (``scaling_factor``, inverted for CogVideoX 1.5)."""

    factor: float
    invert: bool

    def apply(self, latents: torch.Tensor) -> torch.Tensor:
        return latents / self.factor if self.invert else latents * self.factor

    @classmethod
    def from_config(cls, vae_config: dict[str, Any]) -> LatentScaling:
        return cls(
            float(vae_config.get("scaling_factor", 1.15258426)),
            bool(vae_config.get("invert_scale_latents", False)),
        )


@dataclass
class StepInputs:
    """One batch made ready for the transformer: [B, F, C, h, w] latents."""

    video_latents: torch.Tensor
    image_latents: torch.Tensor  # first frame's latent, zero-padded across the latent frames
    prompt_embeds: torch.Tensor
    noise: torch.Tensor
    timesteps: torch.Tensor


def sample_inputs(
    batch: dict[str, torch.Tensor],
    *,
    scaling: LatentScaling,
    num_train_timesteps: int,
    image_dropout: float,
    device: Any,
    dtype: torch.dtype,
    generator: torch.Generator | None = None,
) -> StepInputs:
    """Latents drawn from the cached distributions, the image latents padded across the
    latent frames (zeroed for ``image_dropout`` of the samples), noise and timesteps — as
    diffusers' CogVideoX I2V LoRA example does. Random draws use ``generator`` (default: the
    global generator, whose state accelerate's checkpoints keep)."""
    import torch
    from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution

    def draw(params: torch.Tensor) -> torch.Tensor:
        dist = DiagonalGaussianDistribution(params.to(device=device, dtype=torch.float32))
        eps = torch.randn(
            dist.mean.shape,
            generator=generator,
            dtype=torch.float32,
            device="cpu" if generator is not None else device,
        ).to(device)
        sample = dist.mean + dist.std * eps
        return scaling.apply(sample).permute(0, 2, 1, 3, 4)  # [B, F, C, h, w]

    video = draw(batch["video_latent_dist"])
    image = draw(batch["image_latent_dist"])
    padding = image.new_zeros((image.shape[0], video.shape[1] - image.shape[1], *image.shape[2:]))
    image = torch.cat([image, padding], dim=1)
    if image_dropout > 0:
        keep = torch.rand(
            (image.shape[0],),
            generator=generator,
            device="cpu" if generator is not None else device,
        ).to(device)
        image = image * (keep >= image_dropout).to(image.dtype)[:, None, None, None, None]
    noise = torch.randn(
        video.shape,
        generator=generator,
        dtype=torch.float32,
        device="cpu" if generator is not None else device,
    ).to(device)
    timesteps = torch.randint(
        0,
        num_train_timesteps,
        (video.shape[0],),
        generator=generator,
        device="cpu" if generator is not None else device,
    ).to(device)
    return StepInputs(
        video.to(dtype),
        image.to(dtype),
        batch["prompt_embeds"].to(device=device, dtype=dtype),
        noise.to(dtype),
        timesteps.long(),
    )


def training_loss(
    transformer: Any,
    scheduler: Any,
    inputs: StepInputs,
    rotary: tuple[torch.Tensor, torch.Tensor] | None,
    ofs: torch.Tensor | None = None,
) -> torch.Tensor:
    """v-prediction loss with the SNR weighting 1/(1 - alphas_cumprod[t]): the transformer
    sees the noised video latents concatenated on channels with the image latents; its
    output turned into a clean-latent estimate by the scheduler's ``get_velocity`` is
    compared with the clean latents (= the v-prediction error, weighted)."""
    import torch

    noisy = scheduler.add_noise(inputs.video_latents, inputs.noise, inputs.timesteps)
    model_input = torch.cat([noisy, inputs.image_latents], dim=2)
    output = transformer(
        hidden_states=model_input,
        encoder_hidden_states=inputs.prompt_embeds,
        timestep=inputs.timesteps,
        image_rotary_emb=rotary,
        ofs=ofs,
        return_dict=False,
    )[0]
    predicted = scheduler.get_velocity(output, noisy, inputs.timesteps)
    alphas = scheduler.alphas_cumprod.to(inputs.timesteps.device)[inputs.timesteps]
    weights = (1 / (1 - alphas)).float()
    while weights.dim() < predicted.dim():
        weights = weights.unsqueeze(-1)
    error = (predicted.float() - inputs.video_latents.float()) ** 2
    return (weights * error).reshape(error.shape[0], -1).mean(dim=1).mean()


def rotary_embeddings(
    transformer_config: dict[str, Any],
    *,
    height: int,
    width: int,
    latent_frames: int,
    spatial_compression: int,
    device: Any,
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The 3D rotary position embeddings the pipeline gives the transformer at this size
    (CogVideoX 1.0 layout), from diffusers' own helpers; None without rotary embeddings."""
    if not transformer_config.get("use_rotary_positional_embeddings"):
        return None
    from diffusers.models.embeddings import get_3d_rotary_pos_embed
    from diffusers.pipelines.cogvideo.pipeline_cogvideox_image2video import (
        get_resize_crop_region_for_grid,
    )

    p = int(transformer_config["patch_size"])
    grid = (height // (spatial_compression * p), width // (spatial_compression * p))
    crops = get_resize_crop_region_for_grid(
        grid,
        int(transformer_config["sample_width"]) // p,
        int(transformer_config["sample_height"]) // p,
    )
    return get_3d_rotary_pos_embed(
        embed_dim=int(transformer_config["attention_head_dim"]),
        crops_coords=crops,
        grid_size=grid,
        temporal_size=latent_frames,
        device=device,
    )
