import numpy as np
import pytest
from scipy import ndimage

from unetseg.augment import augment_patch
from unetseg.instances import (TAUS, UNMATCHED_CAUSES, best_postprocessing, border_weights, boundary_classes,
                               contact_weights, evaluate_instances, fill_gaps, headline, iou_matrix,
                               labels_from_boundary, labels_from_mask, labels_from_probability, match_counts,
                               matches_by_min_size, measurement_line, object_labels, overlap_matrix,
                               postprocessing_scores, remove_small_instances, resolve_target, scores_from_matches,
                               seed_candidates, seed_rule, Seeds, separated_foreground, split_and_merged_pixels,
                               summarize_instances, weighted_target)
from unetseg.params import Augment


def squares(*boxes, shape=(20, 20)) -> np.ndarray:
    """A label image with object i + 1 filling boxes[i] = (row0, row1, col0, col1)."""
    labels = np.zeros(shape, np.int32)
    for index, (r0, r1, c0, c1) in enumerate(boxes, start=1):
        labels[r0:r1, c0:c1] = index
    return labels


TRUTH = squares((2, 8, 2, 8), (2, 8, 8, 14), (12, 18, 12, 18), (12, 18, 2, 6))  # 1 and 2 touch


def at(result, tau=0.5):
    return result["by_tau"][tau]


def causes(**counts) -> dict:
    """The unmatched objects per cause at IoU 0.5: `counts`, and 0 for every other cause."""
    return {cause: counts.get(cause, 0) for cause in UNMATCHED_CAUSES}


def test_perfect_prediction_scores_one_everywhere():
    result = evaluate_instances(TRUTH, TRUTH * 3)  # ids need not agree
    assert all(at(result, tau) == {"tp": 4, "fp": 0, "fn": 0, "iou_sum": 4.0} for tau in TAUS)
    assert result["splits"] == result["merges"] == 0
    assert result["rand_error"] == 0 and result["vi_split"] == result["vi_merge"] == 0
    scores = scores_from_matches(**at(result))
    assert scores == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "ap": 1.0, "mean_matched_iou": 1.0, "pq": 1.0}


def test_a_merge_of_two_touching_objects():
    prediction = squares((2, 9, 2, 14), (12, 18, 12, 18), (12, 18, 2, 6))
    result = evaluate_instances(TRUTH, prediction)
    assert result["merges"] == 1 and result["splits"] == 0
    assert at(result) == {"tp": 2, "fp": 1, "fn": 2, "iou_sum": 2.0}  # the merged blob: IoU 36/84 with each
    assert scores_from_matches(**at(result))["ap"] == pytest.approx(2 / 5)
    assert result["unmatched_50"] == causes(fn_merged=2, fp_merge=1)
    assert result["vi_merge"] > result["vi_split"]  # the blob's extra row of background splits a little


def test_a_split_object():
    thirds = (12, 18, 12, 14), (12, 18, 14, 16), (12, 18, 16, 18)
    prediction = squares((2, 8, 2, 8), (2, 8, 8, 14), *thirds, (12, 18, 2, 6))
    result = evaluate_instances(TRUTH, prediction)
    assert result["splits"] == 1 and result["merges"] == 0
    assert at(result) == {"tp": 3, "fp": 3, "fn": 1, "iou_sum": 3.0}
    assert result["unmatched_50"] == causes(fn_split=1, fp_split_piece=3)
    assert result["vi_split"] > 0 and result["vi_merge"] == pytest.approx(0, abs=1e-9)


def test_a_miss_and_an_extra_object():
    prediction = squares((2, 8, 2, 8), (2, 8, 8, 14), (12, 18, 12, 18), (0, 2, 16, 20))
    result = evaluate_instances(TRUTH, prediction)
    assert at(result) == {"tp": 3, "fp": 1, "fn": 1, "iou_sum": 3.0}
    assert result["unmatched_50"] == causes(fn_missed=1, fp_spurious=1)
    scores = scores_from_matches(**at(result))
    assert scores["precision"] == scores["recall"] == scores["f1"] == 0.75 and scores["ap"] == 0.6
    assert scores["pq"] == pytest.approx(3 / (3 + 0.5 + 0.5))


