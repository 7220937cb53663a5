"""The report's Tables 6-9: this run and the workspace's experiments (read from git) beside the paper's rows."""

import copy
import json
from pathlib import Path

from occo.config import validate_params
from occo.report.build import build_report


def write_json(path: Path, doc: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc), encoding="utf-8")


def fmb(en: float) -> dict:
    return {"visible": {"EN": 6.0, "n": 2}, "occo": {"EN": en, "SF": 14.0, "AG": 4.5, "CC": 0.6, "n": 2}}


def with_params(params: dict, **top: object) -> dict:
    out = copy.deepcopy(params)
    out.update(top)
    return out


def section(md: str) -> str:
    return md[md.index("## Ablation studies") : md.index("## Gallery")]


def test_study_table_from_the_workspace_experiments(git_repo, params: dict) -> None:
    root = git_repo.root
    git_repo.init(params)
    git_repo.add_experiment("omega6-100", with_params(params, omega6=100), fmb(6.9))
    git_repo.add_experiment("omega6-1", with_params(params, omega6=1), fmb(6.8))
    shorter = with_params(params, omega6=0.1)
    shorter["train"] = {**params["train"], "epochs": 5}
    git_repo.add_experiment("omega6-0.1-short", shorter, fmb(6.7))
    git_repo.add_experiment("model3", with_params(params, ablation={"feature_space": "model3"}), None)
    write_json(root / "metrics/fusion/FMB.json", fmb(7.0))
    build_report(root, validate_params(params), env={"DVC_EXP_NAME": "baseline"})
    md = section((root / "reports/report.md").read_text())
    assert "This run has the paper's settings: the reference row of every study." in md
    assert "this run scored the FMB test split." in md
    seven = md[md.index("Table 7: Proportion") :].splitlines()
    assert seven[2] == "| Run | EN | SF | AG | CC |"
    assert seven[4:14] == [  # the paper's row order: 1, 10, 100 (a variant on no printed row last); ties all bold
        "| omega6-1 | 6.800 | **14.000** | **4.500** | **0.600** |",
        "| *1 (paper, Table 7)* | *6.909* | *13.580* | *4.147* | *0.622* |",
        "| *omega6-1 − paper* | *-0.109* | *+0.420* | *+0.353* | *-0.022* |",
        "| baseline (this run) | **7.000** | **14.000** | **4.500** | **0.600** |",
        "| *10 (paper, Table 7)* | *7.035* | *15.095* | *4.695* | *0.634* |",
        "| *baseline (this run) − paper* | *-0.035* | *-1.095* | *-0.195* | *-0.034* |",
        "| omega6-100 | 6.900 | **14.000** | **4.500** | **0.600** |",
        "| *100 (paper, Table 7)* | *6.870* | *13.314* | *4.723* | *0.623* |",
        "| *omega6-100 − paper* | *+0.030* | *+0.686* | *-0.223* | *-0.023* |",
        "| omega6-0.1-short | 6.700 | **14.000** | **4.500** | **0.600** |",
    ]
    # A shorter run is not the paper's 0.1 row: a variant, named by the params it differs in.
    assert (
        "`omega6-0.1-short` differs from the paper's settings in `train.epochs=5`: a variant, not the paper's row."
        in md
    )
    assert "*0.1 (paper, Table 7)*" not in md
    assert "`omega6-0.1-short` was trained or scored differently from this run: `train.epochs`." in md
    eight = md[md.index("Table 8: Contextual space") :].splitlines()
    assert eight[4] == "| model3 | – | – | – | – |"  # no FMB metrics in that experiment
    assert eight[5].startswith("| *Model-3 (paper, Table 8)* | *6.798* |")
    assert eight[7] == "| baseline (this run) | **7.000** | **14.000** | **4.500** | **0.600** |"
    assert "Table 6:" not in md and "Table 9:" not in md  # no experiment varies those


def test_an_ablation_run_without_siblings(tmp_path: Path, params: dict) -> None:
    write_json(tmp_path / "metrics/fusion/FMB.json", fmb(6.95))
    params["arch"]["cross_attention"] = False
    params["evaluate"]["splits"] = {"FMB": "train"}
    build_report(tmp_path, validate_params(params), env={"DVC_EXP_NAME": "no-ca"})
    md = section((tmp_path / "reports/report.md").read_text())
    assert "this run scored the FMB train split, the paper its test set." in md
    assert "This run changes `arch.cross_attention=false`: Table 8, row `w/o_CA`." in md
    assert "Other experiments: no git repository here (or no git): other experiments cannot be read." in md
    assert "| no-ca (this run) | 6.950 | 14.000 | 4.500 | 0.600 |" in md
    assert "| *no-ca (this run) − paper* | *+0.032* | *-0.064* | *+0.277* | *-0.021* |" in md


def test_a_run_of_no_study_and_a_default_run_without_fmb(tmp_path: Path, params: dict) -> None:
    build_report(tmp_path, validate_params(params))
    md = section((tmp_path / "reports/report.md").read_text())
    assert "This run has no `occo` scores in metrics/fusion/FMB.json" in md
    assert "shown here beside Table 6" in md and "| workspace (this run) | – | – | – | – |" in md
    params.update(omega6=100, omega1=0.8, omega2=0.2)
    build_report(tmp_path, validate_params(params))
    md = section((tmp_path / "reports/report.md").read_text())
    assert "This run changes `omega1=0.8`, `omega2=0.2`, `omega6=100`: no single study" in md
    assert "No run of this workspace matches a study of the paper." in md and "| Run |" not in md


def test_the_authors_setup_is_a_variant_not_the_papers_row(tmp_path: Path, params: dict) -> None:
    """`compat: official` trains and fuses with the authors' code: it is not "the paper's settings"."""
    write_json(tmp_path / "metrics/fusion/FMB.json", fmb(6.95))
    params["compat"] = "official"
    build_report(tmp_path, validate_params(params), env={"DVC_EXP_NAME": "official"})
    md = section((tmp_path / "reports/report.md").read_text())
    assert (
        "This run differs from the paper's settings in `compat=official`: a variant of the paper's configuration, "
        "shown on no printed row." in md
    )
    assert "`official` differs from the paper's settings in `compat=official`: a variant, not the paper's row." in md
    assert "| official (this run) | 6.950 | 14.000 | 4.500 | 0.600 |" in md and "(this run) − paper" not in md
    params["omega6"] = 100
    build_report(tmp_path, validate_params(params), env={"DVC_EXP_NAME": "official"})
    md = section((tmp_path / "reports/report.md").read_text())
    assert (
        "This run changes `omega6=100`: Table 7, no printed row, and differs from the paper's settings in "
        "`compat=official`: a variant, not the paper's row." in md
    )
