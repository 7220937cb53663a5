"""docs/experiments.md's grids are generated from studies.yaml."""

from __future__ import annotations

import pytest

from occo.report.paper.grid import load_studies
from occo.study import docs
from support import REPO


def test_the_grids_in_the_docs_are_the_studies_file() -> None:
    """When this fails, run `python -m occo.study.docs`."""
    page = (REPO / docs.DOC).read_text(encoding="utf-8")
    assert docs.render(page, load_studies()) == page
    assert "dvc exp run --queue -n table6-w0.8-0.2 -S omega1=0.8 -S omega2=0.2" in page


def test_the_generator_replaces_only_its_section(tmp_path) -> None:
    page = f"# Top\n\n{docs.BEGIN}\nstale\n{docs.END}\n\n## After\n"
    text = docs.render(page, load_studies())
    assert text.startswith("# Top\n\n") and text.endswith("\n\n## After\n") and "stale" not in text
    assert "`occo study table9 --queue` runs:" in text
    with pytest.raises(ValueError, match="markers"):
        docs.render("# no markers\n", load_studies())
    out = tmp_path / "experiments.md"
    out.write_text(page, encoding="utf-8")
    with pytest.raises(SystemExit, match="out of date"):
        docs.main(["--check", "--doc", str(out)])
    docs.main(["--doc", str(out)])
    docs.main(["--check", "--doc", str(out)])
