"""Whole-image prediction with a saved model: probabilities, masks and objects, written safely.

Shared by the predict stage and `unetseg predict`; importing it starts Keras.
"""

from pathlib import Path

from unetseg.backend import start_keras

keras = start_keras()
import numpy as np  # noqa: E402

from unetseg.errors import UserError  # noqa: E402
from unetseg.files import atomic_file, file_md5, files_into, read_json  # noqa: E402
from unetseg.imageio import IMAGE_SUFFIXES, image_pixels, read_image, read_native, write_png  # noqa: E402
from unetseg.instances import Seeds, labels_from_mask, object_labels, scaled_candidates, seed_rule  # noqa: E402
from unetseg.measure import pixel_size_for, write_measured_image, write_summary  # noqa: E402
from unetseg.modelfile import model_gap, model_scale, model_target, read_config, read_preprocessing  # noqa: E402
from unetseg.normalize import normalize  # noqa: E402
from unetseg.parallel import ordered_map, usable_cores, worker_pool  # noqa: E402
from unetseg.params import OBJECT_TARGETS, Params, Predict, with_predict, with_section  # noqa: E402
from unetseg.postprocess import foreground_of, remove_small_objects, to_labels  # noqa: E402
from unetseg.scale import back_to_shape, rescaled_image  # noqa: E402
from unetseg.tiling import predict_image  # noqa: E402

OUTPUT_SUFFIXES = (".png", "_prob.png", "_prob.npy", "_instances.png", "_objects.csv")  # what write_prediction may write
LEFT_AUTO = "tile size and post-processing left auto"  # chosen_for's line begins so
SUMMARY = "summary.csv"  # predict_files: a row per image, where it measured objects
DEFAULT_TILE = 256
POOL_MIN_PIXELS = 4_000_000  # image pixels for which worker processes repay their start (DSB2018's validation
                             # and test images: 32 M, 1.33x faster on 2 cores; the shipped data's: 1 M)
POOL_MAX_IMAGE_PIXELS = 4096 * 4096  # and none so large that a model output per worker takes much memory
CHOICE_PIXELS = 2**24  # pixels the network sees of the validation images the post-processing choice predicts, at
                      # most (DSB2018's 66 images: 9.4 M; on 2 cores ~4 s a million with 8 views, so the choice
                      # takes at most ~70 s at base 8)
MODEL_MD5 = "model_md5"  # the model a post-processing choice was made for
# post-processing left auto, nothing chosen; sigma and size in the network's pixels (auto_defaults)
AUTO_DEFAULTS = {"threshold": 0.5, "seed_threshold": 0.5, "seed_sigma": 2.0, "seed_depth": 0.05, "min_object_size": 0}


def auto_defaults(scale: float = 1.0) -> dict:
    """AUTO_DEFAULTS in the pixels of an image the network sees at `scale` (scaled_candidates)."""
    (sigma,), (size,) = scaled_candidates(scale, (AUTO_DEFAULTS["seed_sigma"],), (AUTO_DEFAULTS["min_object_size"],))
    return {**AUTO_DEFAULTS, "seed_sigma": sigma, "min_object_size": size}


def resolved_auto(cfg: Predict, choice: dict, scale: float = 1.0, keys=tuple(AUTO_DEFAULTS)) -> dict:
    """Values for the post-processing knobs left auto (of `keys`): the choice made on validation
    images, else the defaults for a model that sees the images at `scale`."""
    return {key: choice.get(f"predict.{key}", default) for key, default in auto_defaults(scale).items()
            if key in keys and getattr(cfg, key) == "auto"}


