"""Intensity normalisation, shared by prepare (the dataset) and predict (new images)."""

from typing import Iterable

import numpy as np


def percentile_normalize(image: np.ndarray, low: float, high: float) -> np.ndarray:
    """Map the [low, high] percentiles of each channel to [0, 1] (values beyond may stick out)."""
    image = image.astype(np.float32)
    lo, hi = np.percentile(image, [low, high], axis=(0, 1), keepdims=True)
    return ((image - lo) / np.maximum(hi - lo, 1e-6)).astype(np.float32)


def standardize(image: np.ndarray, mean: float, std: float) -> np.ndarray:
    return ((image.astype(np.float32) - mean) / max(std, 1e-6)).astype(np.float32)


def normalize(image: np.ndarray, spec: dict) -> np.ndarray:
    """Normalise an (H, W, C) image as `spec` says (the "normalization" entry of the manifest)."""
    if spec["mode"] == "percentile":
        return percentile_normalize(image, *spec["percentiles"])
    return standardize(image, spec["mean"], spec["std"])


def dataset_statistics(images: Iterable[np.ndarray]) -> tuple[float, float]:
    """Mean and standard deviation over all pixels, one image in memory at a time."""
    count, total, squares = 0, 0.0, 0.0
    for image in images:
        values = image.astype(np.float64)
        count += values.size
        total += values.sum()
        squares += np.square(values).sum()
    if not count:
        raise ValueError("dataset_statistics needs at least one image")
    mean = total / count
    return float(mean), float(np.sqrt(max(squares / count - mean**2, 0.0)))
