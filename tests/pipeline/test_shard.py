"""Sharded inference (occo/pipeline/shard.py): the split rule, the runtime knobs, and masks, fuse and evaluate
spread over two processes (OCCO_PROCS, torchrun with gloo, --shard/--merge) writing byte for byte what one
process writes, on the synthetic set with tiny random-init models."""

from __future__ import annotations

import argparse
import difflib
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from occo.config import Arch
from occo.data import load_array, make_synthetic, save_png
from occo.nn import build_model, save_checkpoint
from occo.pipeline.shard import (
    PROCS_ENV,
    WHOLE,
    Shard,
    ShardedStage,
    count_flag,
    fragments_dir,
    procs_from_env,
    read_fragments,
    run_sharded,
    shard_flag,
)
from support import REPO

OUTPUTS = ("data/masks", "reports/masks", "data/fused", "reference/fusion", "metrics/fusion", "reports/fusion")


def test_shards_split_sorted_ids_into_disjoint_shares():
    ids = [f"{i:03d}" for i in range(7)]
    shares = [Shard(i, 3).take(ids) for i in range(3)]
    assert shares == [["000", "003", "006"], ["001", "004"], ["002", "005"]]
    assert WHOLE.take(ids) == ids and Shard(3, 4).take(ids[:2]) == []


def test_flags_and_environment_are_checked():
    assert shard_flag("1/2") == Shard(1, 2) and str(Shard(1, 2)) == "1/2" and count_flag("3") == 3
    for bad in ("2/2", "1", "-1/2", "a/b", "0/0"):
        with pytest.raises(argparse.ArgumentTypeError, match="0 <= i < n"):
            shard_flag(bad)
    with pytest.raises(argparse.ArgumentTypeError):
        count_flag("0")


def test_process_count_from_the_environment(monkeypatch):
    monkeypatch.delenv(PROCS_ENV, raising=False)
    assert procs_from_env() == 1
    monkeypatch.setenv(PROCS_ENV, "4")
    assert procs_from_env() == 4
    monkeypatch.setenv(PROCS_ENV, "two")
    with pytest.raises(ValueError, match="OCCO_PROCS='two'"):
        procs_from_env()


def _recorder() -> tuple[ShardedStage, list]:
    calls: list = []
    return ShardedStage(lambda s: calls.append(("work", s)), lambda n: calls.append(("merge", n))), calls


