"""Post-processing of model outputs: probabilities to labels, small-object removal."""

import numpy as np
from scipy import ndimage

from unetseg.metrics import nanmean, scores_from_counts

EIGHT_CONNECTED = np.ones((3, 3), bool)
MASK_THRESHOLDS = tuple(round(0.3 + 0.05 * i, 2) for i in range(13))  # 0.3 .. 0.9: predict.threshold auto's
DICE_TOLERANCE = 0.001  # the validation Dice's curve is flat near its top, and where it peaks there is noise
                        # (DSB2018: 0.7-0.8 within 0.0004 on the validation images, the test images' peak 0.6)


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


def foreground_of(probabilities: np.ndarray, target: str) -> np.ndarray:
    """(H, W) p(foreground) of a one-class output; of the boundary target's, 1 - p(background)."""
    return 1.0 - probabilities[..., 0] if target == "boundary" else probabilities[..., 0]


def dice_by_threshold(images, thresholds=MASK_THRESHOLDS) -> dict[float, float]:
    """The mean over `images` ((true mask, p(foreground)) pairs; 0 = background) of the Dice of
    p >= t against the true foreground, for each t, by the metrics' rule: an image empty in both is
    left out at that t."""
    dice = []
    for truth, probability in images:
        inside = probability[truth > 0]
        tp = np.array([np.count_nonzero(inside >= t) for t in thresholds])
        predicted = np.array([np.count_nonzero(probability >= t) for t in thresholds])
        fp, fn = predicted - tp, inside.size - tp
        dice.append(scores_from_counts(tp, fp, fn, probability.size - tp - fp - fn)["dice"])
    means = nanmean(np.reshape(dice, (-1, len(thresholds))), axis=0)
    return {t: float(mean) for t, mean in zip(thresholds, means)}


def best_threshold(dice: dict[float, float]) -> float:
    """The threshold nearest 0.5 (of two, the lower) whose Dice is within DICE_TOLERANCE of the best;
    0.5 where no image was scored."""
    scored = {t: d for t, d in dice.items() if not np.isnan(d)}
    if not scored:
        return 0.5
    top = max(scored.values())
    return min((t for t, d in scored.items() if d >= top - DICE_TOLERANCE), key=lambda t: (round(abs(t - 0.5), 6), t))