def test_a_shrunken_object_matches_only_below_its_iou():
    prediction = TRUTH.copy()
    prediction[prediction == 3] = 0
    prediction[12:18, 12:16] = 3  # IoU 24 / 36
    result = evaluate_instances(TRUTH, prediction)
    assert at(result, 0.65)["tp"] == 4 and at(result, 0.7)["tp"] == 3
    assert scores_from_matches(**at(result))["mean_matched_iou"] == pytest.approx((3 + 2 / 3) / 4)
    assert result["unmatched_50"] == causes()


def test_an_object_found_but_outlined_too_differently():
    prediction = TRUTH.copy()
    prediction[prediction == 3] = 0
    prediction[12:18, 15:20] = 3  # half of true object 3 and 12 px of background: IoU 18 / 48
    result = evaluate_instances(TRUTH, prediction)
    assert at(result)["tp"] == 3
    assert result["unmatched_50"] == causes(fn_low_iou=1, fp_low_iou=1)


def test_empty_images_both_ways():
    empty = np.zeros_like(TRUTH)
    nothing = evaluate_instances(empty, empty)
    assert at(nothing) == {"tp": 0, "fp": 0, "fn": 0, "iou_sum": 0.0} and nothing["rand_error"] == 0
    assert scores_from_matches(**at(nothing))["ap"] == 1.0  # nothing to find, nothing found
    missed = evaluate_instances(TRUTH, empty)
    assert at(missed) == {"tp": 0, "fp": 0, "fn": 4, "iou_sum": 0.0} and missed["rand_error"] == 1
    invented = evaluate_instances(empty, TRUTH)
    assert at(invented) == {"tp": 0, "fp": 4, "fn": 0, "iou_sum": 0.0}
    assert scores_from_matches(**at(missed))["ap"] == scores_from_matches(**at(invented))["ap"] == 0
    assert nothing["unmatched_50"] == causes()
    assert missed["unmatched_50"] == causes(fn_missed=4) and invented["unmatched_50"] == causes(fp_spurious=4)


def test_counts_pool_over_images():
    perfect, missed = evaluate_instances(TRUTH, TRUTH), evaluate_instances(TRUTH, np.zeros_like(TRUTH))
    summary = summarize_instances([perfect, missed])
    assert summary["by_tau"][0.5]["ap"] == 0.5 and summary["by_tau"][0.5]["recall"] == 0.5
    assert summary["objects_true"] == 8 and summary["objects_predicted"] == 4
    assert summary["mean_ap"] == 0.5 and summary["rand_error"] == 0.5
    assert summary["unmatched_50"] == causes(fn_missed=4)


def test_counts_and_sizes_measured_from_the_objects_against_the_annotation():
    """What a user measuring objects needs to know: counts per image and the size bias of the outlines."""
    larger = squares((2, 8, 2, 8), (2, 8, 8, 14), (11, 19, 11, 19))  # third 64/36 px, the fourth missed
    image = evaluate_instances(TRUTH, larger)
    assert image["area_ratios_50"] == [1.0, 1.0, 64 / 36]
    summary = summarize_instances([image, evaluate_instances(TRUTH, TRUTH), evaluate_instances(0 * TRUTH, TRUTH)])
    assert summary["count_error"] == (1 / 4 + 0) / 2  # images without true objects have no count to be off
    assert summary["matched_area_ratio_50"] == 1.0  # the median of 1, 1, 1.78, 1, 1, 1, 1
    nothing = summarize_instances([evaluate_instances(0 * TRUTH, 0 * TRUTH)])
    assert nothing["count_error"] is None and nothing["matched_area_ratio_50"] is None
    assert measurement_line(headline(summary)) == ("object counts off by 12.5 % per image (mean); matched objects "
                                                   "1.000x the true ones' area (median; above 1: outlined larger)")
    assert measurement_line(nothing) == "no true objects to count; no objects matched"


def test_boundary_target_by_hand():
    labels = squares((1, 5, 1, 4), (1, 5, 4, 8), shape=(6, 9))
    expected = np.array([
        [0, 0, 0, 0, 0, 0, 0, 0, 0],
        [0, 2, 2, 2, 2, 2, 2, 2, 0],
        [0, 2, 1, 2, 2, 1, 1, 2, 0],
        [0, 2, 1, 2, 2, 1, 1, 2, 0],
        [0, 2, 2, 2, 2, 2, 2, 2, 0],
        [0, 0, 0, 0, 0, 0, 0, 0, 0]])
    assert boundary_classes(labels, 1).tolist() == expected.tolist()
    assert set(np.unique(boundary_classes(labels, 2))) == {0, 2}  # too thin for an interior 2 px in


