"""vt-vae-scale: scale video training sets to a square size, by letterbox or through a
Hugging Face autoencoder, driven by a metadata table (``vt vae-scale``)."""

from __future__ import annotations

from vt.lazy import lazy_exports

__all__ = [
    "Letterbox",
    "ScaleSettings",
    "VaeRoundtrip",
    "load_hf_autoencoder",
    "scale_table",
    "stage3_scale_videos",
]
# torch and pyarrow load on first use
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "load_hf_autoencoder": ".roundtrip",
        "VaeRoundtrip": ".roundtrip",
        "Letterbox": ".letterbox",
        "ScaleSettings": ".scale",
        "scale_table": ".scale",
        "stage3_scale_videos": ".scale",
    },
)
