"""Segmentation metrics from confusion counts (numpy).

Counts come first: TP/FP/FN/TN per image and class. Dice, IoU, precision, recall and pixel
accuracy are derived from them. Empty-mask policy (nnU-Net's): when a class is absent from both
the ground truth and the prediction of an image, its Dice, IoU, precision and recall are NaN
(there is nothing to get right or wrong), those images are left out of the means, and they are
counted as `n_empty`. When only one of the two is empty, the scores are 0: a false alarm on an
empty image counts against the model. (MONAI's DiceMetric by default skips every image whose
ground truth is empty instead, so its means can be higher on data with empty images.)
"""

import numpy as np

COUNTS = ("tp", "fp", "fn", "tn")
SCORES = ("dice", "iou", "precision", "recall", "pixel_accuracy")


def shown(score: float | None) -> str:
    """A score for a console line: three decimals, n/a where it is undefined."""
    return "n/a" if score is None else f"{score:.3f}"


def confusion_counts(truth: np.ndarray, prediction: np.ndarray, num_classes: int) -> dict[str, np.ndarray]:
    """Per class (index 0..K-1; for binary K=1 the class is the foreground) the TP/FP/FN/TN counts."""
    classes = [1] if num_classes == 1 else range(num_classes)
    counts = {name: np.zeros(len(classes), np.int64) for name in COUNTS}
    for i, c in enumerate(classes):
        t, p = truth == c, prediction == c
        counts["tp"][i] = np.count_nonzero(t & p)
        counts["fp"][i] = np.count_nonzero(~t & p)
        counts["fn"][i] = np.count_nonzero(t & ~p)
        counts["tn"][i] = t.size - counts["tp"][i] - counts["fp"][i] - counts["fn"][i]
    return counts


def scores_from_counts(tp, fp, fn, tn) -> dict[str, np.ndarray]:
    """Every score from the counts; NaN where a class is absent from both truth and prediction."""
    tp, fp, fn, tn = (np.asarray(v, np.float64) for v in (tp, fp, fn, tn))
    with np.errstate(divide="ignore", invalid="ignore"):
        empty = (tp + fp + fn) == 0
        scores = {
            "dice": 2 * tp / (2 * tp + fp + fn),
            "iou": tp / (tp + fp + fn),
            "precision": np.where(tp + fp > 0, tp / (tp + fp), 0.0),
            "recall": np.where(tp + fn > 0, tp / (tp + fn), 0.0),
            "pixel_accuracy": (tp + tn) / (tp + fp + fn + tn),
        }
    for name in ("dice", "iou", "precision", "recall"):
        scores[name] = np.where(empty, np.nan, scores[name])
    return scores


def evaluate_image(truth: np.ndarray, prediction: np.ndarray, num_classes: int) -> dict:
    """Counts and scores for one image, per class."""
    counts = confusion_counts(truth, prediction, num_classes)
    return {**counts, **scores_from_counts(**counts)}


def foreground_classes(num_classes: int) -> list[int]:
    """Rows of the per-class arrays that are foreground: all for binary, 1.. for several classes."""
    return [0] if num_classes == 1 else list(range(1, num_classes))


def summarize(per_image: list[dict], num_classes: int) -> dict:
    """Means over images (NaN cases left out) per class, the foreground mean, and the counts."""
    summary: dict = {"n_images": len(per_image)}
    foreground = foreground_classes(num_classes)
    stacked = {name: np.array([image[name] for image in per_image], np.float64).reshape(len(per_image), -1)
               for name in SCORES}
    per_class_means = {name: nanmean(stacked[name], axis=0) for name in SCORES}
    for name in SCORES:
        summary[name] = _to_float(nanmean(per_class_means[name][foreground]))
    if num_classes > 1:  # not the mean of one-vs-rest accuracies, which counts every miss twice
        summary["pixel_accuracy"] = _to_float(nanmean([foreground_score(image, "pixel_accuracy", num_classes)
                                                        for image in per_image]))
    empty = np.isnan(stacked["dice"][:, foreground]).all(axis=1) if len(per_image) else np.zeros(0, bool)
    summary["n_empty"] = int(np.count_nonzero(empty))
    if num_classes > 1:
        summary["per_class"] = {str(c): {name: _to_float(per_class_means[name][c]) for name in SCORES}
                                for c in range(num_classes)}
    return summary


def foreground_score(per_image: dict, name: str, num_classes: int) -> float:
    """One image's score over its foreground classes (the mean for several); NaN if none is scored.
    Pixel accuracy for several classes is the overall one: the share of pixels given their class."""
    if name == "pixel_accuracy" and num_classes > 1:
        return float(np.sum(per_image["tp"]) / (np.sum(per_image["tp"]) + np.sum(per_image["fn"])))
    values = np.asarray(per_image[name], np.float64)[foreground_classes(num_classes)]
    return float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")


def nanmean(values, axis=None):
    """The mean of the values that are not NaN (along `axis`); NaN where there are none."""
    values = np.asarray(values, np.float64)
    with np.errstate(invalid="ignore"):
        if values.size == 0:
            return np.float64(np.nan)
        count = np.sum(~np.isnan(values), axis=axis)
        total = np.nansum(values, axis=axis)
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _to_float(value) -> float | None:
    """JSON-friendly: NaN becomes None (null)."""
    value = float(value)
    return None if np.isnan(value) else round(value, 6)
