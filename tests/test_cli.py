"""The `occo` command line (occo.cli) and its installed console script."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from occo.cli import build_parser, main
from occo.data import find_pairs, save_png
from occo.metrics.evaluate import BASELINES, evaluate_pairs, summarise
from occo.metrics.suite import METRICS

H, W = 40, 48


def _image(rng: np.random.Generator) -> np.ndarray:
    y, x = np.mgrid[0:H, 0:W]
    base = 120 + 60 * np.sin(x / rng.uniform(3, 7)) * np.cos(y / rng.uniform(3, 7))
    return np.clip(np.round(base + rng.normal(0, 10, (H, W))), 0, 255).astype(np.uint8)


@pytest.fixture
def folders(tmp_path: Path) -> Path:
    """tmp/set/{ir,vi,MyMethod}/{01,02,03}.png (the fused folder's name is the method name)."""
    rng = np.random.default_rng(0)
    root = tmp_path / "set"
    for id_ in ("01", "02", "03"):
        ir, vi = _image(rng), _image(rng)
        save_png(root / "ir" / f"{id_}.png", ir)
        save_png(root / "vi" / f"{id_}.png", vi)
        save_png(root / "MyMethod" / f"{id_}.png", ((ir.astype(int) + vi) // 2).astype(np.uint8))
    return root


def _evaluate_args(root: Path, *extra: str) -> list[str]:
    return ["evaluate", "--ir", str(root / "ir"), "--vi", str(root / "vi"), "--device", "cpu", *extra]


def test_evaluate_prints_table_and_writes_json_and_csv(folders, tmp_path, capsys):
    out = tmp_path / "results" / "x.json"
    main(_evaluate_args(folders, "--fused", str(folders / "MyMethod"), "--baselines", "--out", str(out)))
    printed = capsys.readouterr().out
    methods = [*BASELINES, "MyMethod"]
    assert "| Method | n | " + " | ".join(METRICS) + " |" in printed
    assert "3 pairs, matlab" in printed
    for method in methods:
        assert f"| {method} | 3 |" in printed

    summary = json.loads(out.read_text(encoding="utf-8"))
    assert list(summary) == methods
    for s in summary.values():
        assert set(s) == set(METRICS) | {"n"} and s["n"] == 3
        assert all(s[k] is None or isinstance(s[k], float) for k in METRICS)
    assert summary["visible"]["SCD"] is None

    per_image = pd.read_csv(out.with_suffix(".csv"), dtype={"id": str})
    assert list(per_image.columns) == ["method", "id", *METRICS]
    assert list(zip(per_image["method"], per_image["id"])) == [(m, i) for m in methods for i in ("01", "02", "03")]
    # The files hold what the library computes.
    pairs = find_pairs(ir=folders / "ir", vi=folders / "vi")
    frame = evaluate_pairs(pairs, {"MyMethod": folders / "MyMethod"}, device="cpu")
    want = summarise(frame.to_dict("records"))["MyMethod"]
    for k in METRICS:
        assert summary["MyMethod"][k] == pytest.approx(want[k], rel=1e-12)
        assert per_image.loc[per_image["method"] == "MyMethod", k].mean() == pytest.approx(want[k], rel=1e-9)
    # The CSV holds every per-image value exactly (NaN as NaN), as the library's frame.
    pd.testing.assert_frame_equal(per_image[per_image["method"] == "MyMethod"].reset_index(drop=True), frame)


def test_evaluate_variant_and_baseline_selection(folders, tmp_path, capsys):
    out = tmp_path / "y.json"
    main(_evaluate_args(folders, "--baselines", "max", "--variant", "cddfuse", "--out", str(out)))
    assert "cddfuse" in capsys.readouterr().out
    summary = json.loads(out.read_text(encoding="utf-8"))
    assert list(summary) == ["max"]
    pairs = find_pairs(ir=folders / "ir", vi=folders / "vi")
    want = summarise(evaluate_pairs(pairs, {"max": None}, variant="cddfuse", device="cpu").to_dict("records"))["max"]
    assert summary["max"] == pytest.approx(want, rel=1e-12)


def test_evaluate_without_out_writes_nothing(folders, tmp_path, capsys):
    before = sorted(p for p in tmp_path.rglob("*"))
    main(_evaluate_args(folders, "--baselines", "mean"))
    assert "| mean | 3 |" in capsys.readouterr().out
    assert sorted(p for p in tmp_path.rglob("*")) == before


def _one_line_error(argv: list[str], capsys: pytest.CaptureFixture) -> str:
    """The error line of a command stopped by bad input: exit status 2, ``occo <command>: ...`` on stderr."""
    with pytest.raises(SystemExit) as err:
        main(argv)
    assert err.value.code == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]  # after any progress bar
    assert line == str(err.value) and line.startswith(f"occo {argv[0]}: ")
    return line


def test_missing_partner_is_a_one_line_error(folders, capsys):
    (folders / "vi" / "02.png").unlink()
    msg = _one_line_error(_evaluate_args(folders, "--baselines", "mean"), capsys)
    assert "02.png" in msg and str(folders / "ir") in msg


def test_wrong_size_fused_image_is_a_one_line_error(folders, capsys):
    bad = folders / "MyMethod" / "03.png"
    save_png(bad, np.zeros((H + 1, W), np.uint8))
    msg = _one_line_error(_evaluate_args(folders, "--fused", str(folders / "MyMethod")), capsys)
    assert str(bad) in msg


def _usage_error(argv: list[str], capsys: pytest.CaptureFixture) -> str:
    """argparse's error line for ``argv`` (exit status 2, nothing run)."""
    with pytest.raises(SystemExit) as err:
        main(argv)
    assert err.value.code == 2
    return capsys.readouterr().err.strip().splitlines()[-1]


def test_out_must_be_json(folders, tmp_path, capsys):
    """The CSV goes beside the JSON, so an --out ending in .csv would overwrite itself."""
    msg = _usage_error(_evaluate_args(folders, "--baselines", "mean", "--out", str(tmp_path / "x.csv")), capsys)
    assert "argument --out" in msg and ".json" in msg
    assert not (tmp_path / "x.csv").exists()


def test_out_pointing_at_a_folder_is_refused_before_scoring(folders, tmp_path, capsys):
    for folder in (tmp_path / "done.json", tmp_path / "done.csv"):  # the JSON, or the CSV beside it
        folder.mkdir()
        msg = _usage_error(_evaluate_args(folders, "--baselines", "mean", "--out", str(tmp_path / "done.json")), capsys)
        assert f"argument --out: '{tmp_path / 'done.json'}': {folder} is a folder" in msg
        folder.rmdir()


@pytest.mark.parametrize("command", ["evaluate", "fuse"])
@pytest.mark.parametrize(
    ("flag", "value", "allowed"),
    [
        ("--batch-size", "abc", "should be auto or a positive integer"),
        ("--batch-size", "0", "should be auto or a positive integer"),
        ("--device", "gpu", "should be auto, cpu, cuda or cuda:N"),
    ],
)
def test_bad_flags_are_usage_errors_naming_flag_value_and_allowed(tmp_path, capsys, command, flag, value, allowed):
    argv = [command, "--ir", "a", "--vi", "b", flag, value]
    if command == "fuse":
        argv += ["--out", str(tmp_path / "out"), "--checkpoint", "m.pt"]
    assert _usage_error(argv, capsys) == f"occo {command}: error: argument {flag}: {value!r}: {allowed}"


@pytest.mark.parametrize(("value", "allowed"), [("0", "greater than 0"), ("1e6", "should be a valid integer")])
def test_bad_pixel_cap_is_a_usage_error(tmp_path, capsys, value, allowed):
    argv = ["fuse", "--ir", "a", "--vi", "b", "--out", str(tmp_path / "out"), "--checkpoint", "m.pt"]
    message = _usage_error([*argv, "--max-pixels", value], capsys)
    assert f"argument --max-pixels: {value!r}: " in message and allowed in message


def test_cuda_without_cuda_names_the_flag(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    argv = ["fuse", "--ir", "a", "--vi", "b", "--out", str(tmp_path), "--checkpoint", "m.pt", "--device", "cuda"]
    assert _usage_error(argv, capsys) == (
        "occo fuse: error: argument --device: 'cuda': CUDA is not available on this machine; use auto or cpu"
    )


def test_flags_parse_to_what_the_library_takes():
    args = build_parser().parse_args(["evaluate", "--ir", "a", "--vi", "b", "--batch-size", "4", "--device", "cpu"])
    assert (args.batch_size, args.device) == (4, "cpu")
    args = build_parser().parse_args(["fuse", "--ir", "a", "--vi", "b", "--out", "o", "--checkpoint", "m.pt"])
    assert (args.batch_size, args.device) == ("auto", "auto")


def test_fuse_out_with_another_image_suffix_is_refused(tmp_path, capsys):
    """`--out x.jpg` would otherwise become a folder holding <id>.png."""
    for name in ("x.jpg", "x.TIF"):
        argv = ["fuse", "--ir", "a.png", "--vi", "b.png", "--out", str(tmp_path / name), "--checkpoint", "m.pt"]
        msg = _usage_error(argv, capsys)
        assert f"argument --out: '{tmp_path / name}': fused images are PNGs" in msg
        assert not (tmp_path / name).exists()


def test_checkpoint_with_zero_heads_is_one_line_naming_the_file(folders, tmp_path, capsys):
    """A checkpoint's embedded arch config is validated as the params are (heads 0 would divide by zero)."""
    import torch

    from occo.config import Arch
    from occo.nn import build_model, save_checkpoint

    cfg = Arch(widths=[8, 8, 8, 8], heads=[1, 1, 1, 1])
    payload = torch.load(save_checkpoint(tmp_path / "m.pt", build_model(cfg), cfg), weights_only=True)
    bad = tmp_path / "bad.pt"
    for heads in (0, [1, 0, 1, 1]):
        torch.save({**payload, "arch": {**payload["arch"], "heads": heads}}, bad)
        argv = [
            "fuse",
            "--ir",
            str(folders / "ir"),
            "--vi",
            str(folders / "vi"),
            "--out",
            str(tmp_path / "out"),
            "--checkpoint",
            str(bad),
            "--device",
            "cpu",
        ]
        line = _one_line_error(argv, capsys)
        assert line.startswith(f"occo fuse: cannot load {bad}") and "arch.heads = " in line
        assert "should be a list of positive integers" in line
    assert not (tmp_path / "out").exists()


def test_baselines_only_when_asked(folders, tmp_path, capsys):
    """Without --baselines only the fused folders are scored; --baselines alone adds all four."""
    out = tmp_path / "x.json"
    main(_evaluate_args(folders, "--fused", str(folders / "MyMethod"), "--out", str(out)))
    assert list(json.loads(out.read_text(encoding="utf-8"))) == ["MyMethod"]
    assert "| visible |" not in capsys.readouterr().out
    main(_evaluate_args(folders, "--fused", str(folders / "MyMethod"), "--baselines", "--out", str(out)))
    assert list(json.loads(out.read_text(encoding="utf-8"))) == [*BASELINES, "MyMethod"]


def test_nothing_to_score_is_an_error(folders):
    with pytest.raises(SystemExit) as err:
        main(_evaluate_args(folders))
    assert "nothing to score" in str(err.value) and "--fused" in str(err.value)


@pytest.mark.parametrize("flag", ["--ir", "--vi", "--fused"])
def test_a_file_where_a_folder_is_expected_says_so(folders, flag):
    """`--ir <file>` names the file that exists, not a missing folder."""
    image = folders / ("ir" if flag == "--ir" else "vi" if flag == "--vi" else "MyMethod") / "01.png"
    args = _evaluate_args(folders, "--fused", str(folders / "MyMethod"))
    args[args.index(flag) + 1] = str(image)
    with pytest.raises(SystemExit) as err:
        main(args)
    message = str(err.value)
    assert message.startswith(f"occo evaluate: {flag} takes a folder") and message.endswith(f"file {image}")


def test_two_methods_with_one_name(folders, tmp_path):
    other = tmp_path / "elsewhere" / "MyMethod"
    other.mkdir(parents=True)
    with pytest.raises(SystemExit, match="MyMethod"):
        main(_evaluate_args(folders, "--fused", str(folders / "MyMethod"), "--fused", str(other)))
    # A folder named like a requested baseline collides with it.
    with pytest.raises(SystemExit, match="'mean'"):
        main(_evaluate_args(folders, "--baselines", "--fused", str(tmp_path / "mean")))


def test_parser_rejects_unknown_choices(capsys):
    with pytest.raises(SystemExit) as err:
        build_parser().parse_args(["evaluate", "--ir", "a", "--vi", "b", "--variant", "vifb"])
    assert err.value.code == 2
    assert "vifb" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        build_parser().parse_args(["evaluate", "--ir", "a", "--vi", "b", "--baselines", "median"])
    with pytest.raises(SystemExit):
        build_parser().parse_args([])  # a command is required


def test_installed_console_script(folders, tmp_path):
    script = Path(sys.executable).parent / "occo"
    if not script.is_file():
        pytest.skip(f"console script not installed at {script}")
    out = tmp_path / "z.json"
    env = {**os.environ, "PATH": f"{script.parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc = subprocess.run(
        [str(script), *_evaluate_args(folders, "--baselines", "mean", "--out", str(out))],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    assert "| mean | 3 |" in proc.stdout
    assert list(json.loads(out.read_text(encoding="utf-8"))) == ["mean"]

    bad = subprocess.run(
        [str(script), "evaluate", "--ir", str(tmp_path / "none"), "--vi", str(folders / "vi"), "--baselines"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert bad.returncode == 2
    assert bad.stderr.startswith("occo evaluate: ") and str(tmp_path / "none") in bad.stderr


def test_evaluate_command_leaves_pandas_unimported(folders, tmp_path):
    """`occo evaluate` is timed against per-image evaluators as a whole command: importing pandas
    (0.2 s, a twentieth of scoring TNO-42) is for the stages only."""
    code = (
        "import sys; from occo.cli import main; "
        f"main(['evaluate', '--ir', {str(folders / 'ir')!r}, '--vi', {str(folders / 'vi')!r}, "
        f"'--baselines', 'mean', '--out', {str(tmp_path / 'e.json')!r}]); "
        "assert 'pandas' not in sys.modules, 'pandas was imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    assert pd.read_csv(tmp_path / "e.csv")["method"].tolist() == ["mean"] * 3


def test_python_m_occo_cli_runs_the_command(folders):
    done = subprocess.run([sys.executable, "-m", "occo.cli", "evaluate", "--help"], capture_output=True, text=True)
    assert done.returncode == 0 and "--fused" in done.stdout


def test_commands_leave_the_collector_alone_until_exit(folders):
    main(_evaluate_args(folders, "--baselines", "mean"))
    assert gc.isenabled() and gc.get_freeze_count() == 0


def _fuse_argv(folders: Path, out: Path, checkpoint: Path, *extra: str) -> list[str]:
    ir, vi = str(folders / "ir"), str(folders / "vi")
    return [
        "fuse",
        "--ir",
        ir,
        "--vi",
        vi,
        "--out",
        str(out),
        "--checkpoint",
        str(checkpoint),
        "--device",
        "cpu",
        *extra,
    ]


def test_checkpoint_with_nan_weights_is_refused_in_one_line(folders, tmp_path, capsys):
    """A NaN-weight checkpoint used to fuse silently into all-black images (exit 0)."""
    import torch

    from occo.config import Arch
    from occo.nn import build_model, save_checkpoint

    cfg = Arch(widths=[8, 8, 8, 8], heads=[1, 1, 1, 1])
    payload = torch.load(save_checkpoint(tmp_path / "m.pt", build_model(cfg), cfg), weights_only=True)
    name = next(k for k, v in payload["state_dict"].items() if v.is_floating_point())
    payload["state_dict"][name] = torch.full_like(payload["state_dict"][name], float("nan"))
    torch.save(payload, tmp_path / "nan.pt")
    line = _one_line_error(_fuse_argv(folders, tmp_path / "out", tmp_path / "nan.pt"), capsys)
    assert line.startswith(f"occo fuse: {tmp_path / 'nan.pt'} holds NaN/inf weights ({name}")
    assert not (tmp_path / "out").exists()


def test_checkpoint_of_another_architecture_is_one_line(folders, tmp_path, capsys):
    """Weights that do not fit the checkpoint's arch config (a hand-edited or foreign file) used to end in a
    135-line load_state_dict message."""
    import torch

    from occo.config import Arch, as_dict
    from occo.nn import build_model, save_checkpoint

    cfg = Arch(widths=[8, 8, 8, 8], heads=[1, 1, 1, 1])
    payload = torch.load(save_checkpoint(tmp_path / "m.pt", build_model(cfg), cfg), weights_only=True)
    wider = Arch(widths=[16, 16, 16, 16], heads=[1, 1, 1, 1])
    payload["state_dict"] = build_model(wider).state_dict()  # weights of another width under the small config
    payload["state_dict"]["extra.weight"] = torch.zeros(1)
    del payload["state_dict"]["head.weight"]
    torch.save({**payload, "arch": as_dict(cfg)}, tmp_path / "other.pt")
    line = _one_line_error(_fuse_argv(folders, tmp_path / "out", tmp_path / "other.pt"), capsys)
    assert line.startswith(f"occo fuse: cannot load {tmp_path / 'other.pt'}: its weights do not fit its arch config")
    assert "1 missing (head.weight)" in line and "1 unexpected (extra.weight)" in line and "wrong shape" in line
    assert len(line) < 600


def test_evaluate_on_a_one_pixel_wide_image_is_one_line(tmp_path, capsys):
    """The gradient metrics need two pixels per side; a 20x1 image used to end in a torch traceback."""
    for kind in ("ir", "vi", "F"):
        save_png(tmp_path / kind / "a.png", np.full((20, 1), 100, np.uint8))
    argv = ["evaluate", "--ir", str(tmp_path / "ir"), "--vi", str(tmp_path / "vi"), "--fused", str(tmp_path / "F")]
    line = _one_line_error([*argv, "--device", "cpu"], capsys)
    assert line == f"occo evaluate: {tmp_path / 'ir' / 'a.png'} is 20x1: the metrics need at least 2 pixels per side"
