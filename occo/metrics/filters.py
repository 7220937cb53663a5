"""Window filters shared by the structural and gradient metrics (batched, float32 or float64).

Filters take stacks of planes shaped ``(B, C, H, W)``. On CPU they run in OpenCV
(``cv2.sepFilter2D``, ``cv2.blur``, ``cv2.Sobel``: one call per plane, float64 arithmetic for
float64 planes): one pass over each plane per filter, faster there than the shifted multiply-adds
(one whole-plane pass per tap) that every other device (CUDA) uses (docs/metrics.md); the two paths
agree to rounding and are tested against each other. :func:`row_strips` cuts filtering and the
per-pixel work after it into cache-sized strips of rows on CPU.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F

_CV_DEPTH = {torch.float32: cv2.CV_32F, torch.float64: cv2.CV_64F}

# Bytes of one plane's strip of rows that filtering and per-pixel work handle at a time on CPU: the
# strip's inputs and temporaries then stay in cache and are recycled by the allocator, where whole
# planes would stream every temporary through memory.
_STRIP_BYTES = 1 << 18


def row_strips(rows: int, cols: int, device: torch.device, *, halo: int = 0) -> list[slice]:
    """Row ranges for per-pixel work on (…, rows, cols) float64 planes: cache-sized on CPU, all rows elsewhere.

    ``halo``: extra input rows each strip reads (a window's size - 1); strips are kept at least 4× as
    tall so that filtering the overlaps adds at most a quarter to the row pass.
    """
    step = max(8, 4 * halo, _STRIP_BYTES // (8 * max(cols, 1))) if device.type == "cpu" else max(rows, 1)
    return [slice(r, min(rows, r + step)) for r in range(0, max(rows, 1), step)]  # one empty strip if rows = 0


def gaussian_taps(size: int, sigma: float, *, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """1-D normalised Gaussian taps ``g[i] ∝ exp(-x_i² / 2σ²)``, ``x_i = i - (size-1)/2``.

    The outer product of these taps equals MATLAB's ``fspecial('gaussian', size, sigma)``
    (``exp(-(x²+y²)/2σ²)`` normalised to sum 1), because the 2-D kernel factorises and its sum is
    the square of the 1-D sum. fspecial also zeroes entries below ``eps·max``; for every window the
    metrics use (size ≤ 17, σ = size/5 or 1.5) the smallest entry is > 1e-3, so nothing is zeroed.
    """
    x = torch.arange(size, dtype=dtype, device=device) - (size - 1) / 2
    g = torch.exp(-(x * x) / (2.0 * sigma * sigma))
    return g / g.sum()


def correlate1d_valid(x: torch.Tensor, taps: list[float], dim: int) -> torch.Tensor:
    """'valid' 1-D correlation of ``x`` along ``dim``: ``y[i] = Σ_k taps[k] · x[i + k]``.

    One shifted multiply-add per tap (the non-CPU path; callers ensure the window fits).
    """
    n = x.shape[dim] - len(taps) + 1
    out = torch.mul(x.narrow(dim, 0, n), taps[0])
    for k, w in enumerate(taps[1:], start=1):
        out.add_(x.narrow(dim, k, n), alpha=w)
    return out


def _torch_separable(stack: torch.Tensor, w: list[float], pad: str | None) -> torch.Tensor:
    """Correlation of every plane of ``stack`` (B, C, H, W) with ``outer(w, w)`` by shifted multiply-adds."""
    if pad is not None:
        r = len(w) // 2
        stack = F.pad(stack, (r, r, r, r), mode=pad)
    rows, cols = stack.shape[-2] - len(w) + 1, stack.shape[-1] - len(w) + 1
    if rows <= 0 or cols <= 0:  # the window does not fit: an empty result, as MATLAB's 'valid'
        return stack.new_empty(*stack.shape[:-2], max(rows, 0), max(cols, 0))
    return correlate1d_valid(correlate1d_valid(stack, w, dim=-2), w, dim=-1)


def _opencv_planes(stack: torch.Tensor, k: int, pad: str | None, filter_plane) -> torch.Tensor:
    """Apply ``filter_plane`` (a same-size OpenCV filter with a ``k × k`` window) to every plane of a CPU stack.

    ``pad=None`` keeps the 'valid' part (windows fully inside the plane), returned as a view of the
    same-size output; ``pad='replicate'`` the whole same-size output with edges replicated.
    """
    b, c, h, w = stack.shape
    r = 0 if pad is not None else k // 2
    rows, cols = h - 2 * r, w - 2 * r
    if rows <= 0 or cols <= 0:
        return stack.new_empty(b, c, max(rows, 0), max(cols, 0))
    src = stack.detach().contiguous().numpy()
    out = np.empty_like(src)
    border = cv2.BORDER_REPLICATE if pad is not None else cv2.BORDER_REFLECT_101
    for i in range(b):
        for j in range(c):
            filter_plane(src[i, j], out[i, j], border)
    return torch.from_numpy(out)[:, :, r : r + rows, r : r + cols]


def _check_pad(pad: str | None) -> None:
    if pad not in (None, "replicate"):
        raise ValueError(f"unknown padding {pad!r}; use None ('valid') or 'replicate'")


def separable_filter(stack: torch.Tensor, taps: torch.Tensor, *, pad: str | None = None) -> torch.Tensor:
    """Correlate every plane of ``stack`` (B, C, H, W) with ``outer(taps, taps)``.

    ``pad=None`` gives MATLAB ``filter2(..., 'valid')``; ``pad='replicate'`` gives a same-size
    output with edge replication (MATLAB ``imgaussfilt`` default). Two 1-D passes instead of one
    2-D pass: 2·size instead of size² multiply-adds per pixel, same result up to rounding.
    """
    _check_pad(pad)
    if stack.device.type == "cpu" and stack.dtype in _CV_DEPTH:
        k = taps.detach().cpu().numpy().astype(np.float64)
        depth = _CV_DEPTH[stack.dtype]
        return _opencv_planes(
            stack, len(k), pad, lambda p, o, border: cv2.sepFilter2D(p, depth, k, k, dst=o, borderType=border)
        )
    return _torch_separable(stack, taps.tolist(), pad)


def box_filter_valid(stack: torch.Tensor, size: int) -> torch.Tensor:
    """Mean over every ``size × size`` window fully inside the plane (B, C, H, W) → 'valid' output."""
    if stack.device.type == "cpu" and stack.dtype in _CV_DEPTH:
        return _opencv_planes(
            stack, size, None, lambda p, o, border: cv2.blur(p, (size, size), dst=o, borderType=border)
        )
    return _torch_separable(stack, [1.0 / size] * size, None)


def sobel_conv(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """MATLAB ``conv2(x, h3, 'same')`` and ``conv2(x, h1, 'same')`` over the last two dims, zero padding.

    ``h3 = [-1 0 1; -2 0 2; -1 0 1]`` (horizontal gradient), ``h1 = [1 2 1; 0 0 0; -1 -2 -1]``
    (vertical). ``conv2`` is a true convolution, i.e. correlation with the flipped kernels
    ``[1 0 -1; 2 0 -2; 1 0 -1]`` (OpenCV's x-Sobel negated) and ``[-1 -2 -1; 0 0 0; 1 2 1]``
    (its y-Sobel); both factor into a smoothing ``[1 2 1]`` and a difference ``[1 0 -1]`` pass.
    Returns ``(gx, gy)``.
    """
    if x.device.type == "cpu" and x.dtype in _CV_DEPTH:
        depth = _CV_DEPTH[x.dtype]
        planes = x.detach().contiguous().numpy().reshape(-1, *x.shape[-2:])
        gx, gy = np.empty_like(planes), np.empty_like(planes)
        for src, ox, oy in zip(planes, gx, gy):
            cv2.Sobel(src, depth, 1, 0, dst=ox, ksize=3, scale=-1, borderType=cv2.BORDER_CONSTANT)
            cv2.Sobel(src, depth, 0, 1, dst=oy, ksize=3, borderType=cv2.BORDER_CONSTANT)
        return torch.from_numpy(gx).view(x.shape), torch.from_numpy(gy).view(x.shape)
    return _torch_sobel(x)


def _torch_sobel(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`sobel_conv` by shifted multiply-adds (any device)."""
    p = F.pad(x, (1, 1, 1, 1))
    smooth, diff = [1.0, 2.0, 1.0], [1.0, 0.0, -1.0]
    gx = correlate1d_valid(correlate1d_valid(p, smooth, dim=-2), diff, dim=-1)
    gy = correlate1d_valid(correlate1d_valid(p, diff, dim=-2), smooth, dim=-1)
    return gx, -gy
