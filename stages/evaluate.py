"""Stage evaluate: Dice/IoU/precision/recall per test image from confusion counts, means, plots.

reports/metrics.json also scores trivial baselines (all foreground, all background, Otsu) the same
way, and a warning on stderr says when the model does not beat them or predicts one class only.

reports/thresholds.csv is the mean over test images (images empty in both truth and prediction
left out) of Dice and IoU of foreground-vs-background at each threshold of the probability maps;
for several classes the foreground probability is 1 - p(background).

For one class, objects are scored too (unetseg/instances.py): predicted objects against the true
ones (the instance labels, or the connected components of binary masks), with counts pooled over
the test images; reports/instances.csv has every IoU threshold, metrics.json the headline numbers
and, as the trivial baseline for objects, the AP@0.5 of the connected components of Otsu's mask.
"""

import csv
import sys
from pathlib import Path

import numpy as np
from skimage.segmentation import find_boundaries
from tqdm import tqdm

from stages.common import atomic_dir, atomic_file, load_stage_params, read_json, run_stage, write_json
from unetseg.baselines import (BASELINES, baseline_predictions, baseline_scores, best_baseline, collapse_warnings,
                               is_constant, margin_over_best_baseline)
from unetseg.errors import UserError
from unetseg.imageio import read_mask, write_png
from unetseg.instances import (UNMATCHED_CAUSES, evaluate_instances, headline, labels_from_mask, load_labels,
                               measurement_line, median_area_ratio, scores_from_matches, split_and_merged_pixels,
                               summarize_instances)
from unetseg.metrics import SCORES, evaluate_image, foreground_score, shown, summarize
from unetseg.normalize import load_prepared_image

PREPARED, PREDICTIONS = Path("data/prepared"), Path("data/predictions")
METRICS, PER_IMAGE, THRESHOLDS, OVERLAYS = ("reports/metrics.json", "reports/per_image.csv",
                                            "reports/thresholds.csv", "reports/overlays")
INSTANCES, TRAIN_SUMMARY = "reports/instances.csv", "reports/train.json"
TRAINING_KEYS = ("best_val_dice", "best_epoch", "kept_val_dice", "kept_epoch", "epochs_run", "parameters")
OVERLAY_MIN_SIDE = 512
COLOURS = {"tp": (0, 200, 0), "fp": (230, 0, 0), "fn": (0, 120, 255),
           "object": (255, 255, 255), "merged": (255, 0, 255), "split": (255, 220, 0)}


