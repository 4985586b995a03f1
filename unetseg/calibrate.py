"""Measure this machine's training throughput for the plan's cost model:

    python -m unetseg.calibrate [--base-filters 8] [--patch-size 128] [--batch-size 16] [--steps 30]
                                [--no-batchnorm]

It trains the U-Net on random data for a few steps, as the train stage runs it, and prints the
`plan.gflops` to put in params.yaml. The plan never times anything itself, so that it stays a pure function of the data
and params (a rerun gives the same plan, and a teammate's run-cache matches).
"""

import argparse
import time
import typing

from unetseg.backend import start_keras

keras = start_keras()
import numpy as np  # noqa: E402

from unetseg.losses import SegmentationLoss  # noqa: E402
from unetseg.plan import train_step_gflop, unet_flops  # noqa: E402
from unetseg.params import Train  # noqa: E402
from unetseg.unet import build_unet  # noqa: E402


def measure_gflops(base_filters: int, patch: int, batch: int, steps: int, channels: int = 1, depth: int = 4,
                   precision: str = "float32", batchnorm: bool = True,
                   batchnorm_layer=keras.layers.BatchNormalization) -> dict:
    """Training GFLOP/s of the U-Net as the plan counts them (`train_step_gflop`: the network's FLOPs,
    batch normalisation at its counted cost, the fixed cost of a step), after two warm-up steps."""
    keras.mixed_precision.set_global_policy(precision)
    model = build_unet(channels, 1, depth, base_filters, batchnorm, batchnorm_layer=batchnorm_layer)
    model.compile(keras.optimizers.Adam(1e-3), SegmentationLoss("bce_dice"))
    rng = np.random.default_rng(0)
    x = rng.random((batch, patch, patch, channels), np.float32)
    y = (rng.random((batch, patch, patch, 1)) > 0.5).astype(np.float32)
    for _ in range(2):
        model.train_on_batch(x, y)
    started = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(x, y)
    seconds_per_step = (time.perf_counter() - started) / steps
    work = train_step_gflop(unet_flops(patch, channels, depth, base_filters), batch, batchnorm)
    return {"patches_per_s": round(batch / seconds_per_step, 1), "gflops": round(work / seconds_per_step, 1)}


def stage_batchnorm_layer() -> type:
    """The batch normalisation the train stage uses here (TensorFlow's fused kernel on a CPU)."""
    if keras.backend.backend() != "tensorflow":
        return keras.layers.BatchNormalization
    import tensorflow as tf

    from unetseg.tf_training import batchnorm_layer

    return batchnorm_layer(len(tf.config.list_physical_devices("GPU")))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base-filters", type=int, default=8, help="network width (default: 8)")
    parser.add_argument("--patch-size", type=int, default=128, help="patch side, px (default: 128)")
    parser.add_argument("--batch-size", type=int, default=16, help="patches per step (default: 16)")
    parser.add_argument("--steps", type=int, default=30, help="timed steps (default: 30)")
    parser.add_argument("--precision", default="auto",
                        choices=typing.get_args(Train.model_fields["precision"].annotation),
                        help="as train.precision (default: auto, what the train stage picks on this machine)")
    parser.add_argument("--no-batchnorm", dest="batchnorm", action="store_false",
                        help="time the network without batch normalisation (as model.batchnorm: false)")
    args = parser.parse_args(argv)
    precision = args.precision
    if precision == "auto":
        from unetseg.tf_training import precision_here  # TensorFlow's device list: only `auto` needs it

        precision = precision_here(precision)
    result = measure_gflops(args.base_filters, args.patch_size, args.batch_size, args.steps, precision=precision,
                            batchnorm=args.batchnorm, batchnorm_layer=stage_batchnorm_layer())
    print(f"{result['patches_per_s']} patches/s of {args.patch_size}x{args.patch_size} at base_filters "
          f"{args.base_filters} in {precision}: set plan.gflops: {result['gflops']} in params.yaml")


if __name__ == "__main__":
    main()
