"""Sibling experiments are read from git (never through dvc), and their absence degrades to a note."""

from pathlib import Path

from occo.report.git import experiment_refs, revision
from occo.report.paper.runs import flatten, setup_differences, sibling_runs

BASE = {"omega6": 10, "train": {"epochs": 20, "crop": 256}, "report": {"ours": ["occo"]}}
FMB = {"visible": {"EN": 6.0, "n": 2}, "occo": {"EN": 7.1, "SF": 15.0, "AG": 4.6, "CC": 0.6, "SCD": None, "n": 2}}


def test_not_a_git_repository(tmp_path: Path) -> None:
    found = sibling_runs(tmp_path, "FMB", "occo", exclude=None)
    assert found.runs == [] and "no git repository" in found.notes[0]
    assert revision(tmp_path) is None and experiment_refs(tmp_path) is None


def test_repository_without_experiments(git_repo) -> None:
    head = git_repo.init(BASE)
    found = sibling_runs(git_repo.root, "FMB", "occo", exclude=None)
    assert found.runs == [] and found.notes == [
        f"no other experiment of baseline {head[:7]} in this workspace's git refs"
    ]


def test_experiments_of_the_baseline_are_read(git_repo) -> None:
    root = git_repo.root
    head = git_repo.init(BASE)
    commit = git_repo.add_experiment("omega6-100", {**BASE, "omega6": 100}, FMB)
    git_repo.add_experiment("no-metrics", {**BASE, "omega6": 1}, None)
    git_repo.add_experiment("broken", "omega6: [1,\n", FMB)
    git_repo.add_experiment("other-baseline", BASE, FMB, baseline="ab" * 20)
    git_repo.add_experiment("this-run", BASE, FMB)
    assert revision(root) == head
    refs = {r.name: r for r in experiment_refs(root)}
    assert refs["omega6-100"].commit == commit and refs["omega6-100"].baseline == head
    found = sibling_runs(root, "FMB", "occo", exclude="this-run")
    assert [r.name for r in found.runs] == ["no-metrics", "omega6-100"]
    no_metrics, omega6 = found.runs
    assert omega6.params["omega6"] == 100 and omega6.scores["EN"] == 7.1 and omega6.scores["SCD"] is None
    assert no_metrics.scores is None and not omega6.current
    assert any("broken: params.yaml unreadable" in note for note in found.notes)
    assert (root / "params.yaml").read_text().startswith("omega6: 10")  # the workspace is untouched


def test_setup_differences_cover_training_not_reporting() -> None:
    assert flatten({"a": {"b": 1, "c": [1, 2]}, "d": None}) == {"a.b": 1, "a.c": [1, 2], "d": None}
    other = {
        **BASE,
        "omega6": 100,
        "train": {"epochs": 1, "crop": 256},
        "report": {"ours": ["x"]},
        "arch": {"cross_attention": False},
    }
    assert setup_differences(other, BASE, ignore={"arch.cross_attention"}) == ["train.epochs"]
