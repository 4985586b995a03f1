"""What a training step costs besides its patches: why the plan keeps batches of 16 at patch 128.

The shipped network (depth 4, base 8, three classes) takes random batches of each size in a
`train_on_batch` loop, with TensorFlow's fused batch normalisation (what the train stage uses on a
CPU) and without any, in the precision the train stage picks here, in interleaved rounds
(common.interleaved_seconds). A step's time is close to a line in its batch size: the slope is
the cost of a patch, the intercept what every step costs whatever its batch (many small
operations: the deep levels' tiny maps, batch normalisation, the optimizer's update).

Run: python benchmarks/step_cost.py [--batches 4 8 16] [--steps 10] [--rounds 3]
"""

import argparse
import os
import statistics

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

from batchnorm_cost import CLASSES, PATCH, random_batches, step_loop  # noqa: E402
from common import interleaved_seconds, write_results  # noqa: E402
from unetseg.tf_training import precision_here  # noqa: E402

NORMS = ("fused", "without")


def line_fit(ms_per_step: dict[int, float]) -> dict:
    """Least-squares ms per step = fixed + per_patch * batch."""
    batches = np.array(list(ms_per_step), float)
    per_patch, fixed = np.polyfit(batches, np.array(list(ms_per_step.values())), 1)
    return {"fixed_ms_per_step": round(float(fixed), 1), "ms_per_patch": round(float(per_patch), 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, nargs="+", default=[4, 8, 16], help="batch sizes to time")
    parser.add_argument("--steps", type=int, default=10, help="batches per timed call")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    precision = precision_here("auto")
    runs = {}
    for batch in args.batches:
        data = random_batches(rng, args.steps, batch)
        for norm in NORMS:
            runs[norm, batch] = step_loop(8, norm, precision, data)
    ms = {key: 1000 * statistics.median(rounds) / args.steps
          for key, rounds in interleaved_seconds(runs, args.rounds).items()}
    write_results("step_cost", {
        "config": {"patch_size": PATCH, "depth": 4, "base_filters": 8, "classes": CLASSES, "precision": precision,
                   "steps_per_call": args.steps, "rounds": args.rounds},
        **{f"batchnorm {norm}": {"ms_per_step": {str(b): round(ms[norm, b], 1) for b in args.batches},
                                 **line_fit({b: ms[norm, b] for b in args.batches})}
           for norm in NORMS},
    })


if __name__ == "__main__":
    main()
