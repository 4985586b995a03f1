"""Training throughput (patches/s), measured in one run on the same patches, architecture and batch:

(a) the seed-style reference: plain `model.fit` on in-memory float32 numpy arrays, float32, no XLA;
(b) this stage's compiled training step (its precision and XLA settings) fed from in-memory tensors;
(c) this stage fed by its real input pipeline, streaming the augmented shards.

Goals: (b)/(a) >= 1.8 and (c)/(b) >= 0.95.
Run: python benchmarks/train_throughput.py [--base-filters N] [--patch-size P] [--precision POLICY]
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from common import REPO, augmented_project, interleaved_seconds, write_results  # noqa: E402

sys.path.insert(0, str(REPO))
from unetseg.losses import OverlapMetric, SegmentationLoss  # noqa: E402
from unetseg.params import load_params  # noqa: E402
from unetseg.shards import iter_shards  # noqa: E402
from unetseg.tf_training import as_dataset, precision_here, untuned  # noqa: E402
from unetseg.training import ShardBatches, compiled_unet  # noqa: E402
from unetseg.unet import build_unet  # noqa: E402


def seed_style_model(params, channels: int) -> keras.Model:
    keras.mixed_precision.set_global_policy("float32")
    m = params.model
    model = build_unet(channels, 1, m.depth, m.base_filters, upsampling="transpose")
    model.compile(keras.optimizers.Adam(1e-5), SegmentationLoss("dice"), metrics=[OverlapMetric("dice")],
                  jit_compile=False)
    return model


def interleaved_patches_per_s(fits: dict, count: int, rounds: int) -> dict:
    """Interleaved rounds (common.interleaved_seconds); the median round of each counts."""
    return {name: count / statistics.median(seconds) for name, seconds in interleaved_seconds(fits, rounds).items()}


def load_patches(directory: Path, count: int):
    images, masks = zip(*((np.asarray(i), np.asarray(m)) for i, m in iter_shards(directory)))
    images, masks = np.concatenate(images)[:count], np.concatenate(masks)[:count]
    return images.astype(np.float32), masks[..., None].astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base-filters", type=int)
    parser.add_argument("--patch-size", type=int)
    parser.add_argument("--precision")
    parser.add_argument("--patches", type=int, default=256, help="patches per timed epoch")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    overrides = {"synthesize": {"num_images": 24}}
    if args.patch_size:
        overrides["extract"] = {"patch_size": args.patch_size}
    if args.base_filters:
        overrides["model"] = {"base_filters": args.base_filters}
    if args.precision:
        overrides["train"] = {"precision": args.precision}
    with tempfile.TemporaryDirectory() as tmp:
        root = augmented_project(Path(tmp), overrides)
        params = load_params(root / "params.yaml")
        batch, seed = params.train.batch_size, params.base.seed
        x, y = load_patches(root / "data/augmented", args.patches)
        count = len(x)
        keras.utils.set_random_seed(seed)

        reference = seed_style_model(params, x.shape[-1])
        plan = json.loads((root / "data/plan/train.json").read_text())
        precision = precision_here(params.train.precision)
        model = compiled_unet(params, plan, x.shape[-1], 1, precision)
        in_memory = untuned(tf.data.Dataset.from_tensor_slices((x, y)).batch(batch).cache().prefetch(2))
        batches = ShardBatches(root / "data/augmented", batch, seed, shuffle=True, flips=params.train.random_flips,
                               steps_per_epoch=-(-count // batch))  # the same patches as (a) and (b)
        streamed = as_dataset(batches).take(len(batches))
        speed = interleaved_patches_per_s({
            "a": lambda: reference.fit(x, y, batch_size=batch, epochs=1, shuffle=True, verbose=0),
            "b": lambda: model.fit(in_memory, epochs=1, shuffle=False, verbose=0),
            "c": lambda: model.fit(streamed, epochs=1, shuffle=False, verbose=0),
        }, count, args.rounds)
        a, b, c = speed["a"], speed["b"], speed["c"]

    write_results(f"train_throughput_base{params.model.base_filters}_p{params.extract.patch_size}_{precision}", {
        "config": {"depth": params.model.depth, "base_filters": params.model.base_filters,
                   "patch_size": params.extract.patch_size, "batch_size": batch, "patches_timed": count,
                   "stage_precision": precision, "stage_jit_compile": params.train.jit_compile},
        "patches_per_s": {"a_seed_style_fit_numpy": round(a, 1), "b_stage_step_in_memory": round(b, 1),
                          "c_stage_real_pipeline": round(c, 1)},
        "ratios": {"b_over_a": round(b / a, 3), "c_over_b": round(c / b, 3)},
        "goals": {"b_over_a": ">= 1.8", "c_over_b": ">= 0.95"},
    })


if __name__ == "__main__":
    main()
