"""Objects, not only pixels: instance targets, instances from model outputs, and object matching.

Label images hold 0 for background and one positive id per object. The `boundary` target has three
classes: 0 background, 1 interior, 2 boundary (object pixels within `width` px of a pixel that is not
the same object, so the gap between touching objects is always boundary). The `weighted` target is
the U-Net paper's: foreground with a background gap wherever objects touch (object pixels within
`width` px of another object), and a per-pixel loss weight that is high in those gaps and in narrow
background between objects. Instances come back from a binary mask as 8-connected components; from
the three-class output by a seeded watershed (seeds: the connected interior regions, grown over the
foreground); from the weighted target's foreground probability by the same watershed, seeded where
the probability is high.

Matching (as in the Data Science Bowl 2018 score and StarDist's `matching`): the IoU of every true
object with every predicted one, then a one-to-one assignment that maximises the summed IoU among
pairs with IoU >= tau. Above tau = 0.5 a match is unique whatever the assignment. From the matches:
TP, FP (unmatched predictions), FN (unmatched truths), precision, recall, F1, AP = TP / (TP+FP+FN),
the mean IoU of the matches, and panoptic quality PQ = sum of matched IoU / (TP + FP/2 + FN/2).
"""

from dataclasses import dataclass
from functools import partial

import numpy as np
from scipy import ndimage
from scipy.optimize import linear_sum_assignment
from skimage.metrics import adapted_rand_error, variation_of_information
from skimage.morphology import local_maxima, reconstruction
from skimage.segmentation import expand_labels, watershed

from unetseg import portable

INTERIOR, BOUNDARY = 1, 2
TAUS = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))  # 0.5, 0.55, ..., 0.95
# The candidates of the post-processing knobs left auto. The grids reach past where choices landed
# (thresholds: DSB2018 chose 0.95, the synthetic set objects >= 80 px, each the grid's end once;
# maxima: sigma 2 or 3 px, depth 0.05 on DSB2018, 1 px and 0.02 on the synthetic set, 1 px and 0.4 on
# packed rods (benchmarks/rods.py), whose p(interior) dips along a rod: their test AP@0.5 was 0.815 when
# the depths ended at 0.1, 0.843 with 0.4; the validation AP of DSB2018 is within 0.02 of its best over
# most of the grid. Depth 0.01 was never chosen and scored lowest at sigma <= 1.5 on both nuclei
# datasets, so it is left out: each candidate costs a reconstruction).
SEED_THRESHOLDS = (*TAUS, 0.97, 0.98, 0.99)
SEED_SIGMAS = (1.0, 1.5, 2.0, 3.0)  # px, the network's (scaled_candidates)
SEED_DEPTHS = (0.02, 0.05, 0.1, 0.2, 0.4, 0.6)
MIN_SIZES = (0, 5, 10, 20, 40, 80, 120, 160, 240)  # pixels, the network's (scaled_candidates)
EIGHT_CONNECTED = np.ones((3, 3), bool)
MAJORITY = 0.5  # a piece "belongs" to an object when more than this share of its pixels lie in it
UNMATCHED_CAUSES = ("fn_merged", "fn_split", "fn_missed", "fn_low_iou",
                    "fp_merge", "fp_split_piece", "fp_spurious", "fp_low_iou")


