"""vt-vae-scale: scale video training sets to a square size, by letterbox or through a
Hugging Face autoencoder, driven by a metadata table (``vt vae-scale``)."""

from __future__ import annotations

from typing import Any

__all__ = ["Letterbox", "ScaleSettings", "VaeRoundtrip", "load_hf_autoencoder", "scale_table",
           "stage3_scale_videos"]


def __getattr__(name: str) -> Any:  # torch and pyarrow load on first use
    if name in ("load_hf_autoencoder", "VaeRoundtrip"):
        from vt_vae_scale import roundtrip

        return getattr(roundtrip, name)
    if name == "Letterbox":
        from vt_vae_scale.letterbox import Letterbox

        return Letterbox
    if name in ("ScaleSettings", "scale_table", "stage3_scale_videos"):
        from vt_vae_scale import scale

        return getattr(scale, name)
    raise AttributeError(f"module 'vt_vae_scale' has no attribute {name!r}")
