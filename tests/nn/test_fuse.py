"""Fusion to colour PNGs (occo.nn.fuse), the `fuse` stage and `occo fuse`."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from occo.cli import main
from occo.config import Arch, Fuse, ParamsError, validate_params
from occo.data import DataError, find_pairs, load_array, rgb_to_ycbcr, save_png, sha256_file, to_float, ycbcr_to_rgb
from occo.data.io import png_text
from occo.nn import build_model, save_checkpoint
from occo.nn.fifn.model import fuse_y
from occo.nn.fifn.tiling import bytes_per_pixel, halo
from occo.nn.fuse import CHECKPOINT_KEY, FUSE_ROUTINES, fuse_folder, memory_budget, run_fuse
from support import REPO

SHARED = REPO / ".." / "shared"
CFG = Arch(widths=[8, 8, 8, 8], heads=[1, 1, 1, 1])
SIZES = {"a": (40, 48), "b": (40, 48), "c": (32, 56)}  # b: grey visible image
SHA_A, SHA_B = "a" * 64, "b" * 64  # stand-ins for two checkpoints' sha256


def _pairs(folder: Path) -> Path:
    rng = np.random.default_rng(0)
    for id_, (h, w) in SIZES.items():
        save_png(folder / "ir" / f"{id_}.png", rng.integers(0, 256, (h, w), dtype=np.uint8))
        shape = (h, w) if id_ == "b" else (h, w, 3)
        save_png(folder / "vi" / f"{id_}.png", rng.integers(60, 200, shape, dtype=np.uint8))
    return folder


@pytest.fixture
def model() -> torch.nn.Module:
    return build_model(CFG, seed=0).eval()


def test_fuse_folder_writes_colour_pngs_of_the_source_size(tmp_path, model):
    src = _pairs(tmp_path / "src")
    out = tmp_path / "out"
    written = fuse_folder(
        model, find_pairs(ir=src / "ir", vi=src / "vi"), out, checkpoint_sha256=SHA_A, device="cpu", batch_size=2
    )
    assert sorted(p.name for p in written) == ["a.png", "b.png", "c.png"]
    for id_, (h, w) in SIZES.items():
        arr = load_array(out / f"{id_}.png")
        assert arr.dtype == np.uint8 and arr.shape == ((h, w) if id_ == "b" else (h, w, 3))
        assert png_text(out / f"{id_}.png", CHECKPOINT_KEY) == SHA_A
    fused = rgb_to_ycbcr(to_float(load_array(out / "a.png")))
    vi = rgb_to_ycbcr(to_float(load_array(src / "vi/a.png")))
    assert (fused[1:] - vi[1:]).abs().mean() < 0.02  # chroma carried over from the visible image


def test_fuse_folder_skips_outputs_of_the_same_checkpoint(tmp_path, model, caplog):
    src = _pairs(tmp_path / "src")
    out = tmp_path / "out"
    pairs = find_pairs(ir=src / "ir", vi=src / "vi")
    save_png(out / "a.png", np.zeros((2, 2), np.uint8), text={CHECKPOINT_KEY: SHA_A})
    with caplog.at_level(logging.INFO, logger="occo.nn.fuse"):
        written = fuse_folder(model, pairs, out, checkpoint_sha256=SHA_A, device="cpu")
    assert sorted(p.name for p in written) == ["b.png", "c.png"] and "1 of 3 outputs exist" in caplog.text
    assert load_array(out / "a.png").shape == (2, 2)
    assert fuse_folder(model, pairs, out, checkpoint_sha256=SHA_A, device="cpu") == []
    assert len(fuse_folder(model, pairs, out, checkpoint_sha256=SHA_A, device="cpu", overwrite=True)) == 3


def test_outputs_of_another_checkpoint_are_refused_or_replaced(tmp_path, model):
    """One folder never mixes checkpoints: refused by default, replaced with overwrite or replace_other."""
    src = _pairs(tmp_path / "src")
    out = tmp_path / "out"
    pairs = find_pairs(ir=src / "ir", vi=src / "vi")
    fuse_folder(model, pairs[:2], out, checkpoint_sha256=SHA_A, device="cpu")
    save_png(out / "c.png", np.zeros((2, 2), np.uint8))  # no maker recorded: not trusted either
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(DataError) as err:
        fuse_folder(model, pairs, out, checkpoint_sha256=SHA_B, device="cpu")
    msg = str(err.value)
    assert f"{out} already holds 3 images not made by this checkpoint" in msg and "\n" not in msg
    assert "a.png (checkpoint aaaaaaaaaaaa...)" in msg and "--overwrite" in msg
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert len(fuse_folder(model, pairs, out, checkpoint_sha256=SHA_B, device="cpu", overwrite=True)) == 3
    assert {png_text(p, CHECKPOINT_KEY) for p in out.iterdir()} == {SHA_B}
    # Another checkpoint's image of an id this run does not make would stay beside its outputs.
    save_png(out / "z.png", np.zeros((2, 2), np.uint8), text={CHECKPOINT_KEY: SHA_A})
    with pytest.raises(DataError, match="1 images made by another checkpoint"):
        fuse_folder(model, pairs, out, checkpoint_sha256=SHA_B, device="cpu", overwrite=True)
    assert fuse_folder(model, pairs, out, checkpoint_sha256=SHA_A, device="cpu", replace_other=True) != []
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.png", "c.png", "z.png"]  # z is SHA_A's own
    assert {png_text(p, CHECKPOINT_KEY) for p in out.iterdir()} == {SHA_A}
    fuse_folder(model, pairs, out, checkpoint_sha256=SHA_B, device="cpu", replace_other=True)
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.png", "c.png"]


def test_batching_does_not_change_the_result(tmp_path, model):
    src = _pairs(tmp_path / "src")
    pairs = find_pairs(ir=src / "ir", vi=src / "vi")
    fuse_folder(model, pairs, tmp_path / "one", checkpoint_sha256=SHA_A, device="cpu", batch_size=1)
    fuse_folder(model, pairs, tmp_path / "two", checkpoint_sha256=SHA_A, device="cpu", batch_size=2)
    for id_ in SIZES:
        diff = load_array(tmp_path / "one" / f"{id_}.png").astype(int) - load_array(tmp_path / "two" / f"{id_}.png")
        assert np.abs(diff).max() <= 1


def test_occo_fuse_cli_folders_and_single_pair(tmp_path, model):
    src = _pairs(tmp_path / "src")
    ckpt = save_checkpoint(tmp_path / "m.pt", model, CFG)
    out = tmp_path / "fused"
    main(
        [
            "fuse",
            "--ir",
            str(src / "ir"),
            "--vi",
            str(src / "vi"),
            "--out",
            str(out),
            "--checkpoint",
            str(ckpt),
            "--device",
            "cpu",
            "--batch-size",
            "2",
        ]
    )
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.png", "c.png"]
    single = tmp_path / "single" / "x.png"
    main(
        [
            "fuse",
            "--ir",
            str(src / "ir/c.png"),
            "--vi",
            str(src / "vi/c.png"),
            "--out",
            str(single),
            "--checkpoint",
            str(ckpt),
            "--device",
            "cpu",
        ]
    )
    assert np.array_equal(load_array(single), load_array(out / "c.png"))
    with pytest.raises(SystemExit, match="both be folders or both be image files"):
        main(
            [
                "fuse",
                "--ir",
                str(src / "ir"),
                "--vi",
                str(src / "vi/c.png"),
                "--out",
                str(out),
                "--checkpoint",
                str(ckpt),
            ]
        )
    with pytest.raises(SystemExit, match="--checkpoint .*missing.pt does not exist"):
        main(
            [
                "fuse",
                "--ir",
                str(src / "ir"),
                "--vi",
                str(src / "vi"),
                "--out",
                str(out),
                "--checkpoint",
                str(tmp_path / "missing.pt"),
            ]
        )


def _fuse_args(src: Path, out: Path, ckpt: Path, *extra: str) -> list[str]:
    return [
        "fuse",
        "--ir",
        str(src / "ir"),
        "--vi",
        str(src / "vi"),
        "--out",
        str(out),
        "--checkpoint",
        str(ckpt),
        "--device",
        "cpu",
        *extra,
    ]


def _one_line_exit(argv: list[str]) -> str:
    with pytest.raises(SystemExit) as err:
        main(argv)
    msg = str(err.value)
    assert err.value.code == 2 and msg.startswith("occo fuse: ") and "\n" not in msg
    return msg


@pytest.mark.parametrize("where", ["vi", "ir", "vi/sub", "."])
def test_occo_fuse_refuses_an_output_folder_overlapping_an_input(tmp_path, model, where):
    """--out <vi folder> (even with --overwrite) would replace the visible sources with fused images."""
    src = _pairs(tmp_path / "src")
    ckpt = save_checkpoint(tmp_path / "m.pt", model, CFG)
    before = {p: p.read_bytes() for p in src.rglob("*.png")}
    for extra in ((), ("--overwrite",)):
        msg = _one_line_exit(_fuse_args(src, src / where, ckpt, *extra))
        assert "is, contains or lies inside --" in msg
    assert {p: p.read_bytes() for p in src.rglob("*.png")} == before


def test_occo_fuse_refuses_to_mix_checkpoints(tmp_path, model):
    src = _pairs(tmp_path / "src")
    first = save_checkpoint(tmp_path / "first.pt", model, CFG)
    second = save_checkpoint(tmp_path / "second.pt", build_model(CFG, seed=1), CFG)
    out = tmp_path / "fused"
    main(_fuse_args(src, out, first))
    made = {p.name: p.read_bytes() for p in out.iterdir()}
    assert {png_text(p, CHECKPOINT_KEY) for p in out.iterdir()} == {sha256_file(first)}
    msg = _one_line_exit(_fuse_args(src, out, second))
    assert "not made by this checkpoint" in msg and "--overwrite" in msg
    assert {p.name: p.read_bytes() for p in out.iterdir()} == made
    main(_fuse_args(src, out, second, "--overwrite"))
    assert {png_text(p, CHECKPOINT_KEY) for p in out.iterdir()} == {sha256_file(second)}


def test_occo_fuse_one_line_errors(tmp_path, model):
    src = _pairs(tmp_path / "src")
    ckpt = save_checkpoint(tmp_path / "m.pt", model, CFG)
    out = tmp_path / "fused"
    single = ["fuse", "--vi", str(src / "vi/a.png"), "--checkpoint", str(ckpt), "--device", "cpu"]
    assert _one_line_exit([*single, "--ir", str(src / "typo.png"), "--out", str(out)]) == (
        f"occo fuse: --ir {src / 'typo.png'} does not exist"
    )
    assert "is one of the input images" in _one_line_exit(
        [*single, "--ir", str(src / "ir/a.png"), "--out", str(src / "ir")]
    )
    # --out x.jpg, --batch-size, --device and --max-pixels are argparse types: usage errors in tests/test_cli.py
    for budget in ("-1", "lots"):
        msg = _one_line_exit(_fuse_args(src, out, ckpt, "--memory-budget", budget))
        assert "--memory-budget must be auto or a positive number" in msg and f"'{budget}'" in msg
    assert not out.exists()


def test_occo_fuse_pixel_cap(tmp_path, model):
    src = _pairs(tmp_path / "src")
    ckpt = save_checkpoint(tmp_path / "m.pt", model, CFG)
    msg = _one_line_exit(_fuse_args(src, tmp_path / "out", ckpt, "--max-pixels", "1000"))
    assert "over the cap of 1,000 pixels" in msg and str(src / "ir") in msg


@pytest.mark.skipif(not (SHARED / "datasets/TNO/ir/01.png").is_file(), reason="../shared is not available")
def test_tiled_fusion_equals_one_pass_on_a_real_pair(tmp_path, model):
    """A budget that forces tiles of 96 pixels (3x4 tiles on TNO 01, 270x360) gives the same PNG within 1 grey level."""
    tno = SHARED / "datasets/TNO"
    pairs = [p for p in find_pairs(ir=tno / "ir", vi=tno / "vi") if p.id == "01"]
    small = (96 + 2 * halo(CFG)) ** 2 * bytes_per_pixel(CFG)
    assert 270 * 360 * bytes_per_pixel(CFG) > small
    fuse_folder(model, pairs, tmp_path / "one", checkpoint_sha256=SHA_A, device="cpu")
    fuse_folder(model, pairs, tmp_path / "tiled", checkpoint_sha256=SHA_A, device="cpu", memory_budget_bytes=small)
    one, tiled = (load_array(tmp_path / d / "01.png").astype(int) for d in ("one", "tiled"))
    assert one.shape == (270, 360) and np.abs(one - tiled).max() <= 1
    assert one.std() > 10  # a real image, not a constant one


def _stage_workspace(root: Path, model: torch.nn.Module) -> None:
    """A 3-pair dataset `tiny/test` and models/occo.pt under ``root``."""
    _pairs(root / "data/raw/tiny/test")
    (root / "data/raw/INDEX.json").write_text(json.dumps({"tiny": {"test": 3}}))
    save_checkpoint(root / "models/occo.pt", model, CFG)


def test_fuse_stage_fuses_listed_splits_and_warns_on_missing(tmp_path, model, caplog):
    _stage_workspace(tmp_path, model)
    cfg = Fuse(datasets=["tiny/test", "tiny/train", "FMB/test"], device="cpu", batch_size=2)
    with caplog.at_level(logging.WARNING, logger="occo.nn.fuse"):
        folders = run_fuse(cfg, tmp_path)
    assert folders == [tmp_path / "data/fused/occo/tiny/test"]
    assert sorted(p.name for p in folders[0].iterdir()) == ["a.png", "b.png", "c.png"]
    assert "skipping tiny/train" in caplog.text and "skipping FMB/test" in caplog.text


def test_fuse_stage_extra_checkpoint_is_one_more_method(tmp_path, model):
    _stage_workspace(tmp_path, model)
    save_checkpoint(tmp_path / "models/public.pt", model, CFG)
    cfg = Fuse(datasets=["tiny/test"], device="cpu", extra_checkpoints={"OCCO-public": "models/public.pt"})
    folders = run_fuse(cfg, tmp_path)
    assert folders == [tmp_path / "data/fused/occo/tiny/test", tmp_path / "data/fused/OCCO-public/tiny/test"]
    for a, b in zip(*(sorted(f.iterdir()) for f in folders)):
        assert np.array_equal(load_array(a), load_array(b))


def test_fuse_stage_refuses_an_extra_checkpoint_named_like_a_published_method(tmp_path, model):
    """data/fused/<M> and data/external/<M> would both be method M: refused before anything is fused."""
    _stage_workspace(tmp_path, model)
    (tmp_path / "data/external/TarDAL/tiny/test").mkdir(parents=True)
    cfg = Fuse(datasets=["tiny/test"], device="cpu", extra_checkpoints={"TarDAL": "models/occo.pt"})
    with pytest.raises(DataError) as err:
        run_fuse(cfg, tmp_path)
    assert str(err.value).startswith("fuse.extra_checkpoints.TarDAL: ") and "rename the entry" in str(err.value)
    assert not (tmp_path / "data/fused").exists()


def test_fuse_stage_fuses_again_when_the_checkpoint_changes(tmp_path, model):
    """The stage re-fuses outputs made by another checkpoint instead of keeping them."""
    _stage_workspace(tmp_path, model)
    cfg = Fuse(datasets=["tiny/test"], device="cpu")
    (folder,) = run_fuse(cfg, tmp_path)
    first = {p.name: load_array(p) for p in folder.iterdir()}
    save_checkpoint(tmp_path / "models/occo.pt", build_model(CFG, seed=1), CFG)  # trained again
    run_fuse(cfg, tmp_path)
    assert {png_text(p, CHECKPOINT_KEY) for p in folder.iterdir()} == {sha256_file(tmp_path / "models/occo.pt")}
    assert any(not np.array_equal(first[p.name], load_array(p)) for p in folder.iterdir())
    expected = tmp_path / "expected"
    pairs = find_pairs(ir=tmp_path / "data/raw/tiny/test/ir", vi=tmp_path / "data/raw/tiny/test/vi")
    fuse_folder(build_model(CFG, seed=1).eval(), pairs, expected, checkpoint_sha256=SHA_A, device="cpu")
    for p in folder.iterdir():
        assert np.array_equal(load_array(p), load_array(expected / p.name))


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ({"datasets": ["../raw/test"]}, "'<dataset>/<split>', each one folder name"),
        ({"datasets": ["tiny/.."]}, "'<dataset>/<split>', each one folder name"),
        ({"datasets": ["tiny"]}, "'<dataset>/<split>', each one folder name"),
        ({"extra_checkpoints": {"../raw": "models/occo.pt"}}, "one folder name"),
        ({"memory_budget_gb": 0}, "auto or a positive number of GB"),
    ],
)
def test_fuse_params_that_would_leave_their_folder_are_refused(entry, problem):
    with pytest.raises(ParamsError, match=re.escape(problem)):
        validate_params({"fuse": entry})


def test_memory_budget():
    cpu = torch.device("cpu")
    assert memory_budget(2, "x", cpu) == memory_budget("2", "x", cpu) == 2 << 30
    assert 0 < memory_budget("auto", "x", cpu)
    for bad in (0, -1, "lots", True, float("inf"), None):
        with pytest.raises(DataError, match="x must be auto or a positive number"):
            memory_budget(bad, "x", cpu)


def test_official_checkpoint_over_the_budget_is_a_clear_error(tmp_path):
    """compat='official' normalises with whole-image batch statistics: tiles cannot reproduce it."""
    src = _pairs(tmp_path / "src")
    cfg = Arch(widths=[8, 8, 8, 8], heads=[1, 1, 1, 1], compat="official")
    pairs = find_pairs(ir=src / "ir", vi=src / "vi")
    with pytest.raises(DataError) as err:
        fuse_folder(
            build_model(cfg, seed=0),
            pairs,
            tmp_path / "out",
            checkpoint_sha256=SHA_A,
            device="cpu",
            memory_budget_bytes=1000,
        )
    msg = str(err.value)
    assert str(src / "ir") in msg and "compat='official'" in msg and "raise the memory budget" in msg
    assert not (tmp_path / "out").exists()


def _single_pair_args(src: Path, out: Path, ckpt: Path, *extra: str) -> list[str]:
    pair = ["--ir", str(src / "ir/a.png"), "--vi", str(src / "vi/a.png")]
    return ["fuse", *pair, "--out", str(out), "--checkpoint", str(ckpt), "--device", "cpu", *extra]


@pytest.mark.parametrize("folder", ["vi", "ir"])
def test_occo_fuse_never_replaces_a_source_image(tmp_path, model, capsys, folder):
    """`occo fuse --out <vi folder>/b.png --overwrite` used to replace the visible image b.png with a fused one;
    without --overwrite the refusal called the sources "fused images"."""
    src = _pairs(tmp_path / "src")
    ckpt = save_checkpoint(tmp_path / "m.pt", model, CFG)
    source = src / folder / "b.png"
    before = source.read_bytes()
    for extra in ((), ("--overwrite",)):
        with pytest.raises(SystemExit):
            main(_single_pair_args(src, source, ckpt, *extra))
        line = capsys.readouterr().err.strip().splitlines()[-1]
        assert line.startswith(f"occo fuse: --out {source} exists in the folder of --{folder}") and "fused" not in line
        assert "not made by occo" in line and source.read_bytes() == before


def test_refusal_of_foreign_images_does_not_call_them_fused(tmp_path, model):
    src = _pairs(tmp_path / "src")
    out = tmp_path / "out"
    save_png(out / "a.png", np.zeros((2, 2), np.uint8))  # some image, made by no occo checkpoint
    with pytest.raises(DataError) as err:
        fuse_folder(model, find_pairs(ir=src / "ir", vi=src / "vi"), out, checkpoint_sha256=SHA_A, device="cpu")
    message = str(err.value)
    assert f"{out} already holds 1 images not made by this checkpoint" in message and "fused images" not in message
    assert "a.png (not made by occo: no checkpoint recorded)" in message


def test_resume_fuses_again_a_truncated_output_whose_tag_survived(tmp_path, model, caplog):
    """The text tag sits before the pixels: a write cut short keeps it. Resume used to skip such an output."""
    src = _pairs(tmp_path / "src")
    out = tmp_path / "out"
    pairs = find_pairs(ir=src / "ir", vi=src / "vi")
    fuse_folder(model, pairs, out, checkpoint_sha256=SHA_A, device="cpu")
    whole = (out / "a.png").read_bytes()
    (out / "a.png").write_bytes(whole[: len(whole) // 2])
    assert png_text(out / "a.png", CHECKPOINT_KEY) == SHA_A
    with caplog.at_level(logging.WARNING, logger="occo.nn.fuse"):
        written = fuse_folder(model, pairs, out, checkpoint_sha256=SHA_A, device="cpu")
    assert written == [out / "a.png"] and (out / "a.png").read_bytes() == whole
    assert f"{out / 'a.png'} is cut short or damaged" in caplog.text


def test_official_test_routine_uses_each_images_statistics_and_truncates(tmp_path, model):
    """fuse.compat official is the authors' test script on any checkpoint: BatchNorm on each image's own
    statistics (never eval()), per-image min-max, the visible image's colour, np.uint8(x·255) truncation.
    Ours rounds, with the checkpoint's own rule (eval-mode BatchNorm for a fixed one)."""
    src = _pairs(tmp_path / "src")
    pairs = find_pairs(ir=src / "ir", vi=src / "vi")
    for compat in FUSE_ROUTINES:
        fuse_folder(model, pairs, tmp_path / compat, checkpoint_sha256=SHA_A, device="cpu", compat=compat)
    for p in pairs:
        ir, vi = to_float(load_array(p.ir))[None], to_float(load_array(p.vi))
        vi = rgb_to_ycbcr(vi) if vi.shape[0] == 3 else vi
        for compat, rule, level in (("fixed", "fixed", torch.round), ("official", "official", torch.trunc)):
            y = fuse_y(model, ir=ir, vi=vi[None, :1], rule=rule)[0]
            rgb = y if vi.shape[0] == 1 else ycbcr_to_rgb(torch.cat([y, vi[1:]])).clamp(0, 1)
            want = level(rgb * 255).clamp(0, 255).to(torch.uint8)
            got = torch.from_numpy(load_array(tmp_path / compat / f"{p.id}.png"))
            assert torch.equal(got, want[0] if want.shape[0] == 1 else want.permute(1, 2, 0)), (compat, p.id)
    assert not np.array_equal(load_array(tmp_path / "fixed/a.png"), load_array(tmp_path / "official/a.png"))
    assert model.training is False  # the model's mode is left as it was


def test_run_fuse_follows_the_top_level_compat():
    assert validate_params({"compat": "official"}).fuse.compat == "official"
    assert validate_params({"compat": "official", "fuse": {"compat": "fixed"}}).fuse.compat == "fixed"
