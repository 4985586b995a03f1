import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import yaml
from PIL import Image

from stage_runner import REPO, TINY, error_line, run_stage, write_params
from unetseg.instances import MIN_SIZES, SEED_DEPTHS, SEED_SIGMAS
from unetseg.postprocess import MASK_THRESHOLDS, best_threshold


def test_predict_writes_a_mask_and_probability_map_per_test_image(tiny_run):
    stems = json.loads((tiny_run / "data/prepared/manifest.json").read_text())["splits"]["test"]
    for stem in stems:
        shape = np.load(tiny_run / f"data/prepared/test/images/{stem}.npy").shape[:2]
        mask = np.asarray(Image.open(tiny_run / f"data/predictions/{stem}.png"))
        prob = np.asarray(Image.open(tiny_run / f"data/predictions/{stem}_prob.png"))
        objects = np.asarray(Image.open(tiny_run / f"data/predictions/{stem}_instances.png"))
        assert mask.shape == prob.shape == objects.shape == shape
        assert set(np.unique(mask)) <= {0, 255} and prob.dtype == np.uint8
        assert objects.dtype == np.uint16 and not np.any((objects > 0) & (mask == 0))  # objects lie in the mask


def test_measure_counts_each_object_in_the_image_files_own_intensities(tiny_run):
    manifest = json.loads((tiny_run / "data/prepared/manifest.json").read_text())
    with open(tiny_run / "data/objects/summary.csv", newline="") as handle:
        summary = {row["image"]: row for row in csv.DictReader(handle)}
    assert list(summary) == manifest["splits"]["test"]
    assert not list((tiny_run / "data/predictions").glob("*.csv"))  # the measure stage's, not predict's
    for stem in manifest["splits"]["test"]:
        objects = np.asarray(Image.open(tiny_run / f"data/predictions/{stem}_instances.png"))
        raw = np.asarray(Image.open(tiny_run / manifest["images"][stem]["image"]).convert("L"), np.float64)
        with open(tiny_run / f"data/objects/{stem}.csv", newline="") as handle:
            rows = list(csv.DictReader(handle))
        assert [int(row["object"]) for row in rows] == list(range(1, objects.max() + 1))
        assert int(summary[stem]["objects"]) == len(rows) and "area_um2" not in rows[0]
        for row in rows:
            inside = objects == int(row["object"])
            assert int(row["area_px"]) == inside.sum()
            assert float(row["mean_intensity"]) == pytest.approx(raw[inside].mean(), abs=1e-4)


def test_measure_in_microns_and_a_missing_prediction_named(tiny_copy):
    params = yaml.safe_load((tiny_copy / "params.yaml").read_text())
    write_params(tiny_copy, {**params, "measure": {"pixel_size": 0.25}})
    assert run_stage("measure", tiny_copy).returncode == 0
    stem = json.loads((tiny_copy / "data/prepared/manifest.json").read_text())["splits"]["test"][0]
    with open(tiny_copy / f"data/objects/{stem}.csv", newline="") as handle:
        row = next(csv.DictReader(handle))
    assert float(row["area_um2"]) == pytest.approx(int(row["area_px"]) / 16, abs=1e-4)
    before = sorted(path.name for path in (tiny_copy / "data/objects").iterdir())
    (tiny_copy / f"data/predictions/{stem}_instances.png").unlink()
    result = run_stage("measure", tiny_copy)
    assert f"{stem}_instances.png" in error_line(result)
    assert sorted(path.name for path in (tiny_copy / "data/objects").iterdir()) == before  # the old outputs whole


def test_measure_reads_each_image_files_own_pixel_size_by_default(tiny_copy):
    import tifffile

    result = run_stage("measure", tiny_copy)
    assert "measure: in pixels: no image file records its pixel size" in result.stdout
    manifest_path = tiny_copy / "data/prepared/manifest.json"
    manifest = json.loads(manifest_path.read_text())
    calibrated, plain = manifest["splits"]["test"][:2]
    source = tiny_copy / manifest["images"][calibrated]["image"]
    tiff = source.with_suffix(".tif")
    tifffile.imwrite(tiff, np.asarray(Image.open(source)), imagej=True, resolution=(2, 2), metadata={"unit": "um"})
    manifest["images"][calibrated]["image"] = str(tiff.relative_to(tiny_copy))
    manifest_path.write_text(json.dumps(manifest))
    result = run_stage("measure", tiny_copy)
    assert "measure: pixel size 0.5 µm, as recorded by 1 of 2 image files" in result.stdout, result.stderr
    with open(tiny_copy / "data/objects/summary.csv", newline="") as handle:
        summary = {row["image"]: row for row in csv.DictReader(handle)}
    assert summary[calibrated]["pixel_size_um"] == "0.5" and summary[plain]["pixel_size_um"] == ""
    with open(tiny_copy / f"data/objects/{calibrated}.csv", newline="") as handle:
        row = next(csv.DictReader(handle))
    assert float(row["area_um2"]) == pytest.approx(int(row["area_px"]) / 4, abs=1e-4)


