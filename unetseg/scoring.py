"""Score a folder of predicted masks against a folder of true ones, with the pipeline's metrics.

Masks pair by file name stem (`a.png` with `a.tif`), or by the stem with a fixed text added or
changed at its start or end (`a.png` with `a_segmentation.png`; `unetseg.naming`). Either side may be
binary (0/1, 0/255) or object ids (0 = background), as most tools write them (Cellpose, StarDist,
ilastik, QuPath). For one class the foreground is every non-zero pixel and the objects are the ids,
or the 8-connected components of a binary mask (one blurred by JPEG or resizing is cut at 128 first);
a predicted `<stem>_instances.png` (what `unetseg predict` writes) gives the predicted objects when
present. For several classes the masks are class ids and only the pixel scores apply.
"""

from pathlib import Path

import numpy as np

from unetseg.dataset import instance_labels, list_images, read_user_mask
from unetseg.errors import UserError
from unetseg.imageio import read_mask
from unetseg.instances import evaluate_instances, headline, median_area_ratio, summarize_instances
from unetseg.metrics import SCORES, evaluate_image, foreground_score, summarize
from unetseg.naming import best_rule

PREDICTION_EXTRAS = ("_prob", "_instances")  # what `unetseg predict` writes beside each mask


def score_folders(predictions, truths, num_classes: int = 1, progress=iter) -> dict:
    """Means over the images of every pixel score, object scores pooled over the images (one class),
    and one row per image."""
    pairs = paired_files(Path(predictions), Path(truths))
    pixels, objects, rows = [], [], []
    for stem, predicted_path, true_path in progress(pairs):
        truth = read_user_mask(true_path, num_classes)[0]
        predicted = read_user_mask(predicted_path, num_classes)[0]
        if truth.shape != predicted.shape:
            raise UserError(f"{predicted_path}: {predicted.shape[0]}x{predicted.shape[1]} but the true mask "
                            f"{true_path} is {truth.shape[0]}x{truth.shape[1]}; they must match")
        pixels.append(evaluate_image(class_ids(truth, num_classes, true_path),
                                     class_ids(predicted, num_classes, predicted_path), num_classes))
        row = {"image": stem, **{name: plain(foreground_score(pixels[-1], name, num_classes)) for name in SCORES}}
        if num_classes == 1:
            objects.append(evaluate_instances(instance_labels(truth), predicted_objects(predicted, predicted_path)))
            row.update(objects_true=objects[-1]["objects_true"], objects_predicted=objects[-1]["objects_predicted"],
                       matched_area_ratio_50=median_area_ratio(objects[-1:]))
        rows.append(row)
    scores = {key: value for key, value in summarize(pixels, num_classes).items() if key in SCORES}
    result = {"images": len(pairs), **scores, "per_image": rows}
    if objects:
        result["instances"] = headline(summarize_instances(objects))
    return result


def paired_files(predictions: Path, truths: Path) -> list[tuple[str, Path, Path]]:
    """(stem, predicted mask, true mask) for every true mask; each needs its prediction."""
    for folder, name in ((predictions, "PRED_DIR"), (truths, "TRUTH_DIR")):
        if not folder.is_dir():
            raise UserError(f"{folder}: no such folder; give {name} as a folder of masks")
    true_masks = list_images(truths, "TRUTH_DIR")
    predicted = {stem: path for stem, path in list_images(predictions, "PRED_DIR").items()
                 if not stem.endswith(PREDICTION_EXTRAS) or stem in true_masks}
    rule = best_rule(true_masks, predicted)
    prediction_of = rule.pairs(true_masks, predicted)
    missing = [stem for stem in true_masks if stem not in prediction_of]
    if missing:
        raise UserError(f"{predictions}: no prediction named '{rule.mask_for(missing[0]) or missing[0]}.*' for "
                        f"{true_masks[missing[0]]} ({len(missing)} of {len(true_masks)} missing); predict them or "
                        "remove the true masks")
    return [(stem, predicted[prediction_of[stem]], true_masks[stem]) for stem in sorted(true_masks)]


def class_ids(mask: np.ndarray, num_classes: int, path) -> np.ndarray:
    if num_classes == 1:
        return (mask > 0).astype(np.uint8)
    if mask.max(initial=0) >= num_classes:
        raise UserError(f"{path}: mask value {int(mask.max())} is not a class id below --num-classes {num_classes}; "
                        "set --num-classes to the number of classes, background included")
    return mask.astype(np.uint8)


def predicted_objects(mask: np.ndarray, path: Path) -> np.ndarray:
    instances = path.with_name(f"{path.stem}_instances.png")
    if not instances.is_file():
        return instance_labels(mask)
    objects = read_mask(instances)
    if objects.shape != mask.shape:
        raise UserError(f"{instances}: its size differs from the mask {path}; predict the image again")
    return objects


def plain(value) -> float | None:
    """A score for JSON: rounded, None where undefined (no foreground in truth or prediction)."""
    return None if value is None or np.isnan(value) else round(float(value), 6)
