import importlib.util
import json
import re
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from occo.config import DatasetSource, Download, ParamsError, validate_params
from occo.data.io import DataError, sha256_file
from occo.data.synthetic import make_synthetic
from occo.fetch.datasets import import_dataset, run_download
from occo.fetch.registry import load_registry
from support import REPO

SHARED = REPO / ".." / "shared"
needs_shared = pytest.mark.skipif(not (SHARED / "datasets").is_dir(), reason="../shared is not available")


def _png(path, shape):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full(shape, 100, np.uint8)).save(path)


def _flat(root, ids, shape=(6, 8)):
    """A flat pair folder with labels, masks, fused results of one method, splits and a manifest."""
    for i in ids:
        _png(root / "ir" / f"{i}.png", shape)
        _png(root / "vi" / f"{i}.jpg", (*shape, 3))
        _png(root / "masks" / "ir" / f"{i}.png", shape)
        _png(root / "fused" / "Meth" / f"{i}.png", shape)
        (root / "labels" / "det" / "infrared").mkdir(parents=True, exist_ok=True)
        (root / "labels" / "det" / "infrared" / f"{i}.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    (root / "labels" / "det" / "classes.txt").write_text("person\n")
    (root / "splits").mkdir()
    (root / "splits" / "test.txt").write_text("\n".join(ids))
    (root / "MANIFEST.md").write_text("# test data\n")
    (root / "metrics.csv").write_text("not,data\n")
    return root


def _names(folder):
    return sorted(p.name for p in folder.iterdir())


def test_shipped_registry_is_valid():
    reg = load_registry()
    assert {"MSRS", "M3FD", "FMB", "TNO"} <= reg["datasets"].keys()
    for entry in reg["datasets"].values():
        assert entry["homepage"].startswith("https://") and entry["licence"] and entry["citation"]
        for spec in entry["splits"].values():
            assert spec["ir"] and spec["vi"]
    for name in ("MSRS", "M3FD"):  # every label kind the downstream stages read says where it comes from
        kinds = {source["kind"] for source in reg["datasets"][name]["label_sources"]}
        assert kinds, name
    weights = reg["weights"]
    assert {"vgg19", "sam_vit_h", "sam_vit_l", "sam_vit_b", "groundingdino_swint_ogc", "yolov5su"} <= weights.keys()
    assert weights["vgg19"]["sha256"].startswith(weights["vgg19"]["sha256_prefix"])
    files = [f for w in weights.values() for f in (w["files"] if "files" in w else [w])]
    assert all(f["url"].startswith("https://") and Path(f["filename"]).suffix == Path(f["url"]).suffix for f in files)
    assert {"bert_base_uncased", "grounding_dino_tiny_hf", "resnet50_imagenet"} <= weights.keys()


def test_registry_errors_name_the_file(tmp_path):
    bad = tmp_path / "reg.yaml"
    bad.write_text(
        yaml.safe_dump(
            {
                "datasets": [{"name": "X", "homepage": "h", "archives": [], "splits": {"test": {"ir": "a"}}}],
                "weights": [{"name": "w", "url": "u", "filename": "f", "sha256": None}],
            }
        )
    )
    with pytest.raises(DataError, match="X split test: 'vi'"):
        load_registry(bad)
    bad.write_text(yaml.safe_dump({"datasets": [], "weights": []}))
    with pytest.raises(DataError, match="datasets: must be a non-empty list"):
        load_registry(bad)


def test_flat_import_with_limit_and_external(tmp_path):
    src = _flat(tmp_path / "src", ["a", "b", "c"])
    out, ext = tmp_path / "raw", tmp_path / "external"
    counts = import_dataset("DS", src, out, split="test", limit=2, external_root=ext)
    assert counts == {"test": 2}
    ds = out / "DS"
    assert _names(ds) == ["MANIFEST.md", "splits", "test"]
    assert _names(ds / "test") == ["ir", "labels", "masks", "vi"]
    assert _names(ds / "test" / "ir") == ["a.png", "b.png"]
    assert _names(ds / "test" / "vi") == ["a.jpg", "b.jpg"]
    assert (ds / "test" / "vi" / "a.jpg").read_bytes() == (src / "vi" / "a.jpg").read_bytes()
    assert _names(ds / "test" / "labels" / "det") == ["classes.txt", "infrared"]
    assert _names(ds / "test" / "labels" / "det" / "infrared") == ["a.txt", "b.txt"]
    assert _names(ds / "test" / "masks" / "ir") == ["a.png", "b.png"]
    assert _names(ext / "Meth" / "DS" / "test") == ["a.png", "b.png"]
    assert _names(ds / "splits") == ["test.txt"]
    assert _names(out) == ["DS"]  # no scratch folders left behind


def test_flat_needs_split(tmp_path):
    src = _flat(tmp_path / "src", ["a"])
    with pytest.raises(DataError, match="download.datasets.DS.split"):
        import_dataset("DS", src, tmp_path / "raw")


def test_failed_import_keeps_previous_output(tmp_path):
    src = _flat(tmp_path / "src", ["a", "b"])
    out = tmp_path / "raw"
    import_dataset("DS", src, out, split="test")
    (src / "vi" / "b.jpg").write_bytes(b"broken")
    with pytest.raises(DataError, match=re.escape(str(src / "vi" / "b.jpg"))):
        import_dataset("DS", src, out, split="test")
    assert _names(out / "DS" / "test" / "vi") == ["a.jpg", "b.jpg"]
    assert (out / "DS" / "test" / "vi" / "b.jpg").read_bytes() != b"broken"
    assert _names(out) == ["DS"]


def test_reimport_replaces_previous_output(tmp_path):
    src = _flat(tmp_path / "src", ["a", "b", "c"])
    out = tmp_path / "raw"
    import_dataset("DS", src, out, split="test")
    assert import_dataset("DS", src, out, split="test", limit=1) == {"test": 1}
    assert _names(out / "DS" / "test" / "ir") == ["a.png"]


def test_size_mismatch_of_fused_result(tmp_path):
    src = _flat(tmp_path / "src", ["a"])
    _png(src / "fused" / "Meth" / "a.png", (5, 8))
    with pytest.raises(DataError, match=r"Meth/a\.png is 5x8, but pair a is 6x8"):
        import_dataset("DS", src, tmp_path / "raw", split="test", external_root=tmp_path / "ext")


@pytest.mark.parametrize("where", ["vi/b.jpg", "labels/det/infrared/b.txt", "fused/Meth/b.png", "MANIFEST.md", "vi"])
def test_symlink_out_of_the_source_is_refused(tmp_path, where):
    """A link that leaves the imported folder would copy its target into data/raw (and the DVC cache)."""
    src = _flat(tmp_path / "src", ["a", "b"])
    outside = _flat(tmp_path / "elsewhere", ["a", "b"]) / where
    (src / where).unlink() if (src / where).is_file() else shutil.rmtree(src / where)
    (src / where).symlink_to(outside)
    with pytest.raises(DataError) as err:
        import_dataset("DS", src, tmp_path / "raw", split="test", external_root=tmp_path / "ext")
    msg = str(err.value)
    assert f"links to {outside.resolve()}" in msg and f"outside the source folder {src.resolve()}" in msg
    assert not (tmp_path / "raw" / "DS").exists() and not (tmp_path / "ext" / "Meth" / "DS").exists()


def test_symlink_inside_the_source_is_followed(tmp_path):
    src = _flat(tmp_path / "src", ["a", "b"])
    (src / "vi" / "b.jpg").unlink()
    (src / "vi" / "b.jpg").symlink_to(src / "vi" / "a.jpg")
    assert import_dataset("DS", src, tmp_path / "raw", split="test") == {"test": 2}
    assert (tmp_path / "raw/DS/test/vi/b.jpg").read_bytes() == (src / "vi" / "a.jpg").read_bytes()


@pytest.mark.parametrize(
    ("name", "split"),
    [("../masks", "test"), ("..", "test"), ("DS", "../x"), ("a/b", "test"), ("", "test"), ("DS", ".")],
)
def test_names_that_would_leave_the_folder_are_refused(tmp_path, name, split):
    """Dataset names and splits are folder names of the schema: refused before the stage imports anything."""
    src = _flat(tmp_path / "src", ["a"])
    (tmp_path / "data/masks").mkdir(parents=True)
    (tmp_path / "data/masks/keep.png").write_bytes(b"x")
    params = tmp_path / "params.yaml"
    params.write_text(
        json.dumps({"download": {"synthetic": None, "datasets": {name: {"source": str(src), "split": split}}}})
    )
    with pytest.raises(SystemExit, match="download.datasets"):
        _stage().main(["--params", str(params), "--root", str(tmp_path)])
    assert _names(tmp_path / "data") == ["masks"] and _names(tmp_path / "data/masks") == ["keep.png"]


def test_images_over_the_pixel_cap_are_refused(tmp_path):
    src = _flat(tmp_path / "src", ["a", "b"])
    with pytest.raises(DataError, match=r"ir/a\.png .*cap of 47 pixels"):
        import_dataset("DS", src, tmp_path / "raw", split="test", max_pixels=47)
    assert import_dataset("DS", src, tmp_path / "raw", split="test", max_pixels=48) == {"test": 2}


def test_archive_source_over_the_unpack_ratio_is_refused(tmp_path):
    src = _official_msrs(tmp_path / "MSRS-main")
    (src / "padding.bin").write_bytes(b"\0" * 2_000_000)
    archive = tmp_path / "MSRS-main.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(src.rglob("*")):
            zf.write(path, path.relative_to(src.parent))
    with pytest.raises(DataError, match="likely archive bomb"):
        import_dataset("MSRS", archive, tmp_path / "raw")
    assert _names(tmp_path / "raw") == []  # the scratch folder is gone too
    assert import_dataset("MSRS", archive, tmp_path / "raw", max_unpack_ratio=10_000) == {"test": 2, "train": 2}


def test_unpaired_source_fails(tmp_path):
    src = _flat(tmp_path / "src", ["a", "b"])
    (src / "vi" / "b.jpg").unlink()
    with pytest.raises(DataError, match="no visible partner: b.png"):
        import_dataset("DS", src, tmp_path / "raw", split="test")


def test_our_layout_from_synthetic(tmp_path):
    make_synthetic(tmp_path / "syn", n_train=2, n_test=1, height=32, width=40)
    out = tmp_path / "raw"
    assert import_dataset("SYN", tmp_path / "syn", out) == {"test": 1, "train": 2}
    assert _names(out / "SYN" / "train" / "labels") == ["det", "seg"]
    assert _names(out / "SYN" / "train" / "masks" / "vi") == ["syn_000.png", "syn_001.png"]
    assert (out / "SYN" / "MANIFEST.md").is_file()
    assert import_dataset("SYN", tmp_path / "syn", out, split="train", limit=1) == {"train": 1}
    assert _names(out / "SYN") == ["MANIFEST.md", "train"]
    with pytest.raises(DataError, match="has no split val"):
        import_dataset("SYN", tmp_path / "syn", out, split="val")


def _official_msrs(root, splits=("train", "test")):
    for split in splits:
        for i in ("00001D", "00002N"):
            _png(root / split / "ir" / f"{i}.png", (6, 8))
            _png(root / split / "vi" / f"{i}.png", (6, 8, 3))
            _png(root / split / "Segmentation_labels" / f"{i}.png", (6, 8))
    return root


def _zip_folder(folder, archive):
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(folder.rglob("*")):
            zf.write(path, path.relative_to(folder.parent))
    return archive


def test_official_layout_from_archive(tmp_path):
    archive = _zip_folder(_official_msrs(tmp_path / "MSRS-main"), tmp_path / "MSRS-main.zip")
    out = tmp_path / "raw"
    assert import_dataset("MSRS", archive, out) == {"test": 2, "train": 2}
    assert _names(out / "MSRS" / "test" / "labels" / "seg") == ["00001D.png", "00002N.png"]
    assert _names(out) == ["MSRS"]


def test_official_layout_with_file_name_patterns(tmp_path):
    src = tmp_path / "latlrr" / "source_images" / "IV_images"
    for n in (1, 2, 12):
        _png(src / f"IR{n}.png", (5, 7))
        _png(src / f"VIS{n}.png", (5, 7))
    _png(src / "VIS1.jpg", (5, 7))
    assert import_dataset("TNO", tmp_path / "latlrr", tmp_path / "raw") == {"test": 3}
    assert _names(tmp_path / "raw" / "TNO" / "test" / "ir") == ["01.png", "02.png", "12.png"]
    assert _names(tmp_path / "raw" / "TNO" / "test" / "vi") == ["01.png", "02.png", "12.png"]


def test_registry_source_downloads_and_imports(tmp_path):
    archive = _zip_folder(_official_msrs(tmp_path / "FAKE-main", splits=("test",)), tmp_path / "FAKE-main.zip")
    reg = tmp_path / "registry.yaml"
    reg.write_text(
        yaml.safe_dump(
            {
                "datasets": [
                    {
                        "name": "FAKE",
                        "homepage": "https://example.org",
                        "archives": [{"url": archive.as_uri(), "filename": "fake.zip", "sha256": sha256_file(archive)}],
                        "splits": {
                            "test": {"ir": "test/ir", "vi": "test/vi", "labels": {"seg": "test/Segmentation_labels"}}
                        },
                    }
                ],
                "weights": [{"name": "w", "url": "https://example.org/w.pt", "filename": "w.pt", "sha256": None}],
            }
        )
    )
    counts = import_dataset("FAKE", "registry", tmp_path / "data" / "raw", registry=load_registry(reg), limit=1)
    assert counts == {"test": 1}
    assert _names(tmp_path / "data" / "downloads") == ["fake.zip", "fake.zip.sha256"]
    assert _names(tmp_path / "data" / "raw" / "FAKE" / "test" / "labels" / "seg") == ["00001D.png"]


def test_registry_source_without_direct_download(tmp_path):
    with pytest.raises(DataError, match=r"M3FD has no direct download .*download.datasets.M3FD.source"):
        import_dataset("M3FD", "registry", tmp_path / "raw")
    with pytest.raises(DataError, match="not in the registry"):
        import_dataset("NOPE", "registry", tmp_path / "raw")


def test_bad_sources(tmp_path):
    with pytest.raises(DataError, match=re.escape(str(tmp_path / "nope"))):
        import_dataset("DS", tmp_path / "nope", tmp_path / "raw")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="cannot tell the layout"):
        import_dataset("DS", tmp_path / "empty", tmp_path / "raw")
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(DataError, match="neither a folder nor a zip/tar archive"):
        import_dataset("DS", tmp_path / "file.txt", tmp_path / "raw")


