"""Stage predict: overlap-tile prediction of whole test images, and their objects.

Each image goes through the network at the scale the model trained at (the plan's extract.scale) and
its output back to the image's size, so masks, objects and scores are at full size.

Where knobs are left auto, the stage first predicts the validation images and keeps the values that
score best on them: predict.threshold, for a one-class output, the mask threshold of the best Dice;
then for the boundary and weighted targets, the seed knobs (predict.seed_threshold, or seed_sigma and
seed_depth) and predict.min_object_size whose objects match theirs best, at that threshold
(data/predictions/postprocess.json, with the plan's tile size and the model's MD5: `unetseg predict`
uses them for this model). While this process runs the
model, worker processes grow and score the objects and write the files, where the images are large
enough to repay their start; the outputs are the same either way. The objects are counted and
measured by the measure stage. New images: `unetseg predict` (unetseg/cli.py).
"""

from functools import partial
from pathlib import Path

import numpy as np
from tqdm import tqdm

from stages.common import atomic_dir, load_stage_params, read_json, read_plan, run_stage, write_json
from unetseg.files import file_md5
from unetseg.inference import (CHOICE_PIXELS, MODEL_MD5, choice_images, in_workers, keras, load_model, objects_pool,
                               predict_probabilities, resolved_auto, written_prediction)
from unetseg.instances import (best_postprocessing, load_labels, postprocessing_scores, scaled_candidates,
                               seed_candidates, seed_rule)
from unetseg.modelfile import model_gap, model_scale, model_target, read_preprocessing
from unetseg.normalize import load_prepared_image
from unetseg.params import OBJECT_TARGETS, Params, with_predict
from unetseg.postprocess import best_threshold, dice_by_threshold, foreground_of

MODEL, PREPARED, OUT = "models/unet.keras", Path("data/prepared"), "data/predictions"
POSTPROCESS = "postprocess.json"  # what predict chose on the validation images, and its tile size


def main(argv) -> None:
    params = load_stage_params(argv, __doc__)
    params = with_predict(params, {"tile_size": read_plan("predict")["predict.tile_size"]})
    model, preprocessing = load_model(MODEL), read_preprocessing(MODEL)
    target, gap, scale = model_target(preprocessing), model_gap(preprocessing), model_scale(preprocessing)
    manifest = read_json(PREPARED / "manifest.json")
    splits = manifest["splits"]
    objects = target in OBJECT_TARGETS
    pixels = image_pixels(splits)
    with objects_pool([n for split in pixels.values() for n in split] if objects else []) as pool:
        val = [splits["val"][i] for i in choice_images(pixels["val"], scale)] if chooses(params, target) else []
        outputs, where = validation_outputs(model, manifest, val, params, scale), validation_images(val, splits["val"])
        choice = choose_threshold(outputs, params, target, where)
        params = with_predict(params, resolved_auto(params.predict, choice, scale, ("threshold",)))
        if objects:
            choice.update(choose_postprocessing(outputs, params, target, gap, scale, pool, where))
        params = with_predict(params, resolved_auto(params.predict, choice, scale))
        with atomic_dir(OUT) as out:
            tasks = ((out, stem, output_of_test_image(model, manifest, stem, params, scale), params, target, gap)
                     for stem in splits["test"])
            for _ in tqdm(in_workers(pool, written_prediction, tasks), total=len(splits["test"]), desc="predict"):
                pass
            write_json(out / POSTPROCESS, {**choice, "predict.tile_size": params.predict.tile_size,
                                           "predict.threshold": params.predict.threshold, MODEL_MD5: file_md5(MODEL)})
    print(f"predict: {len(splits['test'])} test images -> {OUT}/ (mask, probabilities and objects of each)")


def chooses(params: Params, target: str) -> bool:
    """Whether some knob is chosen on the validation images: the mask threshold of a one-class output,
    the seeds and minimum object size of the boundary and weighted targets, where left auto."""
    cfg = params.predict
    threshold = cfg.threshold == "auto" and target != "classes"
    objects = target in OBJECT_TARGETS and "auto" in (cfg.seed_threshold, cfg.seed_sigma, cfg.seed_depth,
                                                      cfg.min_object_size)
    return threshold or objects


