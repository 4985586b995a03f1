"""The DVC workflows a team relies on, each on a private copy of a reproduced tiny project:
run-cache, experiments and queued sweeps, diffs between commits, interrupted runs, and a stage of
one's own that segments new images."""

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from dvc_project import bring_own_data, copy_project

pytestmark = pytest.mark.e2e


@pytest.fixture
def project(reproduced_project, tmp_path):
    return copy_project(reproduced_project, tmp_path)


def cache_files(project) -> set[str]:
    cache = project.root / ".dvc" / "cache"
    return {str(path.relative_to(cache)) for path in cache.rglob("*") if path.is_file()}


def test_changing_a_param_back_restores_training_from_the_run_cache(project):
    trained = project.lock()["stages"]["train"]["outs"]
    project.set_params({"train": {"epochs": 3}})
    assert "train" in project.repro()
    project.set_params({"train": {"epochs": 2}})
    output = project.dvc("repro").stdout
    assert "Running stage 'train'" not in output, "the training command ran again"
    assert "Stage 'train' is cached - skipping run, checking out outputs" in output
    assert project.lock()["stages"]["train"]["outs"] == trained
    assert project.stale_stages() == set()


def test_synthesize_runs_only_while_the_data_params_point_at_its_output(project):
    project.set_params({"synthesize": {"num_images": 9}})
    assert "synthesize" in project.stale_stages()
    bring_own_data(project)  # runs `dvc repro` with data.images/masks pointed at data/own
    log = project.git("log", "-1", "--format=%s").stdout
    assert "own data" in log
    assert "Running stage" not in project.dvc("repro").stdout
    # --dry walks the same graph as a real --force run, without its minute of work
    assert project.repro("--force", "--dry") == {"prepare", "plan", "extract", "augment", "train", "predict",
                                                  "measure", "evaluate"}
    project.dvc("exp", "run", "-S", "predict.threshold=0.4")
    assert not (project.root / "data/synthetic/images/synth_008.png").exists(), "synthesize ran"

    project.set_params({"data": {"images": "data/synthetic/images", "masks": "data/synthetic/labels"}})
    assert project.repro("prepare") == {"synthesize", "prepare"}  # pointed back: it is prepare's input again
    assert (project.root / "data/synthetic/images/synth_008.png").exists()


SEGMENT = ["stage", "add", "-n", "segment", "-d", "models", "-d", "data/predictions/postprocess.json",
           "-d", "data/experiment", "-p", "predict,measure", "-o", "data/segmented",
           "unetseg", "predict", "--input", "data/experiment", "--output", "data/segmented"]  # as README.md gives it


def test_a_folder_of_new_images_is_segmented_by_a_stage_of_its_own(project):
    (project.root / "data/experiment").mkdir()
    for name in ("synth_000.png", "synth_001.png"):
        shutil.copy(project.root / "data/synthetic/images" / name, project.root / "data/experiment" / name)
    project.dvc("add", "data/experiment")
    project.dvc(*SEGMENT)
    assert project.repro() == {"segment"}
    with open(project.root / "data/segmented/summary.csv", newline="") as handle:
        assert [row["image"] for row in csv.DictReader(handle)] == ["synth_000", "synth_001"]
    assert project.repro() == set()
    project.set_params({"measure": {"pixel_size": 0.5}})
    assert project.repro() == {"measure", "segment"}
    with open(project.root / "data/segmented/summary.csv", newline="") as handle:
        assert {row["pixel_size_um"] for row in csv.DictReader(handle)} == {"0.5"}


def exp_rows(project) -> list[dict]:
    """`dvc exp show --json`, flattened: one {name, params, metrics} per experiment."""
    rows = []
    for commit in json.loads(project.dvc("exp", "show", "--json").stdout):
        for experiment in commit.get("experiments") or []:
            for revision in experiment["revs"]:
                data = revision["data"]
                rows.append({"name": revision.get("name"),
                             "params": data["params"]["params.yaml"]["data"],
                             "metrics": {path: value["data"] for path, value in data["metrics"].items()}})
    return rows


