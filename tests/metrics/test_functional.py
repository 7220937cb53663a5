"""Metric functions of occo.metrics on small hand-made tensors (no shared data needed).

Every expected value here is computed by hand or by a few lines of NumPy/SciPy that follow the
definitions in docs/metrics.md, independently of the batched torch code under test.
"""

from __future__ import annotations

import importlib.util
import math

import numpy as np
import pytest
import torch
from scipy.signal import convolve2d, correlate2d

from occo.metrics.filters import _torch_separable, box_filter_valid, gaussian_taps, separable_filter, sobel_conv
from occo.metrics.gradient import average_gradient, qabf, spatial_frequency
from occo.metrics.information import entropy, histogram, joint_counts, joint_histogram, joint_index, mutual_information
from occo.metrics.statistics import (
    correlation_coefficient,
    image_moments,
    moments_from_joints,
    mse,
    psnr,
    scd,
    standard_deviation,
)
from occo.metrics.structural import ssim_sum, vif
from occo.metrics.suite import METRICS, VARIANTS, compute_metrics, get_variant, grey_levels, prepare_sources, score
from support import REPO


def t(x) -> torch.Tensor:
    """A float64 (1, H, W) batch from a 2-D array-like."""
    return torch.as_tensor(np.asarray(x, dtype=np.float64))[None]


def rand_levels(shape, seed: int) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).integers(0, 256, shape).astype(np.float64))