def validation_outputs(model: keras.Model, manifest: dict, val: list[str], params: Params,
                       scale: float) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(true mask, true objects or None, model output) of each validation image in `val`, held for the
    choices (at most CHOICE_PIXELS as the network sees them)."""
    outputs = []
    for stem in tqdm(val, desc="choose post-processing"):
        path, labels = PREPARED / "val" / "images" / f"{stem}.npy", PREPARED / "val" / "labels" / f"{stem}.npy"
        image = load_prepared_image(path, manifest, stem)
        outputs.append((np.load(PREPARED / "val" / "masks" / f"{stem}.npy"),
                        load_labels(labels) if labels.is_file() else None,
                        predict_probabilities(model, image, params, path, scale)))
    return outputs


def choose_threshold(outputs: list, params: Params, target: str, where: str) -> dict:
    """predict.threshold left auto, for a one-class output: of MASK_THRESHOLDS, the one whose masks
    score the best mean Dice on the validation `outputs`, or nearly (best_threshold). Training draws
    foreground-rich patches, so the network's p(foreground) runs high, and the cut is often above 0.5."""
    if params.predict.threshold != "auto" or target == "classes" or not outputs:
        return {}
    dice = dice_by_threshold((mask, foreground_of(output, target)) for mask, _, output in outputs)
    best = best_threshold(dice)
    print(f"predict: foreground where p >= {best}: Dice {dice[best]:.4f} on {where} (at 0.5: {dice[0.5]:.4f})")
    return {"predict.threshold": best, "validation_dice": {str(t): round(d, 6) for t, d in dice.items()}}


def image_pixels(splits: dict) -> dict[str, list[int]]:
    """The pixels of each validation and test image (read from the headers), by split."""
    return {split: [int(np.prod(np.load(PREPARED / split / "images" / f"{stem}.npy", mmap_mode="r").shape[:2]))
                    for stem in splits[split]] for split in ("val", "test")}


def output_of_test_image(model: keras.Model, manifest: dict, stem: str, params: Params, scale: float) -> np.ndarray:
    path = PREPARED / "test" / "images" / f"{stem}.npy"
    return predict_probabilities(model, load_prepared_image(path, manifest, stem), params, path, scale)


def choose_postprocessing(outputs: list, params: Params, target: str, gap: int, scale: float = 1.0, pool=None,
                          where: str = "the validation images") -> dict:
    """For the boundary and weighted targets, the seed and minimum object size knobs left auto: the
    values whose objects score the best AP@0.5 on the validation `outputs` (validation_outputs) at
    params' mask threshold (a pinned value stays as it is); sigmas and sizes as the network sees them
    at `scale` (scaled_candidates)."""
    cfg = params.predict
    rule = seed_rule(cfg.seeds, target)
    sigmas, min_sizes = scaled_candidates(scale)
    pinned = {key: (value,) for key, value in (("thresholds", cfg.seed_threshold), ("sigmas", cfg.seed_sigma),
                                              ("depths", cfg.seed_depth)) if value != "auto"}
    seeds = seed_candidates(rule, **{"sigmas": sigmas, **pinned})
    sizes = min_sizes if cfg.min_object_size == "auto" else (cfg.min_object_size,)
    if len(seeds) == len(sizes) == 1:
        return {}
    scores = postprocessing_scores(((labels, output) for _, labels, output in outputs), cfg.threshold, seeds, sizes,
                                   target, gap, mapper=partial(in_workers, pool))
    best, size = best_postprocessing(scores)
    seeded_on = "p(interior)" if target == "boundary" else "p(foreground)"
    print(f"predict: objects grown from {best} in {seeded_on}, at least {size} px: object AP@0.5 "
          f"{scores[best, size]:.3f} on {where} (the {len(scores)} choices tried: "
          f"{min(scores.values()):.3f} to {max(scores.values()):.3f})")
    return {**best.choice(), "predict.min_object_size": size, "validation_images": len(outputs),
            "validation_ap_50": {f"{s}, min size {m}": round(ap, 6) for (s, m), ap in scores.items()}}


def validation_images(used: list[str], every: list[str]) -> str:
    if len(used) == len(every):
        return f"the {len(used)} validation images"
    return f"{len(used)} of the {len(every)} validation images (evenly spaced, at most {CHOICE_PIXELS:,} px at the model's scale)"


if __name__ == "__main__":
    run_stage(main)
