"""The augment stage's two costs per patch, before and after this release's changes, interleaved:

- augmenting a patch with the default params, the elastic field made by scipy's 2-D cubic zoom of the
  lattice (before) or by its separable matrix form (`augment.cubic_zoom_matrix`, now);
- writing the augmented images as a shard and hashing it (MD5, as DVC does before caching it), in
  float32 (before) or float16 (`shards.IMAGE_DTYPE`, now).

Patches are 128 x 128 x 3 (DSB2018's RGB). Run: python benchmarks/augment_speed.py [--patches 200]
"""

import argparse
import statistics
import tempfile
from pathlib import Path

import numpy as np
from scipy import ndimage

from common import augment_each, interleaved_seconds, load_benchmark_params, smooth_random_patches, write_results
from unetseg import augment, shards
from unetseg.files import file_md5

PATCH, CHANNELS = 128, 3


def zoom_2d_displacement(size: int, grid: int, sigma: float, rng) -> np.ndarray:
    """The elastic field as the release before made it."""
    coarse = rng.normal(0.0, sigma, size=(2, grid, grid))
    return np.stack([ndimage.zoom(c, size / grid, order=3, mode="nearest", grid_mode=True) for c in coarse])


def write_and_hash(folder: Path, images: np.ndarray, masks: np.ndarray, dtype) -> int:
    """One shard of `images` stored as `dtype`, then MD5 of its files; returns the bytes written."""
    stored, shards.IMAGE_DTYPE = shards.IMAGE_DTYPE, dtype
    try:
        writer = shards.ShardWriter(folder, PATCH, CHANNELS, len(images))
        writer.add(images, masks, source=0)
        writer.close()
    finally:
        shards.IMAGE_DTYPE = stored
    files = sorted(folder.glob("*.npy"))
    for path in files:
        file_md5(path)
    return sum(path.stat().st_size for path in files)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patches", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    cfg = load_benchmark_params().augment
    images, masks = smooth_random_patches(args.patches, PATCH, CHANNELS)

    before, now = (np.stack(augment_each(images[:20], masks[:20], cfg, elastic_displacement=field))
                   for field in (zoom_2d_displacement, augment.elastic_displacement))
    augmenting = interleaved_seconds({
        "2-D zoom": lambda: augment_each(images, masks, cfg, elastic_displacement=zoom_2d_displacement),
        "separable": lambda: augment_each(images, masks, cfg, elastic_displacement=augment.elastic_displacement),
    }, args.rounds)
    with tempfile.TemporaryDirectory() as tmp:
        sizes = {}

        def store(name, dtype):
            return lambda: sizes.__setitem__(name, write_and_hash(Path(tmp) / name, images, masks, dtype))

        storing = interleaved_seconds({"float32": store("float32", np.float32),
                                       "float16": store("float16", np.float16)}, args.rounds)
    ms = {name: round(1000 * statistics.median(s) / args.patches, 3) for name, s in {**augmenting, **storing}.items()}
    write_results("augment_speed", {
        "patches": args.patches, "patch": [PATCH, PATCH, CHANNELS], "rounds": args.rounds,
        "ms_per_patch": ms,
        "augment_speedup": round(ms["2-D zoom"] / ms["separable"], 3),
        "augmented_max_abs_difference": float(np.abs(before - now).max()),
        "store_bytes": sizes,
        "store_speedup": round(ms["float32"] / ms["float16"], 3),
    })


if __name__ == "__main__":
    main()
