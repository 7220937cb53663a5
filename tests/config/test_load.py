"""Reading params.yaml (occo.config.load): one line per problem, strict values, and how every stage meets a bad
file (occo.pipeline.entry.run_stage)."""

from __future__ import annotations

import copy
import importlib.util
import re
from pathlib import Path

import pytest
import yaml

from occo.config import Params, ParamsError, load_params, override, validate_params
from occo.config.load import show
from occo.data import DataError
from occo.pipeline.entry import run_stage
from support import REPO


@pytest.fixture
def repo_params() -> dict:
    return yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))


def test_repository_params_validate(repo_params):
    assert validate_params(repo_params) == load_params(REPO / "params.yaml") == Params()


def _stage_errors(tmp_path: Path, params: dict | str, stage: str = "train") -> list[str]:
    """The lines a stage ends with for this params file; its work never started."""
    path = tmp_path / "params.yaml"
    path.write_text(params if isinstance(params, str) else yaml.safe_dump(params), encoding="utf-8")
    calls = []
    with pytest.raises(SystemExit) as err:
        run_stage("doc", str(tmp_path / "stages" / f"{stage}.py"), ["--params", str(path)], lambda *a: calls.append(a))
    assert calls == []
    return str(err.value.code).splitlines()


def test_issue_cases_are_all_reported_at_once_in_one_line_each(tmp_path, repo_params):
    repo_params["omega6"] = "abc"
    repo_params["train"].update(crop=-1, checkpoint_every=0, epochs=0)
    where = f"train: {tmp_path / 'params.yaml'}"
    assert sorted(_stage_errors(tmp_path, repo_params)) == sorted(
        [
            f"{where} omega6 = 'abc': should be a valid number",
            f"{where} train.crop = -1: should be an integer of at least 16 (VGG19 halves a crop 4 times before "
            "relu5_4)",
            f"{where} train.checkpoint_every = 0: should be greater than 0",  # used to fail after the first step
            f"{where} train.epochs = 0: should be greater than 0",  # used to write an untrained model
        ]
    )


def test_every_stage_validates_the_whole_file(tmp_path, repo_params):
    """A stage reading one section still refuses a bad entry in another (the file is one experiment)."""
    repo_params["segment"]["device"] = "gpu"
    for stage in ("download", "headline"):
        assert _stage_errors(tmp_path, repo_params, stage) == [
            f"{stage}: {tmp_path / 'params.yaml'} segment.device = 'gpu': should be auto, cpu, cuda or cuda:N"
        ]


@pytest.mark.parametrize(
    ("key", "value", "allowed"),
    [
        ("omega3", 1.5, "should be less than or equal to 1"),
        ("omega1", -0.5, "should be greater than or equal to 0"),
        ("omega6", float("nan"), "should be a finite number"),
        ("arch.compat", "offical", "should be 'fixed' or 'official'"),
        ("arch.cross_attention", "no", "should be true or false"),
        ("loss.cx_variant", "cosine", "should be 'bounded', 'literal' or 'mechrez'"),
        ("ablation.feature_space", "model6", "should be 'occo', 'model1', 'model2', 'model3', 'model4' or 'model5'"),
        ("masks.detector", "yolo", "should be 'groundingdino' or 'transformers'"),
        ("masks.sam_model", "vit_g", "should be 'vit_h', 'vit_l' or 'vit_b'"),
        ("masks.box_threshold", 2, "should be less than or equal to 1"),
        ("masks.batch_size", "abc", "should be auto or a positive integer"),
        ("evaluate.batch_size", 0, "should be auto or a positive integer"),
        ("evaluate.device", "cuda:x", "should be auto, cpu, cuda or cuda:N"),
        ("fuse.datasets", ["FMB/test", "TNO"], "should be '<dataset>/<split>', each one folder name"),
        ("train.epochs", None, "should be a valid integer"),
        ("train.epochs", 2.5, "should be a valid integer"),
        ("train.epochs", True, "should be a valid integer"),
        ("train.epochs", "3", "should be a valid integer"),
        ("omega6", True, "should be a valid number"),
        ("omega6", "1", "should be a valid number"),
        ("train.max_steps", 0, "should be greater than 0"),
        ("train.precision", "fp16", "should be 'auto', 'bf16' or 'fp32'"),
        ("train.flip", "yes", "should be auto, true or false"),
        ("compat", "paper", "should be 'fixed' or 'official'"),
        ("detect.model", "yolov8s", "should be 'yolov5n', 'yolov5s', 'yolov5m', 'yolov5l' or 'yolov5x'"),
        ("segment.crop", [64, 64, 3], "should be null, a positive integer or [height, width]"),
        ("segment.encoder_weights", "coco", "should be 'imagenet'"),
        (
            "report.fusion_metrics",
            ["EN", "XYZ"],
            "should be all or a list of EN, SF, AG, CC, SD, MI, VIF, Qabf, SSIM, SCD, PSNR",
        ),
    ],
)
def test_one_line_names_key_value_and_what_is_allowed(key, value, allowed, repo_params):
    section, _, name = key.rpartition(".")
    (repo_params[section] if section else repo_params)[name] = value
    with pytest.raises(ParamsError) as err:
        validate_params(repo_params)
    [line] = err.value.problems
    if key == "fuse.datasets":  # the entry, by index
        key, value = "fuse.datasets[1]", "TNO"
    assert line == f"params.yaml {key} = {value!r}: {allowed}"


