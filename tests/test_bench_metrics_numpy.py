"""bench/metrics_numpy.py against the field's reference values (shared/reference/tno42).

matlab_octave.csv: the current MATLAB code (analysis_Reference.m, easy=1) under GNU Octave, printed with
10 significant digits -> rtol 1e-6. cddfuse_python.csv: MMIF-CDDFuse utils/Evaluator.py, printed with
6 decimals -> atol 2e-6 (half a unit of the last printed digit is 5e-7; the rest is float32 headroom).

A few rows by default; every row with OCCO_FULL_REFERENCE=1.
"""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

from bench.metrics_numpy import grey_matlab, grey_opencv, metrics_cddfuse, metrics_matlab
from support import SHARED

REF = SHARED / "reference" / "tno42"
FULL = os.environ.get("OCCO_FULL_REFERENCE") == "1"

pd = pytest.importorskip("pandas")

needs_ref = pytest.mark.skipif(not REF.is_dir(), reason=f"reference data not found at {REF}")

MATLAB_COLS = ["EN", "SD", "SF", "AG", "MI", "CC", "SCD", "VIF", "Qabf", "PSNR", "MSE"]
# Small images, all three methods, including RGB SeAFusion results (rgb2gray matters) and one 768x576.
MATLAB_SUBSET = [
    ("DenseFuse", "05"),
    ("DenseFuse", "12"),
    ("RFN-Nest", "08"),
    ("RFN-Nest", "11"),
    ("SeAFusion", "06"),
    ("SeAFusion", "01"),
]
CDDFUSE_SUBSET = [
    ("DenseFuse", "35"),
    ("RFN-Nest", "05"),
    ("SeAFusion", "37"),
    ("mean", "34"),
    ("max", "36"),
    ("mean", "21"),
]
MATLAB_RTOL = 1e-6
CDDFUSE_ATOL = 2e-6


def _rows(csv: str, subset):
    df = pd.read_csv(REF / csv, dtype={"id": str})
    if not FULL:
        keep = set(subset)
        df = df[[(m, i) in keep for m, i in zip(df["method"], df["id"])]]
        assert len(df) == len(subset), f"subset rows missing from {csv}"
    return df


def _report(worst: dict, title: str):
    lines = [f"{title}: worst error per metric"]
    for k, (e, where) in worst.items():
        lines.append(f"  {k:5s} {e:.3e}  ({where})")
    print("\n".join(lines))


@pytest.mark.slow
@needs_ref
def test_matlab_variant_matches_octave_reference():
    df = _rows("matlab_octave.csv", MATLAB_SUBSET)
    worst = {k: (0.0, "") for k in MATLAB_COLS}
    failures = []
    for r in df.itertuples(index=False):
        f = grey_matlab(REF / "fused" / r.method / f"{r.id}.png")
        a = grey_matlab(REF / "ir" / f"{r.id}.png")
        b = grey_matlab(REF / "vi" / f"{r.id}.png")
        m = metrics_matlab(f, a, b)
        assert set(m) >= set(MATLAB_COLS) | {"SSIM"}
        assert np.isfinite(m["SSIM"]) and 0 < m["SSIM"] <= 2
        for k in MATLAB_COLS:
            ref = float(getattr(r, k))
            rel = abs(m[k] - ref) / abs(ref)
            if rel > worst[k][0]:
                worst[k] = (rel, f"{r.method}/{r.id}")
            if not rel <= MATLAB_RTOL:
                failures.append(f"{r.method}/{r.id} {k}: got {m[k]!r}, reference {ref!r}, rel {rel:.2e}")
    _report(worst, "matlab_octave.csv (relative)")
    assert not failures, "\n".join(failures)


def _cddfuse_inputs(method: str, id_: str):
    a = grey_opencv(REF / "ir" / f"{id_}.png")
    b = grey_opencv(REF / "vi" / f"{id_}.png")
    if method == "mean":
        # np.round (half to even) of the pixel mean, stored as uint8, read back as float32.
        f = np.round((a + b) / 2).astype(np.uint8).astype(np.float32)
    elif method == "max":
        f = np.maximum(a, b)
    else:
        f = grey_opencv(REF / "fused" / method / f"{id_}.png")
    return f, a, b


@pytest.mark.slow
@needs_ref
def test_cddfuse_variant_matches_evaluator_reference():
    pytest.importorskip("cv2")
    df = _rows("cddfuse_python.csv", CDDFUSE_SUBSET)
    cols = [c for c in df.columns if c not in ("method", "id")]
    assert set(cols) == {"EN", "SD", "SF", "AG", "MI", "SCD", "VIF", "Qabf", "SSIM", "CC", "PSNR"}
    worst = {k: (0.0, "") for k in cols}
    failures = []
    for r in df.itertuples(index=False):
        f, a, b = _cddfuse_inputs(r.method, r.id)
        m = metrics_cddfuse(f, a, b)
        for k in cols:
            ref = float(getattr(r, k))
            err = abs(m[k] - ref)
            if err > worst[k][0]:
                worst[k] = (err, f"{r.method}/{r.id}")
            if not err <= CDDFUSE_ATOL:
                failures.append(f"{r.method}/{r.id} {k}: got {m[k]!r}, reference {ref!r}, abs {err:.2e}")
    _report(worst, "cddfuse_python.csv (absolute)")
    assert not failures, "\n".join(failures)


