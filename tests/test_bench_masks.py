"""bench/masks.py on the tiny models: it prints its three tables and SamMasker agrees with the per-box baseline."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from bench.masks import main, synthetic_boxes
from support import REPO

MSRS = REPO.parent / "shared" / "datasets" / "MSRS"


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.setenv(name, "1")


@pytest.mark.slow
@pytest.mark.parametrize(
    "data",
    [
        pytest.param(MSRS, marks=pytest.mark.skipif(not MSRS.is_dir(), reason=f"{MSRS} not found"), id="msrs"),
        pytest.param(Path("/nonexistent/MSRS"), id="synthetic"),
    ],
)
def test_main_tiny_one_image(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["--images", "1", "--device", "cpu", "--data", str(data), "--warmup", "0", "--repeats", "1"])
    out = capsys.readouterr().out
    for title in ("### 1. Detector", "### 2. SAM", "### 3. Whole path: generate_masks"):
        assert title in out
    assert ("synthetic pairs" in out) == (data != MSRS)
    assert "640x480" in out
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in out.splitlines() if line.startswith("| fp32 |")]
    sam = next(r for r in rows if len(r) == 9)  # precision, images, boxes, 2 times, images/s, speed-up, equal, memory
    assert sam[1] == "1" and 3 <= int(sam[2]) <= 8
    assert sam[7] == "yes"  # SamMasker and the per-box SamPredictor baseline give identical masks
    assert re.search(r"^\| fp32 \| 1 \| 2 \| \d+ \| [\d.]+ \| [\d.]+ \| x1\.00 \| — \|$", out, re.MULTILINE)


def test_synthetic_boxes_inside_images() -> None:
    images = [np.zeros((480, 640, 3), np.uint8), np.zeros((240, 320, 3), np.uint8)]
    boxes = synthetic_boxes(images, 3, 8)
    assert all(np.array_equal(a, b) for a, b in zip(boxes, synthetic_boxes(images, 3, 8)))  # seeded
    for img, b in zip(images, boxes):
        height, width = img.shape[:2]
        assert 3 <= len(b) <= 8 and b.dtype == np.float32
        assert (b[:, 0] >= 0).all() and (b[:, 2] <= width).all() and (b[:, 1] >= 0).all() and (b[:, 3] <= height).all()
        assert (b[:, 2] > b[:, 0]).all() and (b[:, 3] > b[:, 1]).all()
