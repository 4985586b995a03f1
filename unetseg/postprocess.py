"""Post-processing of model outputs: probabilities to labels, small-object removal."""

import numpy as np
from scipy import ndimage

EIGHT_CONNECTED = np.ones((3, 3), bool)


def to_labels(probabilities: np.ndarray, threshold: float) -> np.ndarray:
    """(H, W, K) model output -> (H, W) uint8 labels: threshold for one class, argmax for several."""
    if probabilities.shape[-1] == 1:
        return (probabilities[..., 0] >= threshold).astype(np.uint8)
    return np.argmax(probabilities, axis=-1).astype(np.uint8)


def remove_small_objects(labels: np.ndarray, min_size: int) -> np.ndarray:
    """Set to background every 8-connected component of a foreground class smaller than
    `min_size` pixels; 0 keeps everything."""
    if min_size <= 0:
        return labels
    cleaned = labels.copy()
    for value in np.unique(labels):
        if value == 0:
            continue
        components, _ = ndimage.label(labels == value, structure=EIGHT_CONNECTED)
        too_small = np.bincount(components.ravel()) < min_size
        too_small[0] = False
        cleaned[too_small[components]] = 0
    return cleaned