def test_evaluate_writes_metrics_table_sweep_and_overlays(tiny_run):
    metrics = json.loads((tiny_run / "reports/metrics.json").read_text())
    assert list(metrics)[:5] == ["dice", "iou", "precision", "recall", "pixel_accuracy"]  # exp show's first columns
    assert {"n_images", "n_empty"} <= metrics.keys()
    train = json.loads((tiny_run / "reports/train.json").read_text())
    assert metrics["training"] == {key: train[key] for key in ("best_val_dice", "best_epoch", "kept_val_dice",
                                                               "kept_epoch", "epochs_run", "parameters")}
    assert sorted(metrics["baselines"]) == ["all_background", "all_foreground", "otsu"]
    assert all(set(score) == {"dice", "iou"} for score in metrics["baselines"].values())
    assert "margin_over_best_baseline" in metrics and 0 <= metrics["constant_predictions"] <= metrics["n_images"]
    with open(tiny_run / "reports/per_image.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == metrics["n_images"] == 2
    with open(tiny_run / "reports/thresholds.csv") as handle:
        sweep = list(csv.DictReader(handle))
    assert [r["threshold"] for r in sweep] == ["0.1", "0.2", "0.3", "0.4", "0.5", "0.6", "0.7", "0.8", "0.9"]
    assert all(0 <= float(r["dice"]) <= 1 for r in sweep)
    objects = metrics["instances"]
    assert objects["truth_objects"] == "instance labels" and objects["objects_true"] > 0
    assert all(0 <= objects[key] <= 1 for key in ("ap_50", "ap_75", "mean_ap", "f1_50", "pq_50", "rand_error",
                                                  "otsu_components_ap_50"))
    assert {"objects_true", "objects_predicted", "matched_area_ratio_50", "ap_50", "f1_50", "fn_merged",
            "fp_spurious"} <= rows[0].keys()
    counted = [abs(int(r["objects_predicted"]) - int(r["objects_true"])) / int(r["objects_true"]) for r in rows]
    assert objects["count_error"] == pytest.approx(sum(counted) / len(counted), abs=1e-6)
    assert objects["matched_area_ratio_50"] is None or objects["matched_area_ratio_50"] > 0
    with open(tiny_run / "reports/instances.csv") as handle:
        by_tau = list(csv.DictReader(handle))
    assert [float(r["iou_threshold"]) for r in by_tau] == pytest.approx([0.5 + 0.05 * i for i in range(10)])
    assert float(by_tau[0]["ap"]) == pytest.approx(objects["ap_50"], abs=1e-6)
    unmatched = objects["unmatched_50"]  # every unmatched object has one cause
    assert sum(value for cause, value in unmatched.items() if cause.startswith("fn_")) == int(by_tau[0]["fn"])
    assert sum(value for cause, value in unmatched.items() if cause.startswith("fp_")) == int(by_tau[0]["fp"])
    assert sum(int(row["fn_merged"]) for row in rows) == unmatched["fn_merged"]
    chosen = json.loads((tiny_run / "data/predictions/postprocess.json").read_text())  # on the validation images
    assert objects["seeds"] == chosen["predict.seeds"] == "maxima"
    assert len(chosen["validation_ap_50"]) == len(SEED_SIGMAS) * len(SEED_DEPTHS) * len(MIN_SIZES)  # every pair tried
    assert [objects["seed_sigma"], objects["seed_depth"]] == [chosen[f"predict.seed_{k}"] for k in ("sigma", "depth")]
    assert objects["min_object_size"] == chosen["predict.min_object_size"]
    dice = {float(t): d for t, d in chosen["validation_dice"].items()}  # the mask threshold, chosen first
    assert sorted(dice) == list(MASK_THRESHOLDS) and metrics["threshold"] == chosen["predict.threshold"] == best_threshold(dice)
    overlays = sorted(p.name for p in (tiny_run / "reports/overlays").iterdir())
    assert overlays == ["best1.png", "worst1.png"]  # the same names every run: `dvc plots diff` pairs them
    stem = max(rows, key=lambda row: (float(row["dice"]), row["image"]))["image"]
    image = np.load(tiny_run / f"data/prepared/test/images/{stem}.npy")
    overlay = np.asarray(Image.open(tiny_run / "reports/overlays" / overlays[0]))
    factor = overlay.shape[0] // image.shape[0]  # tiny images enlarged by whole pixels to >= 512 px
    assert min(overlay.shape[:2]) >= 512 and overlay.shape[:2] == (image.shape[0] * factor, image.shape[1] * factor)


def test_a_constant_model_is_called_out_and_scored_against_the_baselines(tiny_copy):
    """Every pixel predicted foreground: the all-foreground baseline exactly, and evaluate says so."""
    predictions = tiny_copy / "data/predictions"
    for path in predictions.glob("*.png"):
        shape = np.asarray(Image.open(path)).shape
        Image.fromarray(np.full(shape, 255, np.uint8)).save(path)
    result = run_stage("evaluate", tiny_copy)
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 2
    assert "no clear gain on the trivial" in warnings[0] and "every pixel of all 2 test images" in warnings[1]
    metrics = json.loads((tiny_copy / "reports/metrics.json").read_text())
    assert metrics["dice"] == metrics["baselines"]["all_foreground"]["dice"]
    assert metrics["constant_predictions"] == 2 and metrics["margin_over_best_baseline"] <= 0


def test_float16_probabilities_and_small_object_filter(tiny_copy):
    values = yaml.safe_load((tiny_copy / "params.yaml").read_text())
    values["predict"].update({"prob_dtype": "float16", "min_object_size": 10**6, "threshold": 0.7})
    (tiny_copy / "params.yaml").write_text(yaml.safe_dump(values))
    assert run_stage("predict", tiny_copy).returncode == 0
    chosen = json.loads((tiny_copy / "data/predictions/postprocess.json").read_text())
    assert chosen["predict.threshold"] == 0.7 and "validation_dice" not in chosen  # pinned: not chosen
    probs = sorted((tiny_copy / "data/predictions").glob("*_prob.npy"))
    assert probs and np.load(probs[0]).dtype == np.float16
    masks = [p for p in (tiny_copy / "data/predictions").glob("*.png")]
    assert all(np.asarray(Image.open(p)).max() == 0 for p in masks)
    assert run_stage("evaluate", tiny_copy).returncode == 0
    metrics = json.loads((tiny_copy / "reports/metrics.json").read_text())
    assert metrics["recall"] == 0.0


def test_stages_refuse_inputs_that_do_not_match(tiny_copy):
    test = tiny_copy / "data/prepared/test"
    stem = sorted(test.glob("images/*.npy"))[0].stem
    prediction = tiny_copy / f"data/predictions/{stem}.png"
    Image.fromarray(np.zeros((5, 5), np.uint8)).save(prediction)
    assert "differs from the test mask" in error_line(run_stage("evaluate", tiny_copy))
    np.save(test / f"images/{stem}.npy", np.zeros((20, 20, 3), np.float32))
    assert f"{stem}.npy: 3 channel(s), but the model expects 1" in error_line(run_stage("predict", tiny_copy))
    assert prediction.exists()  # the failed stage left the previous outputs as they were


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # raised inside Keras when saving
def test_several_classes_end_to_end(tiny_copy):
    import keras

    inputs = keras.Input((None, None, 1))
    keras.Model(inputs, keras.layers.Conv2D(3, 3, padding="same", activation="softmax")(inputs)).save(
        tiny_copy / "models/unet.keras")
    preprocessing = json.loads((tiny_copy / "models/preprocessing.json").read_text())
    (tiny_copy / "models/preprocessing.json").write_text(json.dumps({**preprocessing, "num_classes": 3,
                                                                     "target": "classes"}))
    for path in (tiny_copy / "data/prepared/test/masks").glob("*.npy"):
        mask = np.load(path)
        mask[:, mask.shape[1] // 2:] *= 2  # class 2 on the right half
        np.save(path, mask)
    values = yaml.safe_load((tiny_copy / "params.yaml").read_text())
    values["data"] = {**values.get("data", {}), "num_classes": 3}
    (tiny_copy / "params.yaml").write_text(yaml.safe_dump(values))

    assert run_stage("predict", tiny_copy).returncode == 0
    masks = sorted((tiny_copy / "data/predictions").glob("*[!b].png"))
    assert not list((tiny_copy / "data/predictions").glob("*_instances.png"))  # objects are for one class
    assert masks and all(set(np.unique(np.asarray(Image.open(p)))) <= {0, 1, 2} for p in masks)
    prob = np.load(masks[0].with_name(masks[0].stem + "_prob.npy"))
    assert prob.dtype == np.uint8 and prob.shape[-1] == 3
    assert run_stage("evaluate", tiny_copy).returncode == 0
    metrics = json.loads((tiny_copy / "reports/metrics.json").read_text())
    assert sorted(metrics["per_class"]) == ["0", "1", "2"] and metrics["n_images"] == 2
    assert "threshold" not in metrics  # argmax: no threshold to choose
    with open(tiny_copy / "reports/thresholds.csv") as handle:
        assert len(list(csv.DictReader(handle))) == 9
    assert len(list((tiny_copy / "reports/overlays").iterdir())) == 2


def test_several_classes_train_and_score_end_to_end(tiny_run, tmp_path):
    """Two kinds of nuclei (odd and even ids of the synthetic labels) as classes 1 and 2, in colour
    images (three channels), through every stage with a real (tiny) model."""
    for kind in ("images", "masks"):
        (tmp_path / "own" / kind).mkdir(parents=True)
    for path in sorted((tiny_run / "data/synthetic/images").glob("*.png")):
        gray = np.asarray(Image.open(path).convert("L"))
        Image.fromarray(np.stack([gray, gray // 2, 255 - gray], axis=-1)).save(tmp_path / "own/images" / path.name)
    for path in sorted((tiny_run / "data/synthetic/labels").glob("*.png")):
        labels = np.asarray(Image.open(path)).astype(np.int64)
        classes = np.where(labels > 0, 1 + labels % 2, 0).astype(np.uint8)
        Image.fromarray(classes).save(tmp_path / "own/masks" / path.name)
    write_params(tmp_path, {**TINY, "data": {"images": "own/images", "masks": "own/masks", "num_classes": 3}})
    for stage in ("prepare", "plan", "extract", "augment", "train", "predict", "measure", "evaluate"):
        result = run_stage(stage, tmp_path)
        assert result.returncode == 0, f"{stage}: {result.stderr}"
    preprocessing = json.loads((tmp_path / "models/preprocessing.json").read_text())
    assert preprocessing["num_classes"] == 3 and preprocessing["target"] == "classes"
    assert preprocessing["channels"] == 3
    metrics = json.loads((tmp_path / "reports/metrics.json").read_text())
    assert sorted(metrics["per_class"]) == ["0", "1", "2"] and "instances" not in metrics
    assert (tmp_path / "reports/instances.csv").read_text().startswith("iou_threshold,ap,")  # header only
    masks = [np.asarray(Image.open(p)) for p in (tmp_path / "data/predictions").glob("*[!b].png")]
    assert masks and all(set(np.unique(m)) <= {0, 1, 2} for m in masks)
    assert [path.name for path in (tmp_path / "data/objects").iterdir()] == ["summary.csv"]  # objects: one class


def test_weighted_target_trains_predicts_objects_and_scores_end_to_end(tiny_copy):
    """data.target weighted: shards carry loss weights through augment, the model has one sigmoid
    channel, predict grows objects from its foreground probability and evaluate scores them."""
    values = yaml.safe_load((tiny_copy / "params.yaml").read_text())
    values["data"] = {**values.get("data", {}), "target": "weighted", "boundary_width": 1}
    (tiny_copy / "params.yaml").write_text(yaml.safe_dump(values))
    results = {stage: run_stage(stage, tiny_copy) for stage in ("extract", "augment", "train", "predict", "evaluate")}
    for stage, result in results.items():
        assert result.returncode == 0, f"{stage}: {result.stderr}"
    for folder in ("data/patches/train", "data/patches/val", "data/augmented"):
        manifest = json.loads((tiny_copy / folder / "manifest.json").read_text())
        assert manifest["weights"] is True and all("weights" in shard for shard in manifest["shards"])
    weights = np.load(tiny_copy / "data/augmented" / manifest["shards"][0]["weights"])
    assert weights.dtype == np.float16 and weights.min() > 0
    preprocessing = json.loads((tiny_copy / "models/preprocessing.json").read_text())
    assert preprocessing["target"] == "weighted" and preprocessing["gap_width"] == 1
    printed = results["predict"].stdout
    assert "objects grown from seeds >= " in printed and "in p(foreground)" in printed
    assert "predict.seed_threshold" in json.loads((tiny_copy / "data/predictions/postprocess.json").read_text())
    assert list((tiny_copy / "data/predictions").glob("*_instances.png"))
    metrics = json.loads((tiny_copy / "reports/metrics.json").read_text())
    assert 0 <= metrics["instances"]["ap_50"] <= 1


def test_boundary_target_with_contact_weights_trains_on_weighted_shards(tiny_copy, tiny_run):
    """data.contact_weight > 0: the boundary target's shards carry loss weights (high at contacts)
    through augment, and train weights its three-class cross-entropy by them."""
    values = yaml.safe_load((tiny_copy / "params.yaml").read_text())
    values["data"] = {**values.get("data", {}), "contact_weight": 10.0}
    (tiny_copy / "params.yaml").write_text(yaml.safe_dump(values))
    for stage in ("extract", "augment", "train"):
        result = run_stage(stage, tiny_copy)
        assert result.returncode == 0, f"{stage}: {result.stderr}"
    manifest = json.loads((tiny_copy / "data/augmented/manifest.json").read_text())
    assert manifest["weights"] is True
    weights = np.load(tiny_copy / "data/augmented" / manifest["shards"][0]["weights"])
    assert weights.min() >= 0.99 and weights.max() > 5  # 1 away from contacts, up to 1 + 10 at them
    assert json.loads((tiny_copy / "models/preprocessing.json").read_text())["target"] == "boundary"
    losses = [(run / "reports/live/plots/metrics/train/loss.tsv").read_text() for run in (tiny_copy, tiny_run)]
    assert losses[0] != losses[1], "the weights change the loss"


def test_a_planned_scale_trains_on_resized_images_and_predicts_at_their_own_size(tiny_copy):
    """extract.scale 0.5: the patches are cut from images at half size, the model records the scale,
    and predict resizes each image for it and its output back: masks and scores at full size."""
    values = yaml.safe_load((tiny_copy / "params.yaml").read_text())
    values["extract"] = {**values["extract"], "scale": 0.5, "patch_size": 16, "stride": 16}
    values["model"] = {**values["model"], "depth": 1}
    values["predict"] = {**values["predict"], "tile_size": 32}
    (tiny_copy / "params.yaml").write_text(yaml.safe_dump(values))
    for stage in ("plan", "extract", "augment", "train", "predict", "measure", "evaluate"):
        result = run_stage(stage, tiny_copy)
        assert result.returncode == 0, f"{stage}: {result.stderr}"
    assert json.loads((tiny_copy / "data/patches/val/manifest.json").read_text())["scale"] == 0.5
    assert json.loads((tiny_copy / "models/preprocessing.json").read_text())["scale"] == 0.5
    manifest = json.loads((tiny_copy / "data/prepared/manifest.json").read_text())
    for stem in manifest["splits"]["test"]:
        shape = tuple(manifest["images"][stem]["shape"])
        assert np.asarray(Image.open(tiny_copy / f"data/predictions/{stem}.png")).shape == shape
        assert np.asarray(Image.open(tiny_copy / f"data/predictions/{stem}_instances.png")).shape == shape
    assert 0 <= json.loads((tiny_copy / "reports/metrics.json").read_text())["dice"] <= 1
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}
    subprocess.run([sys.executable, "-m", "unetseg.cli", "predict", "--model", "models/unet.keras", "--input",
                    "data/synthetic/images", "--output", "new"], cwd=tiny_copy, env=env, check=True, capture_output=True)
    for image in (tiny_copy / "data/synthetic/images").iterdir():  # `unetseg predict` scales back too
        assert np.asarray(Image.open(tiny_copy / "new" / image.name)).shape == np.asarray(Image.open(image)).shape[:2]


WITH_WORKERS = """
import stages.predict as stage
import unetseg.inference as inference
inference.POOL_MIN_PIXELS = 0  # workers even for tiny images
made, real = [], inference.worker_pool
inference.worker_pool = lambda tasks, method=None: made.append((tasks, method)) or real(tasks, method)
stage.run_stage(stage.main, [])
assert made == [(4, "spawn")], made  # the validation and test images
"""


def test_predict_with_worker_processes_writes_what_one_process_writes(tiny_copy):
    before = {path.name: path.read_bytes() for path in (tiny_copy / "data/predictions").iterdir()}
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run([sys.executable, "-c", WITH_WORKERS], cwd=tiny_copy, env=env, capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "choose post-processing" in result.stderr  # the validation images chose seeds in the workers
    assert {path.name: path.read_bytes() for path in (tiny_copy / "data/predictions").iterdir()} == before