def main(argv) -> None:
    params = load_stage_params(argv, __doc__)
    num_classes, thresholds = params.data.num_classes, params.evaluate.thresholds
    manifest, chosen = read_json(PREPARED / "manifest.json"), postprocess()
    stems = manifest["splits"]["test"]
    if not stems:
        raise UserError("params.yaml: prepare.test_fraction: the test split is empty; raise it or list test images")
    results, objects, otsu_objects, sweep = {}, {}, [], {t: [] for t in thresholds}
    baselines, constant = {name: [] for name in BASELINES}, 0
    for stem in tqdm(stems, desc="evaluate"):  # one image in memory at a time
        truth = np.load(PREPARED / "test" / "masks" / f"{stem}.npy")
        prediction = predicted_labels(stem, num_classes, truth.shape)
        results[stem] = evaluate_image(truth, prediction, num_classes)
        constant += is_constant(prediction)
        image = load_prepared_image(PREPARED / "test" / "images" / f"{stem}.npy", manifest, stem)
        trivial = baseline_predictions(image, truth, num_classes)
        for name, labels in trivial.items():
            baselines[name].append(evaluate_image(truth, labels, num_classes))
        if num_classes == 1:
            true_objects = true_instances(stem)
            objects[stem] = evaluate_instances(true_objects, predicted_instances(stem, truth.shape))
            otsu_objects.append(evaluate_instances(true_objects, labels_from_mask(trivial["otsu"])))
        foreground, probability = (truth > 0).astype(np.uint8), foreground_probability(stem, truth.shape)
        for t in thresholds:
            sweep[t].append(evaluate_image(foreground, (probability >= t).astype(np.uint8), 1))

    pixels = summarize(list(results.values()), num_classes)
    scores = baseline_scores(baselines, num_classes)
    baseline_dice = {name: score["dice"] for name, score in scores.items()}
    for warning in collapse_warnings(pixels["dice"], baseline_dice, constant, len(stems)):
        print(f"warning: {warning}", file=sys.stderr)
    metrics = {name: pixels[name] for name in SCORES}  # first: the columns `dvc exp show` leads with
    summary = summarize_instances(list(objects.values())) if objects else None
    if summary:
        otsu_ap = summarize_instances(otsu_objects)["by_tau"][0.5]["ap"]
        metrics["instances"] = {**headline(summary), "truth_objects": truth_objects(manifest["mask_type"]),
                                "otsu_components_ap_50": round(otsu_ap, 6), **postprocessing_chosen(chosen)}
        print(f"evaluate: objects from {metrics['instances']['truth_objects']}: AP@0.5 "
              f"{metrics['instances']['ap_50']:.3f} (Otsu's connected components: {otsu_ap:.3f}), "
              f"F1@0.5 {metrics['instances']['f1_50']:.3f}")
        print(f"evaluate: {unmatched_line(summary['unmatched_50'])}")
        print(f"evaluate: {measurement_line(summary)}")
    metrics.update(training=training_summary(), baselines=scores, constant_predictions=constant,
                   margin_over_best_baseline=margin_over_best_baseline(pixels["dice"], baseline_dice),
                   **{key: value for key, value in pixels.items() if key not in SCORES})
    if num_classes == 1:
        metrics["threshold"] = chosen.get("predict.threshold")  # the mask's, as predict chose or was told
    write_instance_sweep(summary)
    write_json(METRICS, metrics, sort_keys=False)
    write_per_image(results, objects, num_classes)
    write_threshold_sweep(sweep)
    write_overlays(results, params.evaluate.overlays, num_classes, manifest)
    name, best = best_baseline(baseline_dice)
    print(f"evaluate: {len(stems)} test images: Dice {shown(pixels['dice'])}, IoU {shown(pixels['iou'])} "
          f"(best trivial baseline: {name} {shown(best)}) -> {METRICS}")


def predicted_labels(stem: str, num_classes: int, shape) -> np.ndarray:
    path = PREDICTIONS / f"{stem}.png"
    if not path.is_file():
        raise UserError(f"{path}: missing prediction; run the predict stage (dvc repro predict)")
    labels = _check_shape(path, read_mask(path), shape)
    return (labels > 0).astype(np.uint8) if num_classes == 1 else labels


def true_instances(stem: str) -> np.ndarray:
    return load_labels(PREPARED / "test" / "labels" / f"{stem}.npy")


def predicted_instances(stem: str, shape) -> np.ndarray:
    path = PREDICTIONS / f"{stem}_instances.png"
    if not path.is_file():
        raise UserError(f"{path}: missing object labels; run the predict stage (dvc repro predict)")
    return _check_shape(path, read_mask(path), shape)


def training_summary() -> dict:
    """What training reached (reports/train.json, without its timings, which vary between runs), so
    that `dvc metrics diff` shows it on a fresh clone: train's own outputs stay in the DVC cache."""
    train = read_json(TRAIN_SUMMARY)
    return {key: train[key] for key in TRAINING_KEYS}


def truth_objects(mask_type: str) -> str:
    return "instance labels" if mask_type == "instances" else "connected components of the masks"


def postprocess() -> dict:
    """What predict chose on the validation images, and the tile size and threshold it used."""
    path = PREDICTIONS / "postprocess.json"
    return read_json(path) if path.is_file() else {}


def postprocessing_chosen(chosen: dict) -> dict:
    """The seeds and minimum object size predict chose on the validation images (`chosen`:
    postprocess()), if it did."""
    keys = [key for key in ("seeds", "seed_threshold", "seed_sigma", "seed_depth", "min_object_size")
            if f"predict.{key}" in chosen]
    return {key: chosen[f"predict.{key}"] for key in keys}


