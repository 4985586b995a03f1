"""Stage predict: overlap-tile prediction of whole test images, and their objects; also a command
for new images:

    python -m stages.predict --model models/unet.keras --input FILE_OR_DIR --output DIR

For the boundary target with predict.seed_threshold or predict.min_object_size auto, the stage first
predicts the validation images and keeps the values whose objects match theirs best
(data/predictions/postprocess.json).
"""

import argparse
from pathlib import Path

from unetseg.backend import start_keras

keras = start_keras()
import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

from stages.common import (atomic_dir, atomic_file, read_json, read_plan, remove_stale_temporaries,  # noqa: E402
                           run_stage, write_json)
from unetseg.errors import UserError  # noqa: E402
from unetseg.imageio import IMAGE_SUFFIXES, read_image, write_png  # noqa: E402
from unetseg.instances import (MIN_SIZES, SEED_THRESHOLDS, best_postprocessing, labels_from_boundary,  # noqa: E402
                               labels_from_mask, postprocessing_scores)
from unetseg.normalize import normalize  # noqa: E402
from unetseg.params import Params, Predict, load_params, parse_params  # noqa: E402
from unetseg.postprocess import remove_small_objects, to_labels  # noqa: E402
from unetseg.tiling import predict_image  # noqa: E402

MODEL, PREPARED, OUT = "models/unet.keras", Path("data/prepared"), "data/predictions"
POSTPROCESS = "postprocess.json"  # what predict chose on the validation images
DEFAULT_TILE = 256
AUTO_DEFAULTS = {"seed_threshold": 0.5, "min_object_size": 0}  # post-processing left auto, nothing chosen
OUTPUT_SUFFIXES = (".png", "_prob.png", "_prob.npy", "_instances.png")  # what write_prediction may write


def main(argv) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default="params.yaml", help="tile/threshold settings (defaults if absent)")
    parser.add_argument("--model", help="a .keras model; its preprocessing.json must sit beside it")
    parser.add_argument("--input", help="an image file or a folder of images (.png, .tif, .tiff, .jpg, .jpeg)")
    parser.add_argument("--output",
                        help="folder for <stem>.png masks, <stem>_prob maps and <stem>_instances.png objects")
    flags = parser.add_argument_group("overrides of params.yaml's predict section")
    for key, kind in (("tile_size", int), ("overlap", float), ("batch_size", int), ("threshold", float),
                      ("min_object_size", int), ("seed_threshold", float), ("prob_dtype", str), ("blend", str)):
        flags.add_argument("--" + key.replace("_", "-"), type=kind, dest=key)
    flags.add_argument("--tta", action="store_true", default=None, help="average over flips")
    args = parser.parse_args(argv)
    if args.input or args.output or args.model:
        if not (args.input and args.output):
            raise UserError("predict: give both --input FILE_OR_DIR and --output DIR (and --model)")
        predict_files(args, with_flags(args, load_params(args.params) if Path(args.params).exists() else Params()))
    else:
        predict_test_split(with_flags(args, load_params(args.params)))


def with_flags(args, params: Params) -> Params:
    """`params` with the predict keys given as flags replaced (validated like params.yaml)."""
    flags = {key: value for key, value in vars(args).items() if key in Predict.model_fields and value is not None}
    return with_predict(params, flags, "predict flags") if flags else params


def with_predict(params: Params, changes: dict, source: str = "params.yaml") -> Params:
    """`params` with these keys of the predict section replaced, validated like params.yaml."""
    raw = params.model_dump()
    raw["predict"].update(changes)
    return parse_params(raw, source)


