"""Measure this machine's training throughput for the plan's cost model:

    python -m unetseg.calibrate [--base-filters 8] [--patch-size 128] [--batch-size 16] [--steps 30]

It trains the U-Net on random data for a few steps and prints the `plan.gflops` to put in
params.yaml. The plan never times anything itself, so that it stays a pure function of the data
and params (a rerun gives the same plan, and a teammate's run-cache matches).
"""

import argparse
import time
import typing

from unetseg.backend import start_keras

keras = start_keras()
import numpy as np  # noqa: E402

from unetseg.losses import SegmentationLoss  # noqa: E402
from unetseg.plan import TRAIN_FLOPS_PER_FORWARD, unet_flops  # noqa: E402
from unetseg.params import Train  # noqa: E402
from unetseg.unet import build_unet  # noqa: E402


def measure_gflops(base_filters: int, patch: int, batch: int, steps: int, channels: int = 1,
                   depth: int = 4, precision: str = "float32") -> dict:
    """Training GFLOP/s of the U-Net (FLOPs counted from the network), after two warm-up steps."""
    keras.mixed_precision.set_global_policy(precision)
    model = build_unet(channels, 1, depth, base_filters)
    model.compile(keras.optimizers.Adam(1e-3), SegmentationLoss("bce_dice"))
    rng = np.random.default_rng(0)
    x = rng.random((batch, patch, patch, channels), np.float32)
    y = (rng.random((batch, patch, patch, 1)) > 0.5).astype(np.float32)
    for _ in range(2):
        model.train_on_batch(x, y)
    started = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(x, y)
    patches_per_s = steps * batch / (time.perf_counter() - started)
    flops = TRAIN_FLOPS_PER_FORWARD * unet_flops(patch, channels, depth, base_filters)
    return {"patches_per_s": round(patches_per_s, 1), "gflops": round(patches_per_s * flops / 1e9, 1)}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base-filters", type=int, default=8, help="network width (default: 8)")
    parser.add_argument("--patch-size", type=int, default=128, help="patch side, px (default: 128)")
    parser.add_argument("--batch-size", type=int, default=16, help="patches per step (default: 16)")
    parser.add_argument("--steps", type=int, default=30, help="timed steps (default: 30)")
    parser.add_argument("--precision", default="auto",
                        choices=typing.get_args(Train.model_fields["precision"].annotation),
                        help="as train.precision (default: auto, what the train stage picks on this machine)")
    args = parser.parse_args(argv)
    precision = args.precision
    if precision == "auto":
        from unetseg.tf_training import precision_here  # TensorFlow's device list: only `auto` needs it

        precision = precision_here(precision)
    result = measure_gflops(args.base_filters, args.patch_size, args.batch_size, args.steps, precision=precision)
    print(f"{result['patches_per_s']} patches/s of {args.patch_size}x{args.patch_size} at base_filters "
          f"{args.base_filters} in {precision}: set plan.gflops: {result['gflops']} in params.yaml")


if __name__ == "__main__":
    main()