def test_unknown_keys_are_named_with_the_known_ones(repo_params):
    repo_params["train"]["epoch"] = 3
    repo_params["download"]["datasets"]["TNO"]["splits"] = ["test"]
    repo_params["evalute"] = {}
    with pytest.raises(ParamsError) as err:
        validate_params(repo_params, "p.yaml")
    known = sorted(repo_params["train"])
    known.remove("epoch")
    assert sorted(err.value.problems) == sorted(
        [
            f"p.yaml train.epoch = 3: unknown key; known keys: {', '.join(known)}",
            "p.yaml download.datasets.TNO.splits = ['test']: unknown key; known keys: limit, optional, source, split",
            "p.yaml evalute = {}: unknown key; known keys: ablation, alpha, arch, beta, compat, detect, download, "
            "evaluate, fuse, loss, masks, omega1, omega2, omega3, omega4, omega5, omega6, report, segment, train",
        ]
    )


def test_required_entry_keys(repo_params):
    del repo_params["detect"]["datasets"]["M3FD"]["format"]
    del repo_params["download"]["datasets"]["FMB"]["source"]
    with pytest.raises(ParamsError) as err:
        validate_params(repo_params)
    assert sorted(err.value.problems) == [
        "params.yaml detect.datasets.M3FD.format: missing (required)",
        "params.yaml download.datasets.FMB.source: missing (required)",
    ]


def test_partial_files_take_the_defaults_and_stages_get_their_section_typed(tmp_path):
    """Absent keys take the models' defaults; `1e-4` is a number, as DVC (YAML 1.2) reads it."""
    path = tmp_path / "params.yaml"
    path.write_text("omega4: 10\ntrain: {epochs: 2, lr: 1e-4}\n", encoding="utf-8")
    got = []
    run_stage(
        "doc",
        str(tmp_path / "stages/train.py"),
        ["--params", str(path)],
        lambda p, r, a: got.append(p),
        section="train",
    )
    assert got == [Params().train.model_copy(update={"epochs": 2, "lr": 1e-4})]
    assert load_params(path).omega4 == 10.0 and load_params(path).omega6 == Params().omega6


def test_override_sets_dotted_keys_and_validates_again():
    cfg = override(Params(), {"train.crop": 64, "omega6": 100, "masks.import": {"FMB": {"train": "x"}}})
    assert (cfg.train.crop, cfg.omega6, cfg.masks.import_) == (64, 100.0, {"FMB": {"train": "x"}})
    with pytest.raises(ParamsError, match=r"override train\.crop = 0: should be an integer of at least 16"):
        override(cfg, {"train.crop": 0})


def test_shown_values_are_bounded():
    nested: list = []
    for _ in range(50):
        nested = [nested, nested]
    assert len(show(nested)) <= 80 and len(show("x" * 10_000)) <= 80


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("train: {epochs: 2\n", r"not valid YAML \(line 2, column 1\): expected ',' or '}', but got '<stream end>'"),
        ("- omega6\n", r"should be a mapping of sections, got \['omega6'\]"),
    ],
)
def test_unreadable_file_is_one_line(tmp_path, text, problem):
    [line] = _stage_errors(tmp_path, text)
    assert re.fullmatch(f"train: {re.escape(str(tmp_path / 'params.yaml'))}:? {problem}", line), line


def test_missing_file_is_one_line(tmp_path):
    with pytest.raises(SystemExit) as err:
        run_stage("doc", str(tmp_path / "stages/train.py"), ["--params", str(tmp_path / "nope.yaml")], lambda *a: None)
    assert err.value.code == f"train: {tmp_path / 'nope.yaml'}: cannot read (No such file or directory)"


