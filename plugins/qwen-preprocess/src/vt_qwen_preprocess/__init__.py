"""vt-qwen-preprocess: video -> model-ready frames, tokens and metadata.

``preprocess(video, fps=2)`` returns a ``ProcessedVideo``; ``plan(video)`` answers the frame
count, size and tokens without decoding pixels. Parity target: qwen-vl-utils 0.0.14.
"""

from vt_qwen_preprocess.config import PreprocessConfig, load_config
from vt_qwen_preprocess.pipeline import ProcessedVideo, VideoPlan, iter_frames, plan, preprocess
from vt_qwen_preprocess.profiles import BUILTIN_PROFILES, ModelProfile, load_profiles
from vt_qwen_preprocess.sizing import smart_nframes, smart_resize


def __getattr__(name: str):  # the Dataset needs torch.utils.data: import it on first use
    if name in ("VideoDataset", "collate_videos"):
        from vt_qwen_preprocess import dataset

        return getattr(dataset, name)
    raise AttributeError(name)

__all__ = [
    "BUILTIN_PROFILES",
    "ModelProfile",
    "PreprocessConfig",
    "ProcessedVideo",
    "VideoDataset",
    "VideoPlan",
    "collate_videos",
    "iter_frames",
    "load_config",
    "load_profiles",
    "plan",
    "preprocess",
    "smart_nframes",
    "smart_resize",
]
