"""Peak memory of prediction on one image: 8000 x 8000 in tiles (goal: well under 2 GiB), or one that
fits `predict.max_whole_pixels` and goes through the network whole.

The prediction runs in a child process; its peak RSS comes from resource.getrusage. The image
(float32) and the output probability map (float32) are whole arrays, 244 MiB each at 8000 x 8000;
everything else the tiling keeps is one band of tile rows, while a whole image is one forward pass
of its padded size. The model is the shipped default architecture (params.yaml) with random weights.
Run: python benchmarks/predict_memory.py [--size 8000] [--name NAME]
(e.g. --size 1300 --name whole: 1300 + 2 x 64 px of context is 1440², within 2**21 pixels)
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from common import REPO, input_channels, load_benchmark_params, write_results  # noqa: E402


def child(size: int) -> dict:
    """Predict one random size x size image; report what the parent cannot see from outside."""
    import keras
    import numpy as np

    sys.path.insert(0, str(REPO))
    from unetseg.tiling import predict_image, whole_image_shape
    from unetseg.unet import build_unet

    params = load_benchmark_params()
    cfg, m = params.predict, params.model
    channels = input_channels(params)
    keras.utils.set_random_seed(0)
    model = build_unet(channels, 1, m.depth, m.base_filters, m.batchnorm, m.dropout, m.upsampling)
    model.predict_on_batch(np.zeros((cfg.batch_size, cfg.tile_size, cfg.tile_size, channels), np.float32))
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    image = np.random.default_rng(0).random((size, size, channels), dtype=np.float32)
    started = time.perf_counter()
    # one view: test-time augmentation averages its views batch by batch, a batch of outputs more
    out = predict_image(image, model.predict_on_batch, cfg.tile_size, cfg.overlap, cfg.blend, cfg.batch_size,
                        "none", cfg.max_whole_pixels, 2**m.depth)
    return {"seconds": round(time.perf_counter() - started, 1), "rss_before_image_mib": round(baseline, 1),
            "input_plus_output_arrays_mib": round((image.nbytes + out.nbytes) / 2**20, 1),
            "tile_size": cfg.tile_size, "overlap": cfg.overlap, "batch_size": cfg.batch_size,
            "max_whole_pixels": cfg.max_whole_pixels,
            "whole": int(np.prod(whole_image_shape(size, size, cfg.tile_size, cfg.overlap, 2**m.depth)))
            <= cfg.max_whole_pixels,
            "model": {"depth": m.depth, "base_filters": m.base_filters}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=8000)
    parser.add_argument("--name", default="", help="suffix of the result file, e.g. whole")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.size)))
        return
    result = subprocess.run([sys.executable, __file__, "--child", "--size", str(args.size)],
                            check=True, capture_output=True, text=True)
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # KiB on Linux
    figures = json.loads(result.stdout.splitlines()[-1])
    write_results("predict_memory" + (f"_{args.name}" if args.name else ""), {
        "image": [args.size, args.size], **figures, "peak_rss_mib": round(peak, 1),
        "inference_overhead_mib": round(peak - figures["rss_before_image_mib"]
                                        - figures["input_plus_output_arrays_mib"], 1),
        "goal": "peak well under 2048 MiB",
    })


if __name__ == "__main__":
    main()
