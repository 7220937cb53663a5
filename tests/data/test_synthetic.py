import numpy as np
import pytest

from occo.data.io import load_array
from occo.data.pairs import find_pairs
from occo.data.synthetic import make_synthetic

SMALL = {"n_train": 2, "n_test": 1, "height": 48, "width": 64}


def _files(root):
    return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def default_set(tmp_path_factory):
    root = tmp_path_factory.mktemp("syn") / "synthetic"
    make_synthetic(root)
    return root


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    make_synthetic(tmp_path / "a", seed=3, **SMALL)
    make_synthetic(tmp_path / "b", seed=3, **SMALL)
    make_synthetic(tmp_path / "c", seed=4, **SMALL)
    a, b, c = _files(tmp_path / "a"), _files(tmp_path / "b"), _files(tmp_path / "c")
    assert len(a) == 3 * 6 + 1
    assert a == b
    assert a.keys() == c.keys()
    assert any(a[k] != c[k] for k in a if k.suffix == ".png")


def test_layout_and_shapes(default_set):
    assert (default_set / "MANIFEST.md").read_text().count("seed: 0") == 1
    train = find_pairs(ir=default_set / "train" / "ir", vi=default_set / "train" / "vi")
    test = find_pairs(ir=default_set / "test" / "ir", vi=default_set / "test" / "vi")
    assert [p.id for p in train] == [f"syn_{i:03d}" for i in range(8)]
    assert [p.id for p in test] == [f"syn_{i:03d}" for i in range(8, 12)]
    ir, vi = load_array(train[0].ir), load_array(train[0].vi)
    assert ir.shape == (240, 320) and ir.dtype == np.uint8
    assert vi.shape == (240, 320, 3) and vi.dtype == np.uint8


def _labels(root, split, name):
    base = root / split
    return (
        load_array(base / "ir" / f"{name}.png").astype(float),
        load_array(base / "vi" / f"{name}.png").astype(float).mean(-1),
        load_array(base / "labels" / "seg" / f"{name}.png"),
        load_array(base / "masks" / "ir" / f"{name}.png"),
        load_array(base / "masks" / "vi" / f"{name}.png"),
        (base / "labels" / "det" / f"{name}.txt").read_text().splitlines(),
    )


def test_labels_are_valid_and_consistent(default_set):
    ir_only = vi_only = 0
    classes = set()
    for split, ids in (("train", range(8)), ("test", range(8, 12))):
        for i in ids:
            ir, vi, seg, m_ir, m_vi, det = _labels(default_set, split, f"syn_{i:03d}")
            assert set(np.unique(m_ir)) <= {0, 255} and set(np.unique(m_vi)) <= {0, 255}
            assert seg.dtype == np.uint8 and seg.max() <= 8
            classes |= set(np.unique(seg).tolist())
            # every masked pixel is an object pixel of the segmentation
            assert (seg[(m_ir > 0) | (m_vi > 0)] > 0).all()
            # warm objects are warmer than the background
            assert ir[m_ir > 0].mean() > ir[seg == 0].mean() + 50
            assert det
            for line in det:
                cls, *box = line.split()
                assert cls in {"0", "1"}
                values = [float(v) for v in box]
                assert len(values) == 4 and all(0.0 <= v <= 1.0 for v in values)
                assert values[2] > 0 and values[3] > 0
            only_ir = (m_ir > 0) & (m_vi == 0)
            only_vi = (m_vi > 0) & (m_ir == 0)
            ir_only += only_ir.sum()
            vi_only += only_vi.sum()
            if only_ir.any():
                # infrared-only objects are hidden in darkness in the visible frame
                assert vi[only_ir].mean() < 5 < vi[m_vi > 0].mean()
    assert ir_only > 0 and vi_only > 0
    assert {0, 1, 2} <= classes


def test_rerun_replaces_previous_output(tmp_path):
    make_synthetic(tmp_path / "s", n_train=3, n_test=1, height=32, width=40)
    make_synthetic(tmp_path / "s", n_train=1, n_test=1, height=32, width=40)
    assert sorted(p.name for p in (tmp_path / "s" / "train" / "ir").iterdir()) == ["syn_000.png"]
    assert [p.name for p in tmp_path.iterdir()] == ["s"]
