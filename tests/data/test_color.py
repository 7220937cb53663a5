import pytest
import torch

from occo.data.color import rgb_to_ycbcr, ycbcr_to_rgb
from occo.data.io import DataError


def test_round_trip_batched():
    x = torch.rand(2, 4, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    back = ycbcr_to_rgb(rgb_to_ycbcr(x))
    assert back.shape == x.shape
    # the inverse constants have three decimals: about 5e-4 worst case
    assert (back - x).abs().max().item() < 2e-3


def test_pure_red_known_values():
    red = torch.tensor([1.0, 0.0, 0.0]).view(3, 1, 1)
    y, cb, cr = rgb_to_ycbcr(red).flatten().tolist()
    assert y == pytest.approx(0.299)
    assert cb == pytest.approx((0 - 0.299) * 0.564 + 0.5)  # 0.331364
    assert cr == pytest.approx((1 - 0.299) * 0.713 + 0.5)  # 0.999813


def test_grey_has_neutral_chroma():
    grey = torch.full((3, 2, 2), 0.4)
    ycc = rgb_to_ycbcr(grey)
    torch.testing.assert_close(ycc[0], torch.full((2, 2), 0.4))
    torch.testing.assert_close(ycc[1:], torch.full((2, 2, 2), 0.5))
    torch.testing.assert_close(ycbcr_to_rgb(ycc), grey)


def test_inverse_of_known_ycbcr():
    ycc = torch.tensor([0.5, 0.6, 0.4]).view(3, 1, 1)  # Y, Cb, Cr
    r, g, b = ycbcr_to_rgb(ycc).flatten().tolist()
    assert r == pytest.approx(0.5 + 1.403 * -0.1)
    assert g == pytest.approx(0.5 - 0.714 * -0.1 - 0.344 * 0.1)
    assert b == pytest.approx(0.5 + 1.773 * 0.1)


def test_wrong_channel_count():
    with pytest.raises(DataError, match="3,H,W"):
        rgb_to_ycbcr(torch.zeros(1, 4, 4))
    with pytest.raises(DataError):
        ycbcr_to_rgb(torch.zeros(4, 4))