def write_instance_sweep(summary: dict | None) -> None:
    """Object scores at every IoU threshold: the 'AP against the IoU threshold' plot (only the
    header for several classes, where there are no objects to score)."""
    columns = ("ap", "f1", "precision", "recall", "pq", "tp", "fp", "fn")
    with atomic_file(INSTANCES) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["iou_threshold", *columns])
        for tau, scores in (summary["by_tau"] if summary else {}).items():
            writer.writerow([tau, *(_fmt(scores[c]) if isinstance(scores[c], float) else scores[c] for c in columns)])


def foreground_probability(stem: str, shape) -> np.ndarray:
    """(H, W) probability of foreground from <stem>_prob.png or <stem>_prob.npy (uint8 = p * 255)."""
    png, npy = PREDICTIONS / f"{stem}_prob.png", PREDICTIONS / f"{stem}_prob.npy"
    if png.is_file():
        path, values = png, read_mask(png)
    elif npy.is_file():
        path, values = npy, np.load(npy)
    else:
        raise UserError(f"{png}: missing probability map; run the predict stage (dvc repro predict)")
    probability = values / 255.0 if values.dtype == np.uint8 else values.astype(np.float32)
    if probability.ndim == 3:
        probability = 1 - probability[..., 0]
    return _check_shape(path, probability, shape)


def write_per_image(results: dict, objects: dict, num_classes: int) -> None:
    """One row per test image (foreground mean for several classes): the 'Dice per image' plot;
    for one class also its objects: counts, AP/F1 at IoU 0.5, adapted Rand error, merges, splits."""
    with atomic_file(PER_IMAGE) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", *SCORES, "tp", "fp", "fn", "tn", *OBJECT_COLUMNS])
        for stem, result in results.items():
            scores = [_fmt(foreground_score(result, name, num_classes)) for name in SCORES]
            counts = [int(np.sum(result[c] if num_classes == 1 else result[c][1:])) for c in ("tp", "fp", "fn", "tn")]
            writer.writerow([stem, *scores, *counts, *object_row(objects.get(stem))])


OBJECT_COLUMNS = ("objects_true", "objects_predicted", "matched_area_ratio_50", "ap_50", "f1_50", "rand_error",
                  "merges", "splits", *UNMATCHED_CAUSES)


def object_row(image: dict | None) -> list:
    if image is None:
        return [""] * len(OBJECT_COLUMNS)
    scores = scores_from_matches(**image["by_tau"][0.5])
    ratio = median_area_ratio([image])
    return [image["objects_true"], image["objects_predicted"], "" if ratio is None else _fmt(ratio),
            _fmt(scores["ap"]), _fmt(scores["f1"]),
            _fmt(image["rand_error"]), image["merges"], image["splits"],
            *(image["unmatched_50"][cause] for cause in UNMATCHED_CAUSES)]


def unmatched_line(causes: dict) -> str:
    """Where the unmatched objects at IoU 0.5 come from, so that a low AP points at what to change."""
    return (f"unmatched at IoU 0.5: true objects merged with another {causes['fn_merged']}, split "
            f"{causes['fn_split']}, missed {causes['fn_missed']}, outlined too differently {causes['fn_low_iou']}; "
            f"predicted objects that merge several {causes['fp_merge']}, pieces of split objects "
            f"{causes['fp_split_piece']}, on background {causes['fp_spurious']}, outlined too differently "
            f"{causes['fp_low_iou']}")


def write_threshold_sweep(sweep: dict) -> None:
    with atomic_file(THRESHOLDS) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["threshold", "dice", "iou"])
        for t, results in sweep.items():
            summary = summarize(results, 1)
            writer.writerow([t, _fmt(summary["dice"]), _fmt(summary["iou"])])


