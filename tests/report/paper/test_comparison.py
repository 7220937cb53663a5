"""Ours beside the paper's Tables 1-5 (fake metric files, the packaged paper.yaml)."""

import json
from pathlib import Path

from occo.config import validate_params
from occo.report.build import build_report
from occo.report.paper.comparison import detect_beside, segment_beside

SEG_CLASSES = ("unlabelled", "car", "person", "bike", "curve", "car_stop", "guardrail", "color_cone", "bump")


def write_json(path: Path, doc: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc), encoding="utf-8")


def fusion_entry(en: float, sf: float, ag: float, cc: float, n: int) -> dict:
    return {"EN": en, "SF": sf, "AG": ag, "CC": cc, "SD": 30.0, "n": n}


def detect_record(values: dict[str, float]) -> dict:
    return {
        "ap50": dict(values),
        "ap50_95": {c: v / 2 for c, v in values.items()},
        "epochs": 40,
        "imgsz": 640,
        "n_train": 10,
        "n_val": 5,
    }


def paper_workspace(root: Path) -> Path:
    write_json(
        root / "metrics/fusion/TNO.json",
        {
            "visible": fusion_entry(6.5, 8.0, 3.0, 0.9, 21),
            "occo": fusion_entry(7.0, 12.0, 5.0, 0.5, 21),
            "OCCO-public": fusion_entry(7.2, 11.5, 4.9, 0.47, 21),
            "LRRNet": fusion_entry(6.9, 9.3, 3.6, 0.42, 21),
            "DenseFuse": fusion_entry(6.7, 9.0, 3.6, 0.49, 16),
            "RFN-Nest": fusion_entry(6.8, 6.1, 2.7, 0.49, 21),
        },
    )
    write_json(
        root / "metrics/detect/MSRS/occo.json", detect_record({"person": 0.9, "bicycle": 0.4, "car": 0.7, "all": 0.8})
    )
    write_json(root / "metrics/detect/MSRS/visible.json", detect_record({"person": 0.5, "car": 0.75, "all": 0.625}))
    write_json(
        root / "metrics/detect/M3FD/occo.json",
        detect_record(
            {"People": 0.6, "Car": 0.9, "Bus": 0.8, "Lamp": 0.5, "Motorcycle": 0.4, "Truck": 0.7, "all": 0.65}
        ),
    )
    iou = {c: 0.5 for c in SEG_CLASSES} | {"bike": None, "car": 0.9}
    write_json(
        root / "metrics/segment/MSRS/occo.json", {"iou": iou, "miou": 0.55, "epochs": 150, "n_train": 10, "n_test": 5}
    )
    return root


def test_fusion_beside_table_2(tmp_path: Path, params: dict) -> None:
    root = paper_workspace(tmp_path)
    params["report"]["ours"] = ["occo", "OCCO-public"]
    build_report(root, validate_params(params))
    md = (root / "reports/report.md").read_text()
    lines = md[md.index("Beside the paper's Table 2") :].splitlines()
    assert lines[2] == "| Method | n | EN | SF | AG | CC |"
    body = lines[4:15]
    assert body[:3] == [  # paper order, DenseFuse first (our 16 images against the paper's set); best of ours in bold
        "| DenseFuse | 16 | 6.700 | 9.000 | 3.600 | 0.490 |",
        "| *DenseFuse (paper, Table 2)* | – | *6.755* | *8.338* | *3.324* | *0.496* |",
        "| *DenseFuse − paper* | – | *-0.055* | *+0.662* | *+0.276* | *-0.006* |",
    ]
    assert body[3:6] == [
        "| LRRNet | 21 | 6.900 | 9.300 | 3.600 | 0.420 |",
        "| *LRRNet (paper, Table 2)* | – | *6.815* | *9.393* | *3.641* | *0.434* |",
        "| *LRRNet − paper* | – | *+0.085* | *-0.093* | *-0.041* | *-0.014* |",
    ]
    assert body[6:11] == [  # both of our OCCO models against the paper's OCCO row
        "| occo | 21 | 7.000 | **12.000** | **5.000** | **0.500** |",
        "| OCCO-public | 21 | **7.200** | 11.500 | 4.900 | 0.470 |",
        "| *OCCO (paper, Table 2)* | – | *7.149* | *11.714* | *4.937* | *0.477* |",
        "| *occo − paper* | – | *-0.149* | *+0.286* | *+0.063* | *+0.023* |",
        "| *OCCO-public − paper* | – | *+0.051* | *-0.214* | *-0.037* | *-0.007* |",
    ]
    assert "not produced here: SeAFusion, CDDFuse, CoCoNet, SemLA, SegMiF, M2Fusion." in md
    assert "RFN-Nest −" not in md and "visible (paper" not in md  # rows the paper does not have


