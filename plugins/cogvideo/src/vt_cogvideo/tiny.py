"""A tiny CogVideoX image-to-video pipeline with seeded random weights, for offline tests.

Same classes and folder layout as ``THUDM/CogVideoX-5b-I2V`` (transformer with learned and
rotary positional embeddings, CogVideoX VAE, T5 encoder, T5 tokenizer, DDIM scheduler), so
``CogVideoXImageToVideoPipeline.from_pretrained(folder)`` and ``vt cogvideo --model FOLDER``
load it exactly as they load the real weights.

Its natural sizes, fixed by the learned positional embeddings like the 5B model's 480x720x49:
16x16 pixels (latent 2x2 x VAE compression 8) and 9 frames (3 latent frames x temporal
compression 4, plus the first). Two steps on one CPU thread take well under a second.
"""

from __future__ import annotations

import string
import tempfile
from pathlib import Path

#: what the tiny pipeline generates (documented above; tests read them from here)
TINY_HEIGHT = 16
TINY_WIDTH = 16
TINY_FRAMES = 9


def tiny_t5_tokenizer(folder: str | Path) -> object:
    """An offline T5 (unigram) tokenizer: characters and ``▁``-prefixed letters as pieces."""
    from transformers import T5Tokenizer

    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -2.0)]
    pieces += [(c, -3.0) for c in string.ascii_letters + string.digits + string.punctuation]
    pieces += [("\u2581" + c, -2.5) for c in string.ascii_letters]
    tokenizer = T5Tokenizer(vocab=pieces, extra_ids=0, model_max_length=226)
    tokenizer.save_pretrained(str(folder))
    return T5Tokenizer.from_pretrained(str(folder))


def save_tiny_i2v(path: Path, seed: int = 0) -> Path:
    """Save the tiny CogVideoX I2V pipeline (``model_index.json`` and safetensors) to
    ``path``; the same ``seed`` gives the same weights. Returns ``path``."""
    import diffusers
    import torch
    from transformers import T5Config, T5EncoderModel

    path = Path(path)
    torch.manual_seed(seed)
    transformer = diffusers.CogVideoXTransformer3DModel(
        num_attention_heads=2,
        attention_head_dim=16,
        in_channels=8,
        out_channels=4,
        time_embed_dim=2,
        text_embed_dim=32,
        num_layers=1,
        sample_width=TINY_WIDTH // 8,
        sample_height=TINY_HEIGHT // 8,
        sample_frames=TINY_FRAMES,
        patch_size=2,
        temporal_compression_ratio=4,
        max_text_seq_length=16,
        use_rotary_positional_embeddings=True,
        use_learned_positional_embeddings=True,
    )
    torch.manual_seed(seed)
    vae = diffusers.AutoencoderKLCogVideoX(
        in_channels=3,
        out_channels=3,
        down_block_types=("CogVideoXDownBlock3D",) * 4,
        up_block_types=("CogVideoXUpBlock3D",) * 4,
        block_out_channels=(8, 8, 8, 8),
        latent_channels=4,
        layers_per_block=1,
        norm_num_groups=2,
        temporal_compression_ratio=4,
    )
    torch.manual_seed(seed)
    text_encoder = T5EncoderModel(
        T5Config(vocab_size=1103, d_model=32, d_ff=37, d_kv=8, num_heads=4, num_layers=5)
    )
    scheduler = diffusers.CogVideoXDDIMScheduler(
        beta_schedule="scaled_linear",
        beta_start=0.00085,
        beta_end=0.012,
        clip_sample=False,
        prediction_type="v_prediction",
        rescale_betas_zero_snr=True,
        set_alpha_to_one=True,
        timestep_spacing="trailing",
        snr_shift_scale=1.0,
    )
    with tempfile.TemporaryDirectory() as words:
        pipe = diffusers.CogVideoXImageToVideoPipeline(
            tokenizer=tiny_t5_tokenizer(words),
            text_encoder=text_encoder,
            vae=vae,
            transformer=transformer,
            scheduler=scheduler,
        )
        pipe.save_pretrained(str(path), safe_serialization=True)  # type: ignore[attr-defined]
    return path
