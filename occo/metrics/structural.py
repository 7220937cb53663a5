"""Window-statistics metrics: SSIM (two conventions) and pixel-domain VIF, batched over (B, H, W).

Both compare local statistics of the fused image F with those of each source X ∈ {A, B}. The
sources' own statistics (local means and variances, VIF's subsampled sources and its denominator)
do not depend on F: :func:`ssim_sources` and :func:`vif_sources` compute them once per pair, and
:func:`ssim_score` / :func:`vif_score` add what each fused image needs. Computed in float64: the
local variances E[x²] - μ² cancel digits, and float32 would move both metrics far beyond the
reference tolerance (docs/metrics.md).

Window statistics are filtered strip by strip of output rows (:func:`_filtered_strips`): on CPU the
product planes, their filtered values and the per-pixel terms of one strip stay in cache and no
full-size temporary is allocated (each fresh full-size array would add page faults to the arithmetic).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F

from occo.metrics.filters import box_filter_valid, gaussian_taps, row_strips, separable_filter

Window = Callable[[torch.Tensor], torch.Tensor]


def _with_products(f: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The planes F, F², F·X_1, …, F·X_C for window statistics: f (B, H, W), x (B, C, H, W) → (B, 2 + C, H, W)."""
    out = f.new_empty(f.shape[0], 2 + x.shape[1], *f.shape[1:])
    out[:, 0] = f
    torch.mul(f, f, out=out[:, 1])
    torch.mul(f.unsqueeze(1), x, out=out[:, 2:])
    return out


def _with_squares(x: torch.Tensor) -> torch.Tensor:
    """The planes X_1, …, X_C, X_1², …, X_C²: (B, C, H, W) → (B, 2C, H, W)."""
    c = x.shape[1]
    out = x.new_empty(x.shape[0], 2 * c, *x.shape[2:])
    out[:, :c] = x
    torch.mul(x, x, out=out[:, c:])
    return out


def _squares_of_rows(x: torch.Tensor, rows: slice) -> torch.Tensor:
    """:func:`_with_squares` of rows ``rows`` of ``x`` (B, C, H, W)."""
    return _with_squares(x[:, :, rows])


def _products_of_rows(f: torch.Tensor, x: torch.Tensor, rows: slice) -> torch.Tensor:
    """:func:`_with_products` of rows ``rows`` of ``f`` (B, H, W) and ``x`` (B, C, H, W)."""
    return _with_products(f[:, rows], x[:, :, rows])


def _filtered_strips(
    planes: Callable[[slice], torch.Tensor], window: Window, size: int, rows: int, cols: int, device: torch.device
) -> Iterator[tuple[slice, torch.Tensor]]:
    """``(r, window(planes(rows r plus the window's halo)))`` for strips ``r`` of a 'valid' output of
    ``rows × cols`` (a ``size × size`` window): the whole output at once off CPU."""
    for r in row_strips(rows, cols, device, halo=size - 1):
        yield r, window(planes(slice(r.start, r.stop + size - 1)))


# ------------------------------------------------------------------------------------------------
# SSIM
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SsimSources:
    """Source-only SSIM terms of the sources (B, C, …): the images as the window reads them (edge
    padded by ``pad`` for the Gaussian window), local means ``mu``, ``mu² + C1`` and ``σ² + C2``."""

    window: Window
    size: int
    pad: int
    norm: float
    c1: float
    c2: float
    images: torch.Tensor
    mu: torch.Tensor
    mu_sq_c1: torch.Tensor
    var_c2: torch.Tensor


def _ssim_window(window: str, dtype: torch.dtype, device: torch.device) -> tuple[Window, int, int, float]:
    """'valid' window filter, its size, the edge padding that makes its output full-size, and the variance factor."""
    if window == "gaussian":
        return partial(separable_filter, taps=gaussian_taps(11, 1.5, dtype=dtype, device=device)), 11, 5, 1.0
    if window == "uniform":
        return partial(box_filter_valid, size=7), 7, 0, 49 / 48
    raise ValueError(f"unknown SSIM window {window!r}; use 'gaussian' or 'uniform'")


def _pad(x: torch.Tensor, pad: int) -> torch.Tensor:
    """Edge-replicate (B, C, H, W) by ``pad`` pixels on every side (MATLAB ``imgaussfilt``'s padding)."""
    return F.pad(x, (pad,) * 4, mode="replicate") if pad else x


