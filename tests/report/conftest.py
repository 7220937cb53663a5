"""A fake workspace with every report input: metrics JSONs, dvclive logs, images, masks, fused images;
and git repositories holding DVC-style experiment refs (refs/exps/<2>/<38>/<name>)."""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import yaml

from occo.config import as_dict, validate_params
from occo.data.io import save_png
from occo.metrics.suite import METRICS

FUSION = {
    "visible": {**{m: 1.0 for m in METRICS}, "SCD": None, "n": 2},
    "max": {**{m: 2.0 for m in METRICS}, "n": 2},
    "occo": {**{m: 3.0 for m in METRICS}, "EN": 0.5, "n": 2},
}


def write_json(path: Path, doc: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc), encoding="utf-8")


def detect_record(person: float, car: float) -> dict:
    return {
        "ap50": {"person": person, "car": car, "all": (person + car) / 2},
        "ap50_95": {"person": person / 2, "car": car / 2, "all": (person + car) / 4},
        "epochs": 1,
        "imgsz": 64,
        "n_train": 2,
        "n_val": 2,
    }


def segment_record(value: float) -> dict:
    iou = {c: value for c in ("background", "car", "person")} | {"bike": None}
    return {"iou": iou, "miou": value, "epochs": 1, "n_train": 2, "n_test": 2}


def image(rng: np.random.Generator, h: int = 24, w: int = 32, colour: bool = False) -> np.ndarray:
    return rng.integers(0, 256, (h, w, 3) if colour else (h, w), dtype=np.uint8)


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """Every input of the report stage, small."""
    rng = np.random.default_rng(0)
    root = tmp_path / "repo"
    write_json(root / "metrics/fusion/synthetic.json", FUSION)
    write_json(root / "metrics/detect/synthetic/occo.json", detect_record(0.6, 0.4))
    write_json(root / "metrics/detect/synthetic/visible.json", detect_record(0.5, 0.7))
    write_json(root / "metrics/segment/synthetic/occo.json", segment_record(0.5))
    write_json(root / "metrics/segment/synthetic/infrared.json", segment_record(0.4))
    summary = {"train": {"total": 1.5, "pixel": 1.0, "contrast": 0.05, "lr": 1e-4}, "step": 3}
    write_json(root / "dvclive/train/metrics.json", summary)
    for name, values in {"total": [3.0, 2.0, 1.5], "pixel": [2.0, 1.5, 1.0], "lr": [1e-4] * 3}.items():
        tsv = root / f"dvclive/train/plots/metrics/train/{name}.tsv"
        tsv.parent.mkdir(parents=True, exist_ok=True)
        tsv.write_text(
            f"timestamp\tstep\t{name}\n" + "".join(f"{1000 + s}\t{s + 1}\t{v}\n" for s, v in enumerate(values))
        )
    tsv = root / "dvclive/segment/synthetic/occo/plots/metrics/train/loss.tsv"
    tsv.parent.mkdir(parents=True)
    tsv.write_text("timestamp\tstep\tloss\n1000\t1\t2.0\n1001\t2\t1.5\n")
    for i in range(3):
        base = root / "data/raw/synthetic/test"
        save_png(base / f"ir/syn_{i:03d}.png", image(rng))
        save_png(base / f"vi/syn_{i:03d}.png", image(rng, colour=True))
        save_png(base / f"masks/ir/syn_{i:03d}.png", (image(rng) > 128).astype(np.uint8) * 255)
        save_png(root / f"data/fused/occo/synthetic/test/syn_{i:03d}.png", image(rng, colour=True))
        if i != 1:  # one published result and one visible mask are missing: their tiles are drawn 'absent'
            save_png(root / f"data/external/DenseFuse/synthetic/test/syn_{i:03d}.png", image(rng))
            save_png(base / f"masks/vi/syn_{i:03d}.png", (image(rng) > 128).astype(np.uint8) * 255)
    return root


@pytest.fixture
def params() -> dict:
    """A whole params file as params.yaml spells it (what the workspace's experiments hold in git): the
    defaults, which are the paper's settings (§4.1) where the report compares them (a run that trains
    otherwise is a variant, tests/report/paper/test_studies.py), and a gallery of two synthetic pairs.
    ``validate_params`` makes it the typed config the report stage receives."""
    return as_dict(
        validate_params(
            {
                "evaluate": {"baselines": ["visible", "max"]},
                "report": {"gallery": {"dataset": "synthetic", "split": "test", "ids": [], "n": 2}},
            }
        )
    )


def git(root: Path, *args: str) -> str:
    done = subprocess.run(
        [
            "git",
            "-C",
            str(root),
            "-c",
            "user.name=test",
            "-c",
            "user.email=test@example.org",
            "-c",
            "commit.gpgsign=false",
            *args,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


@dataclass
class GitRepo:
    """A git repository at ``root`` whose experiments are committed the way ``dvc exp`` stores them."""

    root: Path

    def init(self, params: dict) -> str:
        """First commit, holding ``params.yaml``; returns it (the baseline of later experiments)."""
        self.root.mkdir(parents=True, exist_ok=True)
        git(self.root, "init", "-q", "-b", "main")
        (self.root / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
        git(self.root, "add", "params.yaml")
        git(self.root, "commit", "-q", "-m", "baseline")
        return git(self.root, "rev-parse", "HEAD")

    def add_experiment(self, name: str, params: dict | str, fmb: dict | None, *, baseline: str | None = None) -> str:
        """Commit ``params.yaml`` (and ``metrics/fusion/FMB.json``) off HEAD, point ``refs/exps/…/<name>``
        at it, and leave the workspace's files as they were. Returns the experiment's commit."""
        root = self.root
        base = baseline or git(root, "rev-parse", "HEAD")
        saved = {p: p.read_bytes() for p in (root / "params.yaml", root / "metrics/fusion/FMB.json") if p.exists()}
        git(root, "checkout", "-q", "--detach")
        (root / "params.yaml").write_text(
            params if isinstance(params, str) else yaml.safe_dump(params), encoding="utf-8"
        )
        git(root, "add", "params.yaml")
        if fmb is not None:
            write_json(root / "metrics/fusion/FMB.json", fmb)
            git(root, "add", "metrics/fusion/FMB.json")
        git(root, "commit", "-q", "-m", name)
        commit = git(root, "rev-parse", "HEAD")
        git(root, "update-ref", f"refs/exps/{base[:2]}/{base[2:]}/{name}", commit)
        git(root, "checkout", "-q", "-f", "main")
        (root / "metrics/fusion/FMB.json").unlink(missing_ok=True)
        for path, content in saved.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
        return commit


@pytest.fixture
def git_repo(tmp_path: Path) -> GitRepo:
    """An empty place for a repository (skips where git is not installed)."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    return GitRepo(tmp_path / "gitrepo")
