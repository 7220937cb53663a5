"""RFN-Nest's losses (§4.5): L_RFN (Eq. 22-23), which trains the RFN, and the auto-encoder loss of its first stage.

    Eq. 22:  L_RFN = α (1 - SSIM(I_f, I_vi)) + L_feature
    Eq. 23:  L_feature = Σ_m w1(m) ‖Φ_f^m - (w_vi Φ_vi^m + w_ir Φ_ir^m)‖²_F      (m over the RFN's scales)
    stage 1: L_auto = pixel(O, I) + λ (1 - SSIM(O, I))                            (O the reconstruction of I)

Everything runs on the grey-level scale 0..255 the network works on, in float32. ``loss.rfn_form`` chooses
how "SSIM" and the two squared distances are computed (docs/fidelity.md):

* ``code``: the authors' code (train_fusionnet.py; NestFuse's train_autoencoder.py): their copy of
  pytorch-msssim's ``msssim(normalize=True)`` (:func:`authors_ms_ssim`) and the *mean* squared error per scale;
* ``fixed`` (default): the same with that MS-SSIM's two bugs fixed: the coarsest scale's SSIM raised to its
  own weight (the code raises it to four times its weight) and a fixed dynamic range of 255 (the code guesses
  it per scale from the fused image's maximum, and a dark coarse scale gets a range of 1);
* ``paper``: Eq. 22-23 as printed: single-scale SSIM (Wang et al. 2004) and the squared Frobenius norm (the sum
  over a feature map, averaged over the batch).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from pytorch_msssim import ssim
from torch import Tensor, nn

from occo.losses.finite import NonFiniteLossError, non_finite
from occo.losses.pixel import gaussian_window

GREY = 255.0
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
"""Per-scale weights of MS-SSIM (Wang, Simoncelli, Bovik 2003), finest first."""
WINDOW = 11
SIGMA = 1.5


def authors_range(x: Tensor) -> float:
    """The dynamic range the authors' SSIM guesses from its first image: 255 if its maximum is over 128, else 1,
    one more if its minimum is under -0.5."""
    top = 255.0 if bool(x.max() > 128) else 1.0
    return top - (-1.0 if bool(x.min() < -0.5) else 0.0)


def ssim_and_contrast(x: Tensor, y: Tensor, value_range: float) -> tuple[Tensor, Tensor]:
    """Mean SSIM map and mean contrast-structure term ``(2σ_xy + C2) / (σ_x² + σ_y² + C2)`` over the whole batch,
    with a Gaussian window of min(11, H, W) applied without padding (the authors' ``ssim(full=True)``)."""
    window = gaussian_window(min(WINDOW, *x.shape[-2:]), SIGMA).to(x)
    mu_x, mu_y = F.conv2d(x, window), F.conv2d(y, window)
    var_x = F.conv2d(x * x, window) - mu_x.pow(2)
    var_y = F.conv2d(y * y, window) - mu_y.pow(2)
    cov = F.conv2d(x * y, window) - mu_x * mu_y
    c1, c2 = (0.01 * value_range) ** 2, (0.03 * value_range) ** 2
    v1, v2 = 2.0 * cov + c2, var_x + var_y + c2
    ssim_map = (2 * mu_x * mu_y + c1) * v1 / ((mu_x.pow(2) + mu_y.pow(2) + c1) * v2)
    return ssim_map.mean(), (v1 / v2).mean()


def authors_ms_ssim(x: Tensor, y: Tensor, *, fixed: bool) -> Tensor:
    """MS-SSIM as the authors' ``pytorch_msssim.msssim(x, y, normalize=True)`` computes it: five scales (2x2
    average pooling between them), every term mapped to ``(t + 1) / 2``, then ``Π_j cs_j^w_j · ssim_5^w_5``.

    ``fixed=False`` keeps their code's two bugs: the product ``Π_{j<5} (cs_j^w_j · ssim_5^w_5)`` raises the
    coarsest SSIM to ``4·w_5``, and the dynamic range is guessed per scale from ``x`` (:func:`authors_range`);
    ``fixed=True`` raises it to ``w_5`` and uses a range of 255.
    """
    sims, contrasts = [], []
    for level in range(len(MS_SSIM_WEIGHTS)):
        if level:
            x, y = F.avg_pool2d(x, 2), F.avg_pool2d(y, 2)
        s, c = ssim_and_contrast(x, y, GREY if fixed else authors_range(x))
        sims.append(s)
        contrasts.append(c)
    weights = torch.tensor(MS_SSIM_WEIGHTS, dtype=x.dtype, device=x.device)
    cs = ((torch.stack(contrasts) + 1) / 2) ** weights
    last = ((sims[-1] + 1) / 2) ** weights[-1]
    return torch.prod(cs[:-1]) * last if fixed else torch.prod(cs[:-1] * last)


def single_scale_ssim(x: Tensor, y: Tensor) -> Tensor:
    """SSIM of Wang et al. 2004 on 0..255 images (pytorch-msssim: Gaussian window 11, σ = 1.5, no padding)."""
    return ssim(x, y, data_range=GREY, size_average=True)


def mean_squared(a: Tensor, b: Tensor) -> Tensor:
    """The authors' distance (``nn.MSELoss``): the mean of the squared differences over every value."""
    return (a - b).pow(2).mean()


def frobenius_squared(a: Tensor, b: Tensor) -> Tensor:
    """Eq. 23's ``‖a - b‖²_F`` per image (the sum over its channels and pixels), averaged over the batch."""
    return (a - b).pow(2).flatten(1).sum(dim=1).mean()


@dataclass(frozen=True)
class RfnForm:
    """How a ``loss.rfn_form`` computes Eq. 22's similarity and the squared distances of Eq. 23 and stage 1."""

    similarity: Callable[[Tensor, Tensor], Tensor]
    distance: Callable[[Tensor, Tensor], Tensor]


RFN_FORMS: dict[str, RfnForm] = {
    "fixed": RfnForm(lambda x, y: authors_ms_ssim(x, y, fixed=True), mean_squared),
    "code": RfnForm(lambda x, y: authors_ms_ssim(x, y, fixed=False), mean_squared),
    "paper": RfnForm(single_scale_ssim, frobenius_squared),
}


def feature_loss(
    fused: Sequence[Tensor],
    *,
    ir: Sequence[Tensor],
    vi: Sequence[Tensor],
    weights: Sequence[float],
    w_vi: float,
    w_ir: float,
    distance: Callable[[Tensor, Tensor], Tensor],
) -> Tensor:
    """Eq. 23: ``L_feature = Σ_m w1(m) · d(Φ_f^m, w_vi Φ_vi^m + w_ir Φ_ir^m)``, d the form's squared distance; the
    encoder features of the sources are targets (no gradient)."""
    terms = [
        w * distance(f.float(), (w_vi * v.float() + w_ir * i.float()).detach())
        for w, f, i, v in zip(weights, fused, ir, vi, strict=True)
    ]
    return torch.stack(terms).sum()


def rfn_loss(similarity: Tensor, l_feature: Tensor, alpha: float) -> Tensor:
    """Eq. 22: ``L_RFN = α (1 - SSIM(I_f, I_vi)) + L_feature``."""
    return alpha * (1 - similarity) + l_feature


class RFNLoss(nn.Module):
    """L_RFN (Eq. 22-23) of a batch: ``forward(fused, vi=, features=)`` with the fused image (B,1,H,W) in [0,1]
    (the network's output min-max normalised), the visible luminance in [0,1] and the network's features
    ``{"fused": [Φ_f^m], "ir": [Φ_ir^m], "vi": [Φ_vi^m]}``. Returns ``rfn_detail`` (α(1 - SSIM)),
    ``rfn_feature`` (Eq. 23) and ``rfn`` (their sum)."""

    def __init__(
        self, *, alpha: float, feature_weights: Sequence[float], w_vi: float, w_ir: float, form: str = "fixed"
    ) -> None:
        super().__init__()
        self.alpha, self.weights, self.w_vi, self.w_ir = alpha, list(feature_weights), w_vi, w_ir
        self.form = RFN_FORMS[form]

    def forward(self, fused: Tensor, *, vi: Tensor, features: dict[str, list[Tensor]]) -> dict[str, Tensor]:
        with torch.autocast(device_type=fused.device.type, enabled=False):
            similarity = self.form.similarity(fused.float() * GREY, vi.float() * GREY)
            l_feature = feature_loss(
                features["fused"],
                ir=features["ir"],
                vi=features["vi"],
                weights=self.weights,
                w_vi=self.w_vi,
                w_ir=self.w_ir,
                distance=self.form.distance,
            )
        return {
            "rfn_detail": self.alpha * (1 - similarity),
            "rfn_feature": l_feature,
            "rfn": rfn_loss(similarity, l_feature, self.alpha),
        }

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, w1={self.weights}, w_vi={self.w_vi}, w_ir={self.w_ir}"


def autoencoder_loss(l_pixel: Tensor, similarity: Tensor, lam: float) -> Tensor:
    """RFN-Nest's first stage: ``L_auto = pixel(O, I) + λ (1 - SSIM(O, I))``."""
    return l_pixel + lam * (1 - similarity)


class AutoencoderLoss(nn.Module):
    """The auto-encoder loss of RFN-Nest's first stage: ``forward(output, image)`` with the raw reconstruction on
    the 0..255 scale (not normalised) and the image (B,1,H,W) in [0,1]; returns ``autoencoder_pixel``,
    ``autoencoder_ssim`` (λ(1 - SSIM)) and ``autoencoder_total``."""

    def __init__(self, *, lam: float, form: str = "fixed") -> None:
        super().__init__()
        self.lam, self.form = lam, RFN_FORMS[form]

    def forward(self, output: Tensor, image: Tensor) -> dict[str, Tensor]:
        with torch.autocast(device_type=output.device.type, enabled=False):
            out, target = output.float(), image.float() * GREY
            l_pixel, similarity = self.form.distance(out, target), self.form.similarity(out, target)
        terms = {
            "autoencoder_pixel": l_pixel,
            "autoencoder_ssim": self.lam * (1 - similarity),
            "autoencoder_total": autoencoder_loss(l_pixel, similarity, self.lam),
        }
        if not bool(torch.isfinite(terms["autoencoder_total"])):
            raise NonFiniteLossError(f"non-finite loss terms: {', '.join(non_finite(terms))}")
        return terms