def ssim_sources(x: torch.Tensor, *, window: str, data_range: float) -> SsimSources:
    """SSIM terms of the sources stacked on dim 1 (B, C, H, W) that every fused image reuses; see :func:`ssim_sum`."""
    filt, size, pad, norm = _ssim_window(window, x.dtype, x.device)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    images = _pad(x, pad)
    rows, cols = images.shape[-2] - size + 1, images.shape[-1] - size + 1
    c = x.shape[1]
    mu, mu_sq_c1, var_c2 = (x.new_empty(x.shape[0], c, max(rows, 0), max(cols, 0)) for _ in range(3))
    for r, stats in _filtered_strips(partial(_squares_of_rows, images), filt, size, rows, cols, x.device):
        m, sq = stats[:, :c], stats[:, c:]
        mu[:, :, r] = m
        m_sq = m * m
        torch.add(m_sq, c1, out=mu_sq_c1[:, :, r])
        var_c2[:, :, r] = (sq - m_sq).mul_(norm).add_(c2)
    return SsimSources(filt, size, pad, norm, c1, c2, images, mu, mu_sq_c1, var_c2)


def ssim_score(f: torch.Tensor, src: SsimSources) -> torch.Tensor:
    """SSIM(F, A) + SSIM(F, B) of ``f`` (B, H, W) with the sources of ``src``; see :func:`ssim_sum`.

    Map: ``((2μxμy + C1)(2σxy + C2)) / ((μx² + μy² + C1)(σx² + σy² + C2))`` (Wang et al. 2004, Eq. 13).
    """
    fp = _pad(f.unsqueeze(1), src.pad)[:, 0]
    rows, cols = src.mu.shape[-2:]
    total = src.mu.new_zeros(src.mu.shape[:2])
    for r, stats in _filtered_strips(
        partial(_products_of_rows, fp, src.images), src.window, src.size, rows, cols, f.device
    ):
        mu_f, sq_f, cross = stats[:, :1], stats[:, 1:2], stats[:, 2:]
        mu, mu_sq_c1, var_c2 = src.mu[:, :, r], src.mu_sq_c1[:, :, r], src.var_c2[:, :, r]
        mu_fx = mu_f * mu
        var_f = (sq_f - mu_f * mu_f).mul_(src.norm)
        cov = (cross - mu_fx).mul_(2 * src.norm).add_(src.c2)
        num = mu_fx.mul_(2).add_(src.c1).mul_(cov)
        total += num.div_((mu_f * mu_f + mu_sq_c1).mul_(var_f + var_c2)).sum(dim=(2, 3))
    return (total / (rows * cols)).sum(dim=1)


def ssim_sum(f: torch.Tensor, a: torch.Tensor, b: torch.Tensor, *, window: str, data_range: float) -> torch.Tensor:
    """SSIM = SSIM(F, A) + SSIM(F, B), the convention fusion papers report (maximum 2).

    ``window='gaussian'``: MATLAB ``ssim`` defaults, Gaussian σ = 1.5 (11 taps), replicate padding,
    mean of the full-size map. ``window='uniform'``: scikit-image ``structural_similarity``
    defaults, 7×7 box, sample (co)variances (factor N/(N-1), N = 49), mean over the 'valid'
    windows (the map without a 3-pixel border). Both use ``C1 = (0.01 L)²``, ``C2 = (0.03 L)²``.
    """
    return ssim_score(f, ssim_sources(torch.stack([a, b], dim=1), window=window, data_range=data_range))


# ------------------------------------------------------------------------------------------------
# VIF
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class VifSources:
    """Source-only VIF terms of the sources (B, C, …) per scale: the (subsampled) sources ``images``,
    local means ``mu``, variances ``s1`` (zero where < eps, the LIVE guard), ``inv = 1 / (σ₁² + eps)``
    (the unguarded variance, as the LIVE code divides) and the denominator ``den`` (B, C) in nats."""

    taps: tuple[torch.Tensor, ...]
    images: tuple[torch.Tensor, ...]
    mu: tuple[torch.Tensor, ...]
    s1: tuple[torch.Tensor, ...]
    inv: tuple[torch.Tensor, ...]
    den: torch.Tensor
    sigma_nsq: float
    eps: float


def _vif_taps(dtype: torch.dtype, device: torch.device) -> tuple[torch.Tensor, ...]:
    """Gaussian windows of scales s = 1..4: N = 2^(5-s) + 1 taps, σ = N/5."""
    sizes = [2 ** (5 - s) + 1 for s in range(1, 5)]
    return tuple(gaussian_taps(n, n / 5.0, dtype=dtype, device=device) for n in sizes)


def _subsample(x: torch.Tensor, taps: torch.Tensor) -> torch.Tensor:
    """Filter ('valid') with the next scale's window, keep every second row and column."""
    return separable_filter(x, taps)[:, :, ::2, ::2]


def _valid_shape(x: torch.Tensor, size: int) -> tuple[int, int]:
    return max(x.shape[-2] - size + 1, 0), max(x.shape[-1] - size + 1, 0)


