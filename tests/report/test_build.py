import json
import re
from pathlib import Path

import pandas as pd
import pytest
import yaml

from occo.config import ParamsError, Report, validate_params
from occo.metrics.suite import METRICS
from occo.report.build import build_report, fusion_columns
from occo.report.headline import write_headline
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
    html_path = build_report(workspace, validate_params(params))
    reports = workspace / "reports"
    md = (reports / "report.md").read_text()
    for heading in (
        "## Run",
        "## Training",
        "## Fusion metrics",
        "### synthetic",
        "## Detection",
        "## Segmentation",
        "## Gallery",
        "## Paper reference",
        "## RFN-Nest with the contextual contrastive loss (§4.5, Fig. 20)",
    ):
        assert heading in md
    assert md.count("Not run") == 1 and "Not run: no RFN-Nest run" in md  # the workspace has no RFN-Nest run
    assert "`arch.cross_attention=true`" in md and "`omega6=10`" in md
    assert "`The scene captures a group of pedestrians or cars.`" in md
    assert "| occo | 2 | 0.5000 | **3.0000** |" in md  # best in bold, occo loses EN to max
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert "figures/training_curves.png" in links and "figures/fusion_synthetic.png" in links
    assert sum(link.startswith("gallery/") for link in links) == 2
    assert all((reports / link).is_file() for link in links)
    en = pd.read_csv(reports / "plots/fusion_EN.csv")
    assert list(en.columns) == ["method", "series", "value"] and set(en["series"]) == {"synthetic"}
    assert en.set_index("method").loc["occo", "value"] == 0.5
    loss = pd.read_csv(reports / "plots/train_loss.csv")
    assert list(loss.columns) == ["step", "series", "value"] and "lr" not in set(loss["series"])
    assert set(loss["series"]) == {"total", "pixel"}
    segment = pd.read_csv(reports / "plots/segment_loss.csv")
    assert list(segment.columns) == ["step", "series", "value"] and set(segment["series"]) == {"synthetic/occo"}
    assert "## Ablation studies (Tables 6–9)" in md and "This run has the paper's settings" in md
    assert "Beside the paper" not in md  # the paper has no table for the synthetic set
    assert "- Table 9: Text prompt of the LVM (FMB test set) (FMB; 2 rows)." in md
    assert "Warning" not in md and 'class="banner"' not in html_path.read_text()
    page = html_path.read_text()
    assert_self_contained(page)
    assert page.count("<table>") == md.count("|---|")
    assert page.count("<img") == len(links)


def test_empty_workspace_says_not_run(tmp_path: Path, params: dict) -> None:
    build_report(tmp_path, validate_params(params))
    md = (tmp_path / "reports/report.md").read_text()
    assert md.count("Not run:") == 6  # training, fusion, detection, segmentation, Fig. 20, gallery
    assert_self_contained_without_images((tmp_path / "reports/report.html").read_text())


def assert_self_contained_without_images(page: str) -> None:
    assert "http" not in page and "<img" not in page and "<script" not in page.lower()


def test_another_paper_file(workspace: Path, params: dict, tmp_path: Path) -> None:
    paper = tmp_path / "paper.yaml"
    paper.write_text(
        yaml.safe_dump(
            {
                "citation": {"authors": ["A"], "title": "T", "venue": "V", "arxiv": "1", "doi": "d"},
                "settings": {"omega6": 10},
                "tables": [
                    {
                        "table": 2,
                        "task": "fusion",
                        "caption": "C",
                        "rows": [
                            {"dataset": "synthetic", "row": "OCCO", "method": "occo", "values": {"EN": 0.25, "SF": 4.0}}
                        ],
                    },
                    {
                        "table": 7,
                        "task": "ablation:omega6",
                        "keys": ["omega6"],
                        "rows": [
                            {
                                "dataset": "FMB",
                                "row": "10",
                                "method": "10",
                                "params": {"omega6": 10},
                                "values": {"EN": 7.0},
                            }
                        ],
                    },
                ],
            }
        )
    )
    build_report(workspace, validate_params(params), paper_path=paper)
    md = (workspace / "reports/report.md").read_text()
    assert "Beside the paper's Table 2 (C), synthetic columns" in md
    assert "| occo | 2 | 0.500 | 3.000 |" in md
    assert "| *OCCO (paper, Table 2)* | – | *0.250* | *4.000* |" in md
    assert "| *occo − paper* | – | *+0.250* | *-1.000* |" in md
    assert_self_contained((workspace / "reports/report.html").read_text())
    doc = yaml.safe_load(paper.read_text())
    doc["tables"] = doc["tables"][:1]  # no ablation table
    paper.write_text(yaml.safe_dump(doc))
    build_report(workspace, validate_params(params), paper_path=paper)
    assert "The paper reference holds no ablation table." in (workspace / "reports/report.md").read_text()