@dataclass(frozen=True, order=True)
class Seeds:
    """Where a seeded watershed starts, in a height map (p(interior), or the weighted target's
    p(foreground)). `threshold`: one seed per connected region where the map is >= `threshold`.
    `maxima`: one seed per peak of the map smoothed by a Gaussian of `sigma` px that rises at least
    `depth` above the lowest pass to a higher peak (an h-maximum), where the map is >= 0.5: two
    touching nuclei keep two peaks even where no threshold parts their interiors."""
    rule: str = "maxima"
    threshold: float = 0.5
    sigma: float = 2.0
    depth: float = 0.05

    def markers(self, height: np.ndarray, foreground: np.ndarray) -> tuple[np.ndarray, int, np.ndarray]:
        """(seed ids, seed count, the height to flood from)."""
        if self.rule == "threshold":
            return (*ndimage.label(foreground & (height >= self.threshold)), height)
        smooth = ndimage.gaussian_filter(height.astype(np.float64), self.sigma)
        # each peak cut `depth` below its top: one flat region per peak that rises that far above its
        # pass (skimage's h_maxima would mark each top pixel, so two equal tops make two seeds)
        domes = reconstruction(smooth - self.depth, smooth)
        peaks = local_maxima(domes, connectivity=2) & foreground & (height >= 0.5)
        return (*ndimage.label(peaks, structure=EIGHT_CONNECTED), smooth)

    def choice(self) -> dict:
        """The predict keys this stands for."""
        if self.rule == "threshold":
            return {"predict.seeds": "threshold", "predict.seed_threshold": self.threshold}
        return {"predict.seeds": "maxima", "predict.seed_sigma": self.sigma, "predict.seed_depth": self.depth}

    def __str__(self) -> str:
        if self.rule == "threshold":
            return f"seeds >= {self.threshold}"
        return f"seeds at peaks (sigma {self.sigma} px, depth {self.depth})"


def seed_rule(seeds: str, target: str) -> str:
    """predict.seeds with auto resolved: maxima for the boundary target (on the same models, test AP@0.5
    DSB2018 0.750 against 0.701 for thresholds, the synthetic set 0.906 against 0.889), threshold for
    the weighted target (maxima not measured there)."""
    if seeds == "auto":
        return "maxima" if target == "boundary" else "threshold"
    return seeds


def resolve_target(target: str, num_classes: int, mask_type: str) -> str:
    """data.target with auto resolved: boundary for instance masks, binary for binary masks, and
    classes (one channel per class) for several classes; a target named in params as named."""
    if num_classes > 1:
        return "classes"
    if target == "auto":
        return "boundary" if mask_type == "instances" else "binary"
    return target


def output_classes(target: str, num_classes: int) -> int:
    """The channels of the network's head: 1 (sigmoid) for binary, 3 for boundary, else the classes."""
    return 3 if target == "boundary" else num_classes


def boundary_classes(labels: np.ndarray, width: int) -> np.ndarray:
    """(H, W) uint8 0/1/2 from a label image: a pixel is interior when every pixel in the
    (2·width+1)² square around it has its id; other object pixels are boundary."""
    size = 2 * width + 1
    same = (ndimage.minimum_filter(labels, size, mode="nearest")
            == ndimage.maximum_filter(labels, size, mode="nearest"))
    target = np.where(labels > 0, BOUNDARY, 0).astype(np.uint8)
    target[same & (labels > 0)] = INTERIOR
    return target


def separated_foreground(labels: np.ndarray, width: int) -> np.ndarray:
    """(H, W) uint8 0/1: the objects, less every object pixel within `width` px (in the
    (2·width+1)² square around it) of another object, so that touching objects are parted by a
    background gap 2·width px wide."""
    return ((labels > 0) & ~several_objects_near(labels, 2 * width + 1)).astype(np.uint8)


def several_objects_near(labels: np.ndarray, size: int) -> np.ndarray:
    """(H, W) bool: the size x size square around the pixel holds two or more object ids."""
    background_as_high = np.where(labels > 0, labels, np.iinfo(labels.dtype).max)
    return (ndimage.minimum_filter(background_as_high, size, mode="nearest")
            < ndimage.maximum_filter(labels, size, mode="nearest"))


def border_weights(labels: np.ndarray, foreground: np.ndarray, w0: float, sigma: float) -> np.ndarray:
    """(H, W) float32 loss weights of the U-Net paper, w = w_c + w0·exp(-(d1 + d2)² / 2σ²).

    w_c balances the classes of `foreground`: 1 / (number of classes present · the class's share of
    the pixels), so each class weighs the same in total and the mean of w_c is 1. The border term
    applies to background pixels, d1 and d2 being their distances to the nearest and second-nearest
    object (the objects of `labels` within `foreground`).
    """
    background = foreground == 0
    share = background.mean()
    present = int(share > 0) + int(share < 1)
    class_weight = np.where(background, 1 / max(share, 1e-12), 1 / max(1 - share, 1e-12)) / present
    border = border_term(np.where(foreground > 0, labels, 0), w0, sigma)
    return np.where(background, class_weight + border, class_weight).astype(np.float32)


