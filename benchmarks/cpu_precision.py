"""bfloat16 against float32 training on this CPU (oneDNN's AVX-512 BF16 kernels), measured interleaved.

Batches of 16 patches of 128² (random data), for the default network (base 8 filters, what the plan
picks for the shipped data) and the seed network (base 32), each in float32 and in mixed_bfloat16,
timed two ways: `step`, the compiled training step called on fixed in-memory tensors
(`train_on_batch`), and `fit`, a plain `model.fit` epoch over the same batches cached in tf.data
(autotuning off, as the stage has it: unetseg/tf_training.untuned).
One warm-up each, then ROUNDS rounds in which every variant runs once in turn, so that load drifts
hit all alike. Per variant: the median, fastest and slowest round and every round's time, to see
where an "erratic" result comes from; the ratio bf16/float32 is taken per round (the two runs of a
round are neighbours in time) and its median reported. Each TensorFlow thread setting runs in its
own process (TensorFlow fixes them at start): its defaults, and ops run one at a time on two
threads each (intra 2, inter 1).

Goal (issue 13): bf16 >= 1.5x float32 for the seed network, stably.
Run: python benchmarks/cpu_precision.py [--rounds 6] [--patches 64]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from common import REPO, interleaved_seconds, write_results  # noqa: E402

sys.path.insert(0, str(REPO))

NETWORKS = {"default_base8": 8, "seed_base32": 32}
PRECISIONS = ("float32", "mixed_bfloat16")
THREADS = {"tensorflow_defaults": None, "intra2_inter1": (2, 1)}
PATCH, BATCH = 128, 16


def child(threads: tuple[int, int] | None, rounds: int, patches: int) -> dict:
    import tensorflow as tf

    if threads:
        tf.config.threading.set_intra_op_parallelism_threads(threads[0])
        tf.config.threading.set_inter_op_parallelism_threads(threads[1])
    import keras
    import numpy as np

    from unetseg.losses import SegmentationLoss
    from unetseg.tf_training import untuned
    from unetseg.unet import build_unet

    rng = np.random.default_rng(0)
    x = rng.random((patches, PATCH, PATCH, 1), dtype=np.float32)
    y = (x > 0.7).astype(np.float32)
    data = untuned(tf.data.Dataset.from_tensor_slices((x, y)).batch(BATCH).cache())
    batches = [(tf.constant(x[i:i + BATCH]), tf.constant(y[i:i + BATCH])) for i in range(0, patches, BATCH)]
    fits = {}
    for network, base in NETWORKS.items():
        for precision in PRECISIONS:
            keras.mixed_precision.set_global_policy(precision)
            keras.utils.set_random_seed(0)
            model = build_unet(1, 1, 4, base)
            model.compile(keras.optimizers.Adam(1e-4), SegmentationLoss("bce_dice"))
            fits[f"{network} {precision} step"] = lambda model=model: [model.train_on_batch(*b) for b in batches]
            fits[f"{network} {precision} fit"] = lambda model=model: model.fit(data, epochs=1, verbose=0)
    seconds = interleaved_seconds(fits, rounds)
    result = {}
    for name, times in seconds.items():
        result[name] = {"patches_per_s_median": round(patches / statistics.median(times), 1),
                        "patches_per_s_fastest": round(patches / min(times), 1),
                        "patches_per_s_slowest": round(patches / max(times), 1),
                        "round_seconds": [round(t, 3) for t in times]}
    for network in NETWORKS:
        for way in ("step", "fit"):
            ratios = [f / b for f, b in zip(seconds[f"{network} float32 {way}"],
                                            seconds[f"{network} mixed_bfloat16 {way}"])]
            result[f"{network} {way} bf16_over_float32"] = {"median": round(statistics.median(ratios), 3),
                                                            "rounds": [round(r, 3) for r in ratios]}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--patches", type=int, default=64, help="patches per timed fit")
    parser.add_argument("--threads", help=argparse.SUPPRESS)  # a child process's own setting
    args = parser.parse_args()
    if args.threads is not None:
        threads = tuple(json.loads(args.threads)) if args.threads != "null" else None
        print(json.dumps(child(threads, args.rounds, args.patches)))
        return
    results = {"patch": PATCH, "batch": BATCH, "patches_per_fit": args.patches, "rounds": args.rounds, "settings": {}}
    for name, threads in THREADS.items():
        command = [sys.executable, __file__, "--threads", json.dumps(threads),
                   "--rounds", str(args.rounds), "--patches", str(args.patches)]
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        results["settings"][name] = json.loads(output.strip().splitlines()[-1])
        print(name, json.dumps(results["settings"][name]), flush=True)
    write_results("cpu_precision", results)


if __name__ == "__main__":
    main()
