"""Window-statistics metrics: SSIM (two conventions) and pixel-domain VIF, batched over (B, H, W).

Both compare local statistics of the fused image F with those of each source X ∈ {A, B}. The
sources' own statistics (local means and variances, VIF's subsampled sources and its denominator)
do not depend on F: :func:`ssim_sources` and :func:`vif_sources` compute them once per pair, and
:func:`ssim_score` / :func:`vif_score` add what each fused image needs. Computed in float64: the
local variances E[x²] - μ² cancel digits, and float32 moves both metrics by ~1e-6 relative.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from occo.metrics.filters import box_filter_valid, gaussian_taps, row_strips, separable_filter

Window = Callable[[torch.Tensor], torch.Tensor]


def _with_products(f: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The planes F, F², F·X_1, …, F·X_C for window statistics: f (B, H, W), x (B, C, H, W) → (B, 2 + C, H, W)."""
    out = f.new_empty(f.shape[0], 2 + x.shape[1], *f.shape[1:])
    out[:, 0] = f
    torch.mul(f, f, out=out[:, 1])
    torch.mul(f.unsqueeze(1), x, out=out[:, 2:])
    return out


def _local_moments(x: torch.Tensor, window: Window) -> tuple[torch.Tensor, torch.Tensor]:
    """Local means and raw second moments of every plane of ``x`` (B, C, H, W), one filter call."""
    c = x.shape[1]
    planes = x.new_empty(x.shape[0], 2 * c, *x.shape[2:])
    planes[:, :c] = x
    torch.mul(x, x, out=planes[:, c:])
    stats = window(planes)
    return stats[:, :c], stats[:, c:]


def _strip_sums(terms, *planes: torch.Tensor) -> torch.Tensor:
    """Σ over pixels of ``terms(*strips)`` (a (B, C, h, w) map per strip of rows of ``planes``) → (B, C)."""
    rows, cols = planes[0].shape[-2:]
    parts = [terms(*(p[:, :, r] for p in planes)).sum(dim=(2, 3)) for r in row_strips(rows, cols, planes[0].device)]
    return torch.stack(parts).sum(dim=0)


# ------------------------------------------------------------------------------------------------
# SSIM
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SsimSources:
    """Source-only SSIM terms of A and B (B, 2, …): the images, local means ``mu``, ``mu² + C1`` and
    ``σ² + C2``, for the window and constants they were computed with."""

    window: Window
    norm: float
    c1: float
    c2: float
    images: torch.Tensor
    mu: torch.Tensor
    mu_sq_c1: torch.Tensor
    var_c2: torch.Tensor


def _ssim_window(window: str, dtype: torch.dtype, device: torch.device) -> tuple[Window, float]:
    if window == "gaussian":
        taps = gaussian_taps(11, 1.5, dtype=dtype, device=device)
        return (lambda s: separable_filter(s, taps, pad="replicate")), 1.0
    if window == "uniform":
        return (lambda s: box_filter_valid(s, 7)), 49 / 48
    raise ValueError(f"unknown SSIM window {window!r}; use 'gaussian' or 'uniform'")


def ssim_sources(a: torch.Tensor, b: torch.Tensor, *, window: str, data_range: float) -> SsimSources:
    """SSIM terms of the sources (B, H, W) that every fused image reuses; see :func:`ssim_sum`."""
    x = torch.stack([a, b], dim=1)
    filt, norm = _ssim_window(window, x.dtype, x.device)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mu, sq = _local_moments(x, filt)
    return SsimSources(filt, norm, c1, c2, x, mu, mu * mu + c1, norm * (sq - mu * mu) + c2)


def ssim_score(f: torch.Tensor, src: SsimSources) -> torch.Tensor:
    """SSIM(F, A) + SSIM(F, B) of ``f`` (B, H, W) with the sources of ``src``; see :func:`ssim_sum`.

    Map: ``((2μxμy + C1)(2σxy + C2)) / ((μx² + μy² + C1)(σx² + σy² + C2))`` (Wang et al. 2004, Eq. 13).
    """

    def ssim_map(stats, mu, mu_sq_c1, var_c2):
        mu_f, sq_f, cross = stats[:, :1], stats[:, 1:2], stats[:, 2:]
        mu_fx = mu_f * mu
        var_f = (sq_f - mu_f * mu_f).mul_(src.norm)
        cov = (cross - mu_fx).mul_(2 * src.norm).add_(src.c2)
        num = mu_fx.mul_(2).add_(src.c1).mul_(cov)
        return num.div_((mu_f * mu_f + mu_sq_c1).mul_(var_f + var_c2))

    stats = src.window(_with_products(f, src.images))
    return _strip_sums(ssim_map, stats, src.mu, src.mu_sq_c1, src.var_c2).sum(dim=1) / stats[0, 0].numel()