@needs_shared
@pytest.mark.parametrize(
    ("name", "folder", "split"),
    [
        ("TNO", "datasets/TNO", "test"),
        ("MSRS", "datasets/MSRS", "test"),
        ("M3FD", "datasets/M3FD", "test"),
        ("FMB", "datasets/FMB", "train"),
        ("TNO42", "reference/tno42", "test"),
    ],
)
def test_shared_datasets(tmp_path, name, folder, split):
    src = (SHARED / folder).resolve()
    out, ext = tmp_path / "raw", tmp_path / "external"
    counts = import_dataset(name, src, out, split=split, limit=3, external_root=ext)
    available = len(list((src / "ir").iterdir()))
    assert counts == {split: min(3, available)}
    kept = sorted(p.stem for p in (out / name / split / "ir").iterdir())
    assert kept == sorted(p.stem for p in (src / "ir").iterdir())[:3]
    for p in (out / name / split / "ir").iterdir():
        assert p.read_bytes() == (src / "ir" / p.name).read_bytes()
    for method in sorted((src / "fused").iterdir()) if (src / "fused").is_dir() else []:
        expected = sorted(p.name for p in method.iterdir() if p.stem in kept)
        got = ext / method.name / name / split
        assert (_names(got) if got.is_dir() else []) == expected
    if (src / "labels").is_dir():
        txt = sorted((out / name / split / "labels").rglob("*.txt"))
        assert {p.stem for p in txt} - {"classes"} == set(kept)
    assert not list((out / name).rglob("*.csv"))


