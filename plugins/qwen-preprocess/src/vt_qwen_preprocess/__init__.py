"""vt-qwen-preprocess: video -> model-ready frames, tokens and metadata.

``preprocess(video, fps=2)`` returns a ``ProcessedVideo``; ``preprocess_to_file(video, path)``
streams the frames into a file; ``plan(video)`` answers the frame count, size and tokens
without decoding pixels. Parity target: qwen-vl-utils 0.0.14.
"""

from vt.lazy import lazy_exports

#: exported name -> module that defines it (loaded on first use: vt imports this package
#: when it loads plugins, and most commands never need numpy or the pipeline)
_EXPORTS = {
    "PreprocessConfig": ".config",
    "load_config": ".config",
    "ProcessedVideo": ".pipeline",
    "VideoPlan": ".pipeline",
    "iter_frames": ".pipeline",
    "plan": ".pipeline",
    "preprocess": ".pipeline",
    "preprocess_to_file": ".pipeline",
    "BUILTIN_PROFILES": ".profiles",
    "ModelProfile": ".profiles",
    "load_profiles": ".profiles",
    "smart_nframes": ".sizing",
    "smart_resize": ".sizing",
    "VideoDataset": ".dataset",
    "collate_videos": ".dataset",  # needs torch.utils.data
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)


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
    "preprocess_to_file",
    "smart_nframes",
    "smart_resize",
]
