"""Stage predict: overlap-tile prediction of whole test images; also a command for new images:

    python -m stages.predict --model models/unet.keras --input FILE_OR_DIR --output DIR
"""

import argparse
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

from stages.common import atomic_dir, atomic_file, read_json, read_plan, run_stage  # noqa: E402
from unetseg.errors import UserError  # noqa: E402
from unetseg.imageio import IMAGE_SUFFIXES, read_image, write_png  # noqa: E402
from unetseg.normalize import normalize  # noqa: E402
from unetseg.params import Params, Predict, load_params, parse_params  # noqa: E402
from unetseg.postprocess import remove_small_objects, to_labels  # noqa: E402
from unetseg.tiling import predict_image  # noqa: E402

MODEL, PREPARED, OUT = "models/unet.keras", Path("data/prepared"), "data/predictions"
DEFAULT_TILE = 256


def main(argv) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default="params.yaml", help="tile/threshold settings (defaults if absent)")
    parser.add_argument("--model", help="a .keras model; its preprocessing.json must sit beside it")
    parser.add_argument("--input", help="an image file or a folder of images (.png, .tif, .tiff)")
    parser.add_argument("--output", help="folder for <stem>.png masks and <stem>_prob maps")
    flags = parser.add_argument_group("overrides of params.yaml's predict section")
    for key, kind in (("tile_size", int), ("overlap", float), ("batch_size", int), ("threshold", float),
                      ("min_object_size", int), ("prob_dtype", str), ("blend", str)):
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
    params = with_predict(params, {"tile_size": read_plan("predict")["predict.tile_size"]})
    model = load_model(MODEL)
    stems = read_json(PREPARED / "manifest.json")["splits"]["test"]
    with atomic_dir(OUT) as out:
        for stem in tqdm(stems, desc="predict"):
            path = PREPARED / "test" / "images" / f"{stem}.npy"
            write_prediction(out, stem, predict_probabilities(model, np.load(path), params, path), params)


def predict_files(args, params: Params) -> None:
    files = input_files(Path(args.input))
    model_path = Path(args.model or MODEL)
    model = load_model(model_path)
    if params.predict.tile_size == "auto":  # no plan for new images: 256, or the nearest size the model takes
        step = 2 ** sum(isinstance(layer, keras.layers.MaxPooling2D) for layer in model.layers)
        params = with_predict(params, {"tile_size": max(step, DEFAULT_TILE // step * step)})
    preprocessing = read_json(model_path.parent / "preprocessing.json")
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    for path in tqdm(files, desc="predict"):
        image = normalize(read_image(path, preprocessing["channels"]), preprocessing["normalization"])
        write_prediction(output, path.stem, predict_probabilities(model, image, params, path), params)


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


def predict_probabilities(model: keras.Model, image: np.ndarray, params: Params, source: Path) -> np.ndarray:
    """(H, W, K) float32 model output for a whole normalised (H, W, C) image."""
    expected = model.input_shape[-1]
    if expected is not None and image.shape[-1] != expected:
        raise UserError(f"{source}: {image.shape[-1]} channel(s), but the model expects {expected}; "
                        "retrain it on data like this (dvc repro) or use a matching model")
    cfg = params.predict
    return predict_image(image, model.predict_on_batch, cfg.tile_size, cfg.overlap, cfg.blend,
                         cfg.batch_size, cfg.tta)


def write_prediction(folder: Path, stem: str, probabilities: np.ndarray, params: Params) -> None:
    """<stem>.png: labels (binary 0/255, else class ids). <stem>_prob: for one class a PNG of
    round(p * 255) (uint8) or an (H, W) float16 .npy; for several classes an (H, W, K) .npy of all
    class probabilities (uint8 round(p * 255), or float16). Each file appears whole or not at all."""
    cfg = params.predict
    labels = remove_small_objects(to_labels(probabilities, cfg.threshold), cfg.min_object_size)
    binary = probabilities.shape[-1] == 1
    with atomic_file(folder / f"{stem}.png") as tmp:
        write_png(tmp, labels * 255 if binary else labels)
    if cfg.prob_dtype == "uint8" and binary:
        with atomic_file(folder / f"{stem}_prob.png") as tmp:
            write_png(tmp, np.round(probabilities[..., 0] * 255).astype(np.uint8))
        return
    scaled = np.round(probabilities * 255).astype(np.uint8) if cfg.prob_dtype == "uint8" else probabilities.astype(np.float16)
    with atomic_file(folder / f"{stem}_prob.npy") as tmp, open(tmp, "wb") as handle:
        np.save(handle, scaled[..., 0] if binary else scaled)


if __name__ == "__main__":
    run_stage(main)