def auto_tile(model: keras.Model, choice: dict) -> int:
    """The tile size for predict.tile_size auto: the one the predict stage used for this model (its
    plan's, recorded with the choice), else DEFAULT_TILE or the nearest size the model takes."""
    step = tile_multiple(model)
    return choice.get("predict.tile_size", max(step, DEFAULT_TILE // step * step))


def chosen_for(model_path: Path, choice_path: Path) -> tuple[dict, str]:
    """The post-processing that the predict stage chose on its validation images, and the tile size it
    used (its postprocess.json), when made for this model; and a line saying where the values left
    auto come from."""
    if not choice_path.is_file():
        return {}, f"{LEFT_AUTO}: the defaults ({choice_path} not found)"
    try:
        choice = read_json(choice_path)
    except ValueError:
        choice = None
    if not isinstance(choice, dict):
        raise UserError(f"{choice_path}: not a post-processing choice (a JSON object, as the predict stage writes "
                        "in data/predictions/postprocess.json); pass that file to --postprocess, or another path")
    if not model_path.is_file() or choice.get(MODEL_MD5) != file_md5(model_path):
        return {}, f"{LEFT_AUTO}: the defaults ({choice_path} was chosen for another model)"
    return choice, f"{LEFT_AUTO}: as the pipeline chose it for this model ({choice_path})"


def seeds_of(cfg: Predict, target: str) -> Seeds:
    """The watershed's seeds that the predict settings (auto knobs resolved) give for this target."""
    return Seeds(seed_rule(cfg.seeds, target), cfg.seed_threshold, cfg.seed_sigma, cfg.seed_depth)


def load_model(path) -> keras.Model:
    read_config(path)  # a missing, truncated or foreign file is named before Keras sees it
    try:
        return keras.saving.load_model(path, compile=False)
    except Exception as exc:  # Keras raises many kinds (ValueError, KeyError, OSError, TypeError)
        reason = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise UserError(f"{path}: Keras could not load this model ({reason}); retrain it (dvc repro train) "
                        "or pass the unet.keras that training wrote") from None


def tile_multiple(model: keras.Model) -> int:
    """Tile sizes must be multiples of this: the network halves its input once per pooling."""
    return 2 ** sum(isinstance(layer, keras.layers.MaxPooling2D) for layer in model.layers)


def input_files(path: Path) -> list[Path]:
    """The image file, or the images of the folder sorted by name; each stem once."""
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


def check_outputs(files: list[Path], output: Path) -> None:
    """Before anything is written: the output must be a folder we can create, no output may land in
    the inputs' folder, and no two images may write the same file (`a.png` writes `a_prob.png`,
    which is also the mask of an input `a_prob.png`)."""
    for parent in (output, *output.parents):
        if parent.exists() and not parent.is_dir():
            raise UserError(f"{output}: {parent} is a file, not a folder; choose another --output")
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


def predict_probabilities(model: keras.Model, image: np.ndarray, params: Params, source: Path,
                          scale: float = 1.0) -> np.ndarray:
    """(H, W, K) float32 model output for a whole normalised (H, W, C) image, which the model sees
    resized by `scale` (the one it trained at, `model_scale`)."""
    expected = model.input_shape[-1]
    if expected is not None and image.shape[-1] != expected:
        raise UserError(f"{source}: {image.shape[-1]} channel(s), but the model expects {expected}; "
                        "retrain it on data like this (dvc repro) or use a matching model")
    cfg = params.predict
    output = predict_image(rescaled_image(image, scale), model.predict_on_batch, cfg.tile_size, cfg.overlap,
                           cfg.blend, cfg.batch_size, cfg.tta, cfg.max_whole_pixels, tile_multiple(model))
    return back_to_shape(output, image.shape)


def write_prediction(folder: Path, stem: str, probabilities: np.ndarray, params: Params, target: str,
                     gap: int = 0, image: np.ndarray | None = None) -> tuple[list[Path], dict | None]:
    """<stem>.png: labels (binary 0/255, else class ids). <stem>_prob: for one class (or the boundary
    target's foreground, 1 - p(background)) a PNG of round(p * 255) (uint8) or an (H, W) float16
    .npy; for several classes an (H, W, K) .npy of all class probabilities (uint8 round(p * 255), or
    float16). <stem>_instances.png: uint16 object ids, for the binary, boundary and weighted targets
    (the weighted target's mask is its objects, the gaps between them closed: `gap` px a side), and
    given `image` (H, W, C) as read from its file, <stem>_objects.csv, a row of measurements per object
    with its intensities (unetseg.measure; in µm too with measure.pixel_size, here a number or null).
    Each file appears whole or not at all; returns the files written and, where it measured the
    objects, the image's summary row (unetseg.measure.image_summary)."""
    cfg = params.predict
    if target in OBJECT_TARGETS:
        instances = object_labels(probabilities, target, cfg.threshold, seeds_of(cfg, target), cfg.min_object_size, gap)
    if target == "boundary":
        probabilities = foreground_of(probabilities, target)[..., None]
    if target == "weighted":
        labels = (instances > 0).astype(np.uint8)
    else:
        labels = remove_small_objects(to_labels(probabilities, cfg.threshold), cfg.min_object_size)
    if target == "binary":
        instances = labels_from_mask(labels)
    binary = probabilities.shape[-1] == 1
    written = [folder / f"{stem}.png"]
    with atomic_file(written[0]) as tmp:
        write_png(tmp, labels * 255 if binary else labels)
    if binary:
        written.append(write_instances(folder / f"{stem}_instances.png", instances))
    summary = None
    if binary and image is not None:
        written.append(folder / f"{stem}_objects.csv")
        summary = write_measured_image(written[-1], stem, instances, image, params.measure.pixel_size)
    if cfg.prob_dtype == "uint8" and binary:
        written.append(folder / f"{stem}_prob.png")
        with atomic_file(written[-1]) as tmp:
            write_png(tmp, np.round(probabilities[..., 0] * 255).astype(np.uint8))
        return written, summary
    scaled = np.round(probabilities * 255).astype(np.uint8) if cfg.prob_dtype == "uint8" else probabilities.astype(np.float16)
    written.append(folder / f"{stem}_prob.npy")
    with atomic_file(written[-1]) as tmp, open(tmp, "wb") as handle:
        np.save(handle, scaled[..., 0] if binary else scaled)
    return written, summary


def write_instances(path: Path, instances: np.ndarray) -> Path:
    if instances.max(initial=0) > np.iinfo(np.uint16).max:
        raise UserError(f"{path}: over 65,535 objects in one image; predict tiles of it instead")
    with atomic_file(path) as tmp:
        write_png(tmp, instances.astype(np.uint16))
    return path


def predict_files(files: list[Path], output: Path, model_path: Path, params: Params, choice: dict,
                  progress=iter) -> list[Path]:
    """Masks, probability maps and objects of new images, normalised as the model's training data
    was; checked before anything is written, and moved into `output` only once every image is done.
    A tile size and post-processing left auto take what the predict stage used for this model
    (`choice`: chosen_for), else the defaults (auto_tile, auto_defaults)."""
    check_outputs(files, output)
    pixels = readable_pixels(files)
    model, preprocessing = load_model(model_path), read_preprocessing(model_path)
    if params.predict.tile_size == "auto":
        params = with_predict(params, {"tile_size": auto_tile(model, choice)})
    params = with_predict(params, resolved_auto(params.predict, choice, model_scale(preprocessing)))
    target, gap = model_target(preprocessing), model_gap(preprocessing)

    def tasks(folder):
        for path in progress(files):
            raw = read_image(path, preprocessing["channels"])
            image = normalize(raw, preprocessing["normalization"])
            probabilities = predict_probabilities(model, image, params, path, model_scale(preprocessing))
            own = with_section(params, "measure", {"pixel_size": pixel_size_for(params.measure.pixel_size, path)})
            yield folder, path.stem, probabilities, own, target, gap, raw

    with files_into(output) as staging, objects_pool(pixels if target in OBJECT_TARGETS else []) as pool:
        results = list(in_workers(pool, written_prediction, tasks(staging)))
        summaries = [summary for _, summary in results if summary is not None]
        if summaries:
            write_summary(staging / SUMMARY, summaries)
    written = [path for paths, _ in results for path in paths] + ([staging / SUMMARY] if summaries else [])
    return [output / path.name for path in written]


def readable_pixels(files: list[Path]) -> list[int]:
    """Each image's pixels from its header; an image whose header cannot be read is read whole
    now, to fail with its reason before any image is predicted."""
    pixels = [image_pixels(path) for path in files]
    for path, count in zip(files, pixels):
        if not count:
            read_native(path)
    return pixels


def spread_within(pixels: list[int], budget: int = CHOICE_PIXELS) -> list[int]:
    """Indices of evenly spaced items whose pixels add up to at most `budget` (at least one item):
    every index when they all fit. Evenly spaced over the sorted names covers a numbered series from
    end to end, with no draw."""
    def spread(count):
        return sorted({round(i) for i in np.linspace(0, len(pixels) - 1, count)})

    def fits(count):
        return sum(pixels[i] for i in spread(count)) <= budget

    count = max(1, min(len(pixels), len(pixels) * budget // max(1, sum(pixels))))  # as if all were the mean size
    while count < len(pixels) and fits(count + 1):
        count += 1
    while count > 1 and not fits(count):
        count -= 1
    return spread(count)


def choice_images(pixels: list[int], scale: float) -> list[int]:
    """Indices of the validation images (of `pixels` each) the post-processing choice predicts: evenly
    spaced, within CHOICE_PIXELS as the network sees them, `scale`**2 times their own (extract.scale)."""
    return spread_within([round(n * scale**2) for n in pixels])


def objects_pool(pixels: list[int]):
    """Worker processes that grow the objects and write the files while this process runs the model,
    where the images' pixels are work enough to repay the workers' start (each imports Keras: a few
    seconds), and no image so large that holding a model output per worker would take much memory.
    The outputs are the same either way."""
    wanted = sum(pixels) >= POOL_MIN_PIXELS and max(pixels, default=0) <= POOL_MAX_IMAGE_PIXELS
    return worker_pool(len(pixels) if wanted else 0, "spawn")


def in_workers(pool, function, items):
    """ordered_map with one pending item per core: a model output each, as one process holds one."""
    return ordered_map(pool, function, items, ahead=usable_cores())


def written_prediction(task) -> tuple[list[Path], dict | None]:
    return write_prediction(*task)
