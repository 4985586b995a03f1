"""Stage evaluate: Dice/IoU/precision/recall per test image from confusion counts, means, plots.

reports/metrics.json also scores trivial baselines (all foreground, all background, Otsu) the same
way, and a warning on stderr says when the model does not beat them or predicts one class only.

reports/thresholds.csv is the mean over test images (images empty in both truth and prediction
left out) of Dice and IoU of foreground-vs-background at each threshold of the probability maps;
for several classes the foreground probability is 1 - p(background).
"""

import csv
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from stages.common import atomic_dir, atomic_file, load_stage_params, read_json, run_stage, write_json
from unetseg.baselines import (BASELINES, baseline_predictions, baseline_scores, collapse_warnings, is_constant,
                               margin_over_best_baseline)
from unetseg.errors import UserError
from unetseg.imageio import read_mask, write_png
from unetseg.metrics import SCORES, evaluate_image, summarize

PREPARED, PREDICTIONS = Path("data/prepared"), Path("data/predictions")
METRICS, PER_IMAGE, THRESHOLDS, OVERLAYS = ("reports/metrics.json", "reports/per_image.csv",
                                            "reports/thresholds.csv", "reports/overlays")
COLOURS = {"tp": (0, 200, 0), "fp": (230, 0, 0), "fn": (0, 120, 255)}


def main(argv) -> None:
    params = load_stage_params(argv, __doc__)
    num_classes, thresholds = params.data.num_classes, params.evaluate.thresholds
    stems = read_json(PREPARED / "manifest.json")["splits"]["test"]
    if not stems:
        raise UserError("params.yaml: prepare.test_fraction: the test split is empty; raise it or list test images")
    results, sweep = {}, {t: [] for t in thresholds}
    baselines, constant = {name: [] for name in BASELINES}, 0
    for stem in tqdm(stems, desc="evaluate"):  # one image in memory at a time
        truth = np.load(PREPARED / "test" / "masks" / f"{stem}.npy")
        prediction = predicted_labels(stem, num_classes, truth.shape)
        results[stem] = evaluate_image(truth, prediction, num_classes)
        constant += is_constant(prediction)
        image = np.load(PREPARED / "test" / "images" / f"{stem}.npy")
        for name, labels in baseline_predictions(image, truth, num_classes).items():
            baselines[name].append(evaluate_image(truth, labels, num_classes))
        foreground, probability = (truth > 0).astype(np.uint8), foreground_probability(stem, truth.shape)
        for t in thresholds:
            sweep[t].append(evaluate_image(foreground, (probability >= t).astype(np.uint8), 1))

    metrics = summarize(list(results.values()), num_classes)
    scores = baseline_scores(baselines, num_classes)
    baseline_dice = {name: score["dice"] for name, score in scores.items()}
    metrics.update(baselines=scores, constant_predictions=constant,
                   margin_over_best_baseline=margin_over_best_baseline(metrics["dice"], baseline_dice))
    for warning in collapse_warnings(metrics["dice"], baseline_dice, constant, len(stems)):
        print(f"warning: {warning}", file=sys.stderr)
    write_json(METRICS, metrics)
    write_per_image(results, num_classes)
    write_threshold_sweep(sweep)
    write_overlays(results, params.evaluate.overlays, num_classes)


def predicted_labels(stem: str, num_classes: int, shape) -> np.ndarray:
    path = PREDICTIONS / f"{stem}.png"
    if not path.is_file():
        raise UserError(f"{path}: missing prediction; run the predict stage (dvc repro predict)")
    labels = _check_shape(path, read_mask(path), shape)
    return (labels > 0).astype(np.uint8) if num_classes == 1 else labels


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


def foreground_mean(result: dict, name: str, num_classes: int) -> float:
    values = np.asarray(result[name], np.float64)
    values = values if num_classes == 1 else values[1:]
    return float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")


def write_per_image(results: dict, num_classes: int) -> None:
    """One row per test image (foreground mean for several classes): the 'Dice per image' plot."""
    with atomic_file(PER_IMAGE) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", *SCORES, "tp", "fp", "fn", "tn"])
        for stem, result in results.items():
            scores = [_fmt(foreground_mean(result, name, num_classes)) for name in SCORES]
            counts = [int(np.sum(result[c] if num_classes == 1 else result[c][1:])) for c in ("tp", "fp", "fn", "tn")]
            writer.writerow([stem, *scores, *counts])


def write_threshold_sweep(sweep: dict) -> None:
    with atomic_file(THRESHOLDS) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["threshold", "dice", "iou"])
        for t, results in sweep.items():
            summary = summarize(results, 1)
            writer.writerow([t, _fmt(summary["dice"]), _fmt(summary["iou"])])


def write_overlays(results: dict, count: int, num_classes: int) -> None:
    """The `count` worst and best test images by Dice: TP green, FP red, FN blue over the grey image."""
    ranked = sorted((s for s in results if np.isfinite(foreground_mean(results[s], "dice", num_classes))),
                    key=lambda s: (foreground_mean(results[s], "dice", num_classes), s))
    chosen = [("worst", i, s) for i, s in enumerate(ranked[:count])]
    chosen += [("best", i, s) for i, s in enumerate(reversed(ranked[-count:] if count else []))]
    with atomic_dir(OVERLAYS) as out:
        for kind, rank, stem in chosen:
            image = np.load(PREPARED / "test" / "images" / f"{stem}.npy")
            truth = np.load(PREPARED / "test" / "masks" / f"{stem}.npy")
            overlay = colour_overlay(image, truth, predicted_labels(stem, num_classes, truth.shape))
            write_png(out / f"{kind}{rank + 1}_{stem}.png", overlay)


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


def _check_shape(path: Path, array: np.ndarray, shape) -> np.ndarray:
    if array.shape[:2] != tuple(shape):
        raise UserError(f"{path}: size {array.shape[:2]} differs from the test mask {tuple(shape)}; "
                        "rerun the predict stage (dvc repro predict)")
    return array


def _fmt(value) -> str:
    return "" if value is None or np.isnan(value) else f"{value:.6f}"


if __name__ == "__main__":
    run_stage(main)
