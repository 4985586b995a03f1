"""Find image/mask pairs, check their integrity before any work, and split them by image."""

import math
from collections import Counter
from pathlib import Path

import numpy as np
from scipy import ndimage
from skimage import measure

from unetseg.errors import UserError
from unetseg.imageio import (IMAGE_SUFFIXES, JPEG_SUFFIXES, converts, in_region, is_colour, is_colour_mask,
                             jpeg_mask_error, read_mask_layers, read_native)
from unetseg.instances import labels_from_mask
from unetseg.naming import Pairing, pair_by_name, split_shared_folder

SPLITS = ("train", "val", "test")
MIN_REGIONS = 12  # where prepare.regions auto cuts too few images: a 0.15/0.15 split keeps 2 for val and test
MIN_REGION_SIDE = 64  # px: a region smaller than this holds too few patches and objects to learn or score


def list_images(directory, key: str) -> dict[str, Path]:
    """Image files by stem; `key` is the params key that names the folder, for the error."""
    directory = Path(directory)
    if not directory.is_dir():
        raise UserError(f"{directory}: folder not found; set {key} to your folder (and `dvc add` it)")
    files = sorted(p for p in directory.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise UserError(f"{directory}: no images ({', '.join(IMAGE_SUFFIXES)}) found; "
                        f"point {key} at a folder of images")
    by_stem: dict[str, Path] = {}
    for path in files:
        if path.stem in by_stem:
            raise UserError(f"{path}: two files share the stem '{path.stem}' ({by_stem[path.stem].name}); "
                            "keep one")
        by_stem[path.stem] = path
    return by_stem


def find_pairs(images_dir, masks_dir, skip_unpaired: bool = False) -> tuple[list[tuple[str, Path, Path]], Pairing]:
    """(stem, image, mask) for every paired image, sorted by stem, and how they were paired
    (`unetseg.naming`): every image needs a mask and vice versa unless `skip_unpaired`. When data.images
    and data.masks are one folder, its masks are the files named as another plus a fixed text ('a.png'
    and 'a_mask.png')."""
    images = list_images(images_dir, "data.images")
    if Path(images_dir).resolve() == Path(masks_dir).resolve():
        images, masks = split_shared_folder(images, masks_dir)
    else:
        masks = list_images(masks_dir, "data.masks")
    pairing = pair_by_name(images, masks, images_dir, masks_dir, skip_unpaired)
    return [(stem, images[stem], masks[pairing.mask_of[stem]]) for stem in sorted(pairing.mask_of)], pairing


SOFT_LEVEL = 128      # a blurred 0/255 mask is foreground from here up
SOFT_BANDS = (64, 192)  # below: background, from here up: foreground, between: the blur
SOFT_REACH = 4        # px: a blur lies within this of both (JPEG's ringing, a resize's edge band)
SPECK = 2             # px: one-colour regions this small in a colour mask are blended edges, not objects


def read_user_mask(path, num_classes: int = 1, mask_type: str = "auto") -> tuple[np.ndarray, str | None]:
    """A mask as the pipeline takes it, and how it was read where not as stored: "soft", a blurred
    binary mask made hard again, or "colour", a colour mask as object ids.

    For one class (unless data.mask_type says instances), a 0/255 mask blurred by JPEG compression
    or by resizing, values between 0 and 255 at its edges, is cut at 128 instead of passing for
    object ids. JPEG masks are taken only so: their lossy compression changes ids and classes. A
    colour mask of one class holds objects drawn each in its own colour (colour_objects)."""
    layers = read_mask_layers(path, jpeg=True)
    jpeg = Path(path).suffix.lower() in JPEG_SUFFIXES
    if is_colour_mask(layers):
        if jpeg:
            raise jpeg_mask_error(path)
        if num_classes > 1:
            raise UserError(f"{path}: colour mask; with data.num_classes={num_classes} save class ids "
                            f"0..{num_classes - 1} as a gray or palette image")
        return colour_objects(layers, path), "colour"
    mask = layers[..., 0]
    binary_kind = num_classes == 1 and mask_type != "instances"
    if jpeg and (not binary_kind or mask.max(initial=0) < SOFT_LEVEL):
        raise jpeg_mask_error(path)
    if binary_kind and not is_binary(np.unique(mask)) and (jpeg or is_blurred_binary(mask)):
        return np.where(mask >= SOFT_LEVEL, 255, 0).astype(np.uint8), "soft"
    return mask, None


def colour_objects(layers: np.ndarray, path) -> np.ndarray:
    """A colour-coded mask (H, W, C) on a black background as object ids: each 8-connected region of
    one colour is an object, so touching objects drawn in different colours stay apart (as label images
    are drawn for viewing). A single colour is a binary mask drawn in it: 0/255. Edges blended by
    resizing or antialiasing, which leave specks of in-between colours, are refused."""
    colours, index = np.unique(layers.reshape(-1, layers.shape[-1]), axis=0, return_inverse=True)
    regions = index.reshape(layers.shape[:2]) + 1
    black = np.flatnonzero(~colours.any(axis=1))  # the background, when there is black
    if black.size:
        regions[regions == black[0] + 1] = 0
    if len(colours) - black.size == 1:
        return np.where(regions > 0, 255, 0).astype(np.uint8)
    objects = measure.label(regions, background=0, connectivity=2)
    specks = int(np.count_nonzero(np.bincount(objects.ravel())[1:] <= SPECK))
    if specks >= 10 and specks > objects.max() / 4:
        raise UserError(f"{path}: colour mask whose {specks} of {objects.max()} one-colour regions are specks of "
                        f"{SPECK} px or less, as blended edges leave (resized or antialiased); export the label "
                        "image without interpolation, or as gray object ids (16-bit PNG or TIFF)")
    return objects.astype(np.int64)


def is_blurred_binary(mask: np.ndarray) -> bool:
    """A 0/255 mask with its edges blurred: its top value 250..255 and at least 90 % of its middle
    values (64..191) within SOFT_REACH px of both foreground and background. Object ids fill whole
    objects with middle values; on 100 DSB2018 masks JPEG-compressed (quality 30-95) or resized
    (0.5-5x, bilinear, bicubic, Lanczos), 1,895 of 1,900 are recognised, and 1 of 200 label maps
    (ids spread over 0-255 or wrapped at 256) is mistaken for one (benchmarks/blurred_masks.py)."""
    if not 250 <= mask.max(initial=0) <= 255:
        return False
    low, high = mask < SOFT_BANDS[0], mask >= SOFT_BANDS[1]
    middle = ~low & ~high
    near_both = (ndimage.binary_dilation(low, iterations=SOFT_REACH)
                 & ndimage.binary_dilation(high, iterations=SOFT_REACH))
    return bool(np.count_nonzero(middle & ~near_both) <= 0.1 * np.count_nonzero(middle))


def mask_to_classes(mask: np.ndarray, num_classes: int, path, mask_type: str = "auto") -> np.ndarray:
    """Class ids as uint8: for one class, binary masks (0/1 or 0/255) and object-id masks (unless
    mask_type is semantic) become 0/1; for several, values must be 0..num_classes-1."""
    values = np.unique(mask)
    if values.min(initial=0) < 0:
        raise UserError(f"{path}: mask value {values.min()} is negative; masks hold class or object ids >= 0")
    if num_classes == 1:
        if mask_type == "semantic" and not is_binary(values):
            raise UserError(f"{path}: mask values {_some(values)} are not binary (0/1 or 0/255) as data.num_classes=1 "
                            "expects; for class ids set data.num_classes, for object ids data.mask_type: instances")
        return (mask > 0).astype(np.uint8)
    bad = values[values >= num_classes]
    if bad.size:
        raise UserError(f"{path}: mask value {bad[0]} is not valid for data.num_classes={num_classes} "
                        f"(expected class ids 0..{num_classes - 1}); fix the mask or raise data.num_classes")
    return mask.astype(np.uint8)


def is_binary(values: np.ndarray) -> bool:
    """0/1, 0/255 or 0/65535 (a 16-bit export of a binary mask)."""
    return any(set(values.tolist()) <= {0, top} for top in (1, 255, 65535))


def _some(values: np.ndarray) -> str:
    shown = ", ".join(str(v) for v in values[:6])
    return shown + (f", ... ({values.size} distinct)" if values.size > 6 else "")


def instance_labels(mask: np.ndarray, mask_type: str = "auto") -> np.ndarray:
    """(H, W) int32 object ids: the connected components of a binary (or semantic) mask, else the
    mask's own ids."""
    binary = mask_type == "semantic" or is_binary(np.unique(mask))
    return labels_from_mask(mask) if binary else mask.astype(np.int32)


def resolve_mask_type(mask_type: str, num_classes: int, summaries: dict[str, dict]) -> str:
    """data.mask_type with auto resolved: instances when some mask of one class holds object ids."""
    if mask_type != "auto":
        return mask_type
    with_ids = num_classes == 1 and any(s["object_ids"] for s in summaries.values())
    return "instances" if with_ids and single_foreground_value(summaries) is None else "semantic"


def single_foreground_value(summaries: dict[str, dict]) -> int | None:
    """The one value besides 0 of every one-class mask that is not 0/1 or 0/255, when they share one (a
    binary mask saved with, say, palette index 2 or gray 128): those are binary masks, not object ids."""
    values = {s.get("single_value") for s in summaries.values() if s.get("object_ids")}
    return values.pop() if len(values) == 1 and None not in values else None


def check_pair(image_path, mask_path, num_classes: int, mask_type: str = "auto") -> dict:
    """Decode one pair fully, check sizes and mask values (one pair in memory at a time); summarise it."""
    return check_regions(image_path, mask_path, num_classes, mask_type)[0]


def check_regions(image_path, mask_path, num_classes: int, mask_type: str = "auto", grid: int = 1) -> list[dict]:
    """check_pair's summary of each of the pair's grid x grid regions (region_windows), in row order;
    a cut one's names its window (`region`: top, bottom, left, right)."""
    image = read_native(image_path)
    mask, reading = read_user_mask(mask_path, num_classes, mask_type)
    if mask.shape[:2] != image.shape[:2]:
        raise UserError(f"{mask_path}: mask is {mask.shape[0]}x{mask.shape[1]} but image {image_path} is "
                        f"{image.shape[0]}x{image.shape[1]} (height x width); they must match")
    classes = mask_to_classes(mask, num_classes, mask_path, mask_type)
    whole = {"dtype": str(image.dtype), "channels": image.shape[-1], "colour": is_colour(image),
             **({f"{reading}_mask": True} if reading else {})}
    return [{**whole, **({"region": list(window)} if window else {}),
             **region_summary(in_region(mask, window), in_region(classes, window), num_classes)}
            for window in region_windows(image.shape[:2], grid, image_path)]


def region_summary(mask: np.ndarray, classes: np.ndarray, num_classes: int) -> dict:
    class_pixels = np.bincount(classes.ravel(), minlength=max(num_classes, 2))
    summary = {"shape": [int(s) for s in classes.shape[:2]], "class_pixels": class_pixels.tolist(),
               "foreground_fraction": float(1 - class_pixels[0] / classes.size)}
    if num_classes == 1:
        values = np.unique(mask)
        foreground = values[values > 0]
        summary["object_ids"] = not is_binary(values)
        if summary["object_ids"] and foreground.size == 1:
            summary["single_value"] = int(foreground[0])
        ids = summary["object_ids"] and foreground.size > 1
        summary["objects"] = int(foreground.size if ids else labels_from_mask(mask).max())
    return summary


def region_grid(setting, count: int, val_fraction: float, test_fraction: float, explicit_split: bool) -> int:
    """prepare.regions: the N of the N x N regions each image is cut into, to be split like images.
    auto: 1 (whole images) where the images are enough for the split, by image or as prepare.split
    lists them; else the least N that makes MIN_REGIONS regions in all."""
    if setting != "auto":
        return setting
    if explicit_split or count - _share(count, val_fraction) - _share(count, test_fraction) >= 1:
        return 1
    return math.ceil(math.sqrt(MIN_REGIONS / count))


def region_windows(shape, grid: int, path) -> list[tuple[int, int, int, int] | None]:
    """(top, bottom, left, right) of each of the grid x grid near-equal regions of an image of `shape`,
    in row order; [None], the whole image, for a grid of 1."""
    if grid == 1:
        return [None]
    if min(shape) // grid < MIN_REGION_SIDE:
        raise UserError(f"{path}: {shape[0]}x{shape[1]} px is too small to cut into {grid}x{grid} regions of "
                        f"{MIN_REGION_SIDE} px or more (prepare.regions, which auto sets where the images are too "
                        "few for the split); add images, lower prepare.regions, or lower prepare.val_fraction / "
                        "prepare.test_fraction")
    rows, cols = (np.linspace(0, side, grid + 1).round().astype(int).tolist() for side in shape)
    return [(rows[i], rows[i + 1], cols[j], cols[j + 1]) for i in range(grid) for j in range(grid)]


def region_stem(stem: str, index: int, grid: int) -> str:
    """The name of a file's region `index` (row order) in the splits and data/prepared: stem_r1c2."""
    return stem if grid == 1 else f"{stem}_r{index // grid}c{index % grid}"


def resolve_channels(channels, summaries: dict[str, dict]) -> int:
    """data.channels, checked against every image's own count (gray and RGB convert into each other);
    auto: the images' own count where it is neither 1 nor 3 (the same in all), else 3 if any image is
    in colour, else 1."""
    counts = {summary["channels"] for summary in summaries.values()}
    if channels == "auto":
        if counts <= {1, 3}:
            return 3 if any(summary["colour"] for summary in summaries.values()) else 1
        if len(counts) > 1:
            held = " and ".join(map(str, sorted(counts)))
            raise UserError(f"data.images: the images hold {held} channels; save them all with the same "
                            "(gray and RGB may mix), or set data.channels")
        return counts.pop()
    for stem, summary in summaries.items():
        if not converts(summary["channels"], channels):
            raise UserError(f"params.yaml: data.channels={channels}, but image '{stem}' holds {summary['channels']} "
                            "channels (only gray and RGB convert); set data.channels: auto or "
                            f"{summary['channels']}")
    return channels


def check_validation(splits: dict[str, list[str]]) -> None:
    """Training keeps its best model, and predict picks its seed threshold, on validation images."""
    if not splits["val"]:
        raise UserError("params.yaml: prepare: no validation images, which training needs to keep its best model; "
                        "set prepare.val_fraction > 0 (e.g. 0.1) or list some in prepare.split.val")


def check_trainable(summaries: dict[str, dict], train: list[str]) -> None:
    if not any(summaries[stem]["foreground_fraction"] > 0 for stem in train):
        raise UserError(f"data.masks: all {len(train)} training masks are empty (background only), so there is "
                        "nothing to learn; check the masks (foreground must be non-zero)")


def integrity_report(summaries: dict[str, dict], splits: dict[str, list[str]], channels_param, channels: int) -> dict:
    """What prepare found in the dataset: counts, sizes, dtypes, colour, class pixel fractions, empty masks."""
    heights = [summary["shape"][0] for summary in summaries.values()]
    widths = [summary["shape"][1] for summary in summaries.values()]
    class_pixels = np.sum([summary["class_pixels"] for summary in summaries.values()], axis=0)
    empty = sorted(stem for stem, summary in summaries.items() if summary["foreground_fraction"] == 0)
    soft = sorted(stem for stem, summary in summaries.items() if summary.get("soft_mask"))
    colour = sorted(stem for stem, summary in summaries.items() if summary.get("colour_mask"))
    single_value = single_foreground_value(summaries)
    return {
        "images": len(summaries),
        "split": {name: len(members) for name, members in splits.items()},
        "height": {"min": min(heights), "max": max(heights)},
        "width": {"min": min(widths), "max": max(widths)},
        "distinct_sizes": len({tuple(summary["shape"]) for summary in summaries.values()}),
        "dtypes": dict(sorted(Counter(summary["dtype"] for summary in summaries.values()).items())),
        "colour_images": sum(summary["colour"] for summary in summaries.values()),
        "channels": {"param": channels_param, "used": channels},
        "class_pixel_fraction": {str(c): round(float(n / class_pixels.sum()), 6) for c, n in enumerate(class_pixels)},
        "empty_masks": {"count": len(empty), "images": empty},
        "soft_masks": {"count": len(soft), "images": soft},
        "colour_masks": {"count": len(colour), "images": colour},
        **({"objects": sum(summary["objects"] for summary in summaries.values())}
           if all("objects" in summary for summary in summaries.values()) else {}),
        **({"single_foreground_value": single_value} if single_value is not None else {}),
    }


RARE_CLASS = 0.01  # a class on fewer pixels than this is "extreme imbalance"


def integrity_warnings(report: dict, normalize: str) -> list[str]:
    """What is odd but can still work, one line each."""
    warnings = []
    masks = "regions' masks" if "regions" in report else "masks"  # prepare.regions cut the images
    empty = report["empty_masks"]
    if empty["count"]:
        warnings.append(f"{empty['count']} of {report['images']} {masks} are empty (background only), e.g. "
                        f"'{empty['images'][0]}': fine for true negatives, otherwise check those masks")
    if report["split"]["train"] == 1 < report["images"] and "regions" not in report:
        warnings.append(f"one training image of {report['images']}: the model learns from it alone; prepare.regions: 2 "
                        "cuts every image into 4 regions to split, more to learn from (the test regions then "
                        "neighbour training ones)")
    soft = report["soft_masks"]
    if soft["count"]:
        warnings.append(f"{soft['count']} of {report['images']} {masks} hold values between 0 and 255, e.g. "
                        f"'{soft['images'][0]}', as JPEG or resizing leave a 0/255 mask's edges: read as "
                        f"foreground from {SOFT_LEVEL} up; save masks as 0/255 PNG or TIFF to keep their edges exact")
    colour = report["colour_masks"]
    if colour["count"]:
        warnings.append(f"{colour['count']} of {report['images']} {masks} are in colour, e.g. '{colour['images'][0]}': "
                        "read as objects, one per connected region of one colour on black (binary where drawn in "
                        "one colour); save object ids as a gray 16-bit PNG or TIFF to say so outright")
    if "single_foreground_value" in report and report.get("mask_type") == "semantic":
        warnings.append(f"masks hold 0 and {report['single_foreground_value']} only, not 0/1 or 0/255: read as "
                        "binary masks (their objects the connected components); set data.mask_type: instances if "
                        "each mask is one object")
    for label, fraction in report["class_pixel_fraction"].items():
        if label == "0":
            continue
        if fraction == 0:
            warnings.append(f"class {label} appears in no mask; check data.num_classes")
        elif fraction < RARE_CLASS:
            warnings.append(f"class {label} covers only {fraction:.2%} of all pixels (extreme imbalance): "
                            "keep train.loss dice or bce_dice and extract.fg_fraction > 0")
    if report["colour_images"] and report["channels"]["used"] == 1:
        warnings.append(f"{report['colour_images']} colour image(s) are read as gray because data.channels=1; "
                        "set data.channels to 3 or auto to keep colour")
    if len(report["dtypes"]) > 1 and normalize == "dataset":
        warnings.append(f"images mix {' and '.join(report['dtypes'])} while prepare.normalize=dataset pools "
                        "their statistics; prepare.normalize=percentile scales each image on its own")
    return warnings


def split_stems(stems: list[str], val_fraction: float, test_fraction: float, seed: int) -> dict[str, list[str]]:
    """A seeded split by image: every stem in exactly one of train/val/test."""
    order = np.random.default_rng(seed).permutation(len(stems))
    shuffled = [stems[i] for i in order]
    n_val = _share(len(stems), val_fraction)
    n_test = _share(len(stems), test_fraction)
    if len(stems) - n_val - n_test < 1:
        raise UserError(f"only {len(stems)} image(s): not enough for a split with val_fraction="
                        f"{val_fraction} and test_fraction={test_fraction}; add images or lower "
                        "prepare.val_fraction / prepare.test_fraction")
    split = {"test": shuffled[:n_test], "val": shuffled[n_test:n_test + n_val],
             "train": shuffled[n_test + n_val:]}
    return {name: sorted(split[name]) for name in SPLITS}


def _share(total: int, fraction: float) -> int:
    """At least one image for a non-zero fraction."""
    return max(1, round(total * fraction)) if fraction > 0 else 0


def check_explicit_split(split: dict[str, list[str]], stems: list[str]) -> dict[str, list[str]]:
    """Validate a user-given split (prepare.split): exactly the stems present, each once."""
    seen: dict[str, str] = {}
    for name in SPLITS:
        for stem in split[name]:
            if stem in seen:
                raise UserError(f"params.yaml: prepare.split: '{stem}' is in both {seen[stem]} and {name}")
            seen[stem] = name
    unknown = sorted(set(seen) - set(stems))
    if unknown:
        raise UserError(f"params.yaml: prepare.split.{seen[unknown[0]]}: '{unknown[0]}' is not an image in "
                        "data.images; use file name stems")
    missing = sorted(set(stems) - set(seen))
    if missing:
        raise UserError(f"params.yaml: prepare.split: image '{missing[0]}' is in no split; "
                        "list every image once")
    if not split["train"]:
        raise UserError("params.yaml: prepare.split.train: needs at least one image")
    return {name: sorted(split[name]) for name in SPLITS}
