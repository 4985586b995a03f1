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
        weighted = source.get("weights", False)
        writer = ShardWriter(out, source["patch_size"], source["channels"], source["shard_size"], weighted)
        origins = iter(patch_sources(source))
        with tqdm(total=source["count"], desc="augment") as progress:
            for shard_index, shard in enumerate(iter_shards(SOURCE)):
                rng = np.random.default_rng([params.base.seed, shard_index])
                for patch in zip(*shard):  # (image, mask) or (image, mask, weights)
                    versions = [patch] + [augment_patch(*patch[:2], rng, cfg, *patch[2:]) for _ in range(cfg.copies)]
                    image, mask, *weights = (np.stack(layer) for layer in zip(*versions))
                    writer.add(image, mask, next(origins), *weights)
                    progress.update()
        writer.close(copies=cfg.copies, source_count=source["count"])
    print(f"augment: {source['count']} train patches, each with {cfg.copies} augmented copies: "
          f"{writer.count} -> {OUT}/")


if __name__ == "__main__":
    run_stage(main)
