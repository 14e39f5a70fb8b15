"""A ``torch.utils.data.Dataset`` over a list of videos (one preprocessed video per item)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from torch.utils.data import Dataset

from vt_qwen_preprocess.config import PreprocessConfig
from vt_qwen_preprocess.pipeline import preprocess


class VideoDataset(Dataset):
    """Items are ``{"frames", "metadata", "video_metadata", "sample_fps"}`` (plus ``label``
    when labels are given). Videos are decoded lazily in ``__getitem__`` (so DataLoader workers
    decode in parallel); per-item overrides come from ``(video, {options})`` pairs."""

    def __init__(
        self,
        videos: Sequence[Any],
        config: PreprocessConfig | None = None,
        *,
        labels: Sequence[Any] | None = None,
        transform: Callable[[dict[str, Any]], Any] | None = None,
        **overrides: Any,
    ) -> None:
        if labels is not None and len(labels) != len(videos):
            raise ValueError(f"{len(labels)} labels for {len(videos)} videos")
        self.videos = list(videos)
        self.labels = list(labels) if labels is not None else None
        self.config = (config or PreprocessConfig()).updated(**overrides)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.videos)

    def __getitem__(self, index: int) -> Any:
        item = self.videos[index]
        options: dict[str, Any] = {}
        if isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], dict):
            item, options = item
        result = preprocess(item, self.config, **options)
        sample: dict[str, Any] = {
            "frames": result.frames,
            "metadata": result.metadata,
            "video_metadata": result.video_metadata(),
            "sample_fps": result.plan.sampling.sample_fps,
        }
        if self.labels is not None:
            sample["label"] = self.labels[index]
        return self.transform(sample) if self.transform else sample


def collate_videos(batch: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Keep variable-size videos as lists (they rarely share T, H and W)."""
    out: dict[str, Any] = {key: [sample[key] for sample in batch] for key in batch[0]}
    return out
