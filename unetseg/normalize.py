"""Intensity normalisation, shared by prepare (the dataset) and predict (new images)."""

from typing import Iterable, Optional

import numpy as np


def percentile_levels(image: np.ndarray, low: float, high: float) -> dict:
    """The [low, high] percentiles of each channel, which percentile normalisation maps to [0, 1]."""
    lo, hi = np.percentile(image.astype(np.float32), [low, high], axis=(0, 1))
    return {"low": lo.tolist(), "high": hi.tolist()}


def percentile_normalize(image: np.ndarray, low: float, high: float) -> np.ndarray:
    """Map the [low, high] percentiles of each channel to [0, 1] (values beyond may stick out)."""
    return to_unit_range(image, percentile_levels(image, low, high))


def to_unit_range(image: np.ndarray, levels: dict) -> np.ndarray:
    """Each channel's [low, high] levels to [0, 1]."""
    lo, hi = np.asarray(levels["low"]), np.asarray(levels["high"])
    return ((image.astype(np.float32) - lo) / np.maximum(hi - lo, 1e-6)).astype(np.float32)


def standardize(image: np.ndarray, mean, std) -> np.ndarray:
    """(x - mean) / std; mean and std one number each, or one a channel (dataset_statistics)."""
    std = np.maximum(np.asarray(std, np.float32), np.float32(1e-6))
    return ((image.astype(np.float32) - np.asarray(mean, np.float32)) / std).astype(np.float32)


def normalize(image: np.ndarray, spec: dict) -> np.ndarray:
    """Normalise an (H, W, C) image as `spec` says (the "normalization" entry of the manifest), then
    mirror it about the middle of the range when spec["invert"] asks for it and its background is bright."""
    return normalize_with_levels(image, spec)[0]


def normalize_with_levels(image: np.ndarray, spec: dict) -> tuple[np.ndarray, dict]:
    """The normalised image, and what besides `spec` gives it back from the image as read (`with_levels`):
    its percentile levels and whether it is mirrored. So prepare can store images in their own dtype."""
    levels = percentile_levels(image, *spec["percentiles"]) if spec["mode"] == "percentile" else {}
    levels["mirrored"] = False
    normalized = with_levels(image, spec, levels)
    if spec.get("invert", "none") == "bright_background" and has_bright_background(normalized, spec["mode"]):
        levels["mirrored"] = True
        normalized = mirrored(normalized, spec["mode"])
    return normalized, levels


def with_levels(image: np.ndarray, spec: dict, levels: dict) -> np.ndarray:
    """An image as read, normalised by `spec` and its own `levels` (`normalize_with_levels`)."""
    if spec["mode"] == "percentile":
        image = to_unit_range(image, levels)
    else:
        image = standardize(image, spec["mean"], spec["std"])
    return mirrored(image, spec["mode"]) if levels["mirrored"] else image


def load_prepared_image(path, manifest: dict, stem: str) -> np.ndarray:
    """An image that prepare stored as read (`path`), normalised as its manifest says for `stem`."""
    return with_levels(np.load(path), manifest["normalization"], manifest["images"][stem]["levels"])


def mirrored(normalized: np.ndarray, mode: str) -> np.ndarray:
    return (2 * MIDDLE[mode] - normalized).astype(np.float32)


MIDDLE = {"percentile": 0.5, "dataset": 0.0}  # the middle of the normalised range


def has_bright_background(normalized: np.ndarray, mode: str) -> bool:
    """True when most pixels (the median of the grey level) lie above the middle of the range: for
    objects on a background, a bright background (brightfield, stained tissue), not a fluorescence one."""
    return float(np.median(normalized.mean(axis=-1))) > MIDDLE[mode]


def object_contrast(normalized: np.ndarray, foreground: np.ndarray) -> Optional[float]:
    """Mean grey level on the objects minus that on the background; None when either is empty."""
    grey = normalized.mean(axis=-1)
    if foreground.all() or not foreground.any():
        return None
    return float(grey[foreground].mean() - grey[~foreground].mean())


def choose_inversion(setting: str, images: list[tuple[bool, Optional[float]]]) -> tuple[str, str]:
    """Resolve prepare.invert to "none" or "bright_background", with the reason.

    `images`: per training image, (has a bright background, object contrast). `auto` inverts the
    bright-background images only when the objects are bright in some images and dark in others and
    the inversion makes at least 90 % of them one polarity (DSB2018: 123 of 664 images have dark
    nuclei on a bright background, every one of them with a median above the middle). A dataset of
    one polarity, or one where the background brightness does not tell, is left as it is.
    """
    if setting != "auto":
        return setting, "set in params.yaml"
    scored = [(bright, contrast) for bright, contrast in images if contrast]
    darker = sum(contrast < 0 for _, contrast in scored)
    agree_before = max(darker, len(scored) - darker)
    darker_after = sum((contrast > 0) if bright else (contrast < 0) for bright, contrast in scored)
    agree_after = max(darker_after, len(scored) - darker_after)
    counts = f"objects darker than their background in {darker} of {len(scored)} training images"
    if agree_after > agree_before and agree_after >= 0.9 * len(scored):
        return "bright_background", (f"{counts}; inverting the images with a bright background makes "
                                     f"{agree_after} of {len(scored)} one polarity")
    return "none", counts + ("" if agree_before == len(scored) else
                             "; inverting the bright-background images would not make them one polarity")


def dataset_statistics(images: Iterable[np.ndarray]) -> tuple[list[float], list[float]]:
    """Each channel's mean and standard deviation over all pixels of (H, W, C) images, one image in
    memory at a time: stains and fluorophores differ in range, as nnU-Net normalises each on its own."""
    count, total, squares = 0, 0.0, 0.0
    for image in images:
        values = image.astype(np.float64).reshape(-1, image.shape[-1])
        count += len(values)
        total = total + values.sum(axis=0)
        squares = squares + np.square(values).sum(axis=0)
    if not count:
        raise ValueError("dataset_statistics needs at least one image")
    mean = total / count
    return mean.tolist(), np.sqrt(np.maximum(squares / count - mean**2, 0.0)).tolist()