def ssim_sum(f: torch.Tensor, a: torch.Tensor, b: torch.Tensor, *, window: str, data_range: float) -> torch.Tensor:
    """SSIM = SSIM(F, A) + SSIM(F, B), the convention fusion papers report (maximum 2).

    ``window='gaussian'``: MATLAB ``ssim`` defaults, Gaussian σ = 1.5 (11 taps), replicate padding,
    mean of the full-size map. ``window='uniform'``: scikit-image ``structural_similarity``
    defaults, 7×7 box, sample (co)variances (factor N/(N-1), N = 49), mean over the 'valid'
    windows (the map without a 3-pixel border). Both use ``C1 = (0.01 L)²``, ``C2 = (0.03 L)²``.
    """
    return ssim_score(f, ssim_sources(a, b, window=window, data_range=data_range))


# ------------------------------------------------------------------------------------------------
# VIF
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class VifSources:
    """Source-only VIF terms of A and B (B, 2, …) per scale: the (subsampled) sources ``images``,
    local means ``mu``, variances ``s1`` (zero where < eps, the LIVE guard), ``inv = 1 / (σ₁² + eps)``
    (the unguarded variance, as the LIVE code divides) and the denominator ``den`` (B, 2) in nats."""

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


def vif_sources(a: torch.Tensor, b: torch.Tensor, *, sigma_nsq: float = 2.0, eps: float = 1e-10) -> VifSources:
    """VIF terms of the sources (B, H, W) that every fused image reuses; see :func:`vif`."""
    x = torch.stack([a, b], dim=1)
    taps = _vif_taps(x.dtype, x.device)
    images, mus, s1s, invs = [], [], [], []
    den = x.new_zeros(x.shape[:2])
    for scale, w in enumerate(taps):
        if scale > 0:
            x = _subsample(x, w)
        mu, sq = _local_moments(x, lambda s: separable_filter(s, w))
        s1 = (sq - mu * mu).clamp_min_(0)
        images.append(x)
        mus.append(mu)
        invs.append((s1 + eps).reciprocal_())
        s1.mul_(s1 >= eps)
        s1s.append(s1)
        den = den + _strip_sums(lambda v: torch.log1p(v / sigma_nsq), s1)
    return VifSources(taps, tuple(images), tuple(mus), tuple(s1s), tuple(invs), den, sigma_nsq, eps)


def vif_score(f: torch.Tensor, src: VifSources, *, nan_as_one: bool = False) -> torch.Tensor:
    """VIF(A → F) + VIF(B → F) of ``f`` (B, H, W) with the sources of ``src``; see :func:`vif`.

    Per pixel, with ``g = σ₁₂ / (σ₁² + ε)`` and ``σ_v² = max(σ₂² - g σ₁₂, ε)``, the LIVE guards
    (``g = 0`` where σ₁² < ε, σ₂² < ε or g < 0) leave the term ``log(1 + g² σ₁² / (σ_v² + σ_n²))``
    where they hold and zero elsewhere.
    """

    def terms(stats, mu, s1, inv):
        mu_f, sq_f, cross = stats[:, :1], stats[:, 1:2], stats[:, 2:]
        s2 = (sq_f - mu_f * mu_f).clamp_min_(0)
        s12 = torch.addcmul(cross, mu_f, mu, value=-1)
        g = s12.mul(inv)
        sv = torch.addcmul(s2, g, s12, value=-1).clamp_min_(src.eps).add_(src.sigma_nsq)
        g = g.clamp_min_(0).mul_(s2 >= src.eps)
        return torch.log1p(g.mul_(g).mul_(s1).div_(sv))

    num = torch.zeros_like(src.den)
    for scale, w in enumerate(src.taps):
        if scale > 0:
            f = _subsample(f.unsqueeze(1), w)[:, 0]
        stats = separable_filter(_with_products(f, src.images[scale]), w)
        num = num + _strip_sums(terms, stats, src.mu[scale], src.s1[scale], src.inv[scale])
    ratio = num / src.den
    if nan_as_one:
        ratio = torch.nan_to_num(ratio, nan=1.0)
    return ratio.sum(dim=1)


def vif(
    f: torch.Tensor, a: torch.Tensor, b: torch.Tensor, *, sigma_nsq: float = 2.0, eps: float = 1e-10, nan_as_one: bool = False
) -> torch.Tensor:
    """VIF = VIF(A → F) + VIF(B → F): multiscale pixel-domain VIF (Sheikh & Bovik 2006, LIVE ``vifp_mscale``).

    For scales s = 1..4: window N = 2^(5-s) + 1, Gaussian σ = N/5, 'valid' filtering; from s = 2 on
    the images are first filtered and subsampled by 2. With local variances σ₁² (source), σ₂²
    (fused) and covariance σ₁₂: ``g = σ₁₂ / (σ₁² + ε)``, ``σ_v² = σ₂² - g σ₁₂`` with the LIVE
    code's guards, and ``VIF = Σ_s Σ log10(1 + g² σ₁² / (σ_v² + σ_n²)) / Σ_s Σ log10(1 + σ₁² / σ_n²)``
    (the base of the logarithm cancels in the ratio). ``nan_as_one`` reproduces the CDDFuse
    evaluator, which turns a NaN ratio (flat source) into 1.
    """
    return vif_score(f, vif_sources(a, b, sigma_nsq=sigma_nsq, eps=eps), nan_as_one=nan_as_one)
