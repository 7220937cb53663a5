"""Window-statistics metrics: SSIM (two conventions) and pixel-domain VIF, batched over (B, H, W)."""

from __future__ import annotations

import torch

from occo.metrics.filters import box_filter_valid, gaussian_taps, separable_filter


def _ssim_map(mu_x, mu_y, var_x, var_y, cov, c1: float, c2: float) -> torch.Tensor:
    """``((2μxμy + C1)(2σxy + C2)) / ((μx² + μy² + C1)(σx² + σy² + C2))`` (Wang et al. 2004, Eq. 13)."""
    return ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))


def _window_stats(f: torch.Tensor, a: torch.Tensor, b: torch.Tensor, window) -> tuple[torch.Tensor, ...]:
    """Local means, second moments and cross moments of F, A, B in one filter call.

    Returns ``mu`` (B, 3, h, w) for (F, A, B), ``sq`` (B, 3, h, w) for their squares and ``cross``
    (B, 2, h, w) for F·A and F·B; the fused image's statistics are computed once for both sources.
    """
    x = torch.stack([f, a, b], dim=1)
    stats = window(torch.cat([x, x * x, x[:, 1:] * x[:, :1]], dim=1))
    return stats[:, :3], stats[:, 3:6], stats[:, 6:]


def ssim_sum(f: torch.Tensor, a: torch.Tensor, b: torch.Tensor, *, window: str, data_range: float) -> torch.Tensor:
    """SSIM = SSIM(F, A) + SSIM(F, B), the convention fusion papers report (maximum 2).

    ``window='gaussian'``: MATLAB ``ssim`` defaults, Gaussian σ = 1.5 (11 taps), replicate padding,
    mean of the full-size map. ``window='uniform'``: scikit-image ``structural_similarity``
    defaults, 7×7 box, sample (co)variances (factor N/(N-1), N = 49), mean over the 'valid'
    windows (the map without a 3-pixel border). Both use ``C1 = (0.01 L)²``, ``C2 = (0.03 L)²``.
    """
    if window == "gaussian":
        taps = gaussian_taps(11, 1.5, dtype=f.dtype, device=f.device)
        mu, sq, cross = _window_stats(f, a, b, lambda s: separable_filter(s, taps, pad="replicate"))
        norm = 1.0
    elif window == "uniform":
        mu, sq, cross = _window_stats(f, a, b, lambda s: box_filter_valid(s, 7))
        norm = 49 / 48
    else:
        raise ValueError(f"unknown SSIM window {window!r}; use 'gaussian' or 'uniform'")
    var = norm * (sq - mu * mu)
    cov = norm * (cross - mu[:, :1] * mu[:, 1:])
    smap = _ssim_map(mu[:, :1], mu[:, 1:], var[:, :1], var[:, 1:], cov, (0.01 * data_range) ** 2, (0.03 * data_range) ** 2)
    return smap.flatten(2).mean(dim=2).sum(dim=1)


def vif(
    f: torch.Tensor, a: torch.Tensor, b: torch.Tensor, *, sigma_nsq: float = 2.0, eps: float = 1e-10, nan_as_one: bool = False
) -> torch.Tensor:
    """VIF = VIF(A → F) + VIF(B → F): multiscale pixel-domain VIF (Sheikh & Bovik 2006, LIVE ``vifp_mscale``).

    For scales s = 1..4: window N = 2^(5-s) + 1, Gaussian σ = N/5, 'valid' filtering; from s = 2 on
    the images are first filtered and subsampled by 2. With local variances σ₁² (source), σ₂²
    (fused) and covariance σ₁₂: ``g = σ₁₂ / (σ₁² + ε)``, ``σ_v² = σ₂² - g σ₁₂`` with the LIVE
    code's guards, and ``VIF = Σ_s Σ log10(1 + g² σ₁² / (σ_v² + σ_n²)) / Σ_s Σ log10(1 + σ₁² / σ_n²)``.
    ``nan_as_one`` reproduces the CDDFuse evaluator, which turns a NaN ratio (flat source) into 1.
    """
    num = torch.zeros(f.shape[0], 2, dtype=f.dtype, device=f.device)
    den = torch.zeros_like(num)
    for scale in range(1, 5):
        n = 2 ** (4 - scale + 1) + 1
        taps = gaussian_taps(n, n / 5.0, dtype=f.dtype, device=f.device)
        if scale > 1:
            x = separable_filter(torch.stack([f, a, b], dim=1), taps)[:, :, ::2, ::2]
            f, a, b = x.unbind(1)
        mu, sq, cross = _window_stats(f, a, b, lambda s: separable_filter(s, taps))
        var = (sq - mu * mu).clamp_min(0)
        s1, s2 = var[:, 1:], var[:, :1].expand_as(var[:, 1:])
        s12 = cross - mu[:, :1] * mu[:, 1:]
        g = s12 / (s1 + eps)
        sv = s2 - g * s12
        flat1 = s1 < eps
        g = torch.where(flat1, 0.0, g)
        sv = torch.where(flat1, s2, sv)
        s1 = torch.where(flat1, 0.0, s1)
        flat2 = s2 < eps
        g = torch.where(flat2, 0.0, g)
        sv = torch.where(flat2, 0.0, sv)
        neg = g < 0
        sv = torch.where(neg, s2, sv)
        g = torch.where(neg, 0.0, g)
        sv = sv.clamp_min(eps)
        num = num + torch.log10(1 + g * g * s1 / (sv + sigma_nsq)).flatten(2).sum(dim=2)
        den = den + torch.log10(1 + s1 / sigma_nsq).flatten(2).sum(dim=2)
    ratio = num / den
    if nan_as_one:
        ratio = torch.nan_to_num(ratio, nan=1.0)
    return ratio.sum(dim=1)