def test_objects_on_the_image_edge_keep_their_interior_there():
    labels = np.ones((5, 5), np.int32)
    assert boundary_classes(labels, 1).tolist() == np.ones((5, 5)).tolist()


def discs():
    rows, cols = np.mgrid[:40, :60]
    left = (rows - 20) ** 2 + (cols - 20) ** 2 <= 100
    right = (rows - 20) ** 2 + (cols - 37) ** 2 <= 100
    labels = np.zeros((40, 60), np.int32)
    labels[left], labels[right & ~left] = 1, 2
    return labels


def test_watershed_separates_two_touching_discs():
    truth = discs()
    assert labels_from_mask(truth > 0).max() == 1  # one blob for connected components
    probabilities = np.eye(3, dtype=np.float32)[boundary_classes(truth, 1)]
    blurred = 0.8 * probabilities + 0.2 / 3  # not one-hot: still separated
    result = evaluate_instances(truth, labels_from_boundary(blurred, 0.5))
    assert at(result, 0.9)["tp"] == 2 and result["merges"] == 0


def test_weighted_target_parts_touching_objects_by_a_gap():
    foreground = separated_foreground(TRUTH, 1)
    assert foreground[2:8, 2:7].all() and foreground[2:8, 9:14].all()
    assert not foreground[:, 7:9].any()  # the contact, one px on each side
    assert foreground[12:18, 12:18].all() and foreground[12:18, 2:6].all()  # free objects keep every pixel
    assert separated_foreground(TRUTH, 2)[:, 6:10].sum() == 0


def test_weight_map_by_hand():
    """Two 6x5 objects touching along a column, parted by a 2 px gap (width 1): 48 of 120 pixels
    foreground, so w_c is 1 / (2 * 0.4) on foreground and 1 / (2 * 0.6) on background."""
    labels = np.zeros((10, 12), np.int32)
    labels[2:8, 1:6], labels[2:8, 6:11] = 1, 2
    foreground, weights = weighted_target(labels, 1, w0=10.0, sigma=5.0)
    assert foreground.sum() == 48 and not foreground[:, 5:7].any()
    w_fg, w_bg = 1 / 0.8, 1 / 1.2

    def border(d1, d2):
        return 10.0 * np.exp(-((d1 + d2) ** 2) / (2 * 5.0**2))

    assert np.isclose(weights[4, 2], w_fg)                     # inside an object: its class weight only
    assert np.isclose(weights[4, 5], w_bg + border(1, 2))      # in the gap: 1 px to one object, 2 to the other
    assert np.isclose(weights[4, 6], w_bg + border(1, 2))
    assert np.isclose(weights[0, 0], w_bg + border(np.hypot(2, 1), np.hypot(2, 7)))  # a corner: (2, 1) and (2, 7) nearest
    assert weights.dtype == np.float32 and weights[4, 5] > 9 > weights[0, 0]


def test_border_term_needs_two_objects_and_fades_with_distance():
    labels = squares((4, 10, 4, 10), shape=(60, 60))
    weights = border_weights(labels, labels > 0, 10.0, 5.0)
    assert np.allclose(weights[labels == 0], weights[0, 0])  # one object: class weight only
    far = squares((4, 10, 4, 10), (4, 10, 50, 56), shape=(60, 60))  # 40 px apart: past 4 sigma
    assert np.allclose(border_weights(far, far > 0, 10.0, 5.0), border_weights(far, far > 0, 0.0, 5.0), atol=1e-3)


def test_contact_weights_by_hand():
    """The boundary target's weights: 1 + the border term on every pixel, an object's own pixels at
    distance 0 from it, so the contact and the pixels near it weigh most."""
    labels = np.zeros((10, 12), np.int32)
    labels[2:8, 1:6], labels[2:8, 6:11] = 1, 2

    def weight(d1, d2):
        return 1 + 10.0 * np.exp(-((d1 + d2) ** 2) / (2 * 5.0**2))

    weights = contact_weights(labels, 10.0, 5.0)
    assert np.isclose(weights[4, 5], weight(0, 1)) and np.isclose(weights[4, 6], weight(0, 1))  # the contact
    assert np.isclose(weights[4, 1], weight(0, 5))              # object 1's far edge: 5 px from object 2
    assert np.isclose(weights[0, 0], weight(np.hypot(2, 1), np.hypot(2, 6)))  # background, near both
    assert weights.dtype == np.float32 and weights[4, 5] > 10 > weights[4, 1] > weights[0, 0]
    alone = contact_weights(squares((4, 10, 4, 10), shape=(30, 30)), 10.0, 5.0)
    assert np.allclose(alone, 1.0)                              # one object: no contact anywhere