def test_rebuild_drops_stale_figures(workspace: Path, params: dict) -> None:
    build_report(workspace, validate_params(params))
    (workspace / "metrics/fusion/synthetic.json").rename(workspace / "metrics/fusion/other.json")
    build_report(workspace, validate_params(params))
    names = sorted(p.name for p in (workspace / "reports/figures").iterdir())
    assert names == ["fusion_other.png", "training_curves.png"]


def test_paper_comparison_can_be_switched_off(workspace: Path, params: dict) -> None:
    params["report"]["compare_paper"] = False
    build_report(workspace, validate_params(params))
    md = (workspace / "reports/report.md").read_text()
    assert "Beside the paper" not in md and "Table 7" not in md
    assert md.count("switched off (`report.compare_paper: false`)") == 2  # ablations and paper reference


@pytest.mark.slow
def test_stage_cli(workspace: Path, params: dict) -> None:
    (workspace / "params.yaml").write_text(yaml.safe_dump(params))
    stage_main(["--params", str(workspace / "params.yaml"), "--root", str(workspace)])
    assert (workspace / "reports/report.html").is_file()


def test_fusion_columns_and_unknown_metric() -> None:
    assert fusion_columns(Report(fusion_metrics=["EN", "CC"])) == ["EN", "CC"]
    assert fusion_columns(Report()) == list(METRICS)
    with pytest.raises(ParamsError, match="report.fusion_metrics"):
        validate_params({"report": {"fusion_metrics": ["EN", "XX"]}})


def test_dataset_without_any_value_gets_a_table_but_no_bars(workspace: Path, params: dict) -> None:
    (workspace / "metrics/fusion/empty.json").write_text('{"occo": {"EN": null, "n": 0}}')
    params["report"]["fusion_metrics"] = ["EN"]
    build_report(workspace, validate_params(params))
    md = (workspace / "reports/report.md").read_text()
    assert "| occo | 0 | – |" in md
    assert not (workspace / "reports/figures/fusion_empty.png").exists()
    assert (workspace / "reports/figures/fusion_synthetic.png").is_file()


def test_stamp_and_random_init_banner(workspace: Path, params: dict) -> None:
    params["masks"]["init"] = "tiny"
    params["detect"]["pretrained"] = False
    params["segment"]["encoder_weights"] = "imagenet"
    page = build_report(workspace, validate_params(params), env={"DVC_EXP_NAME": "smoke"}).read_text()
    md = (workspace / "reports/report.md").read_text()
    top = md[: md.index("## Run")]
    assert "Run: experiment `smoke`; git revision unknown (not a git repository)." in top
    assert (
        "> **Warning:** random-init models in this run: `masks.init: tiny` (Grounding DINO and SAM of "
        "the masks stage); `detect.pretrained: false` (the YOLO detectors)."
    ) in top
    assert page.index('<div class="banner"><strong>Warning:</strong> random-init models') < page.index("<h2>Run</h2>")


def test_stamp_names_the_git_revision(git_repo, params: dict) -> None:
    head = git_repo.init(params)
    params["segment"]["encoder_weights"] = None
    params["train"]["vgg_random_init"] = True
    build_report(git_repo.root, validate_params(params), env={})
    md = (git_repo.root / "reports/report.md").read_text()
    assert f"Run: not a `dvc exp run` (no DVC_EXP_NAME); git revision `{head[:12]}`." in md
    assert "`train.vgg_random_init: true` (the VGG19 of the contrastive loss); `segment.encoder_weights: null`" in md


def test_headline_metrics_file(workspace: Path) -> None:
    headline = json.loads(write_headline(workspace).read_text())
    assert headline == {
        "synthetic.EN": 0.5,
        "synthetic.SF": 3.0,
        "synthetic.AG": 3.0,
        "synthetic.CC": 3.0,
        "synthetic.detect.ap50": 0.5,
        "synthetic.detect.ap50_95": 0.25,
        "synthetic.segment.miou": 0.5,
    }