def test_detection_beside_tables_4_and_5(tmp_path: Path, params: dict) -> None:
    root = paper_workspace(tmp_path)
    build_report(root, validate_params(params))
    md = (root / "reports/report.md").read_text()
    msrs = md[md.index("AP@0.5 beside the paper's Table 4") :].splitlines()
    assert msrs[2] == "| Method | person | car | all |"  # the paper's classes: bicycle left out
    assert msrs[4:7] == [
        "| visible | 0.500 | **0.750** | 0.625 |",
        "| *Visible (paper, Table 4)* | *0.511* | *0.773* | *0.642* |",
        "| *visible − paper* | *-0.011* | *-0.023* | *-0.017* |",
    ]
    assert msrs[9] == "| *occo − paper* | *+0.089* | *-0.094* | *-0.003* |"
    strict = md[md.index("AP@0.5:0.95 beside the paper's Table 4") :].splitlines()
    assert (
        strict[6] == "| *visible − paper* | *+0.039* | *-0.056* | *-0.009* |"
    )  # 0.25-0.211, 0.375-0.431, 0.3125-0.321
    m3fd = md[md.index("AP@0.5 beside the paper's Table 5") :].splitlines()
    assert m3fd[2] == "| Method | car | people | truck | lamp | motorcycle | bus | all |"
    assert m3fd[4] == "| occo | 0.900 | 0.600 | 0.700 | 0.500 | 0.400 | 0.800 | 0.650 |"  # alone: no bold
    assert m3fd[6] == "| *occo − paper* | *+0.056* | *-0.081* | *+0.058* | *-0.086* | *-0.091* | *-0.004* | *-0.024* |"


def test_segmentation_beside_table_3_in_percent(tmp_path: Path, params: dict) -> None:
    root = paper_workspace(tmp_path)
    build_report(root, validate_params(params))
    md = (root / "reports/report.md").read_text()
    lines = md[md.index("IoU (%) beside the paper's Table 3") :].splitlines()
    assert lines[2] == (
        "| Method | unlabelled | car | person | bike | curve | car_stop | guardrail | color_cone | bump | mIoU |"
    )
    assert lines[4].startswith("| occo | 50.00 | 90.00 | 50.00 | – | 50.00 |")
    assert lines[5].startswith("| *OCCO (paper, Table 3)* | *97.90* | *87.02* | *67.59* | *67.98* |")
    assert lines[6].startswith("| *occo − paper* | *-47.90* | *+2.98* | *-17.59* | – |")
    assert lines[6].endswith("| *-8.72* |")  # mIoU 55.00 - 63.72
    assert "not produced here: Visible, Infrared, DenseFuse" in md


def test_dataset_without_a_paper_table_or_shared_method(params: dict) -> None:
    from occo.report.paper.reference import load_paper

    paper = load_paper()
    assert detect_beside(paper, "synthetic", {"occo": detect_record({"person": 1.0})}, ["occo"]) == []
    (note,) = segment_beside(paper, "MSRS", {"mine": {"iou": {}, "miou": 0.1}}, ["occo"])
    assert "none of the methods of its Table 3 has a trained segmentation network on MSRS" in note.text
