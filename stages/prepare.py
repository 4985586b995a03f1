"""Stage prepare: check the dataset, split by image, write arrays + manifest, and report what the
dataset holds (reports/data.json). Images are stored as read (their own dtype: 1 byte a pixel and
channel for 8-bit, not float32's 4) with what normalises each in the manifest (`levels`): the stages
that read them normalise on loading (unetseg.normalize.with_levels), to the same float32 values.
Object labels are stored in 16 bits where their ids fit."""

import sys

import numpy as np
from tqdm import tqdm

from stages.common import atomic_dir, load_stage_params, run_stage, write_json
from unetseg.dataset import (SPLITS, check_explicit_split, check_pair, check_trainable, check_validation, find_pairs,
                             instance_labels, integrity_report, integrity_warnings, mask_to_classes, read_user_mask,
                             resolve_channels, resolve_mask_type, split_stems)
from unetseg.imageio import read_image
from unetseg.instances import compact_labels
from unetseg.naming import NameRule
from unetseg.normalize import (choose_inversion, dataset_statistics, has_bright_background, normalize,
                               normalize_with_levels, object_contrast)

OUT = "data/prepared"
REPORT = "reports/data.json"


def main(argv) -> None:
    params = load_stage_params(argv, __doc__)
    data, cfg = params.data, params.prepare

    pairs, pairing = find_pairs(data.images, data.masks, cfg.unpaired == "skip")
    summaries = {stem: check_pair(image, mask, data.num_classes, data.mask_type)
                 for stem, image, mask in tqdm(pairs, desc="check")}
    stems = [stem for stem, _, _ in pairs]
    splits = (check_explicit_split(cfg.split.model_dump(), stems) if cfg.split
              else split_stems(stems, cfg.val_fraction, cfg.test_fraction, params.base.seed))
    check_validation(splits)
    check_trainable(summaries, splits["train"])
    channels = resolve_channels(data.channels, summaries)
    mask_type = resolve_mask_type(data.mask_type, data.num_classes, summaries)
    example = [pairs[0][1].name, pairs[0][2].name]
    report = {**integrity_report(summaries, splits, data.channels, channels), "mask_type": mask_type,
              "pairing": pairing_report(pairing, example)}
    for warning in integrity_warnings(report, cfg.normalize) + unpaired_warnings(pairing, len(pairs), data):
        print(f"warning: {warning}", file=sys.stderr)
    split_of = {stem: name for name, members in splits.items() for stem in members}
    sources = {stem: (image, mask) for stem, image, mask in pairs}
    spec = normalization_spec(cfg, [sources[s][0] for s in splits["train"]], channels)
    spec["invert"], reason = choose_inversion(cfg.invert, polarity_samples(
        spec, [sources[s] for s in splits["train"]], channels, data) if cfg.invert == "auto" else [])
    report["invert"] = {"param": cfg.invert, "used": spec["invert"], "reason": reason}

    levels = {}
    with atomic_dir(OUT) as out:
        for stem, (image_path, mask_path) in tqdm(sources.items(), desc="prepare"):
            folder = out / split_of[stem]
            (folder / "images").mkdir(parents=True, exist_ok=True)
            (folder / "masks").mkdir(parents=True, exist_ok=True)
            image = read_image(image_path, channels)  # kept as read: its normalisation goes in the manifest
            levels[stem] = normalize_with_levels(image, spec)[1]
            mask, classes = read_classes(mask_path, data)
            np.save(folder / "images" / f"{stem}.npy", image)
            np.save(folder / "masks" / f"{stem}.npy", classes)
            if data.num_classes == 1:  # the objects, for instance targets and metrics
                (folder / "labels").mkdir(exist_ok=True)
                np.save(folder / "labels" / f"{stem}.npy", compact_labels(instance_labels(mask, mask_type)))
        write_json(out / "manifest.json", manifest(channels, data.num_classes, mask_type, spec, splits, sources,
                                                   summaries, levels))
        write_json(REPORT, report)
    print(f"prepare: {len(pairs)} image pairs ({mask_type} masks, {channels} channel(s)), split "
          f"{len(splits['train'])}/{len(splits['val'])}/{len(splits['test'])} (train/val/test) -> {OUT}/, {REPORT}")
    if pairing.rule != NameRule():
        print(f"prepare: masks paired with images by name: {pairing.rule.describe()}, e.g. {' ↔ '.join(example)}")
    print(f"prepare: invert {spec['invert']}: {reason}")


def pairing_report(pairing, example: list[str]) -> dict:
    report = {"rule": pairing.rule.describe(), "example": example}
    if pairing.lone_images or pairing.lone_masks:  # prepare.unpaired: skip
        report.update(images_without_mask=[p.name for p in pairing.lone_images],
                      masks_without_image=[p.name for p in pairing.lone_masks])
    return report


def unpaired_warnings(pairing, paired: int, data) -> list[str]:
    """What prepare.unpaired: skip left out: it may be a partly annotated dataset, or masks misnamed."""
    lone = ((pairing.lone_images, "images", data.images, "mask", "images_without_mask"),
            (pairing.lone_masks, "masks", data.masks, "image", "masks_without_image"))
    return [f"{len(files)} of {len(files) + paired} {kind} in {folder} have no {partner} and are left out "
            f"(prepare.unpaired: skip), e.g. {files[0].name}; reports/data.json lists them (pairing.{key})"
            for files, kind, folder, partner, key in lone if files]


def normalization_spec(cfg, train_images, channels: int) -> dict:
    spec = {"mode": cfg.normalize, "percentiles": list(cfg.percentiles), "mean": None, "std": None}
    if cfg.normalize == "dataset":
        spec["mean"], spec["std"] = dataset_statistics(read_image(p, channels) for p in train_images)
    return spec


def read_classes(mask_path, data) -> tuple[np.ndarray, np.ndarray]:
    """A mask as read, and its class ids."""
    mask, _ = read_user_mask(mask_path, data.num_classes, data.mask_type)
    return mask, mask_to_classes(mask, data.num_classes, mask_path, data.mask_type)


def polarity_samples(spec: dict, pairs, channels: int, data) -> list[tuple]:
    """(bright background, object contrast) of each (image, mask) pair, as normalised before any inversion."""
    samples = []
    for image_path, mask_path in tqdm(pairs, desc="polarity"):
        image = normalize(read_image(image_path, channels), {**spec, "invert": "none"})
        classes = read_classes(mask_path, data)[1]
        samples.append((has_bright_background(image, spec["mode"]), object_contrast(image, classes > 0)))
    return samples


def manifest(channels: int, num_classes: int, mask_type: str, spec, splits, sources, summaries, levels) -> dict:
    def fraction(members):
        pixels = sum(np.prod(summaries[s]["shape"]) for s in members)
        fg = sum(np.prod(summaries[s]["shape"]) * summaries[s]["foreground_fraction"] for s in members)
        return float(fg / pixels) if pixels else 0.0

    split_of = {stem: name for name, members in splits.items() for stem in members}
    return {
        "channels": channels,
        "num_classes": num_classes,
        "mask_type": mask_type,
        "normalization": spec,
        "splits": splits,
        "counts": {name: len(splits[name]) for name in SPLITS},
        "foreground_fraction": {name: fraction(splits[name]) for name in SPLITS},
        "images": {stem: {"split": split_of[stem], "image": str(image), "mask": str(mask), **summaries[stem],
                          "levels": levels[stem]}
                   for stem, (image, mask) in sources.items()},
    }


if __name__ == "__main__":
    run_stage(main)
