"""What augmenting a patch costs with the CPU-independent power and matrix product
(`unetseg/portable.py`, now) against NumPy's `**` and BLAS's `@` (the release before), interleaved;
and whether the two agree to within rounding.

Patches are 128 x 128 x 3 (DSB2018's RGB), the default augment params with every transform's
probability as shipped, then with the intensity transform (the gamma's power) on every patch.
Run: python benchmarks/portable_cost.py [--patches 200]
"""

import argparse
import statistics
from types import SimpleNamespace

import numpy as np

from common import augment_each, interleaved_seconds, load_benchmark_params, smooth_random_patches, write_results
from unetseg import portable

PATCH, CHANNELS = 128, 3
NUMPYS = SimpleNamespace(power=lambda base, exponent: np.asarray(base) ** exponent, matmul=np.matmul)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patches", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    shipped = load_benchmark_params().augment
    always_gamma = shipped.model_copy(update={"intensity": shipped.intensity.model_copy(update={"p": 1.0})})
    images, masks = smooth_random_patches(args.patches, PATCH, CHANNELS)

    before, now = (np.stack(augment_each(images[:20], masks[:20], always_gamma, portable=maths))
                   for maths in (NUMPYS, portable))
    timings = interleaved_seconds({
        f"{name}, {maths_name}": (lambda cfg=cfg, maths=maths: augment_each(images, masks, cfg, portable=maths))
        for name, cfg in (("shipped params", shipped), ("gamma on every patch", always_gamma))
        for maths_name, maths in (("numpy", NUMPYS), ("portable", portable))}, args.rounds)
    ms = {name: round(1000 * statistics.median(s) / args.patches, 3) for name, s in timings.items()}
    write_results("portable_cost", {
        "patches": args.patches, "patch": [PATCH, PATCH, CHANNELS], "rounds": args.rounds,
        "ms_per_patch": ms,
        "cost_shipped_params": round(ms["shipped params, portable"] / ms["shipped params, numpy"], 3),
        "cost_gamma_on_every_patch": round(ms["gamma on every patch, portable"] / ms["gamma on every patch, numpy"], 3),
        "augmented_max_abs_difference": float(np.abs(before - now).max()),
    })


if __name__ == "__main__":
    main()