def write_overlays(results: dict, count: int, num_classes: int, manifest: dict) -> None:
    """The `count` worst and best test images by Dice, as worst1.png, ..., best1.png, ...: TP green,
    FP red, FN blue over the grey image, and for one class the outlines of the objects (outline_objects)."""
    ranked = sorted((s for s in results if np.isfinite(foreground_score(results[s], "dice", num_classes))),
                    key=lambda s: (foreground_score(results[s], "dice", num_classes), s))
    chosen = [("worst", i, s) for i, s in enumerate(ranked[:count])]
    chosen += [("best", i, s) for i, s in enumerate(reversed(ranked[-count:] if count else []))]
    with atomic_dir(OVERLAYS) as out:
        for kind, rank, stem in chosen:
            image = load_prepared_image(PREPARED / "test" / "images" / f"{stem}.npy", manifest, stem)
            truth = np.load(PREPARED / "test" / "masks" / f"{stem}.npy")
            overlay = colour_overlay(image, truth, predicted_labels(stem, num_classes, truth.shape))
            if num_classes == 1:
                overlay = outline_objects(overlay, true_instances(stem), predicted_instances(stem, truth.shape))
            write_png(out / f"{kind}{rank + 1}.png", enlarged(overlay, OVERLAY_MIN_SIDE))
    if chosen:  # names stay the same from run to run, so `dvc plots diff` pairs them
        print("evaluate: overlays " + ", ".join(f"{kind}{rank + 1}.png = {stem} (Dice "
                                                f"{foreground_score(results[stem], 'dice', num_classes):.3f})"
                                                for kind, rank, stem in chosen))


def colour_overlay(image: np.ndarray, truth: np.ndarray, prediction: np.ndarray) -> np.ndarray:
    """RGB uint8: a foreground pixel of the right class is TP; one predicted as another (wrong)
    class is FP; a missed one (predicted background) is FN."""
    grey = image.mean(axis=-1)
    low, high = np.percentile(grey, [1, 99.8])
    grey = np.clip((grey - low) / max(high - low, 1e-6), 0, 1) * 255
    rgb = np.repeat(grey[..., None], 3, axis=-1)
    tp = (prediction > 0) & (prediction == truth)
    fp = (prediction > 0) & (prediction != truth)
    fn = (truth > 0) & (prediction == 0)
    for mask, colour in ((tp, COLOURS["tp"]), (fp, COLOURS["fp"]), (fn, COLOURS["fn"])):
        rgb[mask] = 0.45 * rgb[mask] + 0.55 * np.array(colour)
    return rgb.round().astype(np.uint8)


def outline_objects(rgb: np.ndarray, truth: np.ndarray, prediction: np.ndarray) -> np.ndarray:
    """Outlines of the predicted objects: white, magenta where one merges true objects; the outline
    of a true object split into several predicted ones in yellow."""
    split, merged = split_and_merged_pixels(truth, prediction)
    outlined = rgb.copy()
    edges = find_boundaries(prediction, mode="inner")
    outlined[edges] = COLOURS["object"]
    outlined[edges & merged] = COLOURS["merged"]
    outlined[find_boundaries(np.where(split, truth, 0), mode="inner")] = COLOURS["split"]
    return outlined


def enlarged(rgb: np.ndarray, min_side: int) -> np.ndarray:
    """Pixels repeated a whole number of times until the short side reaches `min_side`: small test
    images stay readable in `dvc plots show`, and every pixel stays a sharp square."""
    factor = -(-min_side // min(rgb.shape[:2]))
    return np.repeat(np.repeat(rgb, factor, axis=0), factor, axis=1) if factor > 1 else rgb


def _check_shape(path: Path, array: np.ndarray, shape) -> np.ndarray:
    if array.shape[:2] != tuple(shape):
        raise UserError(f"{path}: size {array.shape[:2]} differs from the test mask {tuple(shape)}; "
                        "rerun the predict stage (dvc repro predict)")
    return array


def _fmt(value) -> str:
    return "" if value is None or np.isnan(value) else f"{value:.6f}"


if __name__ == "__main__":
    run_stage(main)
