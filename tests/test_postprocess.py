import numpy as np
import pytest

from unetseg.postprocess import best_threshold, dice_by_threshold, foreground_of, remove_small_objects, to_labels


def test_labels_from_probabilities():
    probabilities = np.array([[[0.2], [0.7]]])
    assert to_labels(probabilities, 0.5).tolist() == [[0, 1]]
    assert to_labels(probabilities, 0.8).tolist() == [[0, 0]]
    three = np.array([[[0.1, 0.7, 0.2], [0.5, 0.2, 0.3]]])
    assert to_labels(three, 0.5).tolist() == [[1, 0]]


def test_small_objects_are_removed_per_class_8_connected():
    labels = np.zeros((8, 8), np.uint8)
    labels[0, 0] = 1
    labels[3:6, 3:6] = 1
    labels[7, 7] = 2
    labels[6, 6] = 2  # diagonal neighbour: one 2-pixel object
    assert remove_small_objects(labels, 0) is labels
    cleaned = remove_small_objects(labels, 2)
    assert cleaned[0, 0] == 0 and cleaned[4, 4] == 1 and cleaned[7, 7] == 2
    assert remove_small_objects(labels, 10).sum() == 0


def test_small_objects_are_judged_per_class_not_per_foreground():
    labels = np.zeros((4, 4), np.uint8)
    labels[1, 1:3] = [1, 2]  # touching, but two 1-pixel objects of different classes
    assert remove_small_objects(labels, 2).sum() == 0
    assert remove_small_objects(labels, 1).tolist() == labels.tolist()


def test_post_processing_is_chosen_on_evenly_spaced_validation_images_within_a_pixel_budget():
    from unetseg.inference import spread_within

    assert spread_within([10, 20, 30], budget=60) == [0, 1, 2]  # all fit
    chosen = spread_within([100] * 10, budget=450)
    assert chosen == [0, 3, 6, 9]  # spread from the first name to the last
    assert spread_within([100, 5000, 100], budget=250) == [0, 2]
    assert spread_within([900, 900], budget=10) == [0]  # at least one


def test_the_choice_budget_counts_the_pixels_the_network_sees():
    from unetseg.inference import CHOICE_PIXELS, choice_images

    pixels = [CHOICE_PIXELS // 8] * 8  # all fit at the image's own scale
    assert choice_images(pixels, 1.0) == list(range(8))
    assert len(choice_images(pixels, 2.0)) == 2  # 4x the work each: a quarter of them
    assert choice_images(pixels, 0.5) == list(range(8))


def test_the_mask_threshold_of_the_best_mean_dice_nearest_one_half_of_equals():
    truth = np.array([[0, 0, 1, 1]])
    probability = np.array([[0.1, 0.6, 0.7, 0.9]])  # 0.6 is background: thresholds above it are exact
    dice = dice_by_threshold([(truth, probability), (np.zeros((1, 4)), np.zeros((1, 4)))], (0.5, 0.65, 0.7, 0.8))
    assert dice == {0.5: pytest.approx(0.8), 0.65: 1.0, 0.7: 1.0, 0.8: pytest.approx(2 / 3)}  # empty image left out
    assert best_threshold(dice) == 0.65
    assert best_threshold({0.4: 0.9, 0.5: 0.8, 0.6: 0.9}) == 0.4  # equally near: the lower
    assert best_threshold({0.5: 0.9, 0.6: 0.9011, 0.7: 0.902}) == 0.6  # within 0.001 of the best, nearest 0.5
    assert best_threshold({0.5: float("nan"), 0.6: 0.1}) == 0.6  # nan: no image to score
    assert best_threshold({0.6: float("nan")}) == 0.5
    boundary = np.array([[[0.2, 0.5, 0.3]]])  # background, interior, boundary
    assert foreground_of(boundary, "boundary").ravel().tolist() == pytest.approx([0.8])
    assert foreground_of(np.array([[0.3]])[..., None], "binary").tolist() == [[0.3]]