def predict_test_split(params: Params) -> None:
    remove_stale_temporaries()
    params = with_predict(params, {"tile_size": read_plan("predict")["predict.tile_size"]})
    model, target = load_model(MODEL), model_target(read_json(Path(MODEL).parent / "preprocessing.json"))
    splits = read_json(PREPARED / "manifest.json")["splits"]
    choice = choose_postprocessing(model, splits["val"], params) if target == "boundary" else {}
    params = with_predict(params, resolved_auto(params.predict, choice))
    with atomic_dir(OUT) as out:
        for stem in tqdm(splits["test"], desc="predict"):
            path = PREPARED / "test" / "images" / f"{stem}.npy"
            write_prediction(out, stem, predict_probabilities(model, np.load(path), params, path), params, target)
        write_json(out / POSTPROCESS, choice)


def resolved_auto(cfg: Predict, choice: dict) -> dict:
    """Values for the post-processing knobs left auto: the choice made on validation images, else the defaults."""
    return {key: choice.get(f"predict.{key}", default) for key, default in AUTO_DEFAULTS.items()
            if getattr(cfg, key) == "auto"}


def choose_postprocessing(model: keras.Model, val: list[str], params: Params) -> dict:
    """For the boundary target, the seed threshold and minimum object size left auto: the pair whose
    objects score the best AP@0.5 on the validation images (a pinned value stays as it is)."""
    cfg = params.predict
    seeds = SEED_THRESHOLDS if cfg.seed_threshold == "auto" else (cfg.seed_threshold,)
    sizes = MIN_SIZES if cfg.min_object_size == "auto" else (cfg.min_object_size,)
    if len(seeds) == len(sizes) == 1:
        return {}

    def validation_outputs():
        for stem in tqdm(val, desc="choose post-processing"):
            path = PREPARED / "val" / "images" / f"{stem}.npy"
            truth = np.load(PREPARED / "val" / "labels" / f"{stem}.npy")
            yield truth, predict_probabilities(model, np.load(path), params, path)

    scores = postprocessing_scores(validation_outputs(), cfg.threshold, seeds, sizes)
    seed, size = best_postprocessing(scores)
    print(f"predict: objects grown from p(interior) >= {seed}, at least {size} px: object AP@0.5 "
          f"{scores[seed, size]:.3f} on the {len(val)} validation images (the {len(scores)} choices tried: "
          f"{min(scores.values()):.3f} to {max(scores.values()):.3f})")
    return {"predict.seed_threshold": seed, "predict.min_object_size": size,
            "validation_ap_50": {f"seed {s}, min size {m}": round(ap, 6) for (s, m), ap in scores.items()}}


