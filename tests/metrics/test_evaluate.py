"""occo.metrics.evaluate: scoring folders of fused images, summaries and tables (synthetic data)."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from occo.data import DataError, find_pairs, save_png
from occo.metrics.evaluate import (
    BASELINES,
    common_pairs,
    evaluate_pairs,
    fair_tables,
    fusion_table,
    rows_to_csv,
    split_by_coverage,
    summarise,
)
from occo.metrics.suite import METRICS, compute_metrics

H, W = 40, 48


def textured(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """A smooth random uint8 image plus noise (all metrics finite on it)."""
    y, x = np.mgrid[0:h, 0:w]
    phase = rng.uniform(0, 2 * np.pi, 2)
    base = 120 + 60 * np.sin(x / rng.uniform(3, 7) + phase[0]) * np.cos(y / rng.uniform(3, 7) + phase[1])
    return np.clip(np.round(base + rng.normal(0, 12, (h, w))), 0, 255).astype(np.uint8)


def make_set(root: Path, ids, size=(H, W), seed=0, fused_methods=("MyMethod",)) -> dict[str, np.ndarray]:
    """ir/, vi/ and fused/<Method>/ PNGs for ``ids``; returns the arrays written, keyed 'ir/<id>' etc."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for id_ in ids:
        h, w = size(id_) if callable(size) else size
        ir, vi = textured(h, w, rng), textured(h, w, rng)
        arrays[f"ir/{id_}"], arrays[f"vi/{id_}"] = ir, vi
        save_png(root / "ir" / f"{id_}.png", ir)
        save_png(root / "vi" / f"{id_}.png", vi)
        for k, method in enumerate(fused_methods):
            fused = np.clip(0.6 * ir + 0.4 * vi + rng.normal(0, 3 + k, (h, w)), 0, 255).round().astype(np.uint8)
            arrays[f"{method}/{id_}"] = fused
            save_png(root / "fused" / method / f"{id_}.png", fused)
    return arrays


def direct(f: np.ndarray, a: np.ndarray, b: np.ndarray, variant: str = "matlab") -> dict[str, float]:
    out = compute_metrics(*(torch.from_numpy(x.astype(np.float64))[None] for x in (f, a, b)), variant)
    return {k: v.item() for k, v in out.items()}


def values(frame: pd.DataFrame, method: str, id_: str) -> dict[str, float]:
    row = frame[(frame["method"] == method) & (frame["id"] == id_)]
    assert len(row) == 1
    return {k: float(row[k].iloc[0]) for k in METRICS}


def assert_close(got: dict, want: dict, rtol: float = 1e-12):
    for k in METRICS:
        np.testing.assert_allclose(got[k], want[k], rtol=rtol, err_msg=k)


def test_baselines_only(tmp_path):
    arrays = make_set(tmp_path, ["a", "b", "c"], fused_methods=())
    pairs = find_pairs(ir=tmp_path / "ir", vi=tmp_path / "vi")
    frame = evaluate_pairs(pairs, {"visible": None, "mean": None, "max": None}, device="cpu", batch_size=2)
    assert list(frame.columns) == ["method", "id", *METRICS]
    assert list(zip(frame["method"], frame["id"])) == [(m, i) for m in ("visible", "mean", "max") for i in "abc"]
    for i in "abc":
        a, b = arrays[f"ir/{i}"].astype(np.float64), arrays[f"vi/{i}"].astype(np.float64)
        assert_close(values(frame, "mean", i), direct(np.round((a + b) / 2), a, b))
        assert_close(values(frame, "max", i), direct(np.maximum(a, b), a, b))
        got = values(frame, "visible", i)
        assert np.isnan(got["SCD"])  # F - B = 0
        assert got["EN"] == pytest.approx(direct(b, a, b)["EN"], rel=1e-12)