@pytest.mark.parametrize(
    ("error", "line"),
    [
        (DataError("data/raw/x: no pairs"), "data/raw/x: no pairs"),
        (
            ValueError("train.batch_size=10 must be a positive multiple of 4"),
            "train.batch_size=10 must be a positive multiple of 4",
        ),
        (
            FileNotFoundError(2, "No such file or directory", "data/raw/INDEX.json"),
            "[Errno 2] No such file or directory: 'data/raw/INDEX.json'",
        ),
    ],
)
def test_bad_input_met_while_running_is_one_line(tmp_path, error, line):
    path = tmp_path / "params.yaml"
    path.write_text("{}\n", encoding="utf-8")

    def run(*_):
        raise error

    with pytest.raises(SystemExit) as err:
        run_stage("doc", str(tmp_path / "stages/evaluate.py"), ["--params", str(path)], run)
    assert err.value.code == f"evaluate: {line}"


def test_a_bug_keeps_its_traceback(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("{}\n", encoding="utf-8")

    def run(*_):
        raise RuntimeError("a bug")

    with pytest.raises(RuntimeError, match="a bug"):
        run_stage("doc", str(tmp_path / "stages/evaluate.py"), ["--params", str(path)], run)


def _load_stage(name: str):
    spec = importlib.util.spec_from_file_location(f"occo_test_params_stage_{name}", REPO / "stages" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_train_stage_refuses_zero_epochs_before_training(tmp_path, repo_params):
    """`train.epochs: 0` used to write an untrained models/occo.pt; a zero-epoch run has nothing to train."""
    params = copy.deepcopy(repo_params)
    params["train"]["epochs"] = 0
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params), encoding="utf-8")
    with pytest.raises(SystemExit) as err:
        _load_stage("train").main(["--params", str(path), "--root", str(tmp_path)])
    assert err.value.code == f"train: {path} train.epochs = 0: should be greater than 0"
    assert not (tmp_path / "models").exists()


def test_train_stage_device_flag(tmp_path, repo_params, monkeypatch, capsys):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(repo_params), encoding="utf-8")
    with pytest.raises(SystemExit) as err:
        _load_stage("train").main(["--params", str(path), "--root", str(tmp_path), "--device", "cuda"])
    assert err.value.code == 2
    assert (
        capsys.readouterr()
        .err.strip()
        .splitlines()[-1]
        .endswith("error: argument --device: 'cuda': CUDA is not available on this machine; use auto or cpu")
    )


# ----------------------------------------------------------------------------- second reliability round


@pytest.mark.parametrize(
    ("key", "value", "allowed"),
    [
        ("download.synthetic.n_train", "8", "should be a valid integer"),
        ("download.datasets.TNO.limit", "3", "should be a valid integer"),
        ("download.synthetic.height", True, "should be a valid integer"),
        ("train.epochs", True, "should be a valid integer"),
        ("omega6", True, "should be a valid number"),
        ("detect.warmup_epochs", "3", "should be a valid number"),
        ("segment.lr", False, "should be a valid number"),
        ("masks.max_boxes", 1.0, "should be a valid integer"),
    ],
)
def test_quoted_numbers_and_booleans_are_never_numbers(tmp_path, repo_params, key, value, allowed):
    """Strings and booleans are never coerced into numbers: the stage stops before its work, one line."""
    *parents, name = key.split(".")
    node = repo_params
    for part in parents:
        node = node[part]
    node[name] = value
    assert _stage_errors(tmp_path, repo_params, "download") == [
        f"download: {tmp_path / 'params.yaml'} {key} = {value!r}: {allowed}"
    ]


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("train.dataset", "../masks/synthetic"),
        ("train.dataset", "/abs/folder"),
        ("train.split", ".."),
        ("detect.datasets.MSRS.labels", "../../../masks"),
        ("detect.datasets.MSRS.labels", "/etc"),
    ],
)
def test_params_that_become_paths_stay_inside_their_folder(repo_params, key, value):
    *parents, name = key.split(".")
    node = repo_params
    for part in parents:
        node = node[part]
    node[name] = value
    with pytest.raises(ParamsError) as err:
        validate_params(repo_params)
    [line] = err.value.problems
    assert line.startswith(f"params.yaml {key} = {value!r}: should be") and "folder name" in line


def test_labels_may_name_a_sub_folder(repo_params):
    assert validate_params(repo_params).detect.datasets["MSRS"].labels == "det/fusion"


@pytest.mark.parametrize(
    ("changes", "param", "name"),
    [
        ({"fuse.extra_checkpoints": {"visible": "other.pt"}}, "fuse.extra_checkpoints", "visible"),
        ({"fuse.extra_checkpoints": {"occo": "other.pt"}}, "fuse.extra_checkpoints", "occo"),
        ({"evaluate.external": {"max": {"TNO": "x"}}}, "evaluate.external", "max"),
        (
            {"fuse.extra_checkpoints": {"TarDAL": "t.pt"}, "evaluate.external": {"TarDAL": {"TNO": "x"}}},
            "evaluate.external",
            "TarDAL",
        ),
    ],
)
def test_method_names_are_unique_across_ours_baselines_and_external(changes, param, name):
    """`fuse.extra_checkpoints: {visible: other.pt}` used to replace the `visible` row of metrics/fusion."""
    with pytest.raises(ParamsError) as err:
        override(Params(), changes)
    [line] = err.value.problems
    assert line.startswith(f"override {param}.{name}: the method name {name!r} is ") and "rename" in line