def predict_files(args, params: Params) -> None:
    files, output = input_files(Path(args.input)), Path(args.output)
    check_outputs(files, output)
    model_path = Path(args.model or MODEL)
    model = load_model(model_path)
    if params.predict.tile_size == "auto":  # no plan for new images: 256, or the nearest size the model takes
        step = 2 ** sum(isinstance(layer, keras.layers.MaxPooling2D) for layer in model.layers)
        params = with_predict(params, {"tile_size": max(step, DEFAULT_TILE // step * step)})
    params = with_predict(params, resolved_auto(params.predict, {}))  # no validation images: the defaults, or flags
    preprocessing = read_json(model_path.parent / "preprocessing.json")
    target = model_target(preprocessing)
    output.mkdir(parents=True, exist_ok=True)
    for path in tqdm(files, desc="predict"):
        image = normalize(read_image(path, preprocessing["channels"]), preprocessing["normalization"])
        write_prediction(output, path.stem, predict_probabilities(model, image, params, path), params, target)


def check_outputs(files: list[Path], output: Path) -> None:
    """Before anything is written: no output may land in the inputs' folder, and no two images may
    write the same file (`a.png` writes `a_prob.png`, which is also the mask of an input `a_prob.png`)."""
    for path in files:
        if path.resolve().parent == output.resolve():
            raise UserError(f"{output}: the output folder holds the input {path.name}, whose mask would overwrite "
                            "images; choose another --output")
    written: dict[str, Path] = {}
    for path in files:
        for name in (f"{path.stem}{suffix}" for suffix in OUTPUT_SUFFIXES):
            if name in written:
                raise UserError(f"{path} and {written[name]} would both write {output / name}; rename one of them")
            written[name] = path


def input_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        stems = [p.stem for p in files]
        if len(set(stems)) < len(stems):  # a.png and a.tif would both be written to a.png
            twice = sorted({stem for stem in stems if stems.count(stem) > 1})
            raise UserError(f"{path}: several images named {twice[0]}.*; rename them so each name is unique")
        if files:
            return files
        raise UserError(f"{path}: no images ({', '.join(IMAGE_SUFFIXES)}) found; give a folder of images")
    raise UserError(f"{path}: no such file or folder; give --input an image or a folder of images")


def load_model(path) -> keras.Model:
    if not Path(path).is_file():
        raise UserError(f"{path}: model not found; train one first (dvc repro train) or pass --model")
    return keras.saving.load_model(path, compile=False)


def model_target(preprocessing: dict) -> str:
    """What the model's output means (binary, boundary or classes): train saves it beside the model."""
    return preprocessing.get("target", "binary" if preprocessing["num_classes"] == 1 else "classes")


def predict_probabilities(model: keras.Model, image: np.ndarray, params: Params, source: Path) -> np.ndarray:
    """(H, W, K) float32 model output for a whole normalised (H, W, C) image."""
    expected = model.input_shape[-1]
    if expected is not None and image.shape[-1] != expected:
        raise UserError(f"{source}: {image.shape[-1]} channel(s), but the model expects {expected}; "
                        "retrain it on data like this (dvc repro) or use a matching model")
    cfg = params.predict
    return predict_image(image, model.predict_on_batch, cfg.tile_size, cfg.overlap, cfg.blend,
                         cfg.batch_size, cfg.tta)


def write_prediction(folder: Path, stem: str, probabilities: np.ndarray, params: Params, target: str) -> None:
    """<stem>.png: labels (binary 0/255, else class ids). <stem>_prob: for one class (or the boundary
    target's foreground, 1 - p(background)) a PNG of round(p * 255) (uint8) or an (H, W) float16
    .npy; for several classes an (H, W, K) .npy of all class probabilities (uint8 round(p * 255), or
    float16). <stem>_instances.png: uint16 object ids, for binary and boundary targets. Each file
    appears whole or not at all."""
    cfg = params.predict
    if target == "boundary":
        instances = labels_from_boundary(probabilities, cfg.threshold, cfg.seed_threshold, cfg.min_object_size)
        probabilities = 1.0 - probabilities[..., :1]
    labels = remove_small_objects(to_labels(probabilities, cfg.threshold), cfg.min_object_size)
    if target == "binary":
        instances = labels_from_mask(labels)
    binary = probabilities.shape[-1] == 1
    with atomic_file(folder / f"{stem}.png") as tmp:
        write_png(tmp, labels * 255 if binary else labels)
    if binary:
        write_instances(folder / f"{stem}_instances.png", instances)
    if cfg.prob_dtype == "uint8" and binary:
        with atomic_file(folder / f"{stem}_prob.png") as tmp:
            write_png(tmp, np.round(probabilities[..., 0] * 255).astype(np.uint8))
        return
    scaled = np.round(probabilities * 255).astype(np.uint8) if cfg.prob_dtype == "uint8" else probabilities.astype(np.float16)
    with atomic_file(folder / f"{stem}_prob.npy") as tmp, open(tmp, "wb") as handle:
        np.save(handle, scaled[..., 0] if binary else scaled)


def write_instances(path: Path, instances: np.ndarray) -> None:
    if instances.max(initial=0) > np.iinfo(np.uint16).max:
        raise UserError(f"{path}: over 65,535 objects in one image; predict tiles of it instead")
    with atomic_file(path) as tmp:
        write_png(tmp, instances.astype(np.uint16))


if __name__ == "__main__":
    run_stage(main)
