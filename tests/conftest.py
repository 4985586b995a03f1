import shutil

import pytest

from unetseg.backend import use_onednn

use_onednn()  # before any test imports TensorFlow, so tests compute as the stages do

from dvc_project import make_project  # noqa: E402
from stage_runner import STAGES, TINY, run_stage, write_params  # noqa: E402


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """A scratch directory where every stage has run once, in order, on tiny params."""
    root = tmp_path_factory.mktemp("tiny_run")
    write_params(root, TINY)
    for stage in STAGES:
        result = run_stage(stage, root)
        assert result.returncode == 0, f"{stage} failed:\n{result.stderr}"
    return root


@pytest.fixture
def tiny_copy(tiny_run, tmp_path):
    """A private copy of `tiny_run` that a test may change."""
    copy = tmp_path / "run"
    shutil.copytree(tiny_run, copy)
    return copy


@pytest.fixture(scope="session")
def reproduced_project(tmp_path_factory):
    """A git + DVC copy of this repository, reproduced once on tiny params and committed.

    Shared: tests take a `copy_project` of it before changing anything.
    """
    project = make_project(tmp_path_factory.mktemp("reproduced"))
    project.dvc("repro")
    project.commit("first run")
    return project
