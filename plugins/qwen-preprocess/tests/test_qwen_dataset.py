"""The torch Dataset over a list of videos."""

from __future__ import annotations

from torch.utils.data import DataLoader

from vt_qwen_preprocess import VideoDataset, collate_videos


def test_dataset_items_and_dataloader(bikes, carphone):
    ds = VideoDataset(
        [bikes, (carphone, {"nframes": 2})], nframes=4, labels=["a", "b"], cache=False
    )
    assert len(ds) == 2
    item = ds[0]
    assert item["frames"].shape == (4, 3, 280, 644) and item["label"] == "a"
    assert item["video_metadata"]["frames_indices"] == [0, 83, 166, 249]
    assert ds[1]["frames"].shape[0] == 2
    batch = next(iter(DataLoader(ds, batch_size=2, collate_fn=collate_videos)))
    assert [f.shape[0] for f in batch["frames"]] == [4, 2]
    assert batch["label"] == ["a", "b"]


def test_dataset_transform():
    from vt.testing import pattern_frame

    frames = [pattern_frame(i, 64, 48) for i in range(4)]
    ds = VideoDataset([frames], transform=lambda s: s["frames"].shape, cache=False)
    assert ds[0][0] == 4
