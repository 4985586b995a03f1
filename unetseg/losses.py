"""Losses and metrics in keras.ops, so every Keras backend runs them.

Binary targets are (N, H, W, 1) floats in {0, 1} against sigmoid outputs; several classes are
(N, H, W, 1) integer class ids against softmax outputs (one-hot inside). The weighted target adds a
second channel, each pixel's weight in the cross-entropy (N, H, W, 2); metrics read the first
channel only. Dice is pooled over the whole batch, as the seed's dice_coef does, with its smoothing
term.
"""

import keras
from keras import ops


def one_hot_targets(y_true, num_classes: int):
    if num_classes == 1:
        return ops.cast(y_true[..., :1], "float32")
    return ops.one_hot(ops.cast(y_true[..., 0], "int32"), num_classes)


def soft_dice(y_true, y_pred, smooth: float = 1.0):
    """(2 * sum(y * p) + smooth) / (sum(y) + sum(p) + smooth) per channel, pooled over the batch."""
    axes = tuple(range(len(y_pred.shape) - 1))
    intersection = ops.sum(y_true * y_pred, axis=axes)
    return (2.0 * intersection + smooth) / (ops.sum(y_true, axis=axes) + ops.sum(y_pred, axis=axes) + smooth)


@keras.saving.register_keras_serializable(package="unetseg")
class SegmentationLoss(keras.losses.Loss):
    """kind: dice (1 - Dice: the seed's -Dice shifted to be >= 0, same gradient), bce, or bce_dice
    (bce_weight * cross-entropy + dice_weight * (1 - Dice)). Several classes use categorical
    cross-entropy and the mean Dice over the classes other than background (class 0), as nnU-Net
    does and as the Dice metrics count: background's Dice is near 1 from the start and would only
    dilute the pull of the small classes (the boundary target's thin boundary). With
    `pixel_weights`, the targets carry each pixel's cross-entropy weight as a second channel (the
    U-Net paper's weight map)."""

    def __init__(self, kind="dice", num_classes=1, bce_weight=1.0, dice_weight=1.0, smooth=1.0,
                 pixel_weights=False, name="segmentation_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        self.kind, self.num_classes = kind, num_classes
        self.bce_weight, self.dice_weight, self.smooth = bce_weight, dice_weight, smooth
        self.pixel_weights = pixel_weights

    def call(self, y_true, y_pred):
        y_pred = ops.cast(y_pred, "float32")
        target = one_hot_targets(y_true, self.num_classes)
        total = 0.0
        if self.kind in ("bce", "bce_dice"):
            weight = self.bce_weight if self.kind == "bce_dice" else 1.0
            pixels = ops.cast(y_true[..., 1], "float32") if self.pixel_weights else None
            total = total + weight * cross_entropy(target, y_pred, self.num_classes, pixels)
        if self.kind in ("dice", "bce_dice"):
            weight = self.dice_weight if self.kind == "bce_dice" else 1.0
            total = total + weight * (1.0 - foreground_mean(soft_dice(target, y_pred, self.smooth), self.num_classes))
        return total / replicas_in_sync()

    def get_config(self):
        return {**super().get_config(), "kind": self.kind, "num_classes": self.num_classes,
                "bce_weight": self.bce_weight, "dice_weight": self.dice_weight, "smooth": self.smooth,
                "pixel_weights": self.pixel_weights}


def replicas_in_sync() -> int:
    """Replicas that each compute this loss on their slice of the batch (tf.distribute), else 1.

    Keras divides per-sample losses by the replica count, so that the replicas' gradients, which are
    summed, average out; it leaves a loss that is already a scalar alone. This loss is pooled over
    the batch, a scalar, so it divides itself (and Keras multiplies the count back when reporting)."""
    if keras.backend.backend() != "tensorflow":
        return 1
    import tensorflow as tf

    return tf.distribute.get_strategy().num_replicas_in_sync


def cross_entropy(target, y_pred, num_classes: int, pixel_weights=None):
    """Mean over the pixels of the cross-entropy, each pixel's times its weight if given (N, H, W)."""
    if num_classes == 1:
        per_pixel = keras.losses.binary_crossentropy(target, y_pred)
    else:
        per_pixel = keras.losses.categorical_crossentropy(target, y_pred)
    return ops.mean(per_pixel if pixel_weights is None else per_pixel * pixel_weights)


def foreground_mean(scores, num_classes: int):
    """The mean of per-class scores over the classes that are not background (class 0); a binary
    target's one channel is its foreground."""
    return ops.mean(scores if num_classes == 1 else scores[1:])


def hard_predictions(y_pred, num_classes: int):
    """Binary: probability >= 0.5; several classes: one-hot of the argmax."""
    if num_classes == 1:
        return ops.cast(y_pred >= 0.5, "float32")
    return ops.one_hot(ops.argmax(y_pred, axis=-1), num_classes)


@keras.saving.register_keras_serializable(package="unetseg")
class OverlapMetric(keras.metrics.Metric):
    """Dice or IoU of thresholded predictions, pooled over every pixel seen since the last reset;
    for several classes, the mean over foreground classes. Nothing predicted and nothing true
    counts as a perfect score (1.0)."""

    def __init__(self, kind="dice", num_classes=1, name=None, **kwargs):
        super().__init__(name=name or kind, **kwargs)
        self.kind, self.num_classes = kind, num_classes
        channels = max(num_classes, 1)
        self.intersection = self.add_variable((channels,), initializer="zeros", name="intersection")
        self.total = self.add_variable((channels,), initializer="zeros", name="total")

    def update_state(self, y_true, y_pred, sample_weight=None):
        target = one_hot_targets(y_true, self.num_classes)
        predicted = hard_predictions(ops.cast(y_pred, "float32"), self.num_classes)
        axes = tuple(range(len(predicted.shape) - 1))
        self.intersection.assign_add(ops.sum(target * predicted, axis=axes))
        self.total.assign_add(ops.sum(target, axis=axes) + ops.sum(predicted, axis=axes))

    def result(self):
        if self.kind == "dice":
            score = ops.divide_no_nan(2.0 * self.intersection, self.total)
        else:
            score = ops.divide_no_nan(self.intersection, self.total - self.intersection)
        score = ops.where(self.total > 0, score, 1.0)
        return foreground_mean(score, self.num_classes)

    def reset_state(self):
        self.intersection.assign(ops.zeros(self.intersection.shape))
        self.total.assign(ops.zeros(self.total.shape))

    def get_config(self):
        return {**super().get_config(), "kind": self.kind, "num_classes": self.num_classes}