def smooth_image(h: int, w: int, seed: int) -> np.ndarray:
    """A textured but smooth 0..255 image (random field blurred), rounded to levels."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(h + 8, w + 8))
    k = np.outer(np.hanning(9), np.hanning(9))
    z = correlate2d(z, k / k.sum(), mode="valid")
    z = (z - z.min()) / (z.max() - z.min())
    return np.round(20 + 200 * z)


# ------------------------------------------------------------------------------------------------
# EN and MI
# ------------------------------------------------------------------------------------------------
def test_entropy_of_constant_image_is_zero():
    assert entropy(t(np.full((7, 9), 123))).item() == 0.0


def test_entropy_of_uniform_256_levels_is_8_bits():
    x = np.arange(256).reshape(16, 16)
    assert entropy(t(x)).item() == pytest.approx(8.0, abs=1e-12)
    # Two copies of every level: still uniform.
    assert entropy(t(np.concatenate([x, x]))).item() == pytest.approx(8.0, abs=1e-12)


def test_entropy_batched_per_image():
    x = torch.stack([torch.full((4, 4), 3.0), torch.arange(16.0).view(4, 4)])
    np.testing.assert_allclose(entropy(x).numpy(), [0.0, 4.0], atol=1e-12)


def test_histogram_counts():
    x = t([[0, 0, 255], [7, 7, 7]])
    h = histogram(x)
    assert h.shape == (1, 256) and h.dtype == torch.float64
    assert h[0, 0] == 2 and h[0, 7] == 3 and h[0, 255] == 1 and h.sum() == 6


def test_mi_merges_levels_254_and_255_in_the_joint_histogram():
    # 8 pixels at 0, 4 at 254, 4 at 255.
    x = np.array([0] * 8 + [254] * 4 + [255] * 4).reshape(4, 4)
    # Marginals (256 bins): p = (1/2, 1/4, 1/4) -> H = 1.5 bits.
    # Joint of (x, x) with 254/255 merged: two cells of 8 -> H = 1 bit; MI(x, x) = 1.5 + 1.5 - 1 = 2.
    mi = mutual_information(t(x), t(x), t(x))
    assert mi.item() == pytest.approx(2 * 2.0, abs=1e-12)
    # Without the merge: H(x, x) = H(x) = 1.5 -> MI(x, x) = 1.5 per source.
    honest = mutual_information(t(x), t(x), t(x), merge_top=False)
    assert honest.item() == pytest.approx(2 * 1.5, abs=1e-12)
    # EN keeps all 256 bins.
    assert entropy(t(x)).item() == pytest.approx(1.5, abs=1e-12)


def test_joint_histogram_merge_top_only_touches_254_255():
    x = t([[253, 254, 255, 0]])
    y = t([[255, 255, 1, 254]])
    merged = joint_histogram(x, y, merge_top=True)[0]
    plain = joint_histogram(x, y, merge_top=False)[0]
    assert plain[253, 255] == plain[254, 255] == plain[255, 1] == plain[0, 254] == 1
    assert merged[253, 254] == 1 and merged[254, 254] == 1 and merged[254, 1] == 1 and merged[0, 254] == 1
    assert merged[255].sum() == 0 and merged[:, 255].sum() == 0
    assert merged.sum() == plain.sum() == 4


def _mi_nats_numpy(x: np.ndarray, y: np.ndarray) -> float:
    """MI(X, Y) in nats from the contingency table of the integer levels."""
    c = np.zeros((256, 256))
    np.add.at(c, (x.ravel().astype(int), y.ravel().astype(int)), 1)
    p = c / c.sum()
    px, py = p.sum(axis=1), p.sum(axis=0)
    nz = p > 0
    return float(np.sum(p[nz] * np.log(p[nz] / np.outer(px, py)[nz])))


def test_mi_nats_without_merge_equals_contingency_computation():
    rng = np.random.default_rng(3)
    a = rng.integers(0, 256, (30, 40))
    b = rng.integers(200, 256, (30, 40))  # plenty of 254/255 so a merge would show
    f = np.clip(np.round(0.5 * a + 0.5 * b + rng.integers(-3, 4, (30, 40))), 0, 255)
    want = _mi_nats_numpy(a, f) + _mi_nats_numpy(b, f)
    got = mutual_information(t(f), t(a), t(b), base=math.e, merge_top=False).item()
    assert got == pytest.approx(want, rel=1e-12)
    # Default (log2, merged) differs: units and the merge.
    assert mutual_information(t(f), t(a), t(b)).item() != pytest.approx(want / math.log(2), rel=1e-6)


@pytest.mark.parametrize("bad", [256, -1, 255.6, 12.5])
def test_grey_level_out_of_range_raises(bad):
    """Every metric reads integer grey levels; a fractional one is an error, not silently rounded."""
    x = np.zeros((4, 4))
    x[1, 2] = bad
    with pytest.raises(ValueError, match="0..255"):
        entropy(t(x))
    with pytest.raises(ValueError, match="0..255"):
        mutual_information(t(x), t(np.zeros((4, 4))), t(np.zeros((4, 4))))
    with pytest.raises(ValueError, match="0..255"):
        compute_metrics(t(x), t(np.ones((4, 4))), t(np.ones((4, 4))))


# ------------------------------------------------------------------------------------------------
# Moments
# ------------------------------------------------------------------------------------------------
def test_sd_sf_on_2x2():
    x = [[1, 2], [3, 4]]
    # mean 2.5, population variance (2.25 + 0.25 + 0.25 + 2.25) / 4 = 1.25
    assert standard_deviation(image_moments(t(x))).item() == pytest.approx(math.sqrt(1.25), rel=1e-15)
    # row differences F[i+1,j] - F[i,j] = (2, 2) -> RF² = 4; column differences (1, 1) -> CF² = 1
    assert spatial_frequency(t(x)).item() == pytest.approx(math.sqrt(5.0), rel=1e-15)


def test_sf_means_over_each_difference_array():
    x = np.array([[0, 0, 0], [6, 6, 6]])  # 2x3: RF² = 36 over 3 terms, CF² = 0 over 4 terms
    assert spatial_frequency(t(x)).item() == pytest.approx(6.0, rel=1e-15)
    y = np.array([[0, 3, 3], [0, 3, 3]])  # CF² = (9 + 0 + 9 + 0) / 4 = 4.5
    assert spatial_frequency(t(y)).item() == pytest.approx(math.sqrt(4.5), rel=1e-15)


def test_ag_on_a_ramp_and_normalisations():
    m, n = 4, 5
    ramp = np.tile(3.0 * np.arange(n), (m, 1))  # ∂x = 3 everywhere (borders one-sided), ∂y = 0
    total = m * n * 3 / math.sqrt(2)
    assert average_gradient(t(ramp), normalise="matlab").item() == pytest.approx(total / ((m - 1) * (n - 1)))
    assert average_gradient(t(ramp), normalise="mean").item() == pytest.approx(total / (m * n))


def test_ag_matches_numpy_gradient_and_ratio():
    x = rand_levels((9, 13), 1)
    gy, gx = np.gradient(x.numpy())
    s = np.sqrt((gx * gx + gy * gy) / 2).sum()
    got_m = average_gradient(x[None], normalise="matlab").item()
    got_p = average_gradient(x[None], normalise="mean").item()
    assert got_m == pytest.approx(s / (8 * 12), rel=1e-13)
    assert got_m / got_p == pytest.approx(9 * 13 / (8 * 12), rel=1e-13)
    with pytest.raises(ValueError, match="normalisation"):
        average_gradient(x[None], normalise="sum")


def test_cc_is_one_for_linear_transforms_of_f():
    f = rand_levels((12, 10), 2)[None]
    assert correlation_coefficient(image_moments(f, 2 * f + 3, 0.25 * f - 7)).item() == pytest.approx(1.0, abs=1e-14)
    assert correlation_coefficient(image_moments(f, -f, f)).item() == pytest.approx(0.0, abs=1e-14)


def test_cc_against_numpy_and_constant_fused_is_nan():
    f, a, b = (rand_levels((1, 9, 7), s) for s in (4, 5, 6))
    r_a = np.corrcoef(a.flatten().numpy(), f.flatten().numpy())[0, 1]
    r_b = np.corrcoef(b.flatten().numpy(), f.flatten().numpy())[0, 1]
    assert correlation_coefficient(image_moments(f, a, b)).item() == pytest.approx((r_a + r_b) / 2, rel=1e-12)
    assert torch.isnan(correlation_coefficient(image_moments(torch.ones_like(a), a, b))).all()


def test_scd_of_a_copy_is_exactly_nan():
    a = rand_levels((6, 6), 4)[None]
    b = rand_levels((6, 6), 5)[None]
    assert torch.isnan(scd(image_moments(b, a, b))).all()  # F - B = 0: a zero variance, exactly
    # SCD against numpy corrcoef.
    f = rand_levels((6, 6), 6)[None]
    r1 = np.corrcoef((f - b).flatten().numpy(), a.flatten().numpy())[0, 1]
    r2 = np.corrcoef((f - a).flatten().numpy(), b.flatten().numpy())[0, 1]
    assert scd(image_moments(f, a, b)).item() == pytest.approx(r1 + r2, rel=1e-12)


def test_scd_of_the_visible_image_is_nan_on_large_images():
    """F = B stays exactly NaN where float sums of ~10^10 would leave a rounding residue."""
    a, b = (rand_levels((1, 600, 800), s) for s in (7, 8))
    assert torch.isnan(scd(image_moments(b, a, b))).all()
    assert torch.isnan(compute_metrics(b, a, b)["SCD"]).all()


def test_psnr_peak_per_image():
    f = torch.stack([torch.full((3, 4), 10.0), torch.full((3, 4), 20.0)]).double()
    a = f + 1  # squared error 1
    b = f - 3  # squared error 9 -> MSE = (1 + 9) / 2 = 5
    m = image_moments(f, a, b)
    np.testing.assert_allclose(mse(m).numpy(), [5.0, 5.0])
    np.testing.assert_allclose(mse(m, scale=255.0).numpy(), [5.0 / 255**2] * 2, rtol=1e-15)
    peak = torch.tensor([255.0, 100.0], dtype=torch.float64)
    got = psnr(m, peak=peak).numpy()
    np.testing.assert_allclose(got, 10 * np.log10(np.array([255.0, 100.0]) ** 2 / 5), rtol=1e-14)
    np.testing.assert_allclose(psnr(m, peak=255.0).numpy(), [10 * math.log10(255**2 / 5)] * 2, rtol=1e-14)
    # cddfuse variant: peak = max(F) per image (images large enough for the whole suite)
    f, a, b = (x.repeat(1, 14, 10) for x in (f, a, b))
    got_c = compute_metrics(f, a, b, "cddfuse")["PSNR"].numpy()
    np.testing.assert_allclose(got_c, 10 * np.log10(np.array([10.0, 20.0]) ** 2 / 5), rtol=1e-14)


# ------------------------------------------------------------------------------------------------
# SSIM, VIF, Qabf
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("window,data_range,scale", [("gaussian", 1.0, 255.0), ("uniform", 255.0, 1.0)])
def test_ssim_of_identical_images_is_two(window, data_range, scale):
    x = rand_levels((2, 20, 24), 7) / scale
    got = ssim_sum(x, x, x, window=window, data_range=data_range)
    np.testing.assert_allclose(got.numpy(), [2.0, 2.0], rtol=1e-12)
    y = rand_levels((2, 20, 24), 8) / scale
    assert (ssim_sum(x, x, y, window=window, data_range=data_range) < 1.5).all()
    with pytest.raises(ValueError, match="window"):
        ssim_sum(x, x, x, window="box", data_range=data_range)


def test_vif_of_identical_images_is_two():
    x = t(smooth_image(64, 72, 9))
    got = vif(x, x, x).item()
    assert got == pytest.approx(2.0, abs=1e-6)
    assert got <= 2.0 + 1e-12  # the eps guards only lower it
    noisy = x + t(np.random.default_rng(1).normal(0, 20, (64, 72)))
    assert vif(noisy, x, x).item() < 1.5


def _qabf_identical_numpy(x: np.ndarray) -> float:
    """Qabf(F=A=B): every pixel is a tie g_A = g_F, so G = g_F and A = 1 (same orientation)."""
    h3 = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], float)
    h1 = np.array([[1, 2, 1], [0, 0, 0], [-1, -2, -1]], float)
    g = np.hypot(convolve2d(x, h3, mode="same"), convolve2d(x, h1, mode="same"))
    qg = 0.9994 / (1 + np.exp(-15 * (g - 0.5)))
    qa = 0.9879 / (1 + np.exp(-22 * (1 - 0.8)))
    return float(np.sum(qg * qa * g) / np.sum(g))


def test_qabf_identical_images_depends_on_scale():
    x = smooth_image(24, 30, 10)
    q255 = qabf(t(x), t(x), t(x)).item()
    q1 = qabf(t(x / 255), t(x / 255), t(x / 255)).item()
    assert q255 == pytest.approx(_qabf_identical_numpy(x), rel=1e-12)
    assert q1 == pytest.approx(_qabf_identical_numpy(x / 255), rel=1e-12)
    assert 0 < q1 <= 1 and 0 < q255 <= 1
    assert abs(q255 - q1) > 0.05  # the tie rule G = g_F makes Qabf scale dependent


# ------------------------------------------------------------------------------------------------
# Filters
# ------------------------------------------------------------------------------------------------
def test_sobel_conv_equals_matlab_conv2_same():
    x = rand_levels((3, 11, 14), 11)
    gx, gy = sobel_conv(x)
    h3 = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], float)
    h1 = np.array([[1, 2, 1], [0, 0, 0], [-1, -2, -1]], float)
    for i in range(3):
        np.testing.assert_allclose(gx[i].numpy(), convolve2d(x[i].numpy(), h3, mode="same"), atol=1e-12)
        np.testing.assert_allclose(gy[i].numpy(), convolve2d(x[i].numpy(), h1, mode="same"), atol=1e-12)


def _fspecial_gaussian(n: int, sigma: float) -> np.ndarray:
    half = (n - 1) / 2
    y, x = np.mgrid[-half : half + 1, -half : half + 1]
    h = np.exp(-(x * x + y * y) / (2 * sigma * sigma))
    h[h < np.finfo(float).eps * h.max()] = 0
    return h / h.sum()


@pytest.mark.parametrize("n,sigma", [(3, 0.6), (5, 1.0), (9, 1.8), (11, 1.5), (17, 3.4)])
def test_gaussian_taps_outer_product_equals_fspecial(n, sigma):
    g = gaussian_taps(n, sigma, dtype=torch.float64, device=torch.device("cpu")).numpy()
    assert g.shape == (n,) and g.sum() == pytest.approx(1.0, abs=1e-15)
    np.testing.assert_allclose(np.outer(g, g), _fspecial_gaussian(n, sigma), rtol=1e-13, atol=1e-18)


@pytest.mark.parametrize("n,sigma", [(5, 1.0), (11, 1.5)])
def test_separable_filter_equals_correlate2d(n, sigma):
    stack = rand_levels((2, 3, 19, 23), 12)
    taps = gaussian_taps(n, sigma, dtype=torch.float64, device=torch.device("cpu"))
    w = np.outer(taps.numpy(), taps.numpy())
    valid = separable_filter(stack, taps)
    same = separable_filter(stack, taps, pad="replicate")
    assert valid.shape == (2, 3, 19 - n + 1, 23 - n + 1) and same.shape == stack.shape
    for i in range(2):
        for c in range(3):
            img = stack[i, c].numpy()
            np.testing.assert_allclose(valid[i, c].numpy(), correlate2d(img, w, mode="valid"), rtol=1e-12)
            padded = np.pad(img, n // 2, mode="edge")
            np.testing.assert_allclose(same[i, c].numpy(), correlate2d(padded, w, mode="valid"), rtol=1e-12)


def test_separable_filter_is_a_correlation_not_a_convolution():
    # An asymmetric kernel distinguishes correlation from convolution.
    x = rand_levels((1, 1, 8, 9), 13)
    taps = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)
    w = np.outer(taps.numpy(), taps.numpy())
    np.testing.assert_allclose(
        separable_filter(x, taps)[0, 0].numpy(), correlate2d(x[0, 0].numpy(), w, mode="valid"), rtol=1e-12
    )


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("pad", [None, "replicate"])
def test_opencv_and_torch_filter_paths_agree(dtype, pad):
    """CPU stacks go through OpenCV, other devices through shifted multiply-adds: same values."""
    stack = rand_levels((2, 3, 21, 26), 15).to(dtype)
    taps = gaussian_taps(9, 1.8, dtype=dtype, device=torch.device("cpu"))
    got = separable_filter(stack, taps, pad=pad)
    want = _torch_separable(stack, taps.tolist(), pad)
    assert got.shape == want.shape and got.dtype == dtype
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-13 if dtype == torch.float64 else 1e-5)
    box = box_filter_valid(stack, 7)
    np.testing.assert_allclose(
        box.numpy(), _torch_separable(stack, [1 / 7] * 7, None).numpy(), rtol=1e-13 if dtype == torch.float64 else 1e-5
    )


def test_window_larger_than_image_gives_empty_valid_output():
    stack = rand_levels((1, 2, 5, 30), 16)
    taps = gaussian_taps(9, 1.8, dtype=torch.float64, device=torch.device("cpu"))
    assert separable_filter(stack, taps).shape == (1, 2, 0, 22)
    assert _torch_separable(stack, taps.tolist(), None).shape == (1, 2, 0, 22)
    assert separable_filter(stack, taps, pad="replicate").shape == stack.shape
    with pytest.raises(ValueError, match="padding"):
        separable_filter(stack, taps, pad="reflect")


def test_box_filter_valid_is_window_mean():
    x = rand_levels((1, 2, 10, 12), 14)
    got = box_filter_valid(x, 7)
    for c in range(2):
        np.testing.assert_allclose(
            got[0, c].numpy(), correlate2d(x[0, c].numpy(), np.full((7, 7), 1 / 49), mode="valid"), rtol=1e-12
        )


# ------------------------------------------------------------------------------------------------
# The suite
# ------------------------------------------------------------------------------------------------
def test_compute_metrics_returns_every_metric_per_image():
    f, a, b = (rand_levels((2, 40, 44), s) for s in (20, 21, 22))
    for variant in VARIANTS:
        out = compute_metrics(f.to(torch.uint8), a.to(torch.uint8), b.to(torch.uint8), variant)
        assert set(out) == set(METRICS) and len(METRICS) == 11
        for name, v in out.items():
            assert v.shape == (2,) and v.dtype == torch.float64, name
            assert torch.isfinite(v).all(), name


def test_compute_metrics_batched_equals_single_synthetic():
    f, a, b = (rand_levels((3, 36, 40), s) for s in (30, 31, 32))
    for variant in VARIANTS:
        batched = compute_metrics(f, a, b, variant)
        for i in range(3):
            single = compute_metrics(f[i : i + 1], a[i : i + 1], b[i : i + 1], variant)
            for name in METRICS:
                np.testing.assert_allclose(batched[name][i].item(), single[name].item(), rtol=1e-12, err_msg=name)


def test_compute_metrics_rejects_mismatched_shapes():
    x = torch.zeros(1, 8, 8)
    with pytest.raises(ValueError, match="shape"):
        compute_metrics(x, x, torch.zeros(1, 8, 9))
    with pytest.raises(ValueError, match="shape"):
        compute_metrics(x, torch.zeros(2, 8, 8), x)
    with pytest.raises(ValueError, match="shape"):
        compute_metrics(x[0], x[0], x[0])  # (H, W) without the batch dimension


def test_unknown_variant_lists_known_ones():
    with pytest.raises(ValueError) as err:
        get_variant("vifb")
    msg = str(err.value)
    assert "vifb" in msg and all(name in msg for name in VARIANTS)
    x = rand_levels((1, 40, 40), 0)
    with pytest.raises(ValueError, match="matlab"):
        compute_metrics(x, x, x, variant="legacy")
    with pytest.raises(ValueError, match="cddfuse"):
        grey_levels(np.zeros((4, 4), np.uint8), "legacy")


def test_grey_levels_variants():
    rgb = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [10, 200, 30], [101, 50, 0]]], np.uint8)
    w = (0.298936021293775, 0.587043074451121, 0.114020904255103)
    want = np.floor(rgb.astype(float) @ np.array(w) + 0.5)
    got = grey_levels(rgb, "matlab")
    assert got.dtype == np.uint8 and got.shape == (1, 5)  # levels, ready for the histogram metrics
    np.testing.assert_array_equal(got, want)
    # The cddfuse variant uses OpenCV's weights (0.299, 0.587, 0.114) and rounds half to even: the two
    # conversions differ by one level on some colours.
    many = np.random.default_rng(0).integers(0, 256, (20, 20, 3)).astype(np.uint8)
    assert (grey_levels(many, "matlab") != grey_levels(many, "cddfuse")).any()
    # 16-bit -> round(x / 257)
    x16 = np.array([[0, 128, 129, 257 * 200 + 128, 257 * 200 + 129, 65535]], np.uint16)
    np.testing.assert_array_equal(grey_levels(x16), [[0, 0, 1, 200, 201, 255]])


def test_small_images_are_scored_like_the_reference():
    spec = importlib.util.spec_from_file_location(
        "occo_bench_metrics_numpy_functional", REPO / "bench" / "metrics_numpy.py"
    )
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    f, a, b = (rand_levels((1, 32, 48), s) for s in (40, 41, 42))
    got = compute_metrics(f, a, b, "matlab")
    want = bench.metrics_matlab(*(x[0].numpy().astype(np.uint8) for x in (f, a, b)))
    for name in METRICS:
        assert got[name].item() == pytest.approx(want[name], rel=1e-9), name


def test_moments_from_joint_histograms_equal_image_moments():
    """The suite reads every sum of F, A, B off the joint histograms it counts for MI: exactly."""
    f, a, b = (rand_levels((2, 30, 41), s) for s in (50, 51, 52))
    sources = image_moments(a, b)
    joints = joint_counts(joint_index(torch.stack([a, b], dim=1)), f)
    got = moments_from_joints(joints, sources)
    want = image_moments(f, a, b)
    assert got.n == want.n == 30 * 41
    assert torch.equal(got.sums, want.sums) and torch.equal(got.gram, want.gram)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_sources_prepared_once_score_every_fused_image(variant):
    """prepare_sources + score = compute_metrics, for several fused images against one preparation."""
    a, b = (rand_levels((2, 36, 44), s) for s in (60, 61))
    sources = prepare_sources(a.to(torch.uint8), b.to(torch.uint8), variant)
    for seed in (62, 63, 64):
        f = rand_levels((2, 36, 44), seed)
        got = score(f, sources)
        want = compute_metrics(f, a, b, variant)
        for name in METRICS:
            assert torch.equal(got[name], want[name]), name
    with pytest.raises(ValueError, match="shape"):
        score(f[:1], sources)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_device_path_equals_cpu_path(variant, monkeypatch):
    """What CUDA runs (shifted multiply-add filters, whole images instead of row strips), checked on CPU."""
    import occo.metrics.filters as filters
    import occo.metrics.gradient as gradient
    import occo.metrics.structural as structural

    f, a, b = (rand_levels((2, 200, 400), s) for s in (70, 71, 72))
    assert len(filters.row_strips(200, 400, torch.device("cpu"), halo=16)) > 1  # several strips on CPU
    assert filters.row_strips(200, 400, torch.device("cuda")) == [slice(0, 200)]
    cpu = compute_metrics(f, a, b, variant)
    whole = lambda rows, cols, device, halo=0: [slice(0, max(rows, 0))]  # noqa: E731
    monkeypatch.setattr(filters, "_CV_DEPTH", {})
    monkeypatch.setattr(structural, "row_strips", whole)
    monkeypatch.setattr(gradient, "row_strips", whole)
    other = compute_metrics(f, a, b, variant)
    for name in METRICS:
        np.testing.assert_allclose(other[name].numpy(), cpu[name].numpy(), rtol=1e-12, err_msg=name)