def test_train_crop_below_vggs_poolings_is_refused(repo_params):
    """`train.crop: 8` used to fail at step 0 inside VGG19's fifth pooling."""
    repo_params["train"]["crop"] = 15
    with pytest.raises(ParamsError) as err:
        validate_params(repo_params)
    assert err.value.problems == [
        "params.yaml train.crop = 15: should be an integer of at least 16 (VGG19 halves a crop 4 times before relu5_4)"
    ]
    repo_params["train"]["crop"] = 16
    assert validate_params(repo_params).train.crop == 16


def _laughs(levels: int = 9) -> str:
    """A billion-laughs document: each level repeats the one before nine times; the last is report.gallery.ids."""
    lines = ["anchors:", '  l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"  l{k}: &l{k} [{', '.join([f'*l{k - 1}'] * 9)}]" for k in range(1, levels)]
    return "\n".join([*lines, "report:", "  gallery:", f"    ids: *l{levels - 1}", ""])


def test_yaml_aliases_are_expanded_with_a_bound(tmp_path):
    """Nine levels of aliases (9**9 values) are refused in one line naming the file, before any value is read."""
    [line] = _stage_errors(tmp_path, _laughs())
    assert line == (
        f"train: {tmp_path / 'params.yaml'}: not valid YAML (line 1, column 1): its aliases expand to more than "
        "100,000 values (a 'billion laughs' file?): write the values out"
    )


def test_recursive_and_small_aliases(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("train: &t {epochs: 3}\nsegment: {epochs: 4}\nx: &r [*r]\n", encoding="utf-8")
    with pytest.raises(ParamsError, match="aliases expand to more than"):
        load_params(path)
    path.write_text("lr: &lr 0.001\ntrain: {lr: *lr}\nsegment: {lr: *lr}\n", encoding="utf-8")
    with pytest.raises(ParamsError, match="unknown key"):  # a few aliases are read as usual
        load_params(path)
    path.write_text("omega4: &w 3\nomega5: *w\n", encoding="utf-8")
    assert load_params(path).omega5 == 3.0


def test_params_changed_while_a_stage_ran_fail_it(tmp_path, repo_params):
    """A second `dvc exp run -S omega6=100` in the same workspace writes params.yaml while the first one's stage
    runs; DVC would then record the new value beside outputs made from the old one. The stage fails instead."""
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(repo_params), encoding="utf-8")

    def second_run_writes_params(cfg, root, args):
        path.write_text(yaml.safe_dump({**repo_params, "omega6": 100}), encoding="utf-8")

    with pytest.raises(SystemExit) as err:
        run_stage("doc", str(tmp_path / "stages/train.py"), ["--params", str(path)], second_run_writes_params)
    assert err.value.code == (
        f"train: {path} changed while this stage ran (another `dvc exp run` in this workspace?): its outputs were "
        "made from the previous values, which DVC would not record beside them; run again, one experiment at a "
        "time, or queue them (dvc exp run --queue -S ...; dvc queue start)"
    )


def test_compat_is_one_switch_that_each_section_may_override():
    """The top-level compat moves every section whose own compat is null (params.yaml's default); a section
    that names its own keeps it, through overrides of the top-level key in either direction."""
    cfg = load_params(REPO / "params.yaml")
    assert (cfg.compat, cfg.arch.compat, cfg.loss.compat, cfg.train.compat, cfg.fuse.compat) == ("fixed",) * 5
    official = override(cfg, {"compat": "official"})
    assert {official.arch.compat, official.loss.compat, official.train.compat, official.fuse.compat} == {"official"}
    mixed = override(official, {"loss.compat": "fixed"})
    assert (mixed.loss.compat, mixed.arch.compat) == ("fixed", "official")
    back = override(mixed, {"compat": "fixed"})
    assert (back.loss.compat, back.arch.compat, back.train.compat) == ("fixed", "fixed", "fixed")
    assert override(back, {"compat": "official"}).loss.compat == "fixed"  # named its own: stays
    alone = override(cfg, {"arch.compat": "official"})  # the section switch alone still works
    assert (alone.arch.compat, alone.loss.compat) == ("official", "fixed")
    with pytest.raises(ParamsError, match="loss = .*compat official computes the authors' code"):
        override(cfg, {"compat": "official", "loss.cx_variant": "literal"})
