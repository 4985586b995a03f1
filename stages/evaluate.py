"""Stage evaluate: Dice/IoU/precision/recall per test image from confusion counts, means, plots."""

import argparse
import csv
from pathlib import Path

import numpy as np

from stages.common import atomic_dir, atomic_file, read_json, run_stage, write_json
from unetseg.errors import UserError
from unetseg.imageio import read_mask, write_png
from unetseg.metrics import SCORES, evaluate_image, summarize
from unetseg.params import load_params

PREPARED, PREDICTIONS = Path("data/prepared"), Path("data/predictions")
METRICS, PER_IMAGE, THRESHOLDS, OVERLAYS = ("reports/metrics.json", "reports/per_image.csv",
                                            "reports/thresholds.csv", "reports/overlays")
COLOURS = {"tp": (0, 200, 0), "fp": (230, 0, 0), "fn": (0, 120, 255)}


def main(argv) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    params = load_params(parser.parse_args(argv).params)
    num_classes = params.data.num_classes
    stems = read_json(PREPARED / "manifest.json")["splits"]["test"]
    if not stems:
        raise UserError("params.yaml: prepare.test_fraction: the test split is empty; raise it or list test images")
    truths = {stem: np.load(PREPARED / "test" / "masks" / f"{stem}.npy") for stem in stems}
    results = {stem: evaluate_image(truths[stem], predicted_labels(stem, num_classes), num_classes)
               for stem in stems}

    write_json(METRICS, summarize(list(results.values()), num_classes))
    write_per_image(results, num_classes)
    if num_classes == 1:
        write_threshold_sweep(truths, params.evaluate.thresholds)
    write_overlays(results, truths, params.evaluate.overlays, num_classes)


def predicted_labels(stem: str, num_classes: int) -> np.ndarray:
    path = PREDICTIONS / f"{stem}.png"
    if not path.is_file():
        raise UserError(f"{path}: missing prediction; run the predict stage (dvc repro predict)")
    labels = read_mask(path)
    return (labels > 0).astype(np.uint8) if num_classes == 1 else labels


def probability_map(stem: str) -> np.ndarray:
    png = PREDICTIONS / f"{stem}_prob.png"
    if png.is_file():
        return read_mask(png) / 255.0
    return np.load(PREDICTIONS / f"{stem}_prob.npy").astype(np.float32)


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


def write_threshold_sweep(truths: dict, thresholds: list[float]) -> None:
    """Mean Dice and IoU over test images at each threshold of the probability maps."""
    rows = {t: [] for t in thresholds}
    for stem, truth in truths.items():
        probabilities = probability_map(stem)
        for t in thresholds:
            rows[t].append(evaluate_image(truth, (probabilities >= t).astype(np.uint8), 1))
    with atomic_file(THRESHOLDS) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["threshold", "dice", "iou"])
        for t, results in rows.items():
            summary = summarize(results, 1)
            writer.writerow([t, summary["dice"], summary["iou"]])


def write_overlays(results: dict, truths: dict, count: int, num_classes: int) -> None:
    """Worst and best test images by Dice: TP green, FP red, FN blue over the grey image."""
    ranked = sorted((s for s in results if np.isfinite(foreground_mean(results[s], "dice", num_classes))),
                    key=lambda s: (foreground_mean(results[s], "dice", num_classes), s))
    chosen = [("worst", i, s) for i, s in enumerate(ranked[:count])]
    chosen += [("best", i, s) for i, s in enumerate(reversed(ranked[-count:] if count else []))]
    with atomic_dir(OVERLAYS) as out:
        for kind, rank, stem in chosen:
            image = np.load(PREPARED / "test" / "images" / f"{stem}.npy")
            overlay = colour_overlay(image, truths[stem], predicted_labels(stem, num_classes))
            write_png(out / f"{kind}{rank + 1}_{stem}.png", overlay)


def colour_overlay(image: np.ndarray, truth: np.ndarray, prediction: np.ndarray) -> np.ndarray:
    grey = image.mean(axis=-1)
    low, high = np.percentile(grey, [1, 99.8])
    grey = np.clip((grey - low) / max(high - low, 1e-6), 0, 1) * 255
    rgb = np.repeat(grey[..., None], 3, axis=-1)
    t, p = truth > 0, prediction > 0
    for mask, colour in ((t & p, COLOURS["tp"]), (~t & p, COLOURS["fp"]), (t & ~p, COLOURS["fn"])):
        rgb[mask] = 0.45 * rgb[mask] + 0.55 * np.array(colour)
    return rgb.round().astype(np.uint8)


def _fmt(value: float) -> str:
    return "" if np.isnan(value) else f"{value:.6f}"


if __name__ == "__main__":
    run_stage(main)
