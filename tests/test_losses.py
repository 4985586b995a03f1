import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from unetseg.losses import OverlapMetric, SegmentationLoss, soft_dice  # noqa: E402

RNG = np.random.default_rng(0)
TRUTH = (RNG.random((2, 8, 8, 1)) > 0.6).astype(np.float32)
PRED = RNG.random((2, 8, 8, 1)).astype(np.float32)


def np_dice(y, p, smooth=1.0):
    return (2 * np.sum(y * p) + smooth) / (np.sum(y) + np.sum(p) + smooth)


def np_bce(y, p, eps=1e-7):
    p = np.clip(p, eps, 1 - eps)
    return np.mean(-(y * np.log(p) + (1 - y) * np.log(1 - p)))


def test_soft_dice_matches_the_seeds_formula():
    assert np.isclose(float(np.asarray(soft_dice(TRUTH, PRED, 1.0))[0]), np_dice(TRUTH, PRED))


@pytest.mark.parametrize("smooth", [1.0, 0.1])
def test_dice_loss_is_one_minus_dice(smooth):
    loss = float(SegmentationLoss("dice", smooth=smooth)(TRUTH, PRED))
    assert np.isclose(loss, 1 - np_dice(TRUTH, PRED, smooth), atol=1e-6)


def test_bce_and_weighted_sum():
    assert np.isclose(float(SegmentationLoss("bce")(TRUTH, PRED)), np_bce(TRUTH, PRED), atol=1e-5)
    combined = float(SegmentationLoss("bce_dice", bce_weight=0.3, dice_weight=2.0)(TRUTH, PRED))
    assert np.isclose(combined, 0.3 * np_bce(TRUTH, PRED) + 2.0 * (1 - np_dice(TRUTH, PRED)), atol=1e-5)


def test_pixel_weights_scale_each_pixels_cross_entropy():
    weights = RNG.uniform(0.5, 10, TRUTH.shape).astype(np.float32)
    targets = np.concatenate([TRUTH, weights], axis=-1)
    p = np.clip(PRED, 1e-7, 1 - 1e-7)
    by_hand = np.mean(-weights * (TRUTH * np.log(p) + (1 - TRUTH) * np.log(1 - p)))
    assert np.isclose(float(SegmentationLoss("bce", pixel_weights=True)(targets, PRED)), by_hand, rtol=1e-5)
    ones = np.concatenate([TRUTH, np.ones_like(TRUTH)], axis=-1)
    assert np.isclose(float(SegmentationLoss("bce_dice", pixel_weights=True)(ones, PRED)),
                      float(SegmentationLoss("bce_dice")(TRUTH, PRED)), atol=1e-6)
    metric = OverlapMetric("dice")  # scores the target channel only
    metric.update_state(targets, PRED)
    reference = OverlapMetric("dice")
    reference.update_state(TRUTH, PRED)
    assert float(metric.result()) == float(reference.result())


def test_empty_masks_with_empty_prediction_give_zero_dice_loss():
    empty = np.zeros((1, 4, 4, 1), np.float32)
    assert np.isclose(float(SegmentationLoss("dice")(empty, empty)), 0.0)
    assert np.isclose(float(SegmentationLoss("dice")(empty, np.ones_like(empty))), 1 - 1 / 17)


def test_categorical_loss_for_several_classes_leaves_background_out_of_the_dice():
    labels = RNG.integers(0, 3, (2, 6, 6, 1))
    probabilities = RNG.random((2, 6, 6, 3)).astype(np.float32)
    probabilities /= probabilities.sum(-1, keepdims=True)
    one_hot = np.eye(3)[labels[..., 0]]
    expected_ce = np.mean(-np.sum(one_hot * np.log(np.clip(probabilities, 1e-7, 1)), -1))
    expected_dice = np.mean([np_dice(one_hot[..., c], probabilities[..., c]) for c in (1, 2)])  # not background
    loss = float(SegmentationLoss("bce_dice", num_classes=3)(labels, probabilities))
    assert np.isclose(loss, expected_ce + 1 - expected_dice, atol=1e-4)


def hard_scores(y, p):
    t, q = y > 0.5, p >= 0.5
    inter, total = np.sum(t & q), np.sum(t) + np.sum(q)
    return 2 * inter / total, inter / (total - inter)


def test_overlap_metrics_pool_over_batches():
    dice, iou = OverlapMetric("dice"), OverlapMetric("iou")
    for metric in (dice, iou):
        metric.update_state(TRUTH[:1], PRED[:1])
        metric.update_state(TRUTH[1:], PRED[1:])
    expected_dice, expected_iou = hard_scores(TRUTH, PRED)
    assert np.isclose(float(dice.result()), expected_dice) and np.isclose(float(iou.result()), expected_iou)
    dice.reset_state()
    empty = np.zeros((1, 4, 4, 1), np.float32)
    dice.update_state(empty, empty)
    assert float(dice.result()) == 1.0


def test_overlap_metric_several_classes_averages_foreground():
    labels = np.array([[0, 1], [2, 2]])[None, ..., None]
    probabilities = np.eye(3)[np.array([[0, 1], [1, 2]])][None].astype(np.float32)
    metric = OverlapMetric("dice", num_classes=3)
    metric.update_state(labels, probabilities)
    assert np.isclose(float(metric.result()), np.mean([2 / 3, 2 / 3]))
