"""Plain per-image NumPy/SciPy fusion metrics: the benchmark baseline and an independent cross-check.

This module deliberately does NOT import anything from the ``occo`` package. It is written the way
the field's research code is written: one image at a time, float64 (or the caller's float32 where the
reference Python code keeps float32), full 2-D ``scipy.signal.convolve2d`` / ``correlate2d`` window
filters (no separable filters, no batching across images), histograms with ``np.bincount``.

Two variants, and a command that scores a folder of fused images the way research scripts do (one
image at a time: decode, metrics, next; JSON out), the baseline ``bench/metrics.py`` times
``occo evaluate`` against:

    python bench/metrics_numpy.py --ir IR_DIR --vi VI_DIR --fused FUSED_DIR [--variant cddfuse] --out x.json


``metrics_matlab(f, a, b)``
    The current MATLAB code of Linfeng-Tang/Evaluation-for-Image-Fusion
    (``Evaluation/analysis_Reference.m`` with ``easy = 1``) on uint8 grey images, plus SSIM computed
    the way MATLAB's ``ssim`` does by default (not in the ``easy = 1`` path; our documented choice).
    Quirks reproduced on purpose:

    * MI: the joint histogram (``Hab.m``) indexes ``counter(x + 1, f + 1)`` with uint8 arithmetic, so
      ``255 + 1`` saturates to 255 and grey levels 254 and 255 share one bin on both axes of the JOINT
      histogram (the marginal entropies use the normal 256 bins).
    * PSNR/MSE are computed on images scaled to [0, 1] while PSNR still uses a peak of 255
      (``PSNR = 20 log10(255 / sqrt(MSE))``, ≈ 60 dB).
    * Qabf: where ``gA == gF`` the "relative strength" is ``gF`` itself, not 1, so the scale of the input
      changes the value. The current code's values (GNU Octave run, ``matlab_octave.csv``) are those of
      Qabf on the 0..255 doubles, not on ``im2double`` [0, 1] images as the published
      ``analysis_Reference.m`` suggests; we follow the reference values.
    * AG divides the sum of the per-pixel gradient magnitudes by ``(M - 1)(N - 1)``, not ``M N``.

``metrics_cddfuse(f, a, b)``
    MMIF-CDDFuse ``utils/Evaluator.py`` on float grey images in 0..255 (``grey_opencv``), keeping the
    caller's dtype (float32 there) wherever that code does: MI in nats with raw values as labels
    (scikit-learn ``mutual_info_score``), AG as a plain mean, PSNR = 10 log10(max(F)^2 / MSE) on 0..255,
    VIF with NaN -> 1, Qabf on the 0..255 scale, SSIM as scikit-image ``structural_similarity`` with
    ``data_range=255`` (7x7 uniform window, sample covariance, map cropped by 3 pixels).
    The float32 arithmetic matters at the reference's 6 printed decimals: the same code in float64
    moves SD by up to ~6e-6 and PSNR by ~3e-6 on TNO-42.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
from scipy import ndimage
from scipy.signal import convolve2d, correlate2d

__all__ = [
    "grey_matlab",
    "grey_opencv",
    "metrics_matlab",
    "metrics_cddfuse",
    "evaluate_folders",
    "MATLAB_KEYS",
    "CDDFUSE_KEYS",
]

MATLAB_KEYS = ("EN", "SD", "SF", "AG", "MI", "SCD", "VIF", "Qabf", "SSIM", "CC", "PSNR", "MSE")
CDDFUSE_KEYS = ("EN", "SD", "SF", "AG", "MI", "SCD", "VIF", "Qabf", "SSIM", "CC", "PSNR", "MSE")

# MATLAB rgb2gray coefficients (inverse of the NTSC YIQ matrix's first row, as MATLAB stores them).
_RGB2GRAY = (0.298936021293775, 0.587043074451121, 0.114020904255103)


# --------------------------------------------------------------------------------------------------
# Image reading
# --------------------------------------------------------------------------------------------------
def grey_matlab(path) -> np.ndarray:
    """Read an image as MATLAB ``rgb2gray(imread(path))`` would: uint8 HxW."""
    from PIL import Image

    with Image.open(Path(path)) as im:
        if im.mode not in ("L", "RGB"):
            im = im.convert("RGBA" if "A" in im.getbands() else "RGB")
        x = np.asarray(im)
    if x.ndim == 2:
        if x.dtype != np.uint8:
            raise ValueError(f"{path}: expected an 8-bit image, got {x.dtype}")
        return x.copy()
    x = x[..., :3].astype(np.float64)
    r, g, b = _RGB2GRAY
    y = r * x[..., 0] + g * x[..., 1] + b * x[..., 2]
    # MATLAB's conversion to uint8 rounds half away from zero and saturates.
    y = np.floor(y + 0.5)
    return np.clip(y, 0, 255).astype(np.uint8)


def grey_opencv(path) -> np.ndarray:
    """Read an image as MMIF-CDDFuse ``image_read_cv2(path, 'GRAY')``: float32 HxW of rounded grey."""
    import cv2

    img = cv2.imread(str(path))
    if img is None:
        raise FileNotFoundError(path)
    img = img.astype("float32")
    return np.round(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY))


# --------------------------------------------------------------------------------------------------
# Shared helpers
# --------------------------------------------------------------------------------------------------
def _entropy_bits(counts: np.ndarray) -> float:
    p = counts[counts > 0].astype(np.float64)
    p = p / p.sum()
    return float(-np.sum(p * np.log2(p)))


def _corr2(x: np.ndarray, y: np.ndarray) -> float:
    """MATLAB ``corr2``: Pearson correlation over the whole image."""
    xm = x - x.mean()
    ym = y - y.mean()
    return float(np.sum(xm * ym) / np.sqrt(np.sum(xm * xm) * np.sum(ym * ym)))


def _fspecial_gaussian(n: int, sigma: float) -> np.ndarray:
    """MATLAB ``fspecial('gaussian', n, sigma)``."""
    half = (n - 1) / 2.0
    y, x = np.mgrid[-half : half + 1, -half : half + 1]
    h = np.exp(-(x * x + y * y) / (2.0 * sigma * sigma))
    h[h < np.finfo(np.float64).eps * h.max()] = 0.0
    s = h.sum()
    if s != 0:
        h = h / s
    return h


def _sobel_grad_angle(img: np.ndarray):
    """Sobel strength and orientation as in analysis_Qabf.m / Evaluator.Qabf_getArray.

    conv2 'same' (zero padding, true convolution); the kernels take the image's dtype so float32
    input stays float32 as in the Python reference.
    """
    dt = img.dtype if img.dtype == np.float32 else np.float64
    h1 = np.array([[1, 2, 1], [0, 0, 0], [-1, -2, -1]], dtype=dt)  # y
    h3 = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=dt)  # x
    sx = convolve2d(img, h3, mode="same")
    sy = convolve2d(img, h1, mode="same")
    g = np.sqrt(sx * sx + sy * sy)
    a = np.full_like(sx, math.pi / 2)
    nz = sx != 0
    a[nz] = np.arctan(sy[nz] / sx[nz])
    return g, a


def _qabf_edge_preservation(gX, aX, gF, aF):
    Tg, kg, Dg = 0.9994, -15, 0.5
    Ta, ka, Da = 0.9879, -22, 0.8
    G = np.zeros_like(gX)
    gt = gX > gF
    eq = gX == gF
    lt = gX < gF
    G[gt] = gF[gt] / gX[gt]
    G[eq] = gF[eq]  # the reference quirk: not 1
    G[lt] = gX[lt] / gF[lt]
    A = 1 - np.abs(aX - aF) / (math.pi / 2)
    Qg = Tg / (1 + np.exp(kg * (G - Dg)))
    Qa = Ta / (1 + np.exp(ka * (A - Da)))
    return Qg * Qa


def _qabf(f, a, b) -> float:
    gA, aA = _sobel_grad_angle(a)
    gB, aB = _sobel_grad_angle(b)
    gF, aF = _sobel_grad_angle(f)
    QAF = _qabf_edge_preservation(gA, aA, gF, aF)
    QBF = _qabf_edge_preservation(gB, aB, gF, aF)
    deno = np.sum(gA + gB)
    nume = np.sum(QAF * gA + QBF * gB)
    return float(nume / deno)


def _filter2_valid(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """MATLAB ``filter2(w, x, 'valid')``; empty when the image is smaller than the window."""
    if x.shape[0] < w.shape[0] or x.shape[1] < w.shape[1]:
        return np.zeros((max(x.shape[0] - w.shape[0] + 1, 0), max(x.shape[1] - w.shape[1] + 1, 0)))
    return correlate2d(x, w, mode="valid")


def _vifp_mscale(ref: np.ndarray, dist: np.ndarray) -> float:
    """LIVE pixel-domain multiscale VIF (vifp_mscale.m; Evaluator.compare_viff)."""
    sigma_nsq = 2.0
    eps = 1e-10
    num = 0.0
    den = 0.0
    for scale in range(1, 5):
        n = 2 ** (4 - scale + 1) + 1
        win = _fspecial_gaussian(n, n / 5.0)
        if scale > 1:
            ref = _filter2_valid(ref, win)[::2, ::2]
            dist = _filter2_valid(dist, win)[::2, ::2]
        mu1 = _filter2_valid(ref, win)
        mu2 = _filter2_valid(dist, win)
        mu1_sq = mu1 * mu1
        mu2_sq = mu2 * mu2
        mu1_mu2 = mu1 * mu2
        sigma1_sq = _filter2_valid(ref * ref, win) - mu1_sq
        sigma2_sq = _filter2_valid(dist * dist, win) - mu2_sq
        sigma12 = _filter2_valid(ref * dist, win) - mu1_mu2

        sigma1_sq[sigma1_sq < 0] = 0
        sigma2_sq[sigma2_sq < 0] = 0

        g = sigma12 / (sigma1_sq + eps)
        sv_sq = sigma2_sq - g * sigma12

        m = sigma1_sq < eps
        g[m] = 0
        sv_sq[m] = sigma2_sq[m]
        sigma1_sq[m] = 0

        m = sigma2_sq < eps
        g[m] = 0
        sv_sq[m] = 0

        m = g < 0
        sv_sq[m] = sigma2_sq[m]
        g[m] = 0
        sv_sq[sv_sq <= eps] = eps

        num += np.sum(np.log10(1 + g * g * sigma1_sq / (sv_sq + sigma_nsq)))
        den += np.sum(np.log10(1 + sigma1_sq / sigma_nsq))
    return float(num / den)


# --------------------------------------------------------------------------------------------------
# MATLAB variant (default definitions)
# --------------------------------------------------------------------------------------------------
def _ssim_matlab(x: np.ndarray, y: np.ndarray) -> float:
    """MATLAB ``ssim(x, y)`` defaults on double images in [0, 1]."""
    sigma = 1.5
    size = 2 * math.ceil(3 * sigma) + 1
    half = size // 2
    w = _fspecial_gaussian(size, sigma)
    C1 = 0.01**2
    C2 = 0.03**2

    def filt(z):
        return correlate2d(np.pad(z, half, mode="edge"), w, mode="valid")

    mux = filt(x)
    muy = filt(y)
    mux2 = mux * mux
    muy2 = muy * muy
    muxy = mux * muy
    sx2 = filt(x * x) - mux2
    sy2 = filt(y * y) - muy2
    sxy = filt(x * y) - muxy
    num = (2 * muxy + C1) * (2 * sxy + C2)
    den = (mux2 + muy2 + C1) * (sx2 + sy2 + C2)
    return float(np.mean(num / den))


def _check_uint8(name, x):
    x = np.asarray(x)
    if x.ndim != 2 or x.dtype != np.uint8:
        raise ValueError(f"{name} must be a uint8 HxW array, got {x.dtype} {x.shape}")
    return x


def metrics_matlab(f, a, b) -> dict[str, float]:
    """Current MATLAB (analysis_Reference.m, easy=1) metrics; f fused, a infrared, b visible (uint8)."""
    f = _check_uint8("f", f)
    a = _check_uint8("a", a)
    b = _check_uint8("b", b)
    if not (f.shape == a.shape == b.shape):
        raise ValueError(f"shape mismatch: {f.shape} {a.shape} {b.shape}")
    M, N = f.shape
    dF, dA, dB = (x.astype(np.float64) for x in (f, a, b))
    nF, nA, nB = dF / 255.0, dA / 255.0, dB / 255.0
    out: dict[str, float] = {}

    # EN: MATLAB entropy() of uint8 -> 256-bin histogram.
    hF = np.bincount(f.ravel(), minlength=256)
    out["EN"] = _entropy_bits(hF)

    # SD: population standard deviation of the 0..255 doubles.
    out["SD"] = float(np.sqrt(np.mean((dF - dF.mean()) ** 2)))

    # SF on 0..255 doubles.
    rf = np.diff(dF, axis=0)
    cf = np.diff(dF, axis=1)
    out["SF"] = float(np.sqrt(np.mean(rf * rf) + np.mean(cf * cf)))

    # AG: MATLAB gradient (central inside, one-sided at the borders), sum / ((M-1)(N-1)).
    gy, gx = np.gradient(dF)
    s = np.sqrt((gx * gx + gy * gy) / 2.0)
    out["AG"] = float(np.sum(s) / ((M - 1) * (N - 1)))

    # MI with Hab.m's uint8 saturation in the joint histogram (254 and 255 merge).
    HF = out["EN"]
    fj = np.minimum(f.ravel(), 254).astype(np.intp)

    def mi_with(x):
        Hx = _entropy_bits(np.bincount(x.ravel(), minlength=256))
        xj = np.minimum(x.ravel(), 254).astype(np.intp)
        joint = np.bincount(xj * 256 + fj, minlength=256 * 256)
        return Hx + HF - _entropy_bits(joint)

    out["MI"] = float(mi_with(a) + mi_with(b))

    # CC on [0, 1] images.
    out["CC"] = float(np.mean([_corr2(nA, nF), _corr2(nB, nF)]))

    # SCD.
    out["SCD"] = _corr2(nF - nB, nA) + _corr2(nF - nA, nB)

    # MSE / PSNR on [0, 1] images with peak 255.
    mse = 0.5 * np.sum((nF - nA) ** 2) / (M * N) + 0.5 * np.sum((nF - nB) ** 2) / (M * N)
    out["MSE"] = float(mse)
    out["PSNR"] = float(20 * np.log10(255 / np.sqrt(mse)))

    # VIF on 0..255 doubles.
    out["VIF"] = _vifp_mscale(dA, dF) + _vifp_mscale(dB, dF)

    # Qabf on 0..255 doubles: that is what reproduces the current code (matlab_octave.csv, to ~2e-10).
    # On 0..255 the Sobel responses are exact integers, so the gA == gF ties are exact too; on the
    # [0, 1] scale they would depend on the convolution's summation order (and GAF = gF < 1 there).
    out["Qabf"] = _qabf(dF, dA, dB)

    # SSIM: MATLAB ssim defaults, SSIM(F, A) + SSIM(F, B).
    out["SSIM"] = _ssim_matlab(nF, nA) + _ssim_matlab(nF, nB)

    return {k: out[k] for k in MATLAB_KEYS}


# --------------------------------------------------------------------------------------------------
# MMIF-CDDFuse Evaluator variant
# --------------------------------------------------------------------------------------------------
def _mutual_info_nats(x: np.ndarray, y: np.ndarray) -> float:
    """scikit-learn ``mutual_info_score(x, y)`` with the raw values as labels (nats)."""
    _, xi = np.unique(x.ravel(), return_inverse=True)
    _, yi = np.unique(y.ravel(), return_inverse=True)
    nx = int(xi.max()) + 1
    ny = int(yi.max()) + 1
    if nx == 1 or ny == 1:
        return 0.0
    c = np.bincount(xi.ravel().astype(np.int64) * ny + yi.ravel(), minlength=nx * ny).reshape(nx, ny)
    n = float(c.sum())
    pi = c.sum(axis=1).astype(np.float64)
    pj = c.sum(axis=0).astype(np.float64)
    r, k = np.nonzero(c)
    nij = c[r, k].astype(np.float64)
    mi = nij / n * (np.log(nij) + np.log(n) - np.log(pi[r]) - np.log(pj[k]))
    mi = np.where(np.abs(mi) < np.finfo(np.float64).eps, 0.0, mi)
    return float(max(mi.sum(), 0.0))


def _ssim_skimage(x: np.ndarray, y: np.ndarray, data_range: float = 255.0) -> float:
    """scikit-image ``structural_similarity(x, y, data_range=...)`` defaults, computed in the input's float
    dtype as scikit-image does (float32 stays float32): 7x7 uniform window (ndimage 'reflect' border),
    sample covariance, mean of the map cropped by 3 pixels."""
    ft = np.float32 if (x.dtype == np.float32 and y.dtype == np.float32) else np.float64
    x = x.astype(ft, copy=False)
    y = y.astype(ft, copy=False)
    win = 7
    NP = win * win
    cov_norm = NP / (NP - 1)

    def filt(z):
        return ndimage.uniform_filter(z, size=win)

    ux = filt(x)
    uy = filt(y)
    uxx = filt(x * x)
    uyy = filt(y * y)
    uxy = filt(x * y)
    vx = cov_norm * (uxx - ux * ux)
    vy = cov_norm * (uyy - uy * uy)
    vxy = cov_norm * (uxy - ux * uy)
    C1 = (0.01 * data_range) ** 2
    C2 = (0.03 * data_range) ** 2
    A1 = 2 * ux * uy + C1
    A2 = 2 * vxy + C2
    B1 = ux**2 + uy**2 + C1
    B2 = vx + vy + C2
    S = (A1 * A2) / (B1 * B2)
    p = (win - 1) // 2
    return float(S[p:-p, p:-p].mean(dtype=np.float64))


def metrics_cddfuse(f, a, b) -> dict[str, float]:
    """MMIF-CDDFuse utils/Evaluator.py metrics on float grey images (0..255); f fused, a ir, b vis.

    Arrays keep their float dtype (float32 from ``grey_opencv``) as the reference code does; integer
    input is converted to float32 first.
    """
    arrs = []
    for name, x in (("f", f), ("a", a), ("b", b)):
        x = np.asarray(x)
        if x.ndim != 2:
            raise ValueError(f"{name} must be HxW, got {x.shape}")
        if not np.issubdtype(x.dtype, np.floating):
            x = x.astype(np.float32)
        arrs.append(x)
    f, a, b = arrs
    if not (f.shape == a.shape == b.shape):
        raise ValueError(f"shape mismatch: {f.shape} {a.shape} {b.shape}")
    out: dict[str, float] = {}

    # EN on round(F) as uint8.
    u = np.uint8(np.round(f)).ravel()
    h = np.bincount(u) / u.shape[0]
    out["EN"] = float(-np.sum(h * np.log2(h + (h == 0))))

    out["SD"] = float(np.std(f))
    out["SF"] = float(np.sqrt(np.mean((f[:, 1:] - f[:, :-1]) ** 2) + np.mean((f[1:, :] - f[:-1, :]) ** 2)))

    gx = np.zeros_like(f)
    gy = np.zeros_like(f)
    gx[:, 0] = f[:, 1] - f[:, 0]
    gx[:, -1] = f[:, -1] - f[:, -2]
    gx[:, 1:-1] = (f[:, 2:] - f[:, :-2]) / 2
    gy[0, :] = f[1, :] - f[0, :]
    gy[-1, :] = f[-1, :] - f[-2, :]
    gy[1:-1, :] = (f[2:, :] - f[:-2, :]) / 2
    out["AG"] = float(np.mean(np.sqrt((gx**2 + gy**2) / 2)))

    out["MI"] = _mutual_info_nats(f, a) + _mutual_info_nats(f, b)

    mse = (np.mean((a - f) ** 2) + np.mean((b - f) ** 2)) / 2
    out["MSE"] = float(mse)

    def pearson(x, y):
        xm = x - np.mean(x)
        ym = y - np.mean(y)
        return np.sum(xm * ym) / np.sqrt(np.sum(xm**2) * np.sum(ym**2))

    out["CC"] = float((pearson(a, f) + pearson(b, f)) / 2)
    out["PSNR"] = float(10 * np.log10(np.max(f) ** 2 / mse))
    out["SCD"] = float(pearson(a, f - b) + pearson(b, f - a))

    def viff(ref, dist):
        v = _vifp_mscale(ref, dist)
        return 1.0 if np.isnan(v) else v

    with np.errstate(invalid="ignore", divide="ignore"):
        out["VIF"] = viff(a, f) + viff(b, f)

    out["Qabf"] = _qabf(f, a, b)
    out["SSIM"] = _ssim_skimage(f, a) + _ssim_skimage(f, b)
    return {k: out[k] for k in CDDFUSE_KEYS}


# --------------------------------------------------------------------------------------------------
# Folders in, JSON out
# --------------------------------------------------------------------------------------------------
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def _by_stem(folder: Path) -> dict[str, Path]:
    return {p.stem: p for p in sorted(Path(folder).iterdir()) if p.suffix.lower() in _IMAGE_SUFFIXES}


def evaluate_folders(ir_dir, vi_dir, fused_dir, variant: str = "matlab") -> dict[str, dict[str, float]]:
    """Metrics of every fused image (named like its source pair) in ``fused_dir``, one image at a time."""
    read, metrics = {"matlab": (grey_matlab, metrics_matlab), "cddfuse": (grey_opencv, metrics_cddfuse)}[variant]
    ir, vi = _by_stem(ir_dir), _by_stem(vi_dir)
    out = {}
    for id_, fused in _by_stem(fused_dir).items():
        if id_ in ir and id_ in vi:
            with np.errstate(all="ignore"):  # NaN/inf where MATLAB gives them (e.g. SCD of a copy)
                out[id_] = metrics(read(fused), read(ir[id_]), read(vi[id_]))
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Per-image NumPy/SciPy fusion metrics of a folder (JSON out)")
    parser.add_argument("--ir", type=Path, required=True)
    parser.add_argument("--vi", type=Path, required=True)
    parser.add_argument("--fused", type=Path, required=True)
    parser.add_argument("--variant", choices=("matlab", "cddfuse"), default="matlab")
    parser.add_argument("--out", type=Path, required=True, help="JSON: means and per-image values")
    args = parser.parse_args(argv)
    per_image = evaluate_folders(args.ir, args.vi, args.fused, args.variant)
    keys = next(iter(per_image.values())).keys() if per_image else ()
    means = {k: float(np.mean([v[k] for v in per_image.values()])) for k in keys}
    args.out.write_text(json.dumps({"means": means, "per_image": per_image}, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
