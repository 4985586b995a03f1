"""What batch normalisation costs a training step on this machine: the plan's BATCHNORM_COST.

The U-Net with and without BatchNormalization after each convolution, at each width, takes the
same random batches in a `train_on_batch` loop (no input pipeline), in the precision the train
stage picks here, in interleaved rounds (common.interleaved_seconds). The convolutions' FLOPs grow
with the square of the width, batch normalisation's work only with the width, so its share falls
as the network widens.

A third variant, "fused", normalises the training batches with TensorFlow's fused kernel on float32
(unetseg.tf_training.FusedBatchNorm, what the train stage uses on a CPU) where Keras 3 runs moments,
normalisation and their gradients as separate float32 operations.

Run: python benchmarks/batchnorm_cost.py [--widths 8 16] [--steps 20] [--rounds 4]
"""

import argparse
import os
import statistics
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from common import REPO, interleaved_seconds, write_results  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(REPO))
from unetseg.losses import SegmentationLoss  # noqa: E402
from unetseg.tf_training import FusedBatchNorm, precision_here  # noqa: E402
from unetseg.unet import build_unet  # noqa: E402

PATCH, BATCH, CLASSES = 128, 16, 3  # the shipped plan's patch and batch; the boundary target's classes


def random_batches(rng, steps: int, batch: int) -> list:
    """`steps` batches of random gray patches and random class-id masks."""
    labels = rng.integers(0, CLASSES, (steps, batch, PATCH, PATCH))
    return [(rng.random((batch, PATCH, PATCH, 1), np.float32), y[..., None].astype(np.float32)) for y in labels]


def step_loop(base_filters: int, norm: str, precision: str, batches):
    keras.mixed_precision.set_global_policy(precision)
    layer = FusedBatchNorm if norm == "fused" else keras.layers.BatchNormalization
    model = build_unet(1, CLASSES, 4, base_filters, norm != "without", batchnorm_layer=layer)
    model.compile(keras.optimizers.Adam(1e-3), SegmentationLoss("bce_dice", CLASSES))
    return lambda: [model.train_on_batch(x, y) for x, y in batches]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--widths", type=int, nargs="+", default=[8, 16], help="base_filters to measure")
    parser.add_argument("--steps", type=int, default=20, help="batches per timed call")
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    batches = random_batches(np.random.default_rng(0), args.steps, BATCH)
    precision = precision_here("auto")
    norms = ("without", "with", "fused")
    runs = {(width, norm): step_loop(width, norm, precision, batches) for width in args.widths for norm in norms}
    speed = {key: args.steps * BATCH / statistics.median(rounds)
             for key, rounds in interleaved_seconds(runs, args.rounds).items()}
    write_results("batchnorm_cost", {
        "config": {"patch_size": PATCH, "batch_size": BATCH, "depth": 4, "classes": CLASSES, "precision": precision,
                   "steps_per_call": args.steps, "rounds": args.rounds},
        "patches_per_s": {f"base_filters {w}": {**{norm: round(speed[w, norm], 1) for norm in norms},
                                                "time_ratio": round(speed[w, "without"] / speed[w, "with"], 2),
                                                "fused_time_ratio": round(speed[w, "without"] / speed[w, "fused"], 2)}
                          for w in args.widths},
    })


if __name__ == "__main__":
    main()
