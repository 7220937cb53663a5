"""occo.pipeline.sources.method_images: one place that says where each method's images are."""

from pathlib import Path

import pytest

from occo.data import DataError
from occo.pipeline.sources import method_images


def test_sources_fused_and_external(tmp_path: Path):
    for folder in (
        "data/raw/D/test/vi",
        "data/raw/D/test/ir",
        "data/fused/occo/D/test",
        "data/external/SeAFusion/D/test",
    ):
        (tmp_path / folder).mkdir(parents=True)
    assert method_images(tmp_path, "visible", "D", "test") == tmp_path / "data/raw/D/test/vi"
    assert method_images(tmp_path, "infrared", "D", "test") == tmp_path / "data/raw/D/test/ir"
    assert method_images(tmp_path, "occo", "D", "test") == tmp_path / "data/fused/occo/D/test"
    assert method_images(tmp_path, "SeAFusion", "D", "test") == tmp_path / "data/external/SeAFusion/D/test"
    (tmp_path / "data/fused/SeAFusion/D/test").mkdir(parents=True)
    assert method_images(tmp_path, "SeAFusion", "D", "test") == tmp_path / "data/fused/SeAFusion/D/test"


def test_missing_method_folder_names_it(tmp_path: Path):
    with pytest.raises(DataError, match="data/fused/occo/D/train"):
        method_images(tmp_path, "occo", "D", "train")
