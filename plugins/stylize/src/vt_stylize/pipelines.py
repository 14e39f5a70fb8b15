"""The diffusers pipelines behind ``vt stylize``, loaded through the core's diffusers adapter.

One :class:`StylizePipeline` holds the loaded pipeline (img2img, ControlNet img2img,
AnimateDiff video-to-video, or its ControlNet variant), the prompt embeddings (encoded once,
not per frame) and the memory switches, and runs one call on a batch of frames or a window.
"""

from __future__ import annotations

import importlib.util
import logging
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vt.errors import MissingModelConfigError, ModelUnavailableError, UsageError, VtError
from vt.models import load_model, resolve_device
from vt.models.hub import looks_like_hub_id
from vt_stylize.coherence import (
    AnchorLayout,
    enable_cross_frame_attention,
    frame_generators,
    frame_noise,
    frame_seed,
)
from vt_stylize.errors import note, warn
from vt_stylize.settings import StylizeSettings

if TYPE_CHECKING:  # pragma: no cover
    import torch

log = logging.getLogger("vt")

PIPELINE_CLASSES = {
    "img2img": "StableDiffusionImg2ImgPipeline",
    "controlnet": "StableDiffusionControlNetImg2ImgPipeline",
    "animatediff": "AnimateDiffVideoToVideoPipeline",
    "animatediff-controlnet": "AnimateDiffVideoToVideoControlNetPipeline",
}


def _check_model_name(option: str, value: str) -> None:
    """A bare word is neither a path nor a hub id: say what is expected (the core would
    suggest super-resolution model names)."""
    path = Path(value).expanduser()
    if path.exists() or looks_like_hub_id(value):
        return
    if path.suffix or "/" in value or os.sep in value:
        raise UsageError(f"{option}: no such file or folder: {value}")
    raise UsageError(
        f"{option} {value!r}: expected a diffusers folder, a .safetensors/.ckpt "
        "file or a Hugging Face id (org/name)"
    )


def _config_folder(value: str) -> str:
    """``--model-config``: a diffusers folder, or a hub id resolved through the cache."""
    path = Path(value).expanduser()
    if path.is_dir():
        return str(path)
    if looks_like_hub_id(value):
        from vt.models import resolve_model

        return str(resolve_model(value).path)
    raise UsageError(
        f"--model-config: no such folder: {value} (a diffusers pipeline folder "
        "or a Hugging Face id)"
    )


