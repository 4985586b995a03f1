"""TensorFlow's oneDNN CPU kernels against its Eigen ones (TF_ENABLE_ONEDNN_OPTS 1 / 0) for the stages' network.

TensorFlow turns oneDNN on by itself only on CPUs with AVX-512 VNNI/BF16 or AMX; the stages ask for
it everywhere (`unetseg.backend.use_onednn`). TensorFlow reads the setting once, when it is imported,
so every measurement is a child process, the two settings taking turns round by round. A child
trains the shipped network (depth 4, base 8, patch 128, batch 16, three classes, the fused batch
norm and precision of the train stage, deterministic kernels) from fixed weights on fixed data,
times the steps after a warm-up, times a forward pass over 256² tiles, and saves the weights it
ends with: the same setting twice must end with the same bytes (the pipeline's determinism), and
the two settings' weights are compared.

Run: python benchmarks/onednn.py [--steps 10] [--rounds 3]
"""

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from common import REPO, write_results

SETTINGS = ("0", "1")
PATCH, BATCH, CLASSES, TILE, TILES = 128, 16, 3, 256, 8


def child(steps: int, weights_path: str) -> dict:
    from unetseg.backend import start_keras

    keras = start_keras()
    from tensorflow.python.util import _pywrap_util_port

    from unetseg.losses import SegmentationLoss
    from unetseg.tf_training import FusedBatchNorm, precision_here, set_determinism
    from unetseg.unet import build_unet

    precision = precision_here("auto")
    keras.mixed_precision.set_global_policy(precision)
    keras.utils.set_random_seed(0)
    set_determinism(True)
    model = build_unet(1, CLASSES, 4, 8, True, batchnorm_layer=FusedBatchNorm)
    model.compile(keras.optimizers.Adam(1e-3), SegmentationLoss("bce_dice", CLASSES))
    rng = np.random.default_rng(0)
    batches = [(rng.random((BATCH, PATCH, PATCH, 1), np.float32),
                rng.integers(0, CLASSES, (BATCH, PATCH, PATCH, 1)).astype(np.float32)) for _ in range(steps + 2)]
    tiles = rng.random((TILES, TILE, TILE, 1), np.float32)
    for x, y in batches[:2]:
        model.train_on_batch(x, y)
    started = time.perf_counter()
    for x, y in batches[2:]:
        model.train_on_batch(x, y)
    train_seconds = time.perf_counter() - started
    model.predict_on_batch(tiles)
    started = time.perf_counter()
    model.predict_on_batch(tiles)
    predict_seconds = time.perf_counter() - started
    weights = np.concatenate([w.ravel().astype(np.float64) for w in model.get_weights()])
    np.save(weights_path, weights)
    return {"onednn": bool(_pywrap_util_port.IsMklEnabled()), "precision": precision,
            "train_patches_per_s": steps * BATCH / train_seconds, "predict_tiles_per_s": TILES / predict_seconds,
            "weights_md5": hashlib.md5(weights.tobytes()).hexdigest()}


def run_child(setting: str, steps: int, weights_path: Path) -> dict:
    env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": setting, "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run([sys.executable, __file__, "--child", str(weights_path), "--steps", str(steps)],
                         env=env, cwd=REPO, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def summarized(children: list[dict]) -> dict:
    """One setting's rounds: the median speeds, and whether every round ended with the same weights."""
    return {"onednn_on": children[0]["onednn"], "precision": children[0]["precision"],
            "train_patches_per_s": round(statistics.median(c["train_patches_per_s"] for c in children), 1),
            "predict_tiles_per_s": round(statistics.median(c["predict_tiles_per_s"] for c in children), 2),
            "same_weights_every_run": len({c["weights_md5"] for c in children}) == 1}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=10, help="timed training steps per child")
    parser.add_argument("--rounds", type=int, default=3, help="children per setting, taking turns")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.steps, args.child)))
        return
    with tempfile.TemporaryDirectory() as scratch:
        runs = {setting: [] for setting in SETTINGS}
        for round_ in range(args.rounds):
            for setting in SETTINGS:
                runs[setting].append(run_child(setting, args.steps, Path(scratch) / f"{setting}_{round_}.npy"))
        first_weights = [np.load(Path(scratch) / f"{setting}_0.npy") for setting in SETTINGS]
    summary = {setting: summarized(children) for setting, children in runs.items()}
    eigen, onednn = (summary[setting] for setting in SETTINGS)
    write_results("onednn", {
        "config": {"patch_size": PATCH, "batch_size": BATCH, "depth": 4, "base_filters": 8, "classes": CLASSES,
                   "timed_steps": args.steps, "rounds": args.rounds, "predict": f"{TILES} tiles of {TILE}x{TILE}"},
        **{f"TF_ENABLE_ONEDNN_OPTS={setting}": summary[setting] for setting in SETTINGS},
        "speedup_train": round(onednn["train_patches_per_s"] / eigen["train_patches_per_s"], 2),
        "speedup_predict": round(onednn["predict_tiles_per_s"] / eigen["predict_tiles_per_s"], 2),
        "max_weight_difference_between_settings": float(np.max(np.abs(first_weights[0] - first_weights[1]))),
    })


if __name__ == "__main__":
    main()
