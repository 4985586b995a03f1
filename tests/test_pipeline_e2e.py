"""`dvc repro` on a temporary copy of the project with tiny params: the pipeline's DVC promises."""

import json

import pytest

from dvc_project import copy_project
from stage_runner import STAGES

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def project(reproduced_project, tmp_path_factory):
    return copy_project(reproduced_project, tmp_path_factory.mktemp("e2e"))


def test_repro_runs_every_stage_and_writes_the_metrics(project):
    metrics = json.loads((project.root / "reports/metrics.json").read_text())
    assert {"dice", "iou", "precision", "recall", "n_images"} <= metrics.keys()
    assert metrics["n_images"] == 2
    assert set(project.lock()["stages"]) == set(STAGES) - {"synthesize"}
    assert set(project.lock("data/synthetic/dvc.lock")["stages"]) == {"synthesize"}
    plan = json.loads((project.root / "reports/plan.json").read_text())
    assert plan["values"]["extract.patch_size"] == 32 and plan["reasons"]["extract.patch_size"] == "pinned in params.yaml"
    assert plan["values"]["train.loss"] == "bce_dice" and "nnU-Net" in plan["reasons"]["train.loss"]


def test_second_repro_changes_nothing(project):
    result = project.dvc("repro")
    assert "Data and pipelines are up to date." in result.stdout
    assert project.stale_stages() == set()


def test_forced_extract_and_augment_are_byte_identical(project):
    before = project.lock()["stages"]
    project.dvc("repro", "--force", "--single-item", "extract", "augment")
    after = project.lock()["stages"]
    for stage in ("extract", "augment"):
        assert after[stage]["outs"] == before[stage]["outs"], stage


# test_caching_map checks the stale stages of every param; these run the pipeline's two ends and the plan's
# hand-off for real, and restore them from the run-cache.
@pytest.mark.parametrize(
    "change, reran",
    [
        ({"extract": {"stride": 16}}, {"plan", "extract", "augment", "train", "predict", "measure", "evaluate"}),
        ({"predict": {"tile_size": 64}}, {"plan", "predict", "measure", "evaluate"}),
        ({"predict": {"prob_dtype": "float16"}}, {"predict", "measure", "evaluate"}),
        ({"measure": {"pixel_size": 0.5}}, {"measure"}),
    ],
)
def test_a_param_change_reruns_only_its_stage_and_what_follows(project, change, reran):
    original = project.params()
    project.set_params(change)
    try:
        assert project.repro() == reran
    finally:
        project.set_params(original)
    # Changing it back restores every expensive stage from the run-cache. The plan and evaluate, whose
    # reports are kept in git (so no run-cache), recompute themselves in seconds, to the same bytes.
    assert project.repro() <= {"plan", "evaluate"}, "changing the param back restores from the run-cache"
    assert project.stale_stages() == set()
