"""Stage extract: cut train and val images into patch shards (train with foreground oversampling).

Scale, patch size, stride, oversampling and the share of each train image's grid come from the plan;
validation uses a grid without overlap (stride = patch), enough to score every pixel once (or the
plan's seeded share of it, where scoring all of it every round would outgrow the budget). The masks
cut are the training target: the prepared class ids; for data.target boundary the background/
interior/boundary classes of the prepared object labels; for weighted the objects parted where they
touch, with each pixel's loss weight cut alongside (computed on the whole image, so distances reach
past the patch)."""

from contextlib import ExitStack
from pathlib import Path

import numpy as np
from tqdm import tqdm

from stages.common import atomic_dir, load_stage_params, read_json, read_plan, run_stage
from unetseg.instances import boundary_classes, contact_weights, load_labels, resolve_target, weighted_target
from unetseg.normalize import load_prepared_image
from unetseg.params import OBJECT_TARGETS
from unetseg.patches import extract_patches
from unetseg.scale import rescaled_image, rescaled_labels
from unetseg.shards import ShardWriter

PREPARED = Path("data/prepared")
OUT = "data/patches"


def main(argv) -> None:
    params = load_stage_params(argv, __doc__)
    shard_size, plan = params.extract.shard_size, read_plan("extract")
    patch, scale = plan["extract.patch_size"], plan["extract.scale"]
    manifest = read_json(PREPARED / "manifest.json")
    target = resolve_target(params.data.target, manifest["num_classes"], manifest["mask_type"])
    counts = {}
    with ExitStack() as stack:
        for split, stride, fg_fraction, share in (
                ("train", plan["extract.stride"], plan["extract.fg_fraction"], plan["extract.grid_fraction"]),
                ("val", patch, 0.0, plan["extract.val_grid_fraction"])):
            out = stack.enter_context(atomic_dir(f"{OUT}/{split}"))
            writer = ShardWriter(out, patch, manifest["channels"], shard_size, weights=has_weights(target, params.data))
            for index, stem in enumerate(tqdm(manifest["splits"][split], desc=f"extract {split}")):
                image = rescaled_image(load_prepared_image(PREPARED / split / "images" / f"{stem}.npy", manifest, stem),
                                       scale)
                mask, weights = target_mask(PREPARED / split, stem, target, params.data, scale)
                rng = np.random.default_rng([params.base.seed, index])
                if weights is None:
                    writer.add(*extract_patches(image, mask, patch, stride, fg_fraction, rng, share), source=index)
                else:  # cut as one more image channel, so the weights take the same patches
                    stacked, masks = extract_patches(np.dstack([image, weights]), mask, patch, stride, fg_fraction,
                                                     rng, share)
                    writer.add(stacked[..., :-1], masks, index, stacked[..., -1])
            gap = {"gap_width": params.data.boundary_width} if target == "weighted" else {}
            scaled = {"scale": scale} if scale != 1 else {}
            writer.close(source_images=len(manifest["splits"][split]), stride=stride, grid_fraction=share,
                         fg_fraction=fg_fraction, shard_size=shard_size, **gap, **scaled)
            counts[split] = writer.count
    print(f"extract: {counts['train']} train and {counts['val']} val patches of {patch}x{patch} ({target} target) "
          f"-> {OUT}/")


def has_weights(target: str, data) -> bool:
    """Whether the target carries per-pixel loss weights."""
    return target == "weighted" or (target == "boundary" and data.contact_weight > 0)


def target_mask(folder: Path, stem: str, target: str, data, scale: float = 1.0) -> tuple[np.ndarray, np.ndarray | None]:
    """The training target of one image at `scale`, and its loss weights (weighted target, and boundary
    with contact_weight)."""
    if target not in OBJECT_TARGETS:  # binary, classes: the prepared class ids
        return rescaled_labels(np.load(folder / "masks" / f"{stem}.npy", mmap_mode="r"), scale), None
    labels = rescaled_labels(load_labels(folder / "labels" / f"{stem}.npy"), scale)
    if target == "weighted":
        return weighted_target(labels, data.boundary_width, data.border_weight, data.border_sigma)
    weights = contact_weights(labels, data.contact_weight, data.border_sigma) if has_weights(target, data) else None
    return boundary_classes(labels, data.boundary_width), weights


if __name__ == "__main__":
    run_stage(main)