def test_an_experiment_and_a_queued_sweep_show_their_params_and_metrics(project):
    project.dvc("exp", "run", "-n", "three-epochs", "-S", "train.epochs=3")
    project.dvc("exp", "run", "--queue", "-S", "predict.threshold=0.3,0.7")
    project.dvc("queue", "start")
    deadline = time.monotonic() + 300
    while ("Queued" in (status := project.dvc("queue", "status").stdout) or "Running" in status):
        assert time.monotonic() < deadline, status
        time.sleep(2)
    assert status.count("Success") == 2, status

    rows = exp_rows(project)
    assert len(rows) == 3
    by_name = {row["name"]: row for row in rows}
    assert by_name["three-epochs"]["params"]["train"]["epochs"] == 3
    assert by_name["three-epochs"]["metrics"]["reports/metrics.json"]["training"]["epochs_run"] == 3
    cuts = {str(row["params"]["predict"]["threshold"]): row["metrics"]["reports/metrics.json"]["threshold"] for row in rows}
    assert cuts.keys() == {"0.3", "0.7", "auto"} and cuts["0.3"] == 0.3 and cuts["0.7"] == 0.7  # pinned: as set
    for row in rows:
        assert list(row["metrics"]) == ["reports/metrics.json"]  # the dataset statistics are not metrics
        assert {"dice", "iou", "precision", "recall", "n_images"} <= row["metrics"]["reports/metrics.json"].keys()

    paged = terminal(project, 120, "dvc", "exp", "show", env={"DVC_PAGER": "cat"})  # as `less -S` pages it
    header = next(line for line in paged.splitlines() if "Experiment" in line)
    assert "dice" in header[:120], header[:120]  # on the first screen, not at character 386
    narrow = terminal(project, 120, "dvc", "exp", "show", "--no-pager", "--only-changed")
    header = next(line for line in narrow.splitlines() if "Experiment" in line)
    assert max(map(len, narrow.splitlines())) <= 120 and "dice" in header, narrow


def terminal(project, columns: int, *command: str, env=None) -> str:
    """What `command` shows in a terminal `columns` wide (a pseudo-terminal, escape codes removed)."""
    import fcntl
    import pty
    import re
    import struct
    import termios

    pid, fd = pty.fork()
    if pid == 0:  # the child: the command, attached to a terminal of that size
        fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
        os.chdir(project.root)
        os.execvpe(command[0], command, {**project.env, **(env or {}), "COLUMNS": str(columns), "TERM": "dumb"})
    output = b""
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # the command ended and closed the terminal
            break
        if not chunk:
            break
        output += chunk
    os.waitpid(pid, 0)
    return re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", output.decode(errors="replace")).replace("\r", "")


def test_metrics_params_and_plots_diff_between_two_commits(project):
    project.set_params({"prepare": {"test_fraction": 0.375}})
    project.dvc("repro")
    project.commit("three test images")

    metrics = json.loads(project.dvc("metrics", "diff", "HEAD~1", "--json").stdout)
    n_images = metrics["reports/metrics.json"]["n_images"]
    assert (n_images["old"], n_images["new"]) == (2, 3)
    assert "dice" in metrics["reports/metrics.json"]

    params = json.loads(project.dvc("params", "diff", "HEAD~1", "--json").stdout)
    change = params["params.yaml"]["prepare.test_fraction"]
    assert (change["old"], change["new"]) == (0.25, 0.375)

    plots = json.loads(project.dvc("plots", "diff", "HEAD~1", "--json").stdout)
    rows = plots["data"]["Dice per test image"][0]["content"]["data"]["values"]
    images_per_revision = {rev: sum(row["rev"] == rev for row in rows) for rev in ("HEAD~1", "workspace")}
    assert images_per_revision == {"HEAD~1": 2, "workspace": 3}

    for trained in ("models", "reports/live", "reports/train.json"):  # as on a fresh clone, before `dvc pull`
        subprocess.run(["rm", "-rf", str(project.root / trained)], check=True)
    shown = project.dvc("metrics", "show", "--json")
    workspace = next(iter(json.loads(shown.stdout).values()))
    assert "failed" not in shown.stderr and "training" in workspace["data"]["reports/metrics.json"]["data"]


def test_a_run_killed_during_training_commits_nothing_and_the_next_repro_completes(project):
    project.set_params({"train": {"epochs": 60, "early_stopping_patience": 60}})
    lock, cached = (project.root / "dvc.lock").read_text(), cache_files(project)
    first_epoch = project.root / "reports" / "live" / "metrics.json"
    run = subprocess.Popen([sys.executable, "-m", "dvc", "repro"], cwd=project.root, env=project.env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 120
    while not first_epoch.exists():
        assert run.poll() is None, "dvc repro ended before training was under way"
        assert time.monotonic() < deadline, "training did not log an epoch in time"
        time.sleep(0.05)
    os.killpg(run.pid, signal.SIGKILL)  # dvc and the training process with it
    run.wait()

    assert (project.root / "dvc.lock").read_text() == lock
    assert cache_files(project) == cached
    assert "train" in project.stale_stages()

    assert "train" in project.repro()
    assert project.stale_stages() == set()
    assert project.lock()["stages"]["plan"]["params"]["params.yaml"]["train.epochs"] == 60
