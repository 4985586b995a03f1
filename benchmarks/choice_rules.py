"""How predict should pick its post-processing from few validation images: choice rules compared on the
validation and test images of finished projects (kept by `quality.py --keep`).

The predict stage tries every (seeds, minimum object size) pair of the maxima rule, 4 sigmas x 3
depths x 9 sizes, and keeps the best AP@0.5 on the validation images. On 7 validation images the
best pair is a few objects ahead of its neighbours, which may be luck. The rules compared:
  best       the stage's: the pair with the best validation AP@0.5
  smoothed   the best mean of each pair's validation AP@0.5 and its grid neighbours' (one step in each
             of sigma, depth and size), so a lone peak loses to a plateau
  cautious   the best of each pair's worst neighbour
Each rule's pick is scored on the test images, beside the best that any pair reaches there.

    python benchmarks/choice_rules.py PROJECT [PROJECT ...] [--name NAME]

The model outputs come from seed_rules.py's cache in each project. Writes
benchmarks/results/choice_rules[_NAME].json.
"""

import argparse
import itertools
from pathlib import Path

import numpy as np

from common import write_results
from seed_rules import cached_outputs

from unetseg.instances import MIN_SIZES, SEED_DEPTHS, SEED_SIGMAS, Seeds, postprocessing_scores

GRID = (SEED_SIGMAS, SEED_DEPTHS, MIN_SIZES)


def scores_on_grid(outputs) -> np.ndarray:
    """AP@0.5 pooled over the images, as an array over (sigma, depth, min size)."""
    seeds = {(s, d): Seeds("maxima", sigma=s, depth=d) for s in SEED_SIGMAS for d in SEED_DEPTHS}
    scores = postprocessing_scores(outputs, 0.5, list(seeds.values()), MIN_SIZES)
    grid = np.zeros([len(axis) for axis in GRID])
    for (i, s), (j, d), (k, m) in itertools.product(*(enumerate(axis) for axis in GRID)):
        grid[i, j, k] = scores[seeds[s, d], m]
    return grid


def neighbourhoods(grid: np.ndarray):
    """Each cell's index and the values of the cells within one step of it along every axis."""
    for index in np.ndindex(grid.shape):
        box = tuple(slice(max(0, i - 1), i + 2) for i in index)
        yield index, grid[box]


RULES = {
    "best": lambda grid: np.unravel_index(np.argmax(grid), grid.shape),
    "smoothed": lambda grid: max(neighbourhoods(grid), key=lambda item: item[1].mean())[0],
    "cautious": lambda grid: max(neighbourhoods(grid), key=lambda item: item[1].min())[0],
}


def described(index) -> dict:
    return {name: axis[i] for name, axis, i in zip(("sigma", "depth", "min_size"), GRID, index)}


def compare(project: Path) -> dict:
    outputs = cached_outputs(project)
    val, test = scores_on_grid(outputs["val"]), scores_on_grid(outputs["test"])
    picks = {name: rule(val) for name, rule in RULES.items()}
    best_test = np.unravel_index(np.argmax(test), test.shape)
    return {"images": {split: len(images) for split, images in outputs.items()},
            "rules": {name: {**described(index), "val_ap_50": round(float(val[index]), 4),
                             "test_ap_50": round(float(test[index]), 4)} for name, index in picks.items()},
            "best_on_test": {**described(best_test), "test_ap_50": round(float(test[best_test]), 4)}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("projects", type=Path, nargs="+")
    parser.add_argument("--name", default="")
    args = parser.parse_args()
    results = {}
    for project in args.projects:
        results[str(project)] = compare(project.resolve())
        print(project, results[str(project)], flush=True)
    write_results("choice_rules" + (f"_{args.name}" if args.name else ""), {"projects": results})


if __name__ == "__main__":
    main()
