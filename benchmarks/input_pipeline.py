"""Input pipeline alone, no model: patches/s that the train stage's reader delivers.

For 128² and 256² patches, 1 and 3 channels: (a) ShardBatches (seeded global order, per-image
sampling, random flips, one read per patch, flipped as it is copied in) iterated in Python on one
thread, and (b) the same through the stage's tf.data pipeline (unetseg/tf_training.as_dataset) with
1 and with 2 reader threads, consumed in eager mode. Patches are random, written as the extract
stage writes them (shards of 256), 2048 of them (4096 at 128²) so the shards exceed no cache but
stay in the page cache, as after extract. A cProfile of (a) at 256² x 1 names where its time goes.

Goal (issue 13): >= 2,000 patches/s of 256² x 1 float32 on 2 cores.
Run: python benchmarks/input_pipeline.py
"""

import cProfile
import io
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

from common import REPO, write_results  # noqa: E402

sys.path.insert(0, str(REPO))
from unetseg.shards import ShardWriter  # noqa: E402
from unetseg.training import ShardBatches  # noqa: E402

BATCH, SHARD, SECONDS = 16, 256, 3.0
CASES = [(128, 1), (128, 3), (256, 1), (256, 3)]
READERS = (1, 2)


def write_shards(directory: Path, size: int, channels: int) -> None:
    rng = np.random.default_rng(0)
    writer = ShardWriter(directory, size, channels, SHARD)
    count = 4096 if size == 128 else 2048
    for source in range(count // 16):  # 16 patches per source image
        images = rng.random((16, size, size, channels), dtype=np.float32)
        masks = (rng.random((16, size, size)) > 0.8).astype(np.uint8)
        writer.add(images, masks, source)
    writer.close(source_images=count // 16)


def rate(batches_iter) -> float:
    """Patches per second over SECONDS of iteration, after one warm-up batch."""
    next(batches_iter)
    patches, started = 0, time.perf_counter()
    while time.perf_counter() - started < SECONDS:
        images, _ = next(batches_iter)
        patches += len(images)
    return patches / (time.perf_counter() - started)


def endless(batches: ShardBatches):
    while True:
        yield from batches


def tf_endless(batches: ShardBatches, readers: int):
    from unetseg.backend import start_keras

    start_keras()  # TensorFlow, without its start-up noise
    from unetseg.tf_training import as_dataset

    for images, masks in as_dataset(batches, endless=True, readers=readers):
        yield images.numpy(), masks.numpy()


def profile_top(batches: ShardBatches, lines: int = 8) -> list[str]:
    profiler, stream = cProfile.Profile(), io.StringIO()
    profiler.enable()
    rate(endless(batches))
    profiler.disable()
    pstats.Stats(profiler, stream=stream).sort_stats("tottime").print_stats(lines)
    return [line.strip() for line in stream.getvalue().splitlines() if "(" in line and "}" in line or ".py:" in line]


def main() -> None:
    results = {"batch_size": BATCH, "seconds_per_measure": SECONDS, "cases": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for size, channels in CASES:
            directory = Path(tmp) / f"p{size}c{channels}"
            write_shards(directory, size, channels)

            def batches():
                return ShardBatches(directory, BATCH, seed=0, shuffle=True, flips=True, per_image=True)

            numpy_rate = rate(endless(batches()))
            tf_rates = {readers: rate(tf_endless(batches(), readers)) for readers in READERS}
            megabytes = size * size * channels * 4 / 2**20
            results["cases"][f"{size}x{size}x{channels}"] = {
                "shard_batches_patches_per_s": round(numpy_rate, 1),
                **{f"tf_data_{readers}_readers_patches_per_s": round(tf_rate, 1)
                   for readers, tf_rate in tf_rates.items()},
                "tf_data_2_readers_mb_per_s": round(tf_rates[2] * megabytes, 1),
                "speedup_2_readers_over_1": round(tf_rates[2] / tf_rates[1], 2),
            }
            print(size, channels, results["cases"][f"{size}x{size}x{channels}"], flush=True)
            if (size, channels) == (256, 1):
                results["profile_256x256x1"] = profile_top(batches())
    goal = results["cases"]["256x256x1"]["tf_data_2_readers_patches_per_s"]
    results["goal_256x256x1_patches_per_s"] = 2000
    results["goal_met"] = goal >= 2000
    write_results("input_pipeline", results)


if __name__ == "__main__":
    main()
