"""bench/rehearse.py: the overrides it rehearses with, the per-stage table it reads from a `dvc exp run` log."""

from __future__ import annotations

from pathlib import Path

import yaml

from bench.rehearse import OVERRIDES, WITHOUT_SHARED, overrides, report, stage_rows
from occo.config import load_params, override
from support import REPO

LOG = """\
Running stage 'masks':
> python stages/masks.py --params params.yaml
2026-12-07 11:42:55,613 INFO occo.stage: stage masks done in 628.7 s (636.1 s since the process started); \
peak RSS 10.44 GB, CUDA 0.00 GB
Running stage 'train':
2026-12-07 11:55:07,787 INFO occo.stage: stage train done in 703.7 s (726.8 s since the process started); \
peak RSS 12.66 GB, CUDA 1.50 GB
"""


def test_stage_rows_and_the_report_table():
    rows = stage_rows(LOG)
    assert [(r.stage, r.seconds, r.rss_gb, r.cuda_gb) for r in rows] == [
        ("masks", 636.1, 10.44, 0.0),
        ("train", 726.8, 12.66, 1.5),
    ]
    text = report(LOG, wall=1400.0, load=("1.0/1.0/1.0", "2.0/2.0/2.0"), code=0, settings=list(OVERRIDES))
    assert "| masks | 636.1 | 10.44 | 0.00 |" in text
    assert "| all stages | 1363 | 12.66 (largest) | 1.50 (largest) |" in text
    assert "load average 1.0/1.0/1.0 before, 2.0/2.0/2.0 after" in text and "- `masks.init=random`:" in text
    failed = report(LOG, wall=None, load=("?", "?"), code=1, settings=list(OVERRIDES))
    assert "FAILED (`dvc exp run` exit status 1)" in failed and "## Last lines of the log" in failed


def test_overrides_are_valid_params_and_keep_the_default_sizes(tmp_path: Path):
    """Every override is a param of the schema; the architectures and sizes stay the defaults."""
    assert overrides(tmp_path) == [*OVERRIDES, *WITHOUT_SHARED]
    changes = {}
    for text, _ in overrides(tmp_path):
        key, _, value = text.partition("=")
        changes[key] = yaml.safe_load(value)
    defaults = load_params(REPO / "params.yaml")
    cfg = override(defaults, changes)
    assert cfg.masks.init == "random" and cfg.masks.sam_model == "vit_h" and cfg.masks.detector == "groundingdino"
    assert (cfg.train.crop, cfg.train.batch_size, cfg.train.num_workers) == (256, 12, defaults.train.num_workers)
    assert (cfg.detect.model, cfg.detect.imgsz) == ("yolov5s", 640)
    assert (cfg.segment.encoder, cfg.segment.size) == ("resnet50", None)
    assert cfg.arch == defaults.arch and cfg.loss == defaults.loss
