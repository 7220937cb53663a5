import re
from pathlib import Path

import pytest
import yaml

from occo.data.io import DataError
from occo.report.build import ReportConfig, build_report
from stages.report import main as stage_main

URL_ATTR = re.compile(r"""(?:src|href)\s*=\s*["']?([^"'\s>]+)""", re.I)
CSS_URL = re.compile(r"url\(\s*['\"]?([^'\")]+)", re.I)


def assert_self_contained(page: str) -> None:
    """No http(s):// or protocol-relative URL anywhere; every image a data URI; no script."""
    assert "http://" not in page and "https://" not in page
    for target in URL_ATTR.findall(page) + CSS_URL.findall(page):
        assert not target.startswith("//"), target
        assert target.startswith("data:image/png;base64,"), target
    imgs = re.findall(r"<img\b[^>]*>", page)
    assert imgs and all('src="data:image/png;base64,' in tag for tag in imgs)
    assert "<script" not in page.lower() and "<link" not in page.lower()


def test_full_report(workspace: Path, params: dict) -> None:
    html_path = build_report(workspace, params)
    reports = workspace / "reports"
    md = (reports / "report.md").read_text()
    for heading in ("## Run", "## Training", "## Fusion metrics", "### synthetic", "## Detection",
                    "## Segmentation", "## Gallery", "## Paper reference"):
        assert heading in md
    assert "Not run" not in md
    assert "`arch.cross_attention=true`" in md and "`omega6=0.5`" in md and "`people or cars`" in md
    assert "| occo | 2 | 0.5000 | **3.0000** |" in md  # best in bold, occo loses EN to max
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert "figures/training_curves.png" in links and "figures/fusion_synthetic.png" in links
    assert sum(link.startswith("gallery/") for link in links) == 2
    assert all((reports / link).is_file() for link in links)
    assert (reports / "plots/fusion_synthetic.csv").read_text().startswith("method,EN,SF")
    for kind in ("fusion", "detect", "segment"):  # the packaged reference holds no values yet
        assert f"Published OCCO values ({kind}): not available" in md
    assert "Table 1: published values not available" in md
    page = html_path.read_text()
    assert_self_contained(page)
    assert page.count("<table>") == md.count("|---|")
    assert page.count("<img") == len(links)


def test_empty_workspace_says_not_run(tmp_path: Path, params: dict) -> None:
    build_report(tmp_path, params)
    md = (tmp_path / "reports/report.md").read_text()
    assert md.count("Not run:") == 5  # training, fusion, detection, segmentation, gallery
    assert_self_contained_without_images((tmp_path / "reports/report.html").read_text())


def assert_self_contained_without_images(page: str) -> None:
    assert "http" not in page and "<img" not in page and "<script" not in page.lower()


def test_paper_values_add_reference_and_difference_rows(workspace: Path, params: dict, tmp_path: Path) -> None:
    paper = tmp_path / "paper.yaml"
    paper.write_text(yaml.safe_dump({
        "citation": {"authors": ["A"], "title": "T", "venue": "V", "arxiv": "1", "doi": "d"},
        "tables": [{"table": 1, "kind": "fusion", "dataset": "synthetic", "values": {"EN": 0.25, "SF": 4.0},
                    "source": {"url": "https://arxiv.org/abs/x", "table": "1", "row": "OCCO"}}],
    }))
    fusion = workspace / "metrics/fusion"
    (fusion / "TNO.json").write_text((fusion / "synthetic.json").read_text())
    build_report(workspace, params, paper_path=paper)
    md = (workspace / "reports/report.md").read_text()
    assert "Published OCCO values (fusion) on TNO: not available." in md
    assert "Published OCCO values (detect): not available" in md
    assert "| *OCCO (paper, Table 1)* | – | *0.2500* | *4.0000* |" in md
    assert "| *occo − paper* | – | *+0.2500* | *-1.0000* |" in md
    assert "Paper values read from arxiv.org/abs/x, Table 1, row OCCO." in md
    assert_self_contained((workspace / "reports/report.html").read_text())


def test_rebuild_drops_stale_figures(workspace: Path, params: dict) -> None:
    build_report(workspace, params)
    (workspace / "metrics/fusion/synthetic.json").rename(workspace / "metrics/fusion/other.json")
    build_report(workspace, params)
    names = sorted(p.name for p in (workspace / "reports/figures").iterdir())
    assert names == ["fusion_other.png", "training_curves.png"]


def test_paper_comparison_can_be_switched_off(workspace: Path, params: dict) -> None:
    params["report"]["compare_paper"] = False
    build_report(workspace, params)
    md = (workspace / "reports/report.md").read_text()
    assert "Published OCCO values" not in md and "switched off" in md


def test_stage_cli(workspace: Path, params: dict) -> None:
    (workspace / "params.yaml").write_text(yaml.safe_dump(params))
    stage_main(["--params", str(workspace / "params.yaml"), "--root", str(workspace)])
    assert (workspace / "reports/report.html").is_file()


def test_config_defaults_and_unknown_metric() -> None:
    cfg = ReportConfig.from_params({"fusion_metrics": ["EN", "CC"], "gallery": {"dataset": "TNO", "ids": [1]}})
    assert cfg.fusion_metrics == ["EN", "CC"] and cfg.gallery_ids == ["1"] and cfg.gallery_split == "test"
    assert cfg.compare_paper and cfg.ours == ["occo"]
    with pytest.raises(DataError, match="report.fusion_metrics: unknown XX"):
        ReportConfig.from_params({"fusion_metrics": ["EN", "XX"]})


def test_dataset_without_any_value_gets_a_table_but_no_bars(workspace: Path, params: dict) -> None:
    (workspace / "metrics/fusion/empty.json").write_text('{"occo": {"EN": null, "n": 0}}')
    params["report"]["fusion_metrics"] = ["EN"]
    build_report(workspace, params)
    md = (workspace / "reports/report.md").read_text()
    assert "| occo | 0 | – |" in md
    assert not (workspace / "reports/figures/fusion_empty.png").exists()
    assert (workspace / "reports/figures/fusion_synthetic.png").is_file()
