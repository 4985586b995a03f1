import json
import os
import subprocess
import sys

import numpy as np

from stage_runner import REPO, TINY, error_line, run_stage, write_params
from unetseg.shards import iter_shards, read_manifest


def files_of(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_extract_writes_train_and_val_shards(tiny_run):
    prepared = json.loads((tiny_run / "data/prepared/manifest.json").read_text())
    train, val = read_manifest(tiny_run / "data/patches/train"), read_manifest(tiny_run / "data/patches/val")
    assert train["source_images"] == prepared["counts"]["train"] and val["fg_fraction"] == 0.0
    assert train["patch_size"] == 32 and train["count"] > val["count"] > 0
    assert all(s["count"] <= 16 for s in train["shards"])
    values = set()
    for images, masks in iter_shards(tiny_run / "data/patches/train"):
        assert images.shape[1:] == (32, 32, 1)
        values |= set(np.unique(masks).tolist())
    assert prepared["mask_type"] == "instances" and values == {0, 1, 2}  # the boundary target's classes
    for _, masks in iter_shards(tiny_run / "data/augmented"):
        assert set(np.unique(masks).tolist()) <= {0, 1, 2}


def test_augment_keeps_originals_and_adds_copies(tiny_run):
    source = read_manifest(tiny_run / "data/patches/train")
    augmented = read_manifest(tiny_run / "data/augmented")
    assert augmented["count"] == source["count"] * 2
    assert [index for index, _ in source["sources"]] == [0, 1, 2, 3]  # the 4 training images, in order
    assert augmented["sources"] == [[index, 2 * count] for index, count in source["sources"]]
    first_source = next(iter_shards(tiny_run / "data/patches/train"))[0][0]
    first_augmented = next(iter_shards(tiny_run / "data/augmented"))[0][0]
    assert np.array_equal(first_source, first_augmented)


def test_rerunning_extract_and_augment_gives_identical_bytes(tiny_copy):
    before = {d: files_of(tiny_copy / d) for d in ("data/patches", "data/augmented")}
    for stage in ("extract", "augment"):
        assert run_stage(stage, tiny_copy).returncode == 0
    assert before == {d: files_of(tiny_copy / d) for d in ("data/patches", "data/augmented")}
    assert len(read_manifest(tiny_copy / "data/patches/train")["shards"]) > 1  # so augment ran them in parallel


def test_a_grid_fraction_and_the_copies_from_the_plan_reach_extract_and_augment(tiny_copy):
    full = read_manifest(tiny_copy / "data/patches/train")
    params = {**TINY, "extract": {**TINY["extract"], "grid_fraction": 0.5}, "augment": {"copies": 0}}
    write_params(tiny_copy, params)
    for stage in ("plan", "extract", "augment"):
        assert run_stage(stage, tiny_copy).returncode == 0
    half, augmented = read_manifest(tiny_copy / "data/patches/train"), read_manifest(tiny_copy / "data/augmented")
    assert half["grid_fraction"] == 0.5 and full["grid_fraction"] == 1.0
    assert full["count"] * 0.4 <= half["count"] <= full["count"] * 0.6
    assert augmented["count"] == half["count"] and augmented["copies"] == 0
    plan = json.loads((tiny_copy / "reports/plan.json").read_text())
    assert plan["patches"]["train_per_epoch_pass"] == half["count"]


def test_augment_on_one_core_writes_what_it_writes_on_several(tiny_copy):
    before = files_of(tiny_copy / "data/augmented")
    one_core = ("import os, runpy\n"
                "os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})\n"
                "runpy.run_module('stages.augment', run_name='__main__')\n")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    subprocess.run([sys.executable, "-c", one_core], cwd=tiny_copy, env=env, check=True, capture_output=True)
    assert files_of(tiny_copy / "data/augmented") == before


def test_plan_writes_one_file_per_reader_and_a_report(tiny_run):
    extract = json.loads((tiny_run / "data/plan/extract.json").read_text())
    assert extract == {"extract.scale": 1.0, "extract.patch_size": 32, "extract.stride": 32,
                       "extract.fg_fraction": 0.33, "extract.grid_fraction": 1.0, "extract.val_grid_fraction": 1.0}
    augment = json.loads((tiny_run / "data/plan/augment.json").read_text())
    assert augment == {"augment.copies": 1}
    train = json.loads((tiny_run / "data/plan/train.json").read_text())
    assert train["model.depth"] == 2 and train["train.steps_per_epoch"] == 6 and train["train.loss"] == "bce_dice"
    assert json.loads((tiny_run / "data/plan/predict.json").read_text()) == {"predict.tile_size": 32}
    report = json.loads((tiny_run / "reports/plan.json").read_text())
    assert report["values"] == {**extract, **augment, **train, "predict.tile_size": 32}
    assert report["fingerprint"]["train_images"] == 4 and "train_shapes" not in report["fingerprint"]


def test_plan_and_extract_without_their_inputs_say_what_to_run(tmp_path):
    (tmp_path / "params.yaml").write_text("{}\n")
    line = error_line(run_stage("plan", tmp_path))
    assert "data/prepared/manifest.json: not found; run the stage that writes it first" in line
    line = error_line(run_stage("extract", tmp_path))
    assert "data/plan/extract.json: not found; run the stage that writes it first" in line
    assert not (tmp_path / "data/patches").exists() and not (tmp_path / "data/plan").exists()


def test_extract_refuses_a_stride_that_skips_pixels(tmp_path):
    (tmp_path / "params.yaml").write_text("extract: {patch_size: 32, stride: 48}\n")
    line = error_line(run_stage("extract", tmp_path))
    assert "params.yaml" in line and "extract" in line and "stride must be <= patch_size" in line


def test_augment_without_patches_says_what_to_run(tmp_path):
    (tmp_path / "params.yaml").write_text("{}\n")
    line = error_line(run_stage("augment", tmp_path))
    assert "data/patches/train/manifest.json: not found; run the stage that writes it first" in line
    assert not (tmp_path / "data/augmented").exists()
