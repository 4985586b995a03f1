import shutil

import pytest

from stage_runner import run_stage, write_params

STAGES = ["synthesize", "prepare", "extract", "augment", "train", "predict", "evaluate"]
TINY = {
    "synthesize": {"num_images": 8, "min_size": 56, "max_size": 72, "nuclei_per_image": [3, 6]},
    "prepare": {"val_fraction": 0.25, "test_fraction": 0.25},
    "extract": {"patch_size": 32, "stride": 32, "shard_size": 16},
    "augment": {"copies": 1},
    "model": {"depth": 2, "base_filters": 4},
    "train": {"epochs": 2, "batch_size": 8},
    "predict": {"tile_size": 32, "batch_size": 4},
    "evaluate": {"overlays": 1},
}


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