def contact_weights(labels: np.ndarray, w0: float, sigma: float) -> np.ndarray:
    """(H, W) float32 loss weights of the boundary target, 1 + w0·exp(-(d1 + d2)² / 2σ²) on every
    pixel: the paper's border term, with an object's own pixels at distance 0 from it, so it is high
    where an object lies close to another (the boundary that parts them, and the background between
    near objects) and ~1 elsewhere, outer edges included."""
    return (1 + border_term(labels, w0, sigma)).astype(np.float32)


def border_term(objects: np.ndarray, w0: float, sigma: float) -> np.ndarray:
    """(H, W) w0·exp(-(d1 + d2)² / 2σ²), d1 and d2 each pixel's distances to the nearest and
    second-nearest object of the label image `objects` (0 inside an object, for that object). Once
    the second-nearest object is over 4σ away the term is under w0·e⁻⁸ (0.003 for w0 = 10), so
    distances are only computed that far around each object."""
    reach = int(np.ceil(4 * sigma))
    nearest = np.full(objects.shape, np.inf)
    second = np.full(objects.shape, np.inf)
    objects = objects.astype(np.int32)
    for index, box in enumerate(ndimage.find_objects(objects), start=1):
        if box is None:
            continue
        window = tuple(slice(max(0, s.start - reach), min(n, s.stop + reach)) for s, n in zip(box, objects.shape))
        distance = ndimage.distance_transform_edt(objects[window] != index)
        second[window] = np.minimum(second[window], np.maximum(nearest[window], distance))
        nearest[window] = np.minimum(nearest[window], distance)
    return w0 * portable.exp(-((nearest + second) ** 2) / (2 * sigma**2))