def test_headline_of_an_empty_workspace_is_empty(tmp_path: Path) -> None:
    assert json.loads(write_headline(tmp_path).read_text()) == {}


def write_json(path: Path, doc: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc), encoding="utf-8")


def test_data_section_says_what_each_model_trained_on_and_why_a_task_was_skipped(workspace: Path, params: dict) -> None:
    """The sample-data situation: the fusion network on FMB's 2 pairs, detection skipped on MSRS for want of a
    train split, segmentation on the synthetic set only."""
    params["train"]["dataset"] = "FMB"
    write_json(workspace / "dvclive/train/metrics.json", {"train": {"total": 1.0}, "step": 3, "pairs": 2})
    why = "data/raw/MSRS has no train split, which detect.datasets.MSRS trains on (train) or tests on (test)"
    write_json(workspace / "reports/detect/skipped.json", {"MSRS": why})
    write_json(workspace / "reports/segment/skipped.json", {})
    build_report(workspace, validate_params(params))
    md = (workspace / "reports/report.md").read_text()
    data = md[md.index("## Data") : md.index("## Run")]
    assert "**This run is not the paper's experiment**" in data
    assert (
        "- Fusion network: trained on 2 pairs of FMB/train for 3 steps. **Not the paper's experiment**: the paper "
        "trains on FMB/train, all 1,220 of its pairs."
    ) in data
    assert (
        "- Detection, synthetic: each method's model trained on 2 images of synthetic/train, tested on 2 (synthetic "
        "is not one of the paper's detection sets)."
    ) in data
    assert f"- Detection, MSRS: skipped by the detect stage: {why}." in data
    assert "- Segmentation, synthetic: each method's model trained on 2 images of synthetic/train" in data
    detection = md[md.index("## Detection") : md.index("## Segmentation")]
    assert f"Skipped MSRS: {why}." in detection and "has not run" not in data + detection


def test_a_paper_sized_training_set_is_the_papers(workspace: Path, params: dict) -> None:
    params["train"]["dataset"] = "FMB"
    write_json(workspace / "dvclive/train/metrics.json", {"train": {"total": 1.0}, "step": 4060, "pairs": 1220})
    build_report(workspace, validate_params(params))
    md = (workspace / "reports/report.md").read_text()
    assert "- Fusion network: trained on 1,220 pairs of FMB/train for 4,060 steps, the paper's training set." in md


def test_fusion_tables_compare_methods_on_the_same_pairs(workspace: Path, params: dict) -> None:
    """A published method with results for 2 of the 3 pairs: left out of the table (named, with its count),
    then every method on the 2 pairs they all have, from the evaluate stage's per-image scores."""
    rows = [("visible", i, 1.0) for i in range(3)] + [("occo", i, 3.0) for i in range(3)]
    rows += [("DenseFuse", i, 2.0) for i in (1, 2)]
    lines = ["method,id," + ",".join(METRICS)] + [
        f"{m},{i:02d}," + ",".join([str(v + i)] * len(METRICS)) for m, i, v in rows
    ]
    (workspace / "reports/fusion").mkdir(parents=True)
    (workspace / "reports/fusion/TNO.csv").write_text("\n".join(lines) + "\n")
    means = {"visible": 2.0, "occo": 4.0, "DenseFuse": 3.5}
    counts = {"visible": 3, "occo": 3, "DenseFuse": 2}
    write_json(
        workspace / "metrics/fusion/TNO.json",
        {m: {**{k: v for k in METRICS}, "n": counts[m]} for m, v in means.items()},
    )
    params["report"]["fusion_metrics"] = ["EN"]
    build_report(workspace, validate_params(params))
    md = (workspace / "reports/report.md").read_text()
    tno = md[md.index("### TNO") :]
    table, rest = tno.split("Left out of the table above")
    assert "| occo | 3 | **4.0000** |" in table and "DenseFuse" not in table
    assert rest.startswith(", scored on fewer pairs than the others: `DenseFuse` (2 of 3 pairs).")
    assert "Every method of TNO on the 2 pairs all of them were scored on." in rest
    assert "| occo | 2 | **4.5000** |" in rest and "| DenseFuse | 2 | 3.5000 |" in rest  # ids 01, 02 for all
