import numpy as np
import pytest

from unetseg.baselines import (baseline_predictions, baseline_scores, collapse_warnings, is_constant,
                               margin_over_best_baseline, otsu_mask)
from unetseg.metrics import evaluate_image


def square_image(bright_objects: bool):
    """A 3-channel image with one 4x4 square object, and its truth."""
    truth = np.zeros((10, 10), np.uint8)
    truth[3:7, 3:7] = 1
    grey = np.where(truth > 0, 0.9, 0.1) if bright_objects else np.where(truth > 0, 0.1, 0.9)
    return np.repeat(grey[..., None], 3, axis=-1).astype(np.float32), truth


def test_otsu_mask_is_the_bright_pixels_and_empty_for_a_constant_image():
    image, truth = square_image(bright_objects=True)
    assert otsu_mask(image).dtype == np.uint8 and np.array_equal(otsu_mask(image), truth)
    assert not otsu_mask(np.full((5, 5, 1), 0.3)).any()


@pytest.mark.parametrize("bright_objects", [True, False])
def test_otsu_baseline_picks_the_polarity_of_the_objects(bright_objects):
    image, truth = square_image(bright_objects)
    assert np.array_equal(baseline_predictions(image, truth, 1)["otsu"], truth)


def test_otsu_baseline_of_a_constant_image_predicts_nothing():
    truth = np.eye(4, dtype=np.uint8)
    assert not baseline_predictions(np.zeros((4, 4, 1)), truth, 1)["otsu"].any()


def test_all_foreground_dice_is_2f_over_1_plus_f():
    truth = np.zeros((10, 10), np.uint8)
    truth[:3, :] = 1  # f = 0.3
    predictions = baseline_predictions(np.zeros((10, 10, 1)), truth, 1)
    assert predictions["all_foreground"].all() and not predictions["all_background"].any()
    dice = evaluate_image(truth, predictions["all_foreground"], 1)["dice"][0]
    assert np.isclose(dice, 2 * 0.3 / 1.3)


def test_several_classes_all_foreground_and_otsu_use_the_majority_foreground_class():
    truth = np.zeros((6, 6), np.uint8)
    truth[0, :2], truth[3:, 3:] = 1, 2
    image = np.where(truth > 0, 1.0, 0.0)[..., None]
    predictions = baseline_predictions(image, truth, 3)
    assert (predictions["all_foreground"] == 2).all()
    assert np.array_equal(predictions["otsu"], np.where(truth > 0, 2, 0))
    assert (baseline_predictions(image, np.zeros_like(truth), 3)["all_foreground"] == 1).all()


def test_is_constant():
    assert is_constant(np.zeros((3, 3), np.uint8)) and is_constant(np.full((2, 2), 2))
    assert not is_constant(np.eye(3, dtype=np.uint8))


def test_baseline_scores_are_the_summarized_means():
    truth = np.zeros((4, 4), np.uint8)
    truth[:2] = 1
    image = np.where(truth > 0, 1.0, 0.0)[..., None]
    per_image = {name: [evaluate_image(truth, labels, 1)] for name, labels in
                 baseline_predictions(image, truth, 1).items()}
    scores = baseline_scores(per_image, 1)
    assert scores["otsu"] == {"dice": 1.0, "iou": 1.0}
    assert scores["all_background"] == {"dice": 0.0, "iou": 0.0}
    assert np.isclose(scores["all_foreground"]["dice"], 2 / 3)


def test_a_constant_model_warns_twice():
    baselines = {"all_foreground": 0.918, "all_background": 0.0, "otsu": 0.7}
    warnings = collapse_warnings(0.918, baselines, constant_images=5, n_images=5)
    assert len(warnings) == 2 and all("\n" not in w for w in warnings)
    assert "all_foreground baseline (0.918" in warnings[0] and "0.918" in warnings[0].split("baseline")[0]
    assert "all 5 test images" in warnings[1]


def test_a_good_model_is_silent():
    baselines = {"all_foreground": 0.5, "all_background": 0.0, "otsu": 0.7}
    assert collapse_warnings(0.85, baselines, constant_images=0, n_images=5) == []
    assert collapse_warnings(0.775, baselines, constant_images=4, n_images=5) == []  # removes exactly 25 %


def test_the_gain_is_relative_to_what_the_baseline_leaves():
    """Majority foreground: all-foreground 0.918 and Otsu 0.977 leave little room; 0.997 is a real
    model (the inverted synthetic set), 0.98 is not clearly better than Otsu."""
    baselines = {"all_foreground": 0.918, "all_background": 0.0, "otsu": 0.977}
    assert collapse_warnings(0.997, baselines, 0, 7) == []
    assert "otsu" in collapse_warnings(0.98, baselines, 0, 7)[0]


def test_a_small_gain_and_a_missing_model_dice_warn():
    baselines = {"all_foreground": 0.5, "all_background": None, "otsu": float("nan")}
    assert "all_foreground" in collapse_warnings(0.51, baselines, 0, 5)[0]
    for missing in (None, float("nan")):
        assert len(collapse_warnings(missing, baselines, 0, 5)) == 1


def test_margin_over_best_baseline():
    assert margin_over_best_baseline(0.9, {"a": 0.5, "b": 0.7, "c": None}) == 0.2
    assert margin_over_best_baseline(None, {"a": 0.5}) is None
    assert margin_over_best_baseline(0.9, {"a": None, "b": float("nan")}) is None
    assert collapse_warnings(0.9, {"a": None}, 0, 5) == []
