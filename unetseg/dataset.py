"""Find image/mask pairs, check their integrity before any work, and split them by image."""

from pathlib import Path

import numpy as np

from unetseg.errors import UserError
from unetseg.imageio import IMAGE_SUFFIXES, read_image, read_mask

SPLITS = ("train", "val", "test")


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


def find_pairs(images_dir, masks_dir) -> list[tuple[str, Path, Path]]:
    """(stem, image, mask) for every image, sorted by stem; every image needs a mask and vice versa."""
    images = list_images(images_dir, "data.images")
    masks = list_images(masks_dir, "data.masks")
    for stem, path in images.items():
        if stem not in masks:
            raise UserError(f"{path}: no mask named '{stem}.*' in {masks_dir}; add it or remove the image")
    for stem, path in masks.items():
        if stem not in images:
            raise UserError(f"{path}: mask without an image named '{stem}.*' in {images_dir}; "
                            "add the image or remove the mask")
    return [(stem, images[stem], masks[stem]) for stem in sorted(images)]


def mask_to_classes(mask: np.ndarray, num_classes: int, path) -> np.ndarray:
    """Class ids as uint8: binary masks (0/1 or 0/255) become 0/1; others must be 0..num_classes-1."""
    values = np.unique(mask)
    if num_classes == 1:
        allowed = {0, 255} if values.max(initial=0) > 1 else {0, 1}
        bad = sorted(set(values.tolist()) - allowed)
        if bad:
            raise UserError(f"{path}: mask value {bad[0]} is not valid for data.num_classes=1 "
                            "(expected 0/1 or 0/255); fix the mask or set data.num_classes")
        return (mask > 0).astype(np.uint8)
    bad = values[(values < 0) | (values >= num_classes)]
    if bad.size:
        raise UserError(f"{path}: mask value {bad[0]} is not valid for data.num_classes={num_classes} "
                        f"(expected class ids 0..{num_classes - 1}); fix the mask or raise data.num_classes")
    return mask.astype(np.uint8)


def check_pair(image_path, mask_path, num_classes: int, channels: int) -> dict:
    """Decode one pair fully, check sizes and mask values (one pair in memory at a time); summarise it."""
    image_shape = read_image(image_path, channels).shape[:2]
    mask = read_mask(mask_path)
    if mask.shape[:2] != tuple(image_shape):
        raise UserError(f"{mask_path}: mask is {mask.shape[0]}x{mask.shape[1]} but image {image_path} is "
                        f"{image_shape[0]}x{image_shape[1]} (height x width); they must match")
    classes = mask_to_classes(mask, num_classes, mask_path)
    return {"shape": [int(s) for s in image_shape], "foreground_fraction": float(np.mean(classes > 0))}


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
