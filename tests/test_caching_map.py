"""Which knob and which module reruns what: one table, checked against `dvc status` and README.md.

For every key in params.yaml and every module of the code, the test changes it in a reproduced
copy of the project and asserts that `dvc status` marks stale exactly the stages the table names:
the stages that read it. (The stages after them rerun only if an output they read changes.)
"""

import re

import pytest
import yaml

from dvc_project import REPO, copy_project

pytestmark = pytest.mark.e2e

ALL = {"synthesize", "prepare", "plan", "extract", "augment", "train", "predict", "measure", "evaluate"}

# knob (a params key, or a whole section with ".*") -> the stages that read it. Mirrored in README.md.
PARAM_READERS = {
    "base.seed": {"synthesize", "prepare", "extract", "augment", "train"},
    "data.images": {"prepare", "measure"},
    "data.masks": {"prepare"},
    "data.num_classes": {"prepare", "evaluate"},
    "data.channels": {"prepare"},
    "data.mask_type": {"prepare"},
    "data.target": {"extract", "train"},
    "data.boundary_width": {"extract"},
    "data.border_weight": {"extract"},
    "data.border_sigma": {"extract"},
    "data.contact_weight": {"extract"},
    "synthesize.*": {"synthesize"},
    "prepare.*": {"prepare"},
    "plan.*": {"plan"},
    "extract.scale": {"plan"},
    "extract.patch_size": {"plan"},
    "extract.stride": {"plan"},
    "extract.fg_fraction": {"plan"},
    "extract.grid_fraction": {"plan"},
    "extract.val_grid_fraction": {"plan"},
    "extract.shard_size": {"extract"},
    "augment.copies": {"plan"},
    "augment.*": {"augment"},
    "model.depth": {"plan"},
    "model.base_filters": {"plan"},
    "model.batchnorm": {"plan", "train"},
    "model.upsampling": {"plan", "train"},
    "model.*": {"train"},
    "train.epochs": {"plan"},
    "train.steps_per_epoch": {"plan"},
    "train.batch_size": {"plan"},
    "train.loss": {"plan"},
    "train.*": {"train"},
    "predict.tile_size": {"plan"},
    "predict.*": {"predict"},
    "measure.*": {"measure"},
    "evaluate.*": {"evaluate"},
}

# module -> the stages whose code imports it (directly or through another module)
MODULE_READERS = {
    "stages/common.py": ALL,
    "unetseg/errors.py": ALL,
    "unetseg/files.py": ALL,
    "unetseg/params.py": ALL,
    "unetseg/imageio.py": {"synthesize", "prepare", "predict", "measure", "evaluate"},
    "stages/synthesize.py": {"synthesize"},
    "unetseg/synthetic.py": {"synthesize"},
    "stages/prepare.py": {"prepare"},
    "unetseg/dataset.py": {"prepare"},
    "unetseg/naming.py": {"prepare"},
    "unetseg/normalize.py": {"prepare", "plan", "extract", "predict", "evaluate"},
    "stages/extract.py": {"extract"},
    "unetseg/patches.py": {"plan", "extract", "predict"},
    "stages/plan.py": {"plan"},
    "unetseg/plan.py": {"plan"},
    "unetseg/calibrate.py": set(),
    "unetseg/shards.py": {"extract", "augment", "train"},
    "stages/augment.py": {"augment"},
    "unetseg/augment.py": {"augment"},
    "unetseg/parallel.py": {"augment", "predict"},
    "unetseg/measure.py": {"predict", "measure"},
    "stages/measure.py": {"measure"},
    "stages/train.py": {"train"},
    "unetseg/unet.py": {"train"},
    "unetseg/losses.py": {"train"},
    "unetseg/training.py": {"train"},
    "unetseg/tf_training.py": {"train"},
    "stages/predict.py": {"predict"},
    "unetseg/inference.py": {"predict"},
    "unetseg/modelfile.py": {"predict"},
    "unetseg/cli.py": set(),
    "unetseg/scoring.py": set(),
    "unetseg/tiling.py": {"predict"},
    "unetseg/scale.py": {"plan", "extract", "predict"},
    "unetseg/postprocess.py": {"predict"},
    "stages/evaluate.py": {"evaluate"},
    "unetseg/metrics.py": {"evaluate"},
    "unetseg/baselines.py": {"evaluate"},
    "unetseg/instances.py": {"prepare", "extract", "train", "predict", "evaluate"},
    "unetseg/backend.py": {"train", "predict"},
    "unetseg/portable.py": {"prepare", "extract", "augment", "train", "predict", "evaluate"},
}


def leaves(tree: dict, prefix: str = ""):
    for key, value in tree.items():
        if isinstance(value, dict):
            yield from leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def readers_of(key: str) -> set[str]:
    section = key.split(".")[0] + ".*"
    exact = [name for name in PARAM_READERS if key == name or key.startswith(name + ".")]
    assert exact or section in PARAM_READERS, f"{key} is missing from PARAM_READERS (and README.md)"
    return PARAM_READERS[exact[0]] if exact else PARAM_READERS[section]


def changed(value):
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value + 1
    if isinstance(value, str):
        return value + "_changed"
    if isinstance(value, list):
        return value + value[-1:] if value else [0]
    return "changed"


def set_leaf(tree: dict, key: str, value) -> None:
    *path, last = key.split(".")
    for part in path:
        tree = tree[part]
    tree[last] = value


def params_cases():
    return [key for key, _ in leaves(yaml.safe_load((REPO / "params.yaml").read_text()))]


@pytest.fixture(scope="module")
def project(reproduced_project, tmp_path_factory):
    project = copy_project(reproduced_project, tmp_path_factory.mktemp("caching_map"))
    assert project.stale_stages() == set()
    return project


@pytest.mark.parametrize("key", params_cases())
def test_a_param_marks_stale_exactly_the_stages_that_read_it(project, key):
    original = project.params()
    params = project.params()
    value = dict(leaves(params))[key]
    set_leaf(params, key, changed(value))
    project.write_params(params)
    try:
        assert project.stale_stages() == readers_of(key)
    finally:
        project.write_params(original)


@pytest.mark.parametrize("module", sorted(MODULE_READERS))
def test_editing_a_module_marks_stale_exactly_the_stages_that_import_it(project, module):
    path = project.root / module
    original = path.read_bytes()
    path.write_bytes(original + b"\n# edited\n")
    try:
        assert project.stale_stages() == MODULE_READERS[module]
    finally:
        path.write_bytes(original)


def test_the_module_table_covers_every_module():
    modules = {str(path.relative_to(REPO)) for folder in ("stages", "unetseg")
               for path in (REPO / folder).glob("*.py") if path.name != "__init__.py"}
    assert modules == set(MODULE_READERS)


def readme_table() -> dict[str, set[str]]:
    """The "Which knob reruns what" table of README.md: `knob` | stage, stage, ..."""
    text = (REPO / "README.md").read_text().split("## Which knob reruns what", 1)[1].split("\n## ", 1)[0]
    table = {}
    for knobs, stages in re.findall(r"^\| (`.+?) \| (.+?) \|", text, re.MULTILINE):
        readers = ALL if stages.strip() == "all" else {s.strip() for s in stages.split(",")}
        for knob in re.findall(r"`([^`]+)`", knobs):
            table[knob] = readers
    return table


def test_the_readme_table_is_the_test_table():
    assert readme_table() == PARAM_READERS