def weighted_target(labels: np.ndarray, width: int, w0: float, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """The `weighted` target of a label image: (separated foreground uint8, loss weights float32)."""
    foreground = separated_foreground(labels, width)
    return foreground, border_weights(labels, foreground, w0, sigma)


def labels_from_mask(mask: np.ndarray) -> np.ndarray:
    """(H, W) int32 ids of the 8-connected components of a binary mask."""
    return ndimage.label(mask > 0, structure=EIGHT_CONNECTED)[0].astype(np.int32)


def compact_labels(labels: np.ndarray) -> np.ndarray:
    """Object labels to store: 16 bits where every id fits (half the bytes of int32); load_labels reads them."""
    return labels.astype(np.uint16) if labels.max(initial=0) <= np.iinfo(np.uint16).max else labels


def load_labels(path) -> np.ndarray:
    """(H, W) int32 object ids of a label file that compact_labels stored."""
    return np.load(path).astype(np.int32)


def labels_from_boundary(probabilities: np.ndarray, threshold: float, seeds: Seeds = Seeds(),
                         min_size: int = 0) -> np.ndarray:
    """(H, W) int32 ids from the (H, W, 3) background/interior/boundary output: seeds found in
    p(interior), grown by watershed (flooding from high interior probability) over the foreground,
    1 - p(background) >= threshold. A piece of foreground that holds no seed is an object of its own."""
    foreground = 1.0 - probabilities[..., 0] >= threshold
    return seeded_watershed(foreground, probabilities[..., INTERIOR], seeds, min_size)


def labels_from_probability(probability: np.ndarray, threshold: float, seeds: Seeds = Seeds("threshold"),
                            min_size: int = 0, gap: int = 0) -> np.ndarray:
    """(H, W) int32 ids from the weighted target's (H, W, 1) foreground probability: seeds found in it,
    grown over where it is >= threshold (threshold seeds <= threshold: the connected components of
    the foreground); then the gaps of `gap` px a side that the target left between touching objects
    are given back to them."""
    labels = seeded_watershed(probability[..., 0] >= threshold, probability[..., 0], seeds, 0)
    return remove_small_instances(fill_gaps(labels, gap), min_size)


def fill_gaps(labels: np.ndarray, width: int) -> np.ndarray:
    """The gaps of the weighted target (`width` px taken off each side of a contact) closed again:
    every object grows by up to `width` px, but keeps only the growth that meets another object's
    within `width` px, so outer edges stay where they are. Objects that did not touch but lie as
    close as a gap (2·width px) come to touch too."""
    if width <= 0:
        return labels
    grown = expand_labels(labels, width)
    meets = several_objects_near(grown, 2 * width + 1)
    return np.where((labels == 0) & (grown > 0) & meets, grown, labels)


def seeded_watershed(foreground: np.ndarray, height: np.ndarray, seeds: Seeds, min_size: int) -> np.ndarray:
    """The watershed floods from `seeds` found in `height`, from high to low, over the foreground. A
    piece of foreground without a seed is an object."""
    markers, count, flood = seeds.markers(height, foreground)
    labels = watershed(-flood, markers, mask=foreground)
    unseeded = foreground & (labels == 0)
    labels[unseeded] = count + ndimage.label(unseeded, structure=EIGHT_CONNECTED)[0][unseeded]
    return remove_small_instances(labels, min_size)


def object_labels(probabilities: np.ndarray, target: str, threshold: float, seeds: Seeds,
                  min_size: int, gap: int = 0) -> np.ndarray:
    """The objects of a boundary or weighted model's output (seeded watershed); `gap`: the weighted
    target's gap width a side, to close again."""
    if target == "boundary":
        return labels_from_boundary(probabilities, threshold, seeds, min_size)
    return labels_from_probability(probabilities, threshold, seeds, min_size, gap)


def scaled_candidates(scale: float, sigmas=SEED_SIGMAS, sizes=MIN_SIZES) -> tuple[tuple[float, ...], tuple[int, ...]]:
    """The seed sigmas and minimum object sizes (the image's px) to try for a model that sees the
    images at `scale` (extract.scale). SEED_SIGMAS and MIN_SIZES are in the network's pixels, where
    its output's peaks and fragments take their size: at scale 0.5 the image's own pixels try twice the
    sigmas and four times the sizes."""
    return tuple(sigma / scale for sigma in sigmas), tuple(sorted({round(size / scale**2) for size in sizes}))


def seed_candidates(rule: str, thresholds=SEED_THRESHOLDS, sigmas=SEED_SIGMAS, depths=SEED_DEPTHS) -> list[Seeds]:
    """The seeds to try for one rule: every threshold, or every (sigma, depth) pair."""
    if rule == "threshold":
        return [Seeds("threshold", threshold=t) for t in thresholds]
    return [Seeds("maxima", sigma=s, depth=d) for s in sigmas for d in depths]


def postprocessing_scores(images, threshold: float, seeds: list[Seeds], min_sizes=MIN_SIZES,
                          target: str = "boundary", gap: int = 0, mapper=map) -> dict:
    """AP at IoU 0.5, pooled over `images` ((true labels, model output) pairs, consumed one at a
    time), of the objects that each (seeds, minimum object size) pair gives. `mapper(function,
    images)` runs each image's part, in order (e.g. in a process pool: unetseg.parallel.ordered_map)."""
    counts = {(s, m): NO_MATCHES for s in seeds for m in min_sizes}
    score_image = partial(postprocessing_counts, threshold=threshold, seeds=seeds, min_sizes=min_sizes,
                          target=target, gap=gap)
    for image_counts in mapper(score_image, images):
        counts = {pair: added(counts[pair], image_counts[pair]) for pair in counts}
    return {pair: scores_from_matches(**counts[pair])["ap"] for pair in counts}


def postprocessing_counts(image: tuple[np.ndarray, np.ndarray], threshold: float, seeds: list[Seeds],
                          min_sizes, target: str, gap: int) -> dict:
    """One (true labels, model output) pair's match counts at IoU 0.5 for each (seeds, minimum size)."""
    truth, probabilities = image
    counts = {}
    for seed in seeds:
        labels = object_labels(probabilities, target, threshold, seed, 0, gap)
        for size, matched in matches_by_min_size(truth, labels, min_sizes).items():
            counts[seed, size] = matched
    return counts


NO_MATCHES = {"tp": 0, "fp": 0, "fn": 0, "iou_sum": 0.0}


def matches_by_min_size(truth: np.ndarray, labels: np.ndarray, min_sizes) -> dict[int, dict]:
    """Match counts at IoU 0.5 against `truth` of `labels` without the objects under each minimum size.
    An object's IoU with a true one does not depend on the other objects, so one IoU matrix serves
    every size: removing the small objects drops their columns."""
    overlap = overlap_matrix(truth, labels)
    iou, areas = iou_matrix(overlap), overlap.sum(axis=0)[1:]
    return {size: match_counts(iou[:, areas >= size], 0.5) for size in min_sizes}


def added(total: dict, counts: dict) -> dict:
    return {key: total[key] + counts[key] for key in total}


def best_postprocessing(scores: dict) -> tuple[Seeds, int]:
    """The (seeds, minimum size) with the highest AP; of equals, the lowest values."""
    return max(sorted(scores), key=scores.get)


def remove_small_instances(labels: np.ndarray, min_size: int) -> np.ndarray:
    """Objects under `min_size` pixels removed, the rest renumbered 1..N in order of first pixel."""
    labels = np.asarray(labels)
    if min_size > 0:
        labels = np.where((np.bincount(labels.ravel()) >= min_size)[labels], labels, 0)
    return sequential(labels)


def sequential(labels: np.ndarray) -> np.ndarray:
    ids = np.unique(labels)
    lookup = np.zeros(int(ids.max(initial=0)) + 1, np.int32)
    lookup[ids[ids > 0]] = np.arange(1, np.count_nonzero(ids > 0) + 1)
    return lookup[labels]


def overlap_matrix(truth: np.ndarray, prediction: np.ndarray) -> np.ndarray:
    """Pixel counts of every (true id, predicted id) pair, ids renumbered 0..N (0 = background)."""
    truth, prediction = sequential(truth).ravel(), sequential(prediction).ravel()
    rows, cols = int(truth.max(initial=0)) + 1, int(prediction.max(initial=0)) + 1
    return np.bincount(truth * cols + prediction, minlength=rows * cols).reshape(rows, cols)


def iou_matrix(overlap: np.ndarray) -> np.ndarray:
    """(true objects, predicted objects) IoU from the overlap matrix (background row/column dropped)."""
    true_area, pred_area = overlap.sum(axis=1)[1:, None], overlap.sum(axis=0)[None, 1:]
    intersection = overlap[1:, 1:]
    union = true_area + pred_area - intersection
    return np.divide(intersection, union, out=np.zeros(intersection.shape), where=union > 0)


def matched_pairs(iou: np.ndarray, tau: float) -> tuple[np.ndarray, np.ndarray]:
    """(true object indices, predicted object indices) of the one-to-one matches at IoU >= tau."""
    if not iou.size:
        return np.zeros(0, int), np.zeros(0, int)
    eligible = np.where(iou >= tau, iou, 0.0)
    rows, cols = linear_sum_assignment(eligible, maximize=True)
    keep = eligible[rows, cols] > 0
    return rows[keep], cols[keep]


def match_counts(iou: np.ndarray, tau: float) -> dict:
    """TP/FP/FN and the summed IoU of the matches at one threshold."""
    rows, cols = matched_pairs(iou, tau)
    tp = len(rows)
    return {"tp": tp, "fp": iou.shape[1] - tp, "fn": iou.shape[0] - tp, "iou_sum": float(iou[rows, cols].sum())}


def split_and_merged(overlap: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per true object: split (it holds the majority of two or more predicted objects); per predicted
    object: merged (it holds the majority of two or more true objects)."""
    objects = overlap[1:, 1:]
    pred_in_true = objects > MAJORITY * overlap.sum(axis=0)[None, 1:]
    true_in_pred = objects > MAJORITY * overlap.sum(axis=1)[1:, None]
    return pred_in_true.sum(axis=1) >= 2, true_in_pred.sum(axis=0) >= 2


def unmatched_causes(overlap: np.ndarray, iou: np.ndarray, tau: float = 0.5) -> dict:
    """Why each object found no match at `tau`, so that a low AP points at its cause. A true object:
    merged (most of it lies in a predicted object that holds most of two or more true ones), split
    (two or more predicted objects lie mostly in it), missed (most of it predicted background), else
    low_iou (found, but outlined too differently). A predicted object: a merge (it holds most of two
    or more true objects), a split_piece (it lies mostly in a split true object), spurious (most of
    it is true background), else low_iou. Each object counts once, in the first cause that fits."""
    split, merged = split_and_merged(overlap)
    found = np.zeros(iou.shape, bool)
    found[matched_pairs(iou, tau)] = True
    true_area, pred_area = overlap.sum(axis=1)[1:], overlap.sum(axis=0)[1:]
    objects = overlap[1:, 1:]
    in_merge = (objects[:, merged] > MAJORITY * true_area[:, None]).any(axis=1)
    in_split = (objects[split, :] > MAJORITY * pred_area[None, :]).any(axis=0)
    true_causes = np.select([in_merge, split, overlap[1:, 0] > MAJORITY * true_area],
                            ["fn_merged", "fn_split", "fn_missed"], "fn_low_iou")
    pred_causes = np.select([merged, in_split, overlap[0, 1:] > MAJORITY * pred_area],
                            ["fp_merge", "fp_split_piece", "fp_spurious"], "fp_low_iou")
    unmatched = [*true_causes[~found.any(axis=1)], *pred_causes[~found.any(axis=0)]]
    return {cause: unmatched.count(cause) for cause in UNMATCHED_CAUSES}


def split_and_merged_pixels(truth: np.ndarray, prediction: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(H, W) masks of the true objects that were split and of the predicted objects that merge."""
    truth, prediction = sequential(truth), sequential(prediction)
    split, merged = split_and_merged(overlap_matrix(truth, prediction))
    return np.concatenate([[False], split])[truth], np.concatenate([[False], merged])[prediction]


def evaluate_instances(truth: np.ndarray, prediction: np.ndarray, taus=TAUS) -> dict:
    """Everything one image contributes: object counts, match counts per tau, splits and merges,
    and the adapted Rand error and variation of information (scikit-image)."""
    overlap = overlap_matrix(truth, prediction)
    iou = iou_matrix(overlap)
    split, merged = split_and_merged(overlap)
    rand_error = (adapted_rand_error(truth, prediction)[0] if truth.any() and prediction.any()
                  else float(truth.any() or prediction.any()))  # one side empty: all wrong; both: nothing to get wrong
    vi_split, vi_merge = variation_of_information(truth, prediction)
    return {"objects_true": iou.shape[0], "objects_predicted": iou.shape[1],
            "by_tau": {tau: match_counts(iou, tau) for tau in taus},
            "area_ratios_50": area_ratios(overlap, iou),
            "splits": int(split.sum()), "merges": int(merged.sum()),
            "unmatched_50": unmatched_causes(overlap, iou),
            "rand_error": float(rand_error), "vi_split": float(vi_split), "vi_merge": float(vi_merge)}


def area_ratios(overlap: np.ndarray, iou: np.ndarray, tau: float = 0.5) -> list[float]:
    """Predicted / true area of each pair matched at `tau`: how much larger the model outlines the
    objects it finds than the annotation does (the bias of the sizes measured from its objects)."""
    rows, cols = matched_pairs(iou, tau)
    return (overlap.sum(axis=0)[1:][cols] / overlap.sum(axis=1)[1:][rows]).tolist()


def count_error(per_image: list[dict]) -> float | None:
    """Mean over the images with true objects of |predicted - true| / true object count."""
    errors = [abs(image["objects_predicted"] - image["objects_true"]) / image["objects_true"]
              for image in per_image if image["objects_true"]]
    return float(np.mean(errors)) if errors else None


def median_area_ratio(per_image: list[dict]) -> float | None:
    """The median predicted / true area of the pairs matched at IoU 0.5, pooled over the images."""
    ratios = [ratio for image in per_image for ratio in image["area_ratios_50"]]
    return float(np.median(ratios)) if ratios else None


def measurement_line(summary: dict) -> str:
    """How far counts and sizes measured from the predicted objects are from the annotation's (a
    summary or its headline)."""
    error, ratio = summary["count_error"], summary["matched_area_ratio_50"]
    count = ("no true objects to count" if error is None
             else f"object counts off by {100 * error:.1f} % per image (mean)")
    size = ("no objects matched" if ratio is None
            else f"matched objects {ratio:.3f}x the true ones' area (median; above 1: outlined larger)")
    return f"{count}; {size}"


def scores_from_matches(tp: int, fp: int, fn: int, iou_sum: float) -> dict:
    """Precision, recall, F1, AP, mean matched IoU and PQ; 1.0 where there is nothing to find and
    nothing was found (no objects either side)."""
    def ratio(num, den):
        return num / den if den else 1.0
    return {"precision": ratio(tp, tp + fp), "recall": ratio(tp, tp + fn), "f1": ratio(2 * tp, 2 * tp + fp + fn),
            "ap": ratio(tp, tp + fp + fn), "mean_matched_iou": iou_sum / tp if tp else 0.0,
            "pq": ratio(iou_sum, tp + fp / 2 + fn / 2)}


def summarize_instances(per_image: list[dict], taus=TAUS) -> dict:
    """Scores from the match counts pooled over every image (as StarDist reports a dataset), per tau;
    mean_ap is the mean over tau (the Data Science Bowl 2018 score pools per image instead)."""
    by_tau = {}
    for tau in taus:
        counts = {key: sum(image["by_tau"][tau][key] for image in per_image) for key in ("tp", "fp", "fn", "iou_sum")}
        by_tau[tau] = {**counts, **scores_from_matches(**counts)}
    mean = (lambda key: float(np.mean([image[key] for image in per_image]))) if per_image else (lambda key: 0.0)
    return {"by_tau": by_tau, "mean_ap": float(np.mean([by_tau[tau]["ap"] for tau in taus])),
            "objects_true": sum(image["objects_true"] for image in per_image),
            "objects_predicted": sum(image["objects_predicted"] for image in per_image),
            "splits": sum(image["splits"] for image in per_image),
            "merges": sum(image["merges"] for image in per_image),
            "unmatched_50": {cause: sum(image["unmatched_50"][cause] for image in per_image)
                             for cause in UNMATCHED_CAUSES},
            "rand_error": mean("rand_error"), "vi_split": mean("vi_split"), "vi_merge": mean("vi_merge"),
            "count_error": count_error(per_image), "matched_area_ratio_50": median_area_ratio(per_image)}


def headline(summary: dict) -> dict:
    """The object scores worth a column in `dvc metrics diff` (rounded); every tau is in by_tau."""
    at = summary["by_tau"]
    numbers = {"ap_50": at[0.5]["ap"], "ap_75": at[0.75]["ap"], "mean_ap": summary["mean_ap"],
               "f1_50": at[0.5]["f1"], "precision_50": at[0.5]["precision"], "recall_50": at[0.5]["recall"],
               "pq_50": at[0.5]["pq"], "matched_iou_50": at[0.5]["mean_matched_iou"],
               **{key: summary[key] for key in ("objects_true", "objects_predicted", "count_error",
                                                "matched_area_ratio_50", "splits", "merges", "unmatched_50",
                                                "rand_error", "vi_split", "vi_merge")}}
    return {key: round(value, 6) if isinstance(value, float) else value for key, value in numbers.items()}
