"""Prediction speed in megapixels/s of tile pixels, measured in one run on one image:

- tiling: the predict stage's overlap-tile inference (padding, batching, Gaussian blending);
- (a) the model's pure forward pass on the same tiles, batched (the ceiling for tiling);
- (b) a naive loop calling `model.predict` on one tile at a time.
Goals: tiling >= 0.8 x (a) and >= 3 x (b). The model is the shipped default architecture
(params.yaml) with random weights: speed does not depend on training.
Each is timed `--repeats` times, interleaved, and the fastest run counts (other processes on a
shared machine only ever slow a run down).
Run: python benchmarks/predict_speed.py [--size 1536] [--repeats 3]
"""

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from common import REPO, input_channels, load_benchmark_params, write_results  # noqa: E402

sys.path.insert(0, str(REPO))
from unetseg.tiling import context_px, padded_axis, predict_image, tile_starts  # noqa: E402
from unetseg.unet import build_unet  # noqa: E402


def timed(function) -> float:
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=1536, help="image side in pixels")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    params = load_benchmark_params()
    cfg, m = params.predict, params.model
    channels = input_channels(params)
    keras.utils.set_random_seed(0)
    model = build_unet(channels, params.data.num_classes, m.depth, m.base_filters,
                       m.batchnorm, m.dropout, m.upsampling)
    image = np.random.default_rng(0).random((args.size, args.size, channels)).astype(np.float32)

    side = len(padded_axis(args.size, cfg.tile_size, context_px(cfg.tile_size, cfg.overlap)))
    starts = tile_starts(side, cfg.tile_size, cfg.overlap)
    tiles = np.random.default_rng(1).random((len(starts) ** 2, cfg.tile_size, cfg.tile_size,
                                             channels)).astype(np.float32)
    tile_megapixels = tiles.shape[0] * cfg.tile_size**2 / 1e6

    def tiling():
        predict_image(image, model.predict_on_batch, cfg.tile_size, cfg.overlap, cfg.blend, cfg.batch_size)

    def forward_batched():
        for i in range(0, len(tiles), cfg.batch_size):
            model.predict_on_batch(tiles[i:i + cfg.batch_size])

    def naive_loop():
        for tile in tiles:
            model.predict(tile[None], verbose=0)

    model.predict_on_batch(tiles[: cfg.batch_size])  # warm-up: tracing
    model.predict(tiles[:1], verbose=0)
    runs = {"tiling": tiling, "a_forward_batched": forward_batched, "b_naive_loop": naive_loop}
    seconds = {name: float("inf") for name in runs}
    for _ in range(args.repeats):
        for name, function in runs.items():
            seconds[name] = min(seconds[name], timed(function))
    speed = {name: round(tile_megapixels / s, 3) for name, s in seconds.items()}
    write_results("predict_speed", {
        "config": {"image": [args.size, args.size], "tile_size": cfg.tile_size, "overlap": cfg.overlap,
                   "blend": cfg.blend, "batch_size": cfg.batch_size, "tiles": len(tiles), "repeats": args.repeats,
                   "base_filters": m.base_filters, "depth": m.depth},
        "tile_megapixels_per_s": speed,
        "image_megapixels_per_s_tiling": round(args.size**2 / 1e6 / seconds["tiling"], 3),
        "ratios": {"tiling_over_a": round(speed["tiling"] / speed["a_forward_batched"], 3),
                   "tiling_over_b": round(speed["tiling"] / speed["b_naive_loop"], 3)},
        "goals": {"tiling_over_a": ">= 0.8", "tiling_over_b": ">= 3"},
    })


if __name__ == "__main__":
    main()
