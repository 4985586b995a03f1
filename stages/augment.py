"""Stage augment: each train patch plus `augment.copies` augmented versions (val is not augmented;
the plan sets the number of copies, data/plan/augment.json).

Each shard draws from its own seeded generator, so the shards are augmented in parallel, one
process per core, and written in order: the output does not depend on the number of cores."""

import numpy as np
from tqdm import tqdm

from stages.common import atomic_dir, load_stage_params, read_plan, run_stage
from unetseg.augment import augment_patch
from unetseg.parallel import ordered_map, worker_pool
from unetseg.params import with_section
from unetseg.shards import ShardWriter, load_shard, patch_sources, read_manifest

SOURCE = "data/patches/train"
OUT = "data/augmented"


def augmented_shard(task) -> list[tuple[np.ndarray, ...]]:
    """Shard number `index` (its manifest entry `shard`) of the train patches as, per patch, its arrays
    stacked with its augmented copies."""
    index, shard, seed, cfg = task
    rng = np.random.default_rng([seed, index])
    stacks = []
    for patch in zip(*load_shard(SOURCE, shard)):  # (image, mask) or (image, mask, weights)
        versions = [patch] + [augment_patch(*patch[:2], rng, cfg, *patch[2:]) for _ in range(cfg.copies)]
        stacks.append(tuple(np.stack(layer) for layer in zip(*versions)))
    return stacks


def main(argv) -> None:
    params = load_stage_params(argv, __doc__)
    source = read_manifest(SOURCE)
    cfg = with_section(params, "augment", {"copies": read_plan("augment")["augment.copies"]}).augment
    tasks = [(index, shard, params.base.seed, cfg) for index, shard in enumerate(source["shards"])]
    with worker_pool(len(tasks)) as pool, atomic_dir(OUT) as out:  # before tqdm starts its thread
        results = ordered_map(pool, augmented_shard, tasks)
        weighted = source.get("weights", False)
        writer = ShardWriter(out, source["patch_size"], source["channels"], source["shard_size"], weighted)
        origins = iter(patch_sources(source))
        with tqdm(total=source["count"], desc="augment") as progress:
            for stacks in results:
                for image, mask, *weights in stacks:
                    writer.add(image, mask, next(origins), *weights)
                progress.update(len(stacks))
        writer.close(copies=cfg.copies, source_count=source["count"])
    print(f"augment: {source['count']} train patches, each with {cfg.copies} augmented copies: "
          f"{writer.count} -> {OUT}/")


if __name__ == "__main__":
    run_stage(main)
