"""occo.pipeline.resume: input digests, the comparison that names what changed, dvclive trimming, stale temp files."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from dvclive import Live

from occo.data import DataError
from occo.pipeline.resume import (
    change_reason,
    changed_parts,
    digest_files,
    rebuild_live_summary,
    remove_stale_temps,
    trim_live_history,
)


def _files(root: Path, contents: dict[str, bytes]) -> dict[str, Path]:
    out = {}
    for key, data in contents.items():
        path = root / f"{key}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        out[key] = path
    return out


def test_digest_follows_content_and_keys_not_place_or_time(tmp_path):
    contents = {"ir/a": b"\x00\x01\x02", "vi/a": b"\x03\x04"}
    here, there = _files(tmp_path / "here", contents), _files(tmp_path / "there", contents)
    assert digest_files(here) == digest_files(there)  # another checkout of the same data
    os.utime(here["ir/a"], ns=(1, 1))
    assert digest_files(here) == digest_files(there)  # new timestamps, same bytes
    here["ir/a"].write_bytes(b"\x00\x01\x09")  # same size, other bytes
    assert digest_files(here) != digest_files(there)
    assert digest_files({"ir/b": there["ir/a"], "vi/a": there["vi/a"]}) != digest_files(there)  # other pairing


def test_change_reason_names_what_changed_and_what_did_not():
    saved = {"params": "p", "images": "i", "masks": "m"}
    assert change_reason(saved, dict(saved)) is None
    assert change_reason(saved, {**saved, "masks": "m2"}) == "masks changed (params, images unchanged)"
    assert change_reason(saved, {"params": "q", "images": "j", "masks": "n"}) == "params, images, masks changed"
    assert changed_parts("0123abcd", saved) == ["params", "images", "masks"]  # a bare params hash
    assert "no fingerprint" in change_reason("0123abcd", saved)


def test_trim_live_history_keeps_steps_up_to_the_checkpoint(tmp_path):
    with Live(dir=str(tmp_path), save_dvc_exp=False, dvcyaml=False) as live:
        for step in range(1, 6):
            live.step = step
            live.log_metric("train/loss", 1.0 / step)
            live.log_metric("train/lr", 0.1)
            live.next_step()
    tsv = {name: tmp_path / f"plots/metrics/train/{name}.tsv" for name in ("loss", "lr")}
    before = {name: path.read_bytes().splitlines(keepends=True) for name, path in tsv.items()}
    assert trim_live_history(tmp_path, 3) == 4  # steps 4 and 5 of two metrics
    for name, path in tsv.items():
        assert path.read_bytes() == b"".join(before[name][:4])  # the header and steps 1-3, byte for byte
    assert trim_live_history(tmp_path, 3) == 0 and trim_live_history(tmp_path / "absent", 0) == 0


def test_remove_stale_temps_only_touches_temps_of_that_file(tmp_path):
    target = tmp_path / "last.pt"
    stale = [tmp_path / ".last.pt.tmp-0123456789ab", tmp_path / ".last.pt.k2j4h1.tmp"]
    kept = [target, tmp_path / ".model.pt.tmp-0123456789ab", tmp_path / "last.pt.bak"]
    for path in (*stale, *kept):
        path.write_bytes(b"x")
    assert remove_stale_temps(target) == sorted(stale)
    assert all(p.exists() for p in kept) and not any(p.exists() for p in stale)
    assert remove_stale_temps(tmp_path / "absent" / "last.pt") == []


def _history(root: Path, steps: int) -> Path:
    with Live(dir=str(root), save_dvc_exp=False, dvcyaml=False) as live:
        for step in range(1, steps + 1):
            live.step = step
            live.log_metric("train/loss", 1.0 / step)
            live.next_step()
    return root / "plots/metrics/train/loss.tsv"


def test_a_damaged_history_is_rebuilt(tmp_path, caplog):
    """A row cut short by a kill used to stop the resume with an IndexError, an empty file with 'not enough values
    to unpack'; unreadable rows are dropped (they come after the checkpoint), an empty file is removed."""
    tsv = _history(tmp_path, 4)
    whole = tsv.read_bytes()
    tsv.write_bytes(whole + b"17")  # a row cut after its timestamp
    empty = tsv.with_name("total.tsv")
    empty.write_bytes(b"")
    with caplog.at_level("WARNING", logger="occo.pipeline.resume"):
        assert trim_live_history(tmp_path, 4) == 1
    assert tsv.read_bytes() == whole and not empty.exists()
    assert "unreadable row" in caplog.text and "empty" in caplog.text
    tsv.write_bytes(whole.replace(b"\n4\t", b"\nfour\t"))  # a damaged step column
    assert trim_live_history(tmp_path, 4) == 1
    assert tsv.read_bytes().count(b"\n") == 4  # the header and steps 1-3


def test_a_history_without_a_step_column_is_one_line(tmp_path):
    tsv = tmp_path / "plots/metrics/train/loss.tsv"
    tsv.parent.mkdir(parents=True)
    tsv.write_text("timestamp\tloss\n1\t0.5\n")
    with pytest.raises(DataError) as err:
        trim_live_history(tmp_path, 1)
    assert str(err.value) == f"{tsv} has no step column, so it is not a dvclive history: delete it (or {tmp_path})"


def test_the_summary_is_rebuilt_from_the_history(tmp_path):
    """DVC deletes dvclive/train/metrics.json before the stage runs; a reused checkpoint then wrote {"step": 0}."""
    _history(tmp_path, 3)
    (tmp_path / "metrics.json").unlink()
    summary = rebuild_live_summary(tmp_path)
    assert summary == {"step": 3, "train": {"loss": 1.0 / 3}}
    assert json.loads((tmp_path / "metrics.json").read_text()) == summary
    with Live(dir=str(tmp_path), resume=True, save_dvc_exp=False, dvcyaml=False):
        pass  # what the training loop does when nothing is left to train
    assert json.loads((tmp_path / "metrics.json").read_text()) == summary