def test_weighted_output_watershed_separates_two_touching_discs():
    truth = discs()
    probability = (0.8 * separated_foreground(truth, 1) + 0.1).astype(np.float32)[..., None]
    probability[truth > 0] += 0.05  # the gap a little less sure than the background
    assert labels_from_probability(probability, 0.5, Seeds("threshold", 0.5)).max() == 2
    result = evaluate_instances(truth, object_labels(probability, "weighted", 0.5, Seeds("threshold", 0.85), 0))
    assert at(result, 0.8)["tp"] == 2 and result["merges"] == 0


def test_gaps_between_objects_are_closed_and_outer_edges_kept():
    truth = squares((2, 8, 2, 8), (2, 8, 8, 14), (14, 19, 2, 8), shape=(20, 16))  # 1 and 2 touch; 3 is 6 px off
    parted = np.where(separated_foreground(truth, 2) > 0, truth, 0)
    assert not parted[2:8, 6:10].any()
    closed = fill_gaps(parted, 2)
    assert np.array_equal(closed[2:8], truth[2:8])  # the 4 px gap between objects 1 and 2 goes back to them
    assert np.count_nonzero(closed != truth) == 4     # nothing else grows but a px at each end of each side
    assert np.array_equal(fill_gaps(parted, 0), parted)
    lone = squares((5, 10, 5, 10))
    assert np.array_equal(fill_gaps(lone, 3), lone)  # one object: nothing is between two


def test_weighted_objects_get_their_gap_back():
    truth = discs()
    probability = (0.9 * separated_foreground(truth, 2) + 0.05).astype(np.float32)[..., None]
    parted = evaluate_instances(truth, labels_from_probability(probability, 0.5, Seeds("threshold", 0.9)))
    closed = evaluate_instances(truth, labels_from_probability(probability, 0.5, Seeds("threshold", 0.9), gap=2))
    assert at(closed, 0.5)["tp"] == 2 and closed["by_tau"][0.5]["iou_sum"] > parted["by_tau"][0.5]["iou_sum"]


def test_small_objects_are_dropped_and_ids_renumbered():
    labels = squares((0, 1, 0, 1), (2, 8, 2, 8), (10, 13, 10, 13))
    assert np.unique(remove_small_instances(labels, 5)).tolist() == [0, 1, 2]
    assert remove_small_instances(labels, 5)[3, 3] == 1


def test_split_and_merged_pixels_mark_the_objects():
    prediction = squares((2, 8, 2, 14), (12, 18, 12, 15), (12, 18, 15, 18))  # halves: each holds half, not more
    prediction[12:18, 14] = 3
    split, merged = split_and_merged_pixels(TRUTH, prediction)
    assert split[15, 15] and not split[5, 5] and merged[5, 5] and not merged[15, 15]


@pytest.mark.parametrize("seed", range(6))
def test_boundary_targets_survive_augmentation_label_exactly(seed):
    target = boundary_classes(squares((4, 20, 4, 20), (4, 20, 20, 40), (26, 44, 10, 30), shape=(48, 48)), 1)
    image = target[..., None].astype(np.float32)
    cfg = Augment(flip={"p": 1.0}, rot90={"p": 1.0}, affine={"p": 1.0}, elastic={"p": 1.0})
    _, out = augment_patch(image, target, np.random.default_rng(seed), cfg)
    assert out.dtype == np.uint8 and set(np.unique(out)) <= {0, 1, 2}
    flipped = augment_patch(image, target, np.random.default_rng(seed), Augment(
        flip={"p": 1.0}, rot90={"p": 0}, affine={"p": 0}, elastic={"p": 0}, intensity={"p": 0}, noise={"p": 0},
        blur={"p": 0}))[1]
    assert sorted(np.bincount(flipped.ravel())) == sorted(np.bincount(target.ravel()))  # a pure permutation


