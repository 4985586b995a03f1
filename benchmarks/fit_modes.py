"""Why `model.fit` over tf.data seemed to run at one of two speeds on this CPU, and that it no longer does.

A fit call that ends its tf.data input can wait, after its last step, for the next wake-up of
tf.data's autotuning thread (at 10 ms, then at doubling intervals: 2.55 s, 5.11 s, 10.23 s ...): a
fit of 3.4 s then takes 5.12 s, whatever the steps did. The train stage's input
(unetseg/tf_training.as_dataset) turns autotuning off. The same model takes the same batches of the
shipped data's augmented shards three ways, in interleaved rounds (so that drifts in machine load
hit all of them alike):

  fit, autotune on          `model.fit` over the stage's tf.data input with autotuning turned back on
  fit                       the same as the stage has it: autotuning off
  train_on_batch, numpy     a Python loop of `train_on_batch` over the batches as numpy arrays

Every round's patches/s is kept (rounds: common.interleaved_seconds), and a round counts as slow
below 3/4 of the fastest round of all.

Run: python benchmarks/fit_modes.py [--steps 32] [--rounds 8]
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from common import REPO, augmented_project, interleaved_seconds, write_results  # noqa: E402

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

sys.path.insert(0, str(REPO))
from unetseg.instances import output_classes, resolve_target  # noqa: E402
from unetseg.params import load_params  # noqa: E402
from unetseg.tf_training import as_dataset, precision_here  # noqa: E402
from unetseg.training import ShardBatches, compiled_unet  # noqa: E402

SLOW = 0.75


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=32, help="batches per timed call")
    parser.add_argument("--rounds", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = augmented_project(Path(tmp), {"synthesize": {"num_images": 24}})
        params = load_params(root / "params.yaml")
        plan = json.loads((root / "data/plan/train.json").read_text())
        batch, seed, steps = plan["train.batch_size"], params.base.seed, args.steps
        keras.utils.set_random_seed(seed)

        def batches():
            return ShardBatches(root / "data/augmented", batch, seed, shuffle=True, flips=True, steps_per_epoch=steps)

        arrays = [batches().batch(step) for step in range(steps)]
        prepared = json.loads((root / "data/prepared/manifest.json").read_text())
        target = resolve_target(params.data.target, prepared["num_classes"], prepared["mask_type"])
        classes = output_classes(target, prepared["num_classes"])  # the shipped labels: boundary, 3
        precision = precision_here(params.train.precision)
        model = compiled_unet(params, plan, arrays[0][0].shape[-1], classes, precision)
        autotuned = tf.data.Options()
        autotuned.autotune.enabled = True
        seconds = interleaved_seconds({
            "fit, autotune on": lambda: model.fit(as_dataset(batches()).with_options(autotuned).take(steps),
                                                  epochs=1, verbose=0),
            "fit": lambda: model.fit(as_dataset(batches()).take(steps), epochs=1, verbose=0),
            "train_on_batch, numpy": lambda: [model.train_on_batch(x, y) for x, y in arrays],
        }, args.rounds)
        speeds = {name: [round(steps * batch / s, 1) for s in rounds] for name, rounds in seconds.items()}

    fastest = max(max(rounds) for rounds in speeds.values())
    write_results("fit_modes", {
        "config": {"patch_size": params.extract.patch_size, "batch_size": batch,
                   "base_filters": plan["model.base_filters"], "batchnorm": params.model.batchnorm,
                   "classes": classes, "precision": precision, "steps_per_call": steps, "rounds": args.rounds},
        "patches_per_s": {name: {"median": round(statistics.median(rounds), 1), "rounds": rounds,
                                 "slow_rounds": sum(speed < SLOW * fastest for speed in rounds)}
                          for name, rounds in speeds.items()},
        "slow_below": round(SLOW * fastest, 1),
    })


if __name__ == "__main__":
    main()
