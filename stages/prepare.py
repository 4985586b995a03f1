"""Stage prepare: check the dataset, split by image (or by region: prepare.regions), write arrays +
manifest, and report what the dataset holds (reports/data.json). Images are stored as read (their own
dtype: 1 byte a pixel and channel for 8-bit, not float32's 4) with what normalises each in the
manifest (`levels`): the stages that read them normalise on loading (unetseg.normalize.with_levels),
to the same float32 values. Object labels are stored in 16 bits where their ids fit."""

import sys

import numpy as np
from tqdm import tqdm

from stages.common import atomic_dir, load_stage_params, run_stage, write_json
from unetseg.dataset import (SPLITS, check_explicit_split, check_regions, check_trainable, check_validation,
                             find_pairs, instance_labels, integrity_report, integrity_warnings,
                             mask_to_classes, read_user_mask, region_grid, region_stem, resolve_channels,
                             resolve_mask_type, split_stems)
from unetseg.imageio import in_region, read_image
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
    grid = region_grid(cfg.regions, len(pairs), cfg.val_fraction, cfg.test_fraction, cfg.split is not None)
    summaries, sources = {}, {}  # by stem: an image's, or a region's (stem_r0c1) with the files it is cut from
    for stem, image, mask in tqdm(pairs, desc="check"):
        for index, summary in enumerate(check_regions(image, mask, data.num_classes, data.mask_type, grid)):
            name = region_stem(stem, index, grid)
            summaries[name], sources[name] = summary, (image, mask)
    stems = list(summaries)
    splits = (check_explicit_split(cfg.split.model_dump(), stems) if cfg.split
              else split_stems(stems, cfg.val_fraction, cfg.test_fraction, params.base.seed))
    check_validation(splits)
    check_trainable(summaries, splits["train"])
    channels = resolve_channels(data.channels, summaries)
    mask_type = resolve_mask_type(data.mask_type, data.num_classes, summaries)
    example = [pairs[0][1].name, pairs[0][2].name]
    report = {**integrity_report(summaries, splits, data.channels, channels), "mask_type": mask_type,
              "pairing": pairing_report(pairing, example), **regions_report(cfg.regions, grid, len(pairs))}
    for warning in integrity_warnings(report, cfg.normalize) + unpaired_warnings(pairing, len(pairs), data):
        print(f"warning: {warning}", file=sys.stderr)
    split_of = {stem: name for name, members in splits.items() for stem in members}
    train = [(*sources[stem], summaries[stem].get("region")) for stem in splits["train"]]  # image, mask, region
    spec = normalization_spec(cfg, train, channels)
    spec["invert"], reason = choose_inversion(cfg.invert, polarity_samples(
        spec, train, channels, data) if cfg.invert == "auto" else [])
    report["invert"] = {"param": cfg.invert, "used": spec["invert"], "reason": reason}

    levels = {}
    with atomic_dir(OUT) as out:
        for stem, image_path, mask_path in tqdm(pairs, desc="prepare"):
            image = read_image(image_path, channels)  # kept as read: its normalisation goes in the manifest
            image_levels = normalize_with_levels(image, spec)[1]  # of the whole image, as predict sees new ones
            mask, classes = read_classes(mask_path, data)
            for index in range(grid**2):
                name = region_stem(stem, index, grid)
                region = summaries[name].get("region")
                folder = out / split_of[name]
                (folder / "images").mkdir(parents=True, exist_ok=True)
                (folder / "masks").mkdir(parents=True, exist_ok=True)
                levels[name] = image_levels
                np.save(folder / "images" / f"{name}.npy", in_region(image, region))
                np.save(folder / "masks" / f"{name}.npy", in_region(classes, region))
                if data.num_classes == 1:  # the objects, for instance targets and metrics
                    (folder / "labels").mkdir(exist_ok=True)
                    objects = instance_labels(in_region(mask, region), mask_type)
                    np.save(folder / "labels" / f"{name}.npy", compact_labels(objects))
        write_json(out / "manifest.json", manifest(channels, data.num_classes, mask_type, spec, splits, sources,
                                                   summaries, levels))
        write_json(REPORT, report)
    cut = f" cut into {grid}x{grid} regions ({len(stems)})" if grid > 1 else ""
    print(f"prepare: {len(pairs)} image pairs{cut} ({mask_type} masks, {channels} channel(s)), split "
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


def normalization_spec(cfg, train, channels: int) -> dict:
    spec = {"mode": cfg.normalize, "percentiles": list(cfg.percentiles), "mean": None, "std": None}
    if cfg.normalize == "dataset":
        spec["mean"], spec["std"] = dataset_statistics(in_region(read_image(image, channels), region)
                                                       for image, _, region in train)
    return spec


def read_classes(mask_path, data) -> tuple[np.ndarray, np.ndarray]:
    """A mask as read, and its class ids."""
    mask, _ = read_user_mask(mask_path, data.num_classes, data.mask_type)
    return mask, mask_to_classes(mask, data.num_classes, mask_path, data.mask_type)


def polarity_samples(spec: dict, train, channels: int, data) -> list[tuple]:
    """(bright background, object contrast) of each training (image, mask, region), as normalised before
    any inversion."""
    samples = []
    for image_path, mask_path, region in tqdm(train, desc="polarity"):
        image = in_region(normalize(read_image(image_path, channels), {**spec, "invert": "none"}), region)
        classes = in_region(read_classes(mask_path, data)[1], region)
        samples.append((has_bright_background(image, spec["mode"]), object_contrast(image, classes > 0)))
    return samples


def regions_report(setting, grid: int, files: int) -> dict:
    """What reports/data.json says of prepare.regions where it cut the images."""
    if grid == 1:
        return {}
    reason = ("set by prepare.regions" if setting != "auto" else
              f"prepare.regions auto: {files} image(s) are too few for the split, so it cuts them")
    return {"regions": {"param": setting, "grid": grid, "reason": reason}}


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