def test_baselines_are_pixel_fusions():
    a = torch.tensor([[[1.0, 4.0, 10.0]]])
    b = torch.tensor([[[2.0, 3.0, 13.0]]])
    assert BASELINES["visible"](a, b) is b and BASELINES["infrared"](a, b) is a
    assert BASELINES["mean"](a, b).tolist() == [[[2.0, 4.0, 12.0]]]  # 1.5 -> 2, 3.5 -> 4 (half to even), 11.5 -> 12
    assert BASELINES["max"](a, b).tolist() == [[[2.0, 4.0, 13.0]]]


def test_fused_method_scored_like_direct_call(tmp_path):
    arrays = make_set(tmp_path, ["01", "02"])
    pairs = find_pairs(ir=tmp_path / "ir", vi=tmp_path / "vi")
    frame = evaluate_pairs(pairs, {"MyMethod": tmp_path / "fused" / "MyMethod"}, device="cpu")
    assert list(frame["method"]) == ["MyMethod"] * 2
    for i in ("01", "02"):
        assert_close(
            values(frame, "MyMethod", i), direct(arrays[f"MyMethod/{i}"], arrays[f"ir/{i}"], arrays[f"vi/{i}"])
        )


def test_missing_fused_ids_scored_on_the_rest(tmp_path, caplog):
    make_set(tmp_path, ["01", "02", "03"])
    (tmp_path / "fused" / "MyMethod" / "02.png").unlink()
    pairs = find_pairs(ir=tmp_path / "ir", vi=tmp_path / "vi")
    with caplog.at_level(logging.WARNING, logger="occo.metrics.evaluate"):
        frame = evaluate_pairs(pairs, {"mean": None, "MyMethod": tmp_path / "fused" / "MyMethod"}, device="cpu")
    assert sorted(frame.loc[frame["method"] == "MyMethod", "id"]) == ["01", "03"]
    summary = summarise(frame.to_dict("records"))
    assert summary["MyMethod"]["n"] == 2 and summary["mean"]["n"] == 3
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    msg = warnings[0].getMessage()
    assert "MyMethod" in msg and "1 of 3" in msg and "02" in msg


def test_fused_image_of_wrong_size_names_the_file(tmp_path):
    make_set(tmp_path, ["01", "02"])
    bad = tmp_path / "fused" / "MyMethod" / "02.png"
    save_png(bad, np.zeros((H, W + 2), np.uint8))
    pairs = find_pairs(ir=tmp_path / "ir", vi=tmp_path / "vi")
    with pytest.raises(DataError, match="size mismatch") as err:
        evaluate_pairs(pairs, {"MyMethod": tmp_path / "fused" / "MyMethod"}, device="cpu")
    assert str(bad) in str(err.value) and "\n" not in str(err.value)


def test_fused_folder_matching_no_id(tmp_path):
    make_set(tmp_path, ["01", "02"], fused_methods=())
    save_png(tmp_path / "other" / "zz.png", np.zeros((H, W), np.uint8))
    pairs = find_pairs(ir=tmp_path / "ir", vi=tmp_path / "vi")
    with pytest.raises(DataError, match="matches any pair id") as err:
        evaluate_pairs(pairs, {"mean": None, "Other": tmp_path / "other"}, device="cpu")
    assert str(tmp_path / "other") in str(err.value)


def test_missing_fused_folder_raises(tmp_path):
    make_set(tmp_path, ["01"], fused_methods=())
    pairs = find_pairs(ir=tmp_path / "ir", vi=tmp_path / "vi")
    with pytest.raises(DataError, match="not found"):
        evaluate_pairs(pairs, {"Ghost": tmp_path / "nope"}, device="cpu")


def test_unknown_baseline(tmp_path):
    make_set(tmp_path, ["01"], fused_methods=())
    pairs = find_pairs(ir=tmp_path / "ir", vi=tmp_path / "vi")
    with pytest.raises(ValueError, match="median") as err:
        evaluate_pairs(pairs, {"median": None}, device="cpu")
    assert all(name in str(err.value) for name in BASELINES)