def test_target_resolution_keeps_a_chosen_weighted_target():
    assert resolve_target("weighted", 1, "instances") == resolve_target("weighted", 1, "semantic") == "weighted"


def test_target_resolution():
    assert resolve_target("auto", 1, "instances") == "boundary"
    assert resolve_target("auto", 1, "semantic") == "binary"
    assert resolve_target("boundary", 1, "semantic") == "boundary"
    assert resolve_target("auto", 3, "semantic") == "classes"


def test_unseeded_foreground_is_an_object_of_its_own():
    probabilities = np.zeros((10, 20, 3), np.float32)
    probabilities[..., 0] = 1
    probabilities[2:8, 2:8] = [0.1, 0.6, 0.3]    # confident interior: a seed
    probabilities[2:8, 12:18] = [0.1, 0.4, 0.5]  # foreground, interior never above 0.5
    labels = labels_from_boundary(probabilities, 0.5, Seeds("threshold", 0.5))
    assert labels.max() == 2 and labels[5, 5] != labels[5, 15] and labels[5, 15] > 0


def test_seed_threshold_and_minimum_size_are_chosen_by_object_ap():
    truth = discs()
    probabilities = np.eye(3, dtype=np.float32)[boundary_classes(truth, 1)]
    probabilities[probabilities[..., 1] == 1] = [0.0, 0.8, 0.2]
    contact = (truth > 0) & (np.abs(np.arange(60) - 28) <= 2)[None, :]
    probabilities[contact] = [0.0, 0.65, 0.35]  # a weak line between the discs: seeds merge below 0.7
    probabilities[2:4, 50:52] = [0.0, 0.9, 0.1]  # a speck of 4 px that is no nucleus
    low, high = seed_candidates("threshold", thresholds=(0.5, 0.7))
    scores = postprocessing_scores([(truth, probabilities)], 0.5, [low, high], min_sizes=(0, 10))
    assert scores[low, 10] < scores[high, 0] < scores[high, 10] == 1.0
    assert best_postprocessing(scores) == (high, 10)
    middle = Seeds("threshold", 0.6)
    assert best_postprocessing({(low, 0): 0.8, (middle, 0): 0.8, (low, 5): 0.8}) == (low, 0)


def touching_discs_without_a_boundary():
    """The two discs, p(interior) 0.9 inside, falling towards their outer edges, and only down to 0.6
    where they touch: a network unsure of the contact. Seeds above 0.5 merge them."""
    truth = discs()
    probabilities = np.zeros(truth.shape + (3,), np.float32)
    probabilities[..., 0] = truth == 0
    distance = ndimage.distance_transform_edt(truth > 0)
    contact = np.exp(-((np.arange(60) - 28) ** 2) / 8)[None, :]  # the line where the discs meet, column 28
    probabilities[..., 1] = np.where(truth > 0, 0.9 * np.minimum(distance, 4) / 4 * (1 - contact / 3), 0)
    probabilities[..., 2] = np.where(truth > 0, 1 - probabilities[..., 1], 0)
    return truth, probabilities


def test_maxima_seeds_part_touching_objects_that_one_threshold_merges():
    truth, probabilities = touching_discs_without_a_boundary()
    merged = evaluate_instances(truth, labels_from_boundary(probabilities, 0.5, Seeds("threshold", 0.5)))
    assert merged["merges"] == 1
    parted = evaluate_instances(truth, labels_from_boundary(probabilities, 0.5, Seeds("maxima", sigma=2.0, depth=0.05)))
    assert at(parted, 0.8)["tp"] == 2 and parted["merges"] == parted["splits"] == 0


def test_maxima_seeds_keep_an_elongated_object_whole():
    rows, cols = np.mgrid[:40, :80]
    truth = ((((rows - 20) / 9) ** 2 + ((cols - 40) / 30) ** 2) <= 1).astype(np.int32)  # 60 x 18 px
    probabilities = np.eye(3, dtype=np.float32)[boundary_classes(truth, 2)]
    probabilities[..., 1] *= 0.9 + 0.04 * np.sin(cols)  # pixel-scale ripples, deeper than depth until smoothed
    labels = labels_from_boundary(probabilities, 0.5, Seeds("maxima", sigma=2.0, depth=0.05))
    assert labels.max() == 1 and np.array_equal(labels > 0, truth > 0)


