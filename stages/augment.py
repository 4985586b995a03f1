"""Stage augment: each train patch plus `augment.copies` augmented versions (val is not augmented)."""

import numpy as np
from tqdm import tqdm

from stages.common import atomic_dir, load_stage_params, run_stage
from unetseg.augment import augment_patch
from unetseg.shards import ShardWriter, iter_shards, patch_sources, read_manifest

SOURCE = "data/patches/train"
OUT = "data/augmented"


def main(argv) -> None:
    params = load_stage_params(argv, __doc__)
    cfg = params.augment
    source = read_manifest(SOURCE)
    with atomic_dir(OUT) as out:
        writer = ShardWriter(out, source["patch_size"], source["channels"], source["shard_size"])
        origins = iter(patch_sources(source))
        with tqdm(total=source["count"], desc="augment") as progress:
            for shard_index, (images, masks) in enumerate(iter_shards(SOURCE)):
                rng = np.random.default_rng([params.base.seed, shard_index])
                for image, mask in zip(images, masks):
                    versions = [(image, mask)] + [augment_patch(image, mask, rng, cfg) for _ in range(cfg.copies)]
                    writer.add(np.stack([v[0] for v in versions]), np.stack([v[1] for v in versions]),
                               next(origins))
                    progress.update()
        writer.close(copies=cfg.copies, source_count=source["count"])
    print(f"augment: {source['count']} train patches, each with {cfg.copies} augmented copies: "
          f"{writer.count} -> {OUT}/")


if __name__ == "__main__":
    run_stage(main)
