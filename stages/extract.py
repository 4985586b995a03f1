"""Stage extract: cut train and val images into patch shards (train with foreground oversampling)."""

from contextlib import ExitStack
from pathlib import Path

import numpy as np
from tqdm import tqdm

from stages.common import atomic_dir, load_stage_params, read_json, run_stage
from unetseg.patches import extract_patches
from unetseg.shards import ShardWriter

PREPARED = Path("data/prepared")
OUT = "data/patches"


def main(argv) -> None:
    params = load_stage_params(argv, __doc__)
    cfg = params.extract
    manifest = read_json(PREPARED / "manifest.json")
    with ExitStack() as stack:
        for split, fg_fraction in (("train", cfg.fg_fraction), ("val", 0.0)):
            out = stack.enter_context(atomic_dir(f"{OUT}/{split}"))
            writer = ShardWriter(out, cfg.patch_size, manifest["channels"], cfg.shard_size)
            for index, stem in enumerate(tqdm(manifest["splits"][split], desc=f"extract {split}")):
                image = np.load(PREPARED / split / "images" / f"{stem}.npy", mmap_mode="r")
                mask = np.load(PREPARED / split / "masks" / f"{stem}.npy", mmap_mode="r")
                rng = np.random.default_rng([params.base.seed, index])
                writer.add(*extract_patches(image, mask, cfg.patch_size, cfg.stride, fg_fraction, rng))
            writer.close(source_images=len(manifest["splits"][split]), stride=cfg.stride,
                         fg_fraction=fg_fraction, shard_size=cfg.shard_size)


if __name__ == "__main__":
    run_stage(main)