def test_seed_rules_resolve_and_name_their_keys():
    assert seed_rule("auto", "boundary") == "maxima" and seed_rule("auto", "weighted") == "threshold"
    assert seed_rule("threshold", "boundary") == "threshold"
    assert Seeds("threshold", 0.7).choice() == {"predict.seeds": "threshold", "predict.seed_threshold": 0.7}
    assert Seeds("maxima", sigma=3.0, depth=0.02).choice() == {"predict.seeds": "maxima", "predict.seed_sigma": 3.0,
                                                               "predict.seed_depth": 0.02}
    assert len(seed_candidates("maxima")) == 24 and len(seed_candidates("maxima", sigmas=(2.0,))) == 6
    assert [s.threshold for s in seed_candidates("threshold", thresholds=(0.6,))] == [0.6]


def test_post_processing_candidates_are_the_networks_pixels():
    from unetseg.instances import MIN_SIZES, SEED_SIGMAS, scaled_candidates

    assert scaled_candidates(1.0) == (SEED_SIGMAS, MIN_SIZES)
    sigmas, sizes = scaled_candidates(0.5)  # large objects, seen at half size: their fragments 4x the image's px
    assert sigmas == (2.0, 3.0, 4.0, 6.0) and sizes == tuple(4 * size for size in MIN_SIZES)
    sigmas, sizes = scaled_candidates(2.0)
    assert sigmas == (0.5, 0.75, 1.0, 1.5) and sizes[:4] == (0, 1, 2, 5) and sizes[-1] == 60


def test_maxima_seed_knobs_are_chosen_by_object_ap():
    truth, probabilities = touching_discs_without_a_boundary()
    candidates = seed_candidates("maxima", sigmas=(2.0,), depths=(0.05, 0.5))
    scores = postprocessing_scores([(truth, probabilities)], 0.5, candidates, min_sizes=(0,))
    assert best_postprocessing(scores) == (Seeds("maxima", sigma=2.0, depth=0.05), 0)
    assert scores[candidates[0], 0] == 1.0 > scores[candidates[1], 0]  # too deep: one seed for both


def test_the_depth_grid_keeps_a_sagging_rod_whole_and_parts_it_from_the_next():
    # two rods pole to pole, each with p(interior) sagging 0.3 midway along it, as the network's does
    # along packed bacteria: the depths up to 0.1 seed each rod twice, the grid's deeper ones once
    rows, cols = np.mgrid[:20, :100]
    truth = np.where((np.abs(rows - 10) <= 4) & (cols >= 5) & (cols < 50), 1, 0)
    truth[(np.abs(rows - 10) <= 4) & (cols >= 52) & (cols < 95)] = 2
    probabilities = np.eye(3, dtype=np.float32)[boundary_classes(truth, 2)]
    middles = np.where(cols < 51, 27.5, 73.5)
    sag = 0.3 * np.exp(-((cols - middles) ** 2) / (2 * 4.0**2))
    probabilities[..., 1] *= 0.95 - sag
    probabilities[..., 2] = np.where(truth > 0, 1 - probabilities[..., 1], 0)
    scores = postprocessing_scores([(truth, probabilities)], 0.5, seed_candidates("maxima"), min_sizes=(0,))
    chosen, _ = best_postprocessing(scores)
    assert chosen.depth > 0.1 and scores[chosen, 0] == 1.0
    assert max(score for (seeds, _), score in scores.items() if seeds.depth <= 0.1) < 1.0


def test_one_iou_matrix_scores_every_minimum_size_as_removing_the_objects_would():
    field = ndimage.gaussian_filter(np.random.default_rng(3).random((60, 70)), 2)
    truth = ndimage.label(field > 0.52)[0]
    labels = ndimage.label(field > 0.515)[0] * 3  # much like the truth, ids with gaps
    sizes = (0, 5, 10, 20, 40, 80)
    scores = matches_by_min_size(truth, labels, sizes)
    assert scores[0]["tp"] > scores[80]["tp"] > 0  # some matched objects go, some stay
    for size, counts in scores.items():
        removed = remove_small_instances(labels, size)
        assert counts == match_counts(iou_matrix(overlap_matrix(truth, removed)), 0.5), size