class StylizePipeline:
    """A Stable Diffusion pipeline ready to stylise frames; loaded on first use."""

    def __init__(self, settings: StylizeSettings) -> None:
        settings.validate()
        self.settings = settings
        self.kind = settings.kind
        self.pipe: Any = None
        self.descriptor: Any = None
        self.device = resolve_device(settings.device)
        self.cuda = self.device.startswith("cuda")
        self.dtype = (
            settings.dtype if settings.dtype != "auto" else ("fp16" if self.cuda else "fp32")
        )
        self.multiple_of = 8
        self.layout = AnchorLayout()
        self._embeds: tuple[Any, Any] | None = None
        self._restore_attention: Any = None
        self.loaded_from: dict[str, Any] = {}

    # -- loading ---------------------------------------------------------------------------
    @property
    def loaded(self) -> bool:
        return self.pipe is not None

    def load(self) -> StylizePipeline:
        if self.pipe is not None:
            return self
        s = self.settings
        from vt.models.diffusers_adapter import quiet_libraries

        quiet_libraries()
        _check_model_name("--model-id", s.model)
        if s.controlnet:
            _check_model_name("--controlnet-id", s.controlnet)
        if s.animatediff:
            _check_model_name("--motion-adapter", s.motion_adapter)
        cuda = self.cuda
        offload = "model" if s.cpu_offload else "none"
        if s.cpu_offload and not cuda:
            note(f"--cpu-offload needs a CUDA device: ignored on {self.device}")
            offload = "none"
        # with offload the hooks place every component: load the extra ones on the CPU
        parts_device = "cpu" if offload != "none" else self.device
        components: dict[str, Any] = {}
        if s.controlnet:
            cn = load_model(
                s.controlnet,
                adapter="diffusers",
                device=parts_device,
                dtype=self.dtype,
                model_class="ControlNetModel",
                cache=False,
            )
            components["controlnet"] = cn.model
            self.loaded_from["controlnet"] = _origin(cn)
        if s.animatediff:
            ma = load_model(
                s.motion_adapter,
                adapter="diffusers",
                device=parts_device,
                dtype=self.dtype,
                model_class="MotionAdapter",
                cache=False,
            )
            components["motion_adapter"] = ma.model
            self.loaded_from["motion_adapter"] = _origin(ma)
        extra: dict[str, Any] = {}
        if s.model_config:  # a single-file checkpoint's configs, for offline use
            extra["config"] = _config_folder(s.model_config)
        # uncached: LoRA, attention processors and offload hooks change this pipeline, and
        # the process-wide memo would hand the changed one to the next user
        try:
            descriptor = load_model(
                s.model,
                adapter="diffusers",
                device=self.device,
                dtype=self.dtype,
                cache=False,
                pipeline_class=PIPELINE_CLASSES[self.kind],
                components=components,
                offload=offload,
                vae_slicing=cuda,
                vae_tiling=s.vae_tiling,
                **extra,
            )
        except MissingModelConfigError as exc:
            raise MissingModelConfigError(
                exc.reason,
                "pass --model-config with a diffusers folder or a cached Hugging Face id of "
                "the same model",
            ) from None
        if not getattr(descriptor, "is_pipeline", False) or not hasattr(descriptor.model, "unet"):
            raise UsageError(
                f"{s.model} holds a {type(descriptor.model).__name__}, not a "
                "Stable Diffusion pipeline (a folder with model_index.json)"
            )
        self.descriptor = descriptor
        self.loaded_from["model"] = _origin(descriptor)
        pipe = self.pipe = descriptor.model
        self.multiple_of = math.lcm(8, int(descriptor.size_requirements.multiple_of or 8))
        if s.controlnet:
            want = pipe.unet.config.cross_attention_dim
            got = components["controlnet"].config.cross_attention_dim
            if want != got:
                raise UsageError(
                    f"ControlNet {s.controlnet} was trained for another base model "
                    f"(text width {got}, the model's is {want}): use a ControlNet "
                    "made for this model's family (SD 1.5 or SD 2)"
                )
        if s.lora:
            self._load_lora(s.lora, s.lora_scale)
        if s.attention_slicing:
            pipe.enable_attention_slicing()
        if s.xformers:
            self._xformers(cuda)
        if s.cross_frame_attention:
            self._restore_attention = enable_cross_frame_attention(pipe.unet, self.layout)
        return self

    def _xformers(self, cuda: bool) -> None:
        if not cuda:
            note("--xformers needs a CUDA device: PyTorch's attention is used")
        elif importlib.util.find_spec("xformers") is None:
            note(
                "xformers is not installed (pip install 'vt-stylize[xformers]'): PyTorch's "
                "attention is used"
            )
        else:
            self.pipe.enable_xformers_memory_efficient_attention()

    def _load_lora(self, lora: str, scale: float) -> None:
        if importlib.util.find_spec("peft") is None:
            raise ModelUnavailableError(
                "--lora needs peft, a dependency of vt-stylize that is "
                "missing here (pip install peft)"
            )
        path = Path(lora).expanduser()
        if path.is_file():
            folder, weight_name = str(path.parent), path.name
        elif path.is_dir():
            folder, weight_name = str(path), None
        elif looks_like_hub_id(lora):
            from vt.models import resolve_model

            folder, weight_name = str(resolve_model(lora).path), None
        else:
            raise UsageError(f"--lora: no such file or folder: {lora}")
        try:
            kwargs = {"weight_name": weight_name} if weight_name else {}
            self.pipe.load_lora_weights(folder, adapter_name="style", **kwargs)
            # fused: no per-step LoRA cost; the adapter layers are dropped afterwards
            self.pipe.fuse_lora(lora_scale=scale, adapter_names=["style"])
            self.pipe.unload_lora_weights()
        except Exception as exc:  # noqa: BLE001 - wrong keys, another base model, bad file
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise VtError(f"cannot apply LoRA {path.name or lora}: {first[:300]}") from None
        self.loaded_from["lora"] = str(path if path.exists() else lora)

    # -- prompt ----------------------------------------------------------------------------
    @property
    def guided(self) -> bool:
        return self.settings.guidance > 1.0

    def embeddings(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(prompt, negative prompt) embeddings for one frame, encoded once."""
        if self._embeds is None:
            s, pipe = self.settings, self.load().pipe
            tokenizer = pipe.tokenizer
            limit = getattr(tokenizer, "model_max_length", 77)
            if len(tokenizer(s.prompt).input_ids) > limit:
                warn(
                    f"the prompt is longer than the text encoder's {limit} tokens: the end "
                    "is ignored"
                )
            import torch

            with torch.no_grad():
                positive, negative = pipe.encode_prompt(
                    s.prompt, pipe._execution_device, 1, self.guided, s.negative_prompt or None
                )
            self._embeds = (positive, negative if self.guided else None)
        return self._embeds

    def _prompt_kwargs(self, count: int) -> dict[str, Any]:
        positive, negative = self.embeddings()
        kwargs = {"prompt_embeds": positive.repeat(count, 1, 1)}
        if negative is not None:
            kwargs["negative_prompt_embeds"] = negative.repeat(count, 1, 1)
        return kwargs

    # -- calls -----------------------------------------------------------------------------
    @property
    def execution_device(self) -> Any:
        return self.load().pipe._execution_device

    @property
    def compute_dtype(self) -> Any:
        return self.load().pipe.unet.dtype

    def img2img(
        self, images: torch.Tensor, indices: list[int], control: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``(N, 3, H, W)`` frames in [0, 1] -> stylised, same shape; frame ``indices[k]``'s
        noise comes from its own generator."""
        s, pipe = self.settings, self.load().pipe
        n = int(images.shape[0])
        kwargs: dict[str, Any] = dict(
            image=images,
            strength=s.strength,
            num_inference_steps=s.steps,
            guidance_scale=s.guidance,
            generator=frame_generators(s.seed, indices, s.noise),
            output_type="pt",
            **self._prompt_kwargs(n),
        )
        if control is not None:
            kwargs.update(control_image=control, controlnet_conditioning_scale=s.controlnet_scale)
        self.layout.frames = n
        return pipe(**kwargs).images

    def video2video(
        self,
        frames: torch.Tensor,
        indices: list[int],
        control: torch.Tensor | None = None,
        chunk: int = 1,
    ) -> torch.Tensor:
        """One AnimateDiff window: ``(F, 3, H, W)`` in [0, 1] -> stylised, same shape.

        The initial latents are made here, not by diffusers, so that every frame's VAE sample
        and noise come from its own generator (shared or fresh, as for img2img) and a frame
        gets the same noise in both windows that overlap on it."""
        import torch

        s, pipe = self.settings, self.load().pipe
        device, dtype = pipe._execution_device, self.compute_dtype
        count, _, height, width = frames.shape
        generators = frame_generators(s.seed, indices, s.noise)
        with torch.no_grad():  # not inference_mode: the pipeline goes on with these tensors
            video = frames.to(device=device, dtype=pipe.vae.dtype) * 2 - 1
            means, stds = [], []
            for start in range(0, count, max(chunk, 1)):
                dist = pipe.vae.encode(video[start : start + chunk]).latent_dist
                means.append(dist.mean)
                stds.append(dist.std)
            mean, std = torch.cat(means), torch.cat(stds)
            eps = frame_noise(generators, mean.shape[1:], device, mean.dtype)
            latents = (mean + std * eps) * pipe.vae.config.scaling_factor
            pipe.scheduler.set_timesteps(s.steps, device=device)
            timesteps, _ = pipe.get_timesteps(s.steps, pipe.scheduler.timesteps, s.strength, device)
            noise = frame_noise(generators, latents.shape[1:], device, latents.dtype)
            latents = pipe.scheduler.add_noise(latents, noise, timesteps[:1].repeat(count))
            latents = latents.to(dtype).permute(1, 0, 2, 3).unsqueeze(0)  # (1, C, F, h, w)
        kwargs: dict[str, Any] = dict(
            latents=latents,
            strength=s.strength,
            num_inference_steps=s.steps,
            guidance_scale=s.guidance,
            height=height,
            width=width,
            output_type="pt",
            generator=torch.Generator("cpu").manual_seed(frame_seed(s.seed, indices[0], s.noise)),
            decode_chunk_size=max(chunk, 1),
            **self._prompt_kwargs(1),
        )
        if control is not None:
            kwargs.update(
                conditioning_frames=list(control), controlnet_conditioning_scale=s.controlnet_scale
            )
        return pipe(**kwargs).frames[0]

    # -- reporting and release -------------------------------------------------------------
    def describe(self) -> str:
        s = self.settings
        name = self.descriptor.name if self.descriptor is not None else s.model
        parts = [self.kind]
        if s.controlnet:
            parts.append(f"{s.control} control")
        if s.lora:
            parts.append(f"LoRA x{s.lora_scale:g}")
        return (
            f"{name} [{', '.join(parts)}, {self.device}, {self.dtype}], strength "
            f"{s.strength:g}, {s.steps} steps, guidance {s.guidance:g}, seed {s.seed}, "
            f"{s.noise} noise" + (", cross-frame attention" if s.cross_frame_attention else "")
        )

    def close(self) -> None:
        """Drop the pipeline and give its memory back."""
        from vt_stylize.errors import free_memory

        if self._restore_attention is not None and self.pipe is not None:
            self._restore_attention()
        self._restore_attention = None
        self.pipe = self.descriptor = None
        self._embeds = None
        free_memory()


def _origin(descriptor: Any) -> dict[str, Any]:
    p = descriptor.provenance
    return {
        "name": descriptor.name,
        "source": p.source if p else None,
        "path": str(p.path) if p and p.path else None,
        "repo_id": p.repo_id if p else None,
    }