def test_run_sharded_modes(monkeypatch):
    for name in (PROCS_ENV, "RANK", "WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    stage, calls = _recorder()
    run_sharded(stage, shard=None, merge=None, child=[])
    run_sharded(stage, shard=Shard(1, 2), merge=None, child=[])
    run_sharded(stage, shard=None, merge=2, child=[])
    assert calls == [("work", WHOLE), ("merge", 1), ("work", Shard(1, 2)), ("merge", 2)]


def test_a_failed_shard_stops_before_the_merge(monkeypatch):
    monkeypatch.setenv(PROCS_ENV, "2")
    stage, calls = _recorder()
    child = [sys.executable, "-c", "import sys; sys.exit(3 if sys.argv[-1] == '1/2' else 0)"]
    with pytest.raises(ValueError, match=r"shard\(s\) 1/2 \(exit 3\) failed"):
        run_sharded(stage, shard=None, merge=None, child=child)
    assert calls == []


def test_stage_flags_are_checked(tmp_path, capsys):
    main = _stage_main("fuse")
    for argv, words in ((["--shard", "2/2"], "0 <= i < n"), (["--shard", "0/2", "--merge", "2"], "not allowed with")):
        with pytest.raises(SystemExit):
            main(_args(tmp_path, *argv))
        assert words in capsys.readouterr().err


def test_merge_names_the_shards_that_have_not_finished(tmp_path):
    with pytest.raises(ValueError, match="shard.s. 0/2, 1/2 have not finished"):
        read_fragments(tmp_path, "ours", "synthetic", 2)


def _stage_main(name: str):
    spec = importlib.util.spec_from_file_location(f"occo_test_shard_stage_{name}", REPO / "stages" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def _workspace(root: Path, *, fused: bool) -> Path:
    """Synthetic train/test splits, a tiny checkpoint, params for tiny random-init masks on CPU; with ``fused``,
    stand-in fused images of the test split (so evaluate runs without fuse)."""
    make_synthetic(root / "data/raw/synthetic", n_train=3, n_test=3, height=48, width=64)
    (root / "data/raw/INDEX.json").write_text(json.dumps({"synthetic": {"train": 3, "test": 3}}), encoding="utf-8")
    arch = Arch(widths=[8, 8, 8, 8], heads=[1, 1, 1, 1])
    save_checkpoint(root / "models/occo.pt", build_model(arch, seed=0).eval(), arch)
    params = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    params["masks"].update(init="tiny", device="cpu", datasets={"synthetic": ["train"]}, gallery=2)
    params["fuse"].update(datasets=["synthetic/test"], device="cpu")
    params["evaluate"].update(device="cpu")
    (root / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
    if fused:
        test = root / "data/raw/synthetic/test"
        for path in sorted((test / "ir").iterdir()):
            ir, vi = load_array(path), load_array(test / "vi" / path.name)
            vi = vi.mean(axis=2).astype(np.uint8) if vi.ndim == 3 else vi
            save_png(root / "data/fused/occo/synthetic/test" / path.name, np.maximum(ir, vi))
    return root


def _args(root: Path, *extra: str) -> list[str]:
    return ["--params", str(root / "params.yaml"), "--root", str(root), *extra]


def _command(root: Path, stage: str, *extra: str) -> list[str]:
    return [sys.executable, str(REPO / "stages" / f"{stage}.py"), *_args(root, *extra)]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in (PROCS_ENV, "RANK", "WORLD_SIZE", "LOCAL_RANK")}
    return {**env, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", **extra}


def _tree(root: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(root)): path.read_bytes()
        for folder in OUTPUTS
        for path in sorted((root / folder).rglob("*"))
        if path.is_file()
    }


def _differences(expected: dict[str, bytes], got: dict[str, bytes]) -> str:
    """The files that differ, text files as a unified diff (one process first), so a failure shows its rows."""
    out = []
    for name in (n for n in expected if got[n] != expected[n]):
        try:
            lines = [data.decode("utf-8").splitlines() for data in (expected[name], got[name])]
        except UnicodeDecodeError:
            out.append(f"{name}: binary, {len(expected[name])} vs {len(got[name])} bytes")
            continue
        out += difflib.unified_diff(*lines, f"one/{name}", f"many/{name}", lineterm="", n=0)
    return "\n".join(out)


def _same_outputs(one: Path, many: Path) -> None:
    expected, got = _tree(one), _tree(many)
    assert sorted(got) == sorted(expected)
    differences = _differences(expected, got)
    assert not differences, differences
    assert not fragments_dir(many).exists()  # the merge removed the fragments


@pytest.mark.slow
def test_masks_fuse_and_evaluate_in_two_processes_equal_one(tmp_path, monkeypatch):
    """Each stage run with OCCO_PROCS=2 (two `--shard i/2` copies, then the merge) writes what one process writes."""
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.setenv(name, "1")
    monkeypatch.delenv(PROCS_ENV, raising=False)
    one, many = _workspace(tmp_path / "one", fused=False), _workspace(tmp_path / "many", fused=False)
    for stage, extra in (("masks", ()), ("fuse", ()), ("evaluate", ("--part", "reference")), ("evaluate", ())):
        _stage_main(stage)(_args(one, *extra))
        done = subprocess.run(
            _command(many, stage, *extra), env=_env(**{PROCS_ENV: "2"}), capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, done.stderr[-3000:]
        assert "running 2 shards" in done.stderr
    assert len(list((one / "data/masks/synthetic/train/ir").iterdir())) == 3
    assert len(list((one / "reports/masks/synthetic/train").iterdir())) == 2
    assert len(list((one / "data/fused/occo/synthetic/test").iterdir())) == 3
    _same_outputs(one, many)


@pytest.mark.slow
def test_evaluate_under_torchrun_and_with_shard_flags_equals_one_process(tmp_path):
    """Reference scores from two torchrun ranks (gloo barrier, rank 0 merges); ours from `--shard 0/2` and
    `--shard 1/2` run at once, then `--merge 2`."""
    one, many = _workspace(tmp_path / "one", fused=True), _workspace(tmp_path / "many", fused=True)
    main = _stage_main("evaluate")
    main(_args(one, "--part", "reference"))
    main(_args(one))
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    done = subprocess.run(
        [*torchrun, *_command(many, "evaluate", "--part", "reference")[1:]], env=_env(), capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    shards = [
        subprocess.Popen(_command(many, "evaluate", "--shard", f"{i}/2"), env=_env(), stderr=subprocess.PIPE, text=True)
        for i in range(2)
    ]
    errors = [p.communicate()[1] for p in shards]
    assert [p.returncode for p in shards] == [0, 0], [e[-2000:] for e in errors]
    assert not (many / "metrics/fusion").exists()  # shards alone merge nothing
    subprocess.run(_command(many, "evaluate", "--merge", "2"), env=_env(), check=True, capture_output=True)
    summary = json.loads((one / "metrics/fusion/synthetic.json").read_text(encoding="utf-8"))
    assert summary["occo"]["n"] == 3 and summary["max"]["n"] == 3
    _same_outputs(one, many)
