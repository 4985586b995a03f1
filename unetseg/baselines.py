"""Trivial baselines and a guard against a model that collapsed to a trivial answer.

Predicting foreground everywhere scores Dice 2f / (1 + f) on an image whose foreground fraction is
f: 0.9 for f = 0.82. A high Dice therefore means little until it beats such answers, scored with
the same metrics on the same test images.
"""

import numpy as np
from skimage.filters import threshold_otsu

from unetseg.metrics import summarize

BASELINES = ("all_foreground", "all_background", "otsu")


def otsu_mask(image: np.ndarray) -> np.ndarray:
    """(H, W) uint8: 1 where the grey level (mean over channels) is above Otsu's threshold.
    A constant image has no threshold and gives all zeros."""
    grey = image.mean(axis=-1) if image.ndim == 3 else image
    if grey.min() == grey.max():
        return np.zeros(grey.shape, np.uint8)
    return (grey > threshold_otsu(grey)).astype(np.uint8)


def baseline_predictions(image: np.ndarray, truth: np.ndarray, num_classes: int) -> dict[str, np.ndarray]:
    """(H, W) uint8 label predictions of the trivial baselines for one image.

    all_foreground labels every pixel with the image's most frequent foreground class (1 for
    binary), all_background with 0. otsu thresholds the grey image with Otsu's method and takes
    whichever polarity (bright or dark objects) has the higher Dice against `truth`: fluorescence
    nuclei are bright, brightfield ones dark. Choosing with the truth makes it an optimistic baseline.
    """
    label = 1 if num_classes == 1 else majority_foreground_class(truth)
    otsu = otsu_best_polarity(image, truth > 0)
    return {"all_foreground": np.full(truth.shape, label, np.uint8),
            "all_background": np.zeros(truth.shape, np.uint8),
            "otsu": otsu * np.uint8(label)}


def majority_foreground_class(truth: np.ndarray) -> int:
    """The most frequent class other than 0 in `truth`, or 1 when it has none."""
    counts = np.bincount(truth.ravel().astype(np.int64), minlength=2)[1:]
    return int(np.argmax(counts)) + 1 if counts.any() else 1


def otsu_best_polarity(image: np.ndarray, foreground: np.ndarray) -> np.ndarray:
    """The Otsu mask or its complement, whichever overlaps `foreground` better (bright on a tie)."""
    bright = otsu_mask(image)
    if not bright.any():  # a constant image: no threshold, so no objects of either polarity
        return bright
    dark = 1 - bright
    return dark if _dice(foreground, dark) > _dice(foreground, bright) else bright


def is_constant(prediction: np.ndarray) -> bool:
    """True when every pixel has the same label."""
    return bool(prediction.min() == prediction.max())


def baseline_scores(per_image: dict[str, list[dict]], num_classes: int) -> dict[str, dict]:
    """Per baseline, the mean Dice and IoU over images, from `metrics.evaluate_image` results."""
    scores = {}
    for name, results in per_image.items():
        summary = summarize(results, num_classes)
        scores[name] = {"dice": summary["dice"], "iou": summary["iou"]}
    return scores


def margin_over_best_baseline(model_dice, baseline_dice: dict) -> float | None:
    """The model's Dice minus the best baseline's; None when either is missing (None or NaN)."""
    name, best = best_baseline(baseline_dice)
    if name is None or not _is_number(model_dice):
        return None
    return round(float(model_dice) - best, 6)


def best_baseline(baseline_dice: dict) -> tuple[str | None, float | None]:
    """(name, Dice) of the baseline with the highest Dice, ignoring None/NaN; (None, None) if none."""
    scored = {name: float(dice) for name, dice in baseline_dice.items() if _is_number(dice)}
    if not scored:
        return None, None
    name = max(scored, key=scored.get)
    return name, scored[name]


def collapse_warnings(model_dice, baseline_dice: dict, constant_images: int, n_images: int,
                      min_error_reduction: float = 0.25) -> list[str]:
    """One-line warnings when the model looks collapsed to a trivial answer; empty for a good model.

    "Clearly better" is relative: the model must remove at least `min_error_reduction` of the best
    baseline's error (1 - Dice). An absolute margin would not do: on majority-foreground data the
    all-foreground answer already scores 0.92 and Otsu 0.98, so no model could beat them by 0.05.
    A None/NaN model Dice counts as not beating the baselines."""
    warnings = []
    name, best = best_baseline(baseline_dice)
    if name is not None and not clearly_beats(model_dice, best, min_error_reduction):
        shown = f"{float(model_dice):.3f}" if _is_number(model_dice) else "(none)"
        warnings.append(f"the model's test Dice {shown} is no clear gain on the trivial {name} baseline "
                        f"({best:.3f}; the model must remove {min_error_reduction:.0%} of its error 1 - Dice): "
                        "it may have collapsed to a trivial answer; check the masks, keep train.loss auto "
                        "(bce_dice), or train longer (plan.train_minutes)")
    if n_images and constant_images == n_images:
        warnings.append(f"the model predicts one class for every pixel of all {n_images} test images: "
                        "it has collapsed, often from too little training or rare foreground; keep "
                        "train.loss auto (bce_dice) or train longer (plan.train_minutes)")
    return warnings


def clearly_beats(model_dice, baseline_dice: float, min_error_reduction: float) -> bool:
    """The model removes at least `min_error_reduction` of the baseline's error 1 - Dice."""
    if not _is_number(model_dice):
        return False
    return 1 - float(model_dice) <= (1 - min_error_reduction) * (1 - baseline_dice) + 1e-9


def _dice(truth: np.ndarray, prediction: np.ndarray) -> float:
    """Binary Dice, 0 when both are empty (only used to rank the two polarities)."""
    overlap = np.count_nonzero(truth & (prediction > 0))
    total = np.count_nonzero(truth) + np.count_nonzero(prediction)
    return 2 * overlap / total if total else 0.0


def _is_number(value) -> bool:
    return value is not None and np.isfinite(value)