def test_mixed_sizes_batched_equal_separate_runs(tmp_path):
    ids = ["a0", "b0", "a1", "a2", "b1"]
    make_set(tmp_path, ids, size=lambda i: (H, W) if i.startswith("a") else (44, 36), seed=5)
    pairs = find_pairs(ir=tmp_path / "ir", vi=tmp_path / "vi")
    methods = {"mean": None, "MyMethod": tmp_path / "fused" / "MyMethod"}
    frame = evaluate_pairs(pairs, methods, device="cpu", batch_size=2, workers=3)
    assert len(frame) == 2 * len(ids)
    assert list(frame["id"][:5]) == sorted(ids)  # sorted by method, then id, whatever the batching
    for pair in pairs:
        alone = evaluate_pairs([pair], methods, device="cpu", batch_size=1)
        for method in methods:
            assert_close(values(frame, method, pair.id), values(alone, method, pair.id))


def test_summarise_and_markdown_table(tmp_path):
    make_set(tmp_path, ["01", "02"])
    pairs = find_pairs(ir=tmp_path / "ir", vi=tmp_path / "vi")
    methods = {name: None for name in BASELINES} | {"MyMethod": tmp_path / "fused" / "MyMethod"}
    frame = evaluate_pairs(pairs, methods, device="cpu")
    summary = summarise(frame.to_dict("records"))
    assert list(summary) == list(methods)
    for s in summary.values():
        assert set(s) == set(METRICS) | {"n"} and s["n"] == 2
        for k in METRICS:
            assert s[k] is None or isinstance(s[k], float)
    assert summary["visible"]["SCD"] is None and summary["infrared"]["SCD"] is None
    assert summary["MyMethod"]["EN"] == pytest.approx(frame.loc[frame["method"] == "MyMethod", "EN"].mean(), rel=1e-14)

    table = fusion_table(summary, title="Demo", digits=3)
    lines = table.splitlines()
    assert lines[0] == "### Demo"
    header = [c.strip() for c in lines[2].strip("|").split("|")]
    assert header == ["Method", "n", *METRICS]
    rows = {}
    for line in lines[4:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[cells[0]] = dict(zip(header[1:], cells[1:]))
    assert list(rows) == list(methods)
    assert rows["visible"]["SCD"] == "–" and rows["MyMethod"]["n"] == "2"
    for k in METRICS:
        defined = {m: s[k] for m, s in summary.items() if s[k] is not None}
        best = max(defined.values())
        for m, v in defined.items():
            cell = rows[m][k]
            if v == best:
                assert cell == f"**{v:.3f}**", (m, k)
            else:
                assert cell == f"{v:.3f}", (m, k)


def test_summarise_keeps_undefined_means_undefined():
    frame = pd.DataFrame(
        [
            {"method": "B", "id": "1", **{k: 1.0 for k in METRICS}},
            {"method": "B", "id": "2", **{k: 3.0 for k in METRICS}, "SCD": float("nan"), "PSNR": float("inf")},
            {"method": "A", "id": "1", **{k: 5.0 for k in METRICS}},
        ]
    )
    s = summarise(frame.to_dict("records"))
    assert list(s) == ["B", "A"]  # row order, not sorted
    assert s["B"]["SCD"] is None and s["B"]["PSNR"] is None and s["B"]["EN"] == 2.0 and s["B"]["n"] == 2
    assert s["A"]["n"] == 1 and s["A"]["SCD"] == 5.0
    table = fusion_table(s)
    assert not table.startswith("###")
    line_b = next(line for line in table.splitlines() if line.startswith("| B |"))
    assert line_b.count("–") == 2 and "**" not in line_b
    line_a = next(line for line in table.splitlines() if line.startswith("| A |"))
    assert line_a.count("**5.0000**") == len(METRICS)


def test_16_bit_infrared_equals_8_bit_rounded(tmp_path):
    rng = np.random.default_rng(7)
    ir16 = (textured(H, W, rng).astype(np.uint32) * 257 + rng.integers(-128, 129, (H, W))).clip(0, 65535)
    ir16 = ir16.astype(np.uint16)
    vi = textured(H, W, rng)
    ir8 = ((ir16.astype(np.uint32) + 128) // 257).astype(np.uint8)  # round(x / 257)
    assert not np.array_equal(ir8, ir16 // 257)  # the rounding is exercised
    for name, ir in (("s16", None), ("s8", ir8)):
        (tmp_path / name / "ir").mkdir(parents=True)
        if ir is None:
            Image.fromarray(ir16).save(tmp_path / name / "ir" / "01.png")
        else:
            save_png(tmp_path / name / "ir" / "01.png", ir)
        save_png(tmp_path / name / "vi" / "01.png", vi)
    assert np.asarray(Image.open(tmp_path / "s16" / "ir" / "01.png")).dtype == np.uint16
    frames = [
        evaluate_pairs(
            find_pairs(ir=tmp_path / n / "ir", vi=tmp_path / n / "vi"), {"mean": None, "infrared": None}, device="cpu"
        )
        for n in ("s16", "s8")
    ]
    pd.testing.assert_frame_equal(frames[0], frames[1], check_exact=True)


def test_colour_visible_uses_matlab_rgb2gray(tmp_path):
    rng = np.random.default_rng(8)
    ir = textured(H, W, rng)
    rgb = np.stack([textured(H, W, rng) for _ in range(3)], axis=-1)
    w = np.array([0.298936021293775, 0.587043074451121, 0.114020904255103])
    grey_matlab = np.floor(rgb.astype(np.float64) @ w + 0.5).astype(np.uint8)
    grey_cv = np.round(rgb.astype(np.float64) @ np.array([0.299, 0.587, 0.114])).astype(np.uint8)
    assert not np.array_equal(grey_matlab, grey_cv)
    for name, vi in (("rgb", rgb), ("matlab", grey_matlab), ("cv", grey_cv)):
        save_png(tmp_path / name / "ir" / "01.png", ir)
        save_png(tmp_path / name / "vi" / "01.png", vi)
    frames = {
        name: evaluate_pairs(
            find_pairs(ir=tmp_path / name / "ir", vi=tmp_path / name / "vi"), {"mean": None}, device="cpu"
        )
        for name in ("rgb", "matlab", "cv")
    }
    pd.testing.assert_frame_equal(frames["rgb"], frames["matlab"], check_exact=True)
    assert not frames["rgb"][list(METRICS)].equals(frames["cv"][list(METRICS)])


def test_method_folder_named_like_a_baseline_is_scored_as_a_folder(tmp_path):
    arrays = make_set(tmp_path, ["01"], fused_methods=("max",))
    pairs = find_pairs(ir=tmp_path / "ir", vi=tmp_path / "vi")
    frame = evaluate_pairs(pairs, {"max": tmp_path / "fused" / "max"}, device="cpu")
    assert_close(values(frame, "max", "01"), direct(arrays["max/01"], arrays["ir/01"], arrays["vi/01"]))


def test_look_ahead_is_bounded():
    """Jobs are submitted a few at a time, not all at once, so memory does not grow with the dataset."""
    from concurrent.futures import ThreadPoolExecutor

    from occo.metrics.evaluate import _in_order

    pulled = []

    def jobs():
        for i in range(50):
            pulled.append(i)
            yield i

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = _in_order(pool, lambda x: x * x, jobs(), ahead=4)
        assert next(results) == 0
        assert len(pulled) <= 5  # 4 submitted before the first result, one more after it
        assert list(results) == [i * i for i in range(1, 50)]


def test_each_image_decoded_once_and_torch_threads_share_the_cores(tmp_path, monkeypatch):
    make_set(tmp_path, ["01", "02", "03", "04"], fused_methods=("M1", "M2"))
    pairs = find_pairs(ir=tmp_path / "ir", vi=tmp_path / "vi")
    import occo.data.pairs
    import occo.metrics.evaluate as ev

    decoded: list[str] = []
    real_load_array = ev.load_array

    def counting(path, **kwargs):
        decoded.append(Path(path).name)
        return real_load_array(path, **kwargs)

    monkeypatch.setattr(ev, "load_array", counting)
    monkeypatch.setattr(occo.data.pairs, "load_array", counting)
    threads_seen: set[int] = set()
    real_score = ev._score_job

    def spying(*args, **kwargs):
        threads_seen.add(torch.get_num_threads())
        return real_score(*args, **kwargs)

    monkeypatch.setattr(ev, "_score_job", spying)
    monkeypatch.setattr(ev, "usable_cpus", lambda: 4)
    before = torch.get_num_threads()
    methods = {"mean": None, "M1": tmp_path / "fused" / "M1", "M2": tmp_path / "fused" / "M2"}
    frame = evaluate_pairs(pairs, methods, device="cpu", workers=2)
    assert len(frame) == 3 * 4
    assert len(decoded) == 4 * 4 and len(set(zip(decoded, range(len(decoded))))) == 16  # ir, vi, M1, M2 per pair
    assert sorted(decoded).count("01.png") == 4
    assert threads_seen == {2}  # 2 workers x 2 torch threads = 4 cores
    assert torch.get_num_threads() == before
    for bad in (0, -1):
        with pytest.raises(ValueError, match="workers"):
            evaluate_pairs(pairs, methods, device="cpu", workers=bad)


def test_every_pair_scored_beyond_the_look_ahead(tmp_path):
    ids = [f"{i:02d}" for i in range(7)]
    make_set(tmp_path, ids, size=(24, 28), fused_methods=())
    pairs = find_pairs(ir=tmp_path / "ir", vi=tmp_path / "vi")
    frame = evaluate_pairs(pairs, {"max": None}, device="cpu", workers=1)  # look-ahead of 2 jobs
    assert list(frame["id"]) == ids


def test_rows_to_csv_round_trips_through_pandas():
    rows = [
        {"method": "A", "id": "007", **{k: 0.1 * (i + 1) for i, k in enumerate(METRICS)}},
        {"method": "A", "id": "008", **{k: np.float64(1 / 3) for k in METRICS}, "SCD": float("nan")},
    ]
    back = pd.read_csv(io.StringIO(rows_to_csv(rows)), dtype={"id": str})
    pd.testing.assert_frame_equal(back, pd.DataFrame(rows, columns=["method", "id", *METRICS]))


def _rows(method: str, ids: range, value: float) -> list[dict]:
    return [{"method": method, "id": f"{i:02d}", **{m: value + i for m in METRICS}} for i in ids]


def test_fair_tables_compare_methods_on_the_same_pairs():
    """TNO's situation: the baselines and OCCO on all 21 pairs, a published method on 16 of them. The first
    table lists the complete methods over all 21; the other is named with its count, then every method is
    compared on the 16 pairs they all have."""
    rows = _rows("visible", range(21), 1.0) + _rows("occo", range(21), 3.0) + _rows("DenseFuse", range(5, 21), 2.0)
    listed, left_out, pairs = split_by_coverage(summarise(rows))
    assert (listed, left_out, pairs) == (["visible", "occo"], {"DenseFuse": 16}, 21)
    assert len(common_pairs(rows)) == 3 * 16
    text = fair_tables(rows, title="TNO test")
    first, second = text.split("### Every method on the 16 pairs all of them were scored on")
    assert "| occo | 21 |" in first and "DenseFuse |" not in first
    assert "Left out, scored on fewer pairs than the others: DenseFuse (16 of 21 pairs)." in first
    # on the common pairs (ids 05..20) OCCO's EN is 3 + 12.5, DenseFuse's 2 + 12.5: both over the same images
    assert "| occo | 16 | **15.5000** |" in second and "| DenseFuse | 16 | 14.5000 |" in second
    assert fair_tables(_rows("occo", range(3), 1.0), title="t") == fusion_table(
        summarise(_rows("occo", range(3), 1.0)), title="t"
    )
