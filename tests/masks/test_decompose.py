"""§3.2 decomposition: exact set algebra on hand-made masks."""

from __future__ import annotations

import pytest
import torch

from occo.losses.contrastive import decompose_masks as loss_decompose
from occo.masks import REGIONS, decompose_masks


def test_hand_made_masks_partition_the_image():
    ir = torch.tensor([[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0]], dtype=torch.float32)
    vi = torch.tensor([[0, 1, 1, 0], [0, 1, 1, 0], [0, 0, 0, 1]], dtype=torch.float32)
    parts = decompose_masks(ir_mask=ir, vi_mask=vi)
    assert tuple(parts) == REGIONS
    assert parts["shared"].tolist() == [[0, 1, 0, 0], [0, 1, 0, 0], [0, 0, 0, 0]]
    assert parts["ir_unique"].tolist() == [[1, 0, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0]]
    assert parts["vi_unique"].tolist() == [[0, 0, 1, 0], [0, 0, 1, 0], [0, 0, 0, 1]]
    assert parts["background"].tolist() == [[0, 0, 0, 1], [0, 0, 0, 1], [1, 1, 1, 0]]
    assert torch.equal(sum(parts.values()), torch.ones_like(ir))  # every pixel in exactly one region


def test_random_masks_obey_the_set_algebra():
    gen = torch.Generator().manual_seed(0)
    ir, vi = (torch.rand(2, 1, 17, 23, generator=gen) > 0.5 for _ in range(2))
    parts = decompose_masks(ir_mask=ir.float(), vi_mask=vi.float())
    assert torch.equal(parts["shared"].bool(), ir & vi)
    assert torch.equal(parts["ir_unique"].bool(), ir & ~vi)
    assert torch.equal(parts["vi_unique"].bool(), vi & ~ir)
    assert torch.equal(parts["background"].bool(), ~ir & ~vi)
    assert torch.equal(sum(parts.values()), torch.ones(ir.shape))


def test_integer_masks_give_float32_and_the_loss_uses_this_function():
    parts = decompose_masks(ir_mask=torch.ones(2, 2, dtype=torch.uint8), vi_mask=torch.zeros(2, 2, dtype=torch.uint8))
    assert all(p.dtype == torch.float32 for p in parts.values())
    assert parts["ir_unique"].sum() == 4
    assert loss_decompose is decompose_masks


def test_shape_mismatch_raises():
    with pytest.raises(ValueError, match="mask shapes differ"):
        decompose_masks(ir_mask=torch.zeros(2, 3), vi_mask=torch.zeros(3, 2))
