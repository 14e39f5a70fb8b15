"""The stages as registered frame processors, usable on their own by any vt command."""

from __future__ import annotations

from vt.registry import ProcessorInfo
from vt_kizuna.enhance import Enhance
from vt_kizuna.normalize import Normalize
from vt_kizuna.reconstruct import Reconstruct
from vt_kizuna.temporal import TemporalStabilizer
from vt_kizuna.upscale import upscale_stage

FORMATS = ("rgb24", "rgb48")


def processor_infos() -> list[ProcessorInfo]:
    return [
        ProcessorInfo(
            name="kizuna-normalize",
            factory=Normalize,
            layouts=FORMATS,
            description="KizunaSR stage 1: frames to 16-bit full-range RGB (rgb48); "
            "input_range=full|limited",
        ),
        ProcessorInfo(
            name="kizuna-reconstruct",
            factory=Reconstruct,
            layouts=FORMATS,
            description="KizunaSR stage 2: adaptive deblocking and line-aware guided-filter "
            "denoise; strength, deblock, denoise, radius",
        ),
        ProcessorInfo(
            name="kizuna-upscale",
            factory=upscale_stage,
            layouts=FORMATS,
            devices=("cpu", "cuda"),
            description="KizunaSR stage 3: mode=shader (edge-directed x2/x4: scale, sharpness, "
            "edge, anti_ringing) or mode=ai (model, scale, tile, device, dtype, batch; runs "
            "through the registry's model adapters and sr-model processor)",
        ),
        ProcessorInfo(
            name="kizuna-enhance",
            factory=Enhance,
            layouts=FORMATS,
            description="KizunaSR stage 4: adaptive sharpening, line darkening and thinning, "
            "gentle contrast, no halos; sharpen, darken, thin, contrast",
        ),
        ProcessorInfo(
            name="kizuna-temporal",
            factory=TemporalStabilizer,
            layouts=FORMATS,
            temporal=True,
            description="KizunaSR stage 5: motion-compensated blending of processed-minus-"
            "source detail, cuts reset, holds `radius` frames (context_frames = radius each "
            "side); strength, radius",
        ),
    ]