def vif_sources(x: torch.Tensor, *, sigma_nsq: float = 2.0, eps: float = 1e-10) -> VifSources:
    """VIF terms of the sources stacked on dim 1 (B, C, H, W) that every fused image reuses; see :func:`vif`."""
    taps = _vif_taps(x.dtype, x.device)
    c = x.shape[1]
    flat = math.nextafter(eps, 0)  # F.threshold keeps values > flat, i.e. >= eps
    images, mus, s1s, invs = [], [], [], []
    den = x.new_zeros(x.shape[:2])
    for scale, w in enumerate(taps):
        if scale > 0:
            x = _subsample(x, w)
        rows, cols = _valid_shape(x, len(w))
        mu, s1, inv = (x.new_empty(x.shape[0], c, rows, cols) for _ in range(3))
        window = partial(separable_filter, taps=w)
        for r, stats in _filtered_strips(partial(_squares_of_rows, x), window, len(w), rows, cols, x.device):
            m = stats[:, :c]
            mu[:, :, r] = m
            var = (stats[:, c:] - m * m).clamp_min_(0)
            torch.reciprocal(var + eps, out=inv[:, :, r])
            s1[:, :, r] = F.threshold(var, flat, 0.0)
            den += torch.log1p(s1[:, :, r] / sigma_nsq).sum(dim=(2, 3))
        images.append(x)
        mus.append(mu)
        s1s.append(s1)
        invs.append(inv)
    return VifSources(taps, tuple(images), tuple(mus), tuple(s1s), tuple(invs), den, sigma_nsq, eps)


def vif_score(f: torch.Tensor, src: VifSources, *, nan_as_one: bool = False) -> torch.Tensor:
    """VIF(A → F) + VIF(B → F) of ``f`` (B, H, W) with the sources of ``src``; see :func:`vif`.

    Per pixel, with ``g = σ₁₂ / (σ₁² + ε)`` and ``σ_v² = max(σ₂² - g σ₁₂, ε)``, the LIVE guards
    (``g = 0`` where σ₁² < ε, σ₂² < ε or g < 0) leave the term ``log(1 + g² σ₁² / (σ_v² + σ_n²))``
    where they hold and zero elsewhere.
    """
    num = torch.zeros_like(src.den)
    for scale, w in enumerate(src.taps):
        if scale > 0:
            f = _subsample(f.unsqueeze(1), w)[:, 0]
        x = src.images[scale]
        rows, cols = _valid_shape(x, len(w))
        window = partial(separable_filter, taps=w)
        for r, stats in _filtered_strips(partial(_products_of_rows, f, x), window, len(w), rows, cols, f.device):
            mu_f, sq_f, cross = stats[:, :1], stats[:, 1:2], stats[:, 2:]
            s2 = (sq_f - mu_f * mu_f).clamp_min_(0)
            s12 = cross - mu_f * src.mu[scale][:, :, r]
            g = s12 * src.inv[scale][:, :, r]
            sv = (s2 - g * s12).clamp_min_(src.eps).add_(src.sigma_nsq)
            g = g.clamp_min_(0).mul_(s2 >= src.eps)
            num += torch.log1p(g.mul_(g).mul_(src.s1[scale][:, :, r]).div_(sv)).sum(dim=(2, 3))
    ratio = num / src.den
    if nan_as_one:
        ratio = torch.nan_to_num(ratio, nan=1.0)
    return ratio.sum(dim=1)


def vif(
    f: torch.Tensor,
    a: torch.Tensor,
    b: torch.Tensor,
    *,
    sigma_nsq: float = 2.0,
    eps: float = 1e-10,
    nan_as_one: bool = False,
) -> torch.Tensor:
    """VIF = VIF(A → F) + VIF(B → F): multiscale pixel-domain VIF (Sheikh & Bovik 2006, LIVE ``vifp_mscale``).

    For scales s = 1..4: window N = 2^(5-s) + 1, Gaussian σ = N/5, 'valid' filtering; from s = 2 on
    the images are first filtered and subsampled by 2. With local variances σ₁² (source), σ₂²
    (fused) and covariance σ₁₂: ``g = σ₁₂ / (σ₁² + ε)``, ``σ_v² = σ₂² - g σ₁₂`` with the LIVE
    code's guards, and ``VIF = Σ_s Σ log10(1 + g² σ₁² / (σ_v² + σ_n²)) / Σ_s Σ log10(1 + σ₁² / σ_n²)``
    (the base of the logarithm cancels in the ratio). ``nan_as_one`` reproduces the CDDFuse
    evaluator, which turns a NaN ratio (flat source) into 1.
    """
    return vif_score(f, vif_sources(torch.stack([a, b], dim=1), sigma_nsq=sigma_nsq, eps=eps), nan_as_one=nan_as_one)