@pytest.mark.slow
@needs_ref
def test_timing_768x576_triple():
    f = grey_matlab(REF / "fused" / "DenseFuse" / "01.png")
    a = grey_matlab(REF / "ir" / "01.png")
    b = grey_matlab(REF / "vi" / "01.png")
    assert f.shape == (576, 768)
    times = []
    for _ in range(3 if FULL else 1):
        t = time.perf_counter()
        metrics_matlab(f, a, b)
        times.append(time.perf_counter() - t)
    print(f"metrics_matlab on 768x576: median {np.median(times):.3f} s over {len(times)} run(s)")


# ------------------------------------------------------------------------------------------------
# Synthetic checks (no reference data needed)
# ------------------------------------------------------------------------------------------------
def test_grey_matlab_rgb2gray_rounding(tmp_path):
    from PIL import Image

    rgb = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [10, 200, 30]]], dtype=np.uint8)
    p = tmp_path / "x.png"
    Image.fromarray(rgb).save(p)
    got = grey_matlab(p)
    want = np.floor(
        0.298936021293775 * rgb[..., 0] + 0.587043074451121 * rgb[..., 1] + 0.114020904255103 * rgb[..., 2] + 0.5
    ).astype(np.uint8)
    assert got.dtype == np.uint8 and got.shape == (1, 4)
    np.testing.assert_array_equal(got, want)  # [76, 150, 29, 124]
    assert got.tolist() == [[76, 150, 29, 124]]


def test_identity_and_mi_quirk():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (40, 50), dtype=np.uint8)
    b = rng.integers(0, 256, (40, 50), dtype=np.uint8)
    # SSIM(F, A) with F == A is exactly 1; an unrelated B adds about 0.
    with np.errstate(all="ignore"):  # SCD/PSNR of identical images are NaN/inf, as in MATLAB
        assert abs(metrics_matlab(a, a, a)["SSIM"] - 2) < 1e-12
        assert abs(metrics_cddfuse(a, a, a)["SSIM"] - 2) < 1e-6
        assert 0.9 < metrics_matlab(a, a, b)["SSIM"] < 1.1
    # MI quirk: MI(A, A) would be 2 H(A) with honest histograms; merging 254/255 in the joint
    # histogram only makes H(A, A) smaller, hence MI larger, as soon as 254 and 255 both occur.
    x = np.full((40, 40), 7, dtype=np.uint8)
    x[:2, :] = 254
    x[2:4, :] = 255
    with np.errstate(all="ignore"):  # SCD/PSNR of identical images are NaN/inf, as in MATLAB
        mx = metrics_matlab(x, x, x)
    p = np.array([1440, 80, 80]) / 1600
    H = -np.sum(p * np.log2(p))
    pj = np.array([1440, 160]) / 1600
    Hj = -np.sum(pj * np.log2(pj))
    assert abs(mx["MI"] - 2 * (2 * H - Hj)) < 1e-12
    assert abs(mx["EN"] - H) < 1e-12
    # CDDFuse MI (nats, raw labels) has no such quirk: MI(X, X) = H(X) in nats.
    xf = x.astype(np.float32)
    with np.errstate(all="ignore"):
        mc = metrics_cddfuse(xf, xf, xf)
    assert abs(mc["MI"] - 2 * H * np.log(2)) < 1e-12


def test_folder_command_writes_means_and_per_image_values(tmp_path):
    """The benchmark baseline's command: folders in, JSON out, one image at a time, pairs matched by stem."""
    import json

    from PIL import Image

    from bench.metrics_numpy import main

    rng = np.random.default_rng(3)
    arrays = {}
    for id_ in ("01", "02"):
        for folder in ("ir", "vi", "fused"):
            x = rng.integers(0, 256, (40, 48), dtype=np.uint8)
            arrays[folder, id_] = x
            (tmp_path / folder).mkdir(exist_ok=True)
            Image.fromarray(x).save(tmp_path / folder / f"{id_}.png")
    Image.fromarray(arrays["fused", "01"]).save(tmp_path / "fused" / "99.png")  # no source pair: skipped
    out = tmp_path / "x.json"
    main(
        [
            "--ir",
            str(tmp_path / "ir"),
            "--vi",
            str(tmp_path / "vi"),
            "--fused",
            str(tmp_path / "fused"),
            "--out",
            str(out),
        ]
    )
    got = json.loads(out.read_text(encoding="utf-8"))
    assert sorted(got["per_image"]) == ["01", "02"]
    for id_ in ("01", "02"):
        want = metrics_matlab(arrays["fused", id_], arrays["ir", id_], arrays["vi", id_])
        assert got["per_image"][id_] == pytest.approx(want, rel=1e-12)
    assert got["means"]["VIF"] == pytest.approx(np.mean([got["per_image"][i]["VIF"] for i in ("01", "02")]), rel=1e-12)
