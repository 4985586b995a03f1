import numpy as np

from unetseg.metrics import confusion_counts, evaluate_image, scores_from_counts, summarize


def test_counts_and_scores_by_hand():
    truth = np.array([[0, 1], [1, 1]])
    prediction = np.array([[1, 1], [0, 1]])
    result = evaluate_image(truth, prediction, 1)
    assert [int(result[k][0]) for k in ("tp", "fp", "fn", "tn")] == [2, 1, 1, 0]
    assert np.isclose(result["dice"][0], 4 / 6) and np.isclose(result["iou"][0], 2 / 4)
    assert np.isclose(result["precision"][0], 2 / 3) and np.isclose(result["recall"][0], 2 / 3)
    assert np.isclose(result["pixel_accuracy"][0], 2 / 4)


def test_both_empty_is_nan_excluded_from_the_mean_and_counted():
    empty = np.zeros((3, 3), np.uint8)
    result = evaluate_image(empty, empty, 1)
    assert np.isnan(result["dice"][0]) and np.isnan(result["iou"][0]) and result["pixel_accuracy"][0] == 1
    perfect = np.eye(3, dtype=np.uint8)
    summary = summarize([result, evaluate_image(perfect, perfect, 1)], 1)
    assert summary["dice"] == 1.0 and summary["n_empty"] == 1 and summary["n_images"] == 2


def test_one_empty_side_scores_zero():
    empty, full = np.zeros((2, 2), np.uint8), np.ones((2, 2), np.uint8)
    for truth, prediction in ((empty, full), (full, empty)):
        result = evaluate_image(truth, prediction, 1)
        assert result["dice"][0] == 0 and result["iou"][0] == 0
        assert result["precision"][0] == 0 and result["recall"][0] == 0


def test_several_classes_per_class_and_foreground_mean():
    truth = np.array([[0, 1, 2], [2, 2, 0]])
    prediction = np.array([[0, 1, 1], [2, 2, 0]])
    counts = confusion_counts(truth, prediction, 3)
    assert counts["tp"].tolist() == [2, 1, 2] and counts["fp"].tolist() == [0, 1, 0]
    summary = summarize([evaluate_image(truth, prediction, 3)], 3)
    assert np.isclose(summary["per_class"]["1"]["dice"], 2 / 3)
    assert np.isclose(summary["per_class"]["2"]["dice"], 0.8)
    assert np.isclose(summary["dice"], (2 / 3 + 0.8) / 2, atol=1e-6)
    assert np.isclose(summary["pixel_accuracy"], 5 / 6, atol=1e-6)  # overall: 5 of 6 pixels right
    assert np.isclose(summary["per_class"]["2"]["pixel_accuracy"], 5 / 6, atol=1e-6)  # one-vs-rest


def test_a_class_absent_from_an_image_does_not_drag_its_mean():
    truth = np.array([[0, 1], [1, 0]])
    summary = summarize([evaluate_image(truth, truth, 3)], 3)
    assert summary["per_class"]["2"]["dice"] is None and summary["dice"] == 1.0


def test_scores_from_counts_vectorised():
    scores = scores_from_counts([1, 0], [1, 0], [0, 0], [2, 4])
    assert np.isclose(scores["dice"][0], 2 / 3) and np.isnan(scores["dice"][1])