def _stage():
    spec = importlib.util.spec_from_file_location("download_stage", REPO / "stages" / "download.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_download_stage_end_to_end(tmp_path):
    src = _flat(tmp_path / "local", ["a", "b", "c"])
    params = tmp_path / "params.yaml"
    params.write_text(
        yaml.safe_dump(
            {
                "download": {
                    "synthetic": {"n_train": 2, "n_test": 1, "height": 32, "width": 40, "seed": 1},
                    "datasets": {
                        "LOCAL": {"source": str(src), "split": "test", "limit": 2, "optional": False},
                        "GONE": {"source": "no/such/folder", "split": "test", "limit": None, "optional": True},
                    },
                }
            }
        )
    )
    root = tmp_path / "repo"
    _stage().main(["--params", str(params), "--root", str(root)])
    index = json.loads((root / "data" / "raw" / "INDEX.json").read_text())
    assert index == {"LOCAL": {"test": 2}, "synthetic": {"test": 1, "train": 2}}
    assert _names(root / "data" / "raw") == ["INDEX.json", "LOCAL", "synthetic"]
    assert _names(root / "data" / "external" / "Meth" / "LOCAL" / "test") == ["a.png", "b.png"]


def test_download_stage_missing_required_source(tmp_path):
    cfg = Download(synthetic=None, datasets={"GONE": DatasetSource(source="no/such/folder", split="test")})
    with pytest.raises(DataError, match="source for GONE not found"):
        run_download(cfg, tmp_path)
    with pytest.raises(ParamsError, match="download.datasets.BAD.source: missing"):
        validate_params({"download": {"datasets": {"BAD": {"split": "test"}}}})


def test_download_stage_checks_names_and_caps(tmp_path):
    src = _flat(tmp_path / "local", ["a", "b"])
    for bad, problem in (
        ({"datasets": {"../masks": {"source": str(src), "split": "test"}}}, "one folder name"),
        ({"max_pixels": "big"}, "should be a valid integer"),
        ({"max_unpack_ratio": 0}, "should be greater than or equal to 1"),
    ):
        with pytest.raises(ParamsError, match=problem):
            validate_params({"download": bad})
    local = {"LOCAL": DatasetSource(source=str(src), split="test")}
    with pytest.raises(DataError, match="over the cap of 47 pixels"):
        run_download(Download(synthetic=None, max_pixels=47, datasets=local), tmp_path)
    assert run_download(Download(synthetic=None, max_pixels=48, datasets=local), tmp_path)["LOCAL"] == {"test": 2}


@pytest.mark.parametrize("name", ["visible", "occo", "max"])
def test_published_results_under_a_reserved_method_name_are_refused(tmp_path, name):
    """Published results named `visible` would have replaced the visible baseline's row and images."""
    src = _flat(tmp_path / "src", ["a"])
    (src / "fused" / "Meth").rename(src / "fused" / name)
    with pytest.raises(DataError) as err:
        import_dataset("DS", src, tmp_path / "raw", split="test", external_root=tmp_path / "ext")
    assert str(err.value).startswith(f"{src / 'fused' / name}: published results may not be named {name!r}")
    assert not (tmp_path / "ext" / name).exists()


def test_a_queued_experiment_reads_a_relative_source_from_the_workspace_it_was_queued_from(tmp_path):
    """DVC's queue runs an experiment in <workspace>/.dvc/tmp/exps/<run>, a copy of the workspace: a source beside
    the repository (../shared) is not in the copy, so it is read relative to the workspace."""
    from occo.fetch.datasets import source_path

    workspace, shared = tmp_path / "repo", tmp_path / "shared" / "FMB"
    shared.mkdir(parents=True)
    (workspace / "data" / "FMB").mkdir(parents=True)
    copy = workspace / ".dvc" / "tmp" / "exps" / "tmpabc"
    (copy / "data" / "FMB").mkdir(parents=True)
    assert source_path("../shared/FMB", workspace) == shared
    assert source_path("../shared/FMB", copy) == shared
    assert source_path("data/FMB", copy) == copy / "data" / "FMB"  # what the copy holds stays the copy's
    assert source_path(shared, copy) == shared
    assert source_path("../shared/FMB", tmp_path / "elsewhere") == tmp_path / "shared" / "FMB"
