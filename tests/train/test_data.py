"""Training crops and batch assembly (occo.train.data)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from occo.data import DataError, make_synthetic, save_png
from occo.train.data import (
    BatchPlan,
    CropDataset,
    StepSampler,
    check_batch_layout,
    collate_crops,
    crop_origins,
    find_training_pairs,
)

CROP = 32


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("root")
    make_synthetic(root / "data/raw/synthetic", n_train=8, n_test=1, height=48, width=64, seed=0)
    return root


def _dataset(root: Path, **kw) -> CropDataset:
    pairs = find_training_pairs(root, "synthetic", "train")
    return CropDataset(pairs, **{"crop": CROP, "crops_per_image": 2, "flip": True, "seed": 0, **kw})


def _loader(dataset: CropDataset, plan: BatchPlan, start: int, stop: int, workers: int = 0) -> DataLoader:
    return DataLoader(
        dataset, batch_sampler=StepSampler(plan, start, stop), collate_fn=collate_crops, num_workers=workers
    )


def test_batch_is_four_groups_of_crops_from_distinct_images(root):
    dataset = _dataset(root)
    plan = BatchPlan(len(dataset), check_batch_layout(12, 2), seed=0)
    assert plan.images_per_batch == 6 and plan.batches_per_epoch == 1
    keys = plan.batch(0)
    images = [img for _, img in keys]
    assert len(set(images)) == 6
    crop_image = [images[i // 2] for i in range(12)]  # each image gives two adjacent crops
    for a in range(3):  # an anchor's negatives (same position in the other groups) come from other images
        assert len({crop_image[a + 3 * g] for g in range(4)}) == 4
    batch = next(iter(_loader(dataset, plan, 0, 1)))
    assert batch.shape == (12, 4, CROP, CROP) and batch.dtype == torch.float32
    assert set(batch[:, 2:].unique().tolist()) <= {0.0, 1.0}
    assert batch[:, :2].min() >= 0 and batch[:, :2].max() <= 1


def test_batches_are_deterministic_across_workers_and_resume(root):
    dataset = _dataset(root)
    plan = BatchPlan(len(dataset), 6, seed=0)
    straight = list(_loader(dataset, plan, 0, 3))
    resumed = list(_loader(dataset, plan, 2, 3, workers=2))
    assert torch.equal(straight[2], resumed[0])
    assert not torch.equal(straight[0], straight[1])  # each epoch is a new permutation with new crops
    assert plan.batch(1) != plan.batch(0)


def test_crops_contain_mask_pixels(root):
    dataset = _dataset(root, crops_per_image=3)
    for position in range(20):
        crops = dataset[(position, position % len(dataset))]
        assert (crops[:, 2:].flatten(1).amax(dim=1) > 0).all()


def test_crop_origins_find_a_single_object_pixel():
    objects = torch.zeros(100, 120, dtype=torch.bool)
    objects[90, 7] = True
    g = torch.Generator().manual_seed(0)
    origins = crop_origins(objects, 16, 500, g)
    y, x = origins.unbind(1)
    assert ((y <= 90) & (90 < y + 16) & (x <= 7) & (7 < x + 16)).all()
    assert (y >= 0).all() and (y <= 84).all() and (x >= 0).all() and (x <= 104).all()
    empty = crop_origins(torch.zeros(40, 40, dtype=torch.bool), 16, 50, g)
    assert empty.min() >= 0 and empty.max() <= 24


def _tiny_set(root: Path, h: int, w: int, *, masks: str = "raw") -> None:
    rng = np.random.default_rng(0)
    base = root / "data/raw/tiny/train"
    save_png(base / "ir/a.png", rng.integers(0, 255, (h, w), dtype=np.uint8))
    save_png(base / "vi/a.png", rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
    mask_root = base / "masks" if masks == "raw" else root / "data/masks/tiny/train"
    mask = np.zeros((h, w), np.uint8)
    mask[h // 2, w // 2] = 255
    save_png(mask_root / "ir/a.png", mask)
    save_png(mask_root / "vi/a.png", np.zeros((h, w), np.uint8))


def test_small_images_are_reflect_padded_or_refused(tmp_path):
    _tiny_set(tmp_path, 20, 24)
    pairs = find_training_pairs(tmp_path, "tiny", "train")
    crops = CropDataset(pairs, crop=CROP, crops_per_image=2, flip=False, seed=0)[(0, 0)]
    assert crops.shape == (2, 4, CROP, CROP) and (crops[:, 2].flatten(1).amax(1) > 0).all()
    with pytest.raises(DataError, match="too small for train.crop=48"):
        CropDataset(pairs, crop=48, crops_per_image=2, flip=False, seed=0)[(0, 0)]


def test_masks_stage_folder_is_preferred_and_missing_masks_are_named(tmp_path):
    _tiny_set(tmp_path, 40, 40, masks="stage")
    (pair,) = find_training_pairs(tmp_path, "tiny", "train")
    assert pair.ir_mask == tmp_path / "data/masks/tiny/train/ir/a.png"
    (tmp_path / "data/masks/tiny/train/vi/a.png").unlink()
    with pytest.raises(DataError, match=r"missing vi mask for pair a .*masks/tiny/train/vi/a\.png"):
        find_training_pairs(tmp_path, "tiny", "train")


def test_batch_layout_is_checked():
    assert check_batch_layout(12, 3) == 4
    with pytest.raises(ValueError, match="multiple of 4"):
        check_batch_layout(10, 1)
    with pytest.raises(ValueError, match="at most 3"):
        check_batch_layout(12, 4)


def test_dataset_never_imported_names_the_param(tmp_path):
    with pytest.raises(DataError, match=r"FMB was not imported .*download\.datasets\.FMB\.source"):
        find_training_pairs(tmp_path, "FMB", "train")
    (tmp_path / "data/raw/FMB/test").mkdir(parents=True)
    with pytest.raises(DataError, match=r"no split 'train' \(has test\): set train\.split"):
        find_training_pairs(tmp_path, "FMB", "train")
