"""Which seeds split touching objects best: seed rules for the boundary target's watershed, compared on
the validation and test images of a finished project (one kept by `quality.py --keep`).

    python benchmarks/seed_rules.py /tmp/quality_dsb2018_xxxx [--name dsb2018_instances]

Each rule's parameter and the minimum object size are chosen on the validation images (best AP@0.5,
as the predict stage chooses), then scored on the test images. The model's three-class outputs are
predicted once and cached in the project (seed_rules_cache/). Writes
benchmarks/results/seed_rules_<name>.json.
"""

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import yaml
from scipy import ndimage
from skimage.morphology import h_maxima

from common import REPO, write_results

sys.path.insert(0, str(REPO))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
from unetseg import instances  # noqa: E402
from unetseg.instances import INTERIOR, Seeds, labels_from_boundary, scores_from_matches, seeded_watershed  # noqa: E402

SPLITS = ("val", "test")


def cached_outputs(project: Path) -> dict:
    """{split: [(truth, probabilities), ...]}: the model's outputs on the project's validation and test
    images, predicted once with the project's params and plan."""
    cache = project / "seed_rules_cache"
    prepared = project / "data/prepared"
    if not (cache / "done").exists():
        predict_all(project, cache)
    return {split: [(np.load(prepared / split / "labels" / path.name).astype(np.int32),
                     np.load(path).astype(np.float32)) for path in sorted((cache / split).glob("*.npy"))]
            for split in SPLITS}


def predict_all(project: Path, cache: Path) -> None:
    from stages.common import read_json
    from unetseg.inference import load_model, predict_probabilities
    from unetseg.normalize import load_prepared_image
    from unetseg.params import parse_params, with_predict

    params = parse_params(yaml.safe_load((project / "params.yaml").read_text()))
    plan = read_json(project / "reports/plan.json")["values"]
    params = with_predict(params, {"tile_size": plan["predict.tile_size"]})
    model = load_model(project / "models/unet.keras")
    manifest = read_json(project / "data/prepared/manifest.json")
    for split in SPLITS:
        (cache / split).mkdir(parents=True, exist_ok=True)
        for path in sorted((project / "data/prepared" / split / "images").glob("*.npy")):
            output = predict_probabilities(model, load_prepared_image(path, manifest, path.stem), params, path)
            np.save(cache / split / path.name, output.astype(np.float16))
    (cache / "done").touch()


class GivenMarkers:
    """Markers made outside unetseg.instances.Seeds, in the shape seeded_watershed asks of seeds."""

    def __init__(self, markers: np.ndarray, flood: np.ndarray):
        self.ids, self.flood = markers, flood

    def markers(self, height: np.ndarray, foreground: np.ndarray) -> tuple[np.ndarray, int, np.ndarray]:
        ids = np.where(foreground, self.ids, 0)
        return ids, int(ids.max(initial=0)), self.flood


def grow(probabilities: np.ndarray, markers: np.ndarray, height: np.ndarray) -> np.ndarray:
    """The predict stage's watershed from given markers: flood from high `height` over the foreground
    (1 - p(background) >= 0.5); foreground that holds no marker is an object of its own."""
    foreground = 1.0 - probabilities[..., 0] >= 0.5
    return seeded_watershed(foreground, height, GivenMarkers(markers, height), 0)


def library_seeds(rule: str):
    """The predict stage's own seeds (unetseg.instances.Seeds) as a rule of this comparison."""
    def labels(p: np.ndarray, *args) -> np.ndarray:
        seeds = Seeds("threshold", threshold=args[0]) if rule == "threshold" else Seeds("maxima", sigma=args[0],
                                                                                          depth=args[1])
        return labels_from_boundary(p, 0.5, seeds)
    return labels


def margin_seeds(p: np.ndarray, margin: float) -> np.ndarray:
    """Regions where p(interior) - p(boundary) >= margin."""
    return grow(p, ndimage.label(p[..., INTERIOR] - p[..., 2] >= margin)[0], p[..., INTERIOR])


def maxima_in(p: np.ndarray, height: np.ndarray, sigma: float, depth: float) -> np.ndarray:
    """The predict stage's maxima rule and watershed in `height` instead of p(interior)."""
    return seeded_watershed(1.0 - p[..., 0] >= 0.5, height, Seeds("maxima", sigma=sigma, depth=depth), 0)


def margin_maxima_seeds(p: np.ndarray, sigma: float, depth: float) -> np.ndarray:
    """The maxima rule in (1 + p(interior) - p(boundary)) / 2 instead of p(interior)."""
    return maxima_in(p, (1 + p[..., INTERIOR] - p[..., 2]) / 2, sigma, depth)


def distance_seeds(p: np.ndarray, threshold: float, h: float) -> np.ndarray:
    """Interior regions (p(interior) >= threshold) split at their necks: one seed per h-maximum of the
    distance to the region's edge; flooded by that distance, then by p(interior)."""
    interior = p[..., INTERIOR] >= threshold
    distance = ndimage.distance_transform_edt(interior)
    markers = ndimage.label(h_maxima(distance, h) & interior)[0]
    return grow(p, markers, distance + p[..., INTERIOR])


def shape_maxima_seeds(p: np.ndarray, sigma: float, depth: float, beta: float) -> np.ndarray:
    """The maxima rule in p(interior) + beta * (distance in px to the edge of p(interior) >= 0.5): two
    nuclei that the network fuses without a dip still make two peaks where their outline has a waist."""
    distance = ndimage.distance_transform_edt(p[..., INTERIOR] >= 0.5)
    return maxima_in(p, p[..., INTERIOR] + beta * distance, sigma, depth)


RULES = {  # name: (labels from the three-class output, the parameters to try)
    "threshold": (library_seeds("threshold"), [(t,) for t in instances.SEED_THRESHOLDS]),
    "maxima": (library_seeds("maxima"), [(s, d) for s in instances.SEED_SIGMAS for d in instances.SEED_DEPTHS]),
    "margin": (margin_seeds, [(m,) for m in (-0.2, 0.0, 0.2, 0.4, 0.6, 0.8, 0.9)]),
    "margin_maxima": (margin_maxima_seeds, [(s, d) for s in instances.SEED_SIGMAS for d in instances.SEED_DEPTHS]),
    "shape_maxima": (shape_maxima_seeds, [(s, d, b) for s in (1.5, 2.0, 3.0) for d in (0.05, 0.1, 0.2)
                                          for b in (0.02, 0.05, 0.1)]),
    "distance": (distance_seeds, [(t, h) for t in (0.5, 0.7, 0.9) for h in (0.5, 1.0, 2.0, 3.0, 4.0)]),
}


def pooled_counts(outputs, rule, args, sizes) -> dict:
    """{min size: match counts at IoU 0.5, pooled over the images} of one rule and parameter."""
    counts = dict.fromkeys(sizes, instances.NO_MATCHES)
    for truth, probabilities in outputs:
        for size, matched in instances.matches_by_min_size(truth, rule(probabilities, *args), sizes).items():
            counts[size] = instances.added(counts[size], matched)
    return counts


def compare(outputs: dict, names) -> dict:
    """Per rule: the parameter and minimum size best on val, and what they score on test."""
    sizes = instances.MIN_SIZES
    results = {}
    for name in names:
        rule, grid = RULES[name]
        val = {(args, size): scores_from_matches(**counts)["ap"]
               for args in grid for size, counts in pooled_counts(outputs["val"], rule, args, sizes).items()}
        args, size = max(sorted(val), key=lambda key: val[key])
        test = scores_from_matches(**pooled_counts(outputs["test"], rule, args, [size])[size])
        results[name] = {"chosen": {"args": list(args), "min_size": size}, "val_ap_50": round(val[args, size], 4),
                         "test_ap_50": round(test["ap"], 4), "test_f1_50": round(test["f1"], 4),
                         "val_ap_50_by_args": {str(a): round(max(val[a, s] for s in sizes), 4) for a in grid}}
        print(name, results[name]["chosen"], results[name]["val_ap_50"], results[name]["test_ap_50"], flush=True)
    return results


def dice_by_threshold(outputs: dict, thresholds=(0.3, 0.4, 0.5, 0.6, 0.7)) -> dict:
    """Mean per-image Dice of the foreground (1 - p(background) >= t) for a few t, per split."""
    def dice(truth, probabilities, t):
        mask, true = 1.0 - probabilities[..., 0] >= t, truth > 0
        total = mask.sum() + true.sum()
        return 2 * (mask & true).sum() / total if total else np.nan
    return {split: {t: round(float(np.nanmean([dice(*pair, t) for pair in outputs[split]])), 4) for t in thresholds}
            for split in SPLITS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("project", type=Path, help="a project whose pipeline ran (quality.py --keep)")
    parser.add_argument("--rules", nargs="+", default=list(RULES), choices=list(RULES))
    parser.add_argument("--name", default=None, help="results name (default: the project folder's)")
    args = parser.parse_args()
    outputs = cached_outputs(args.project.resolve())
    write_results(f"seed_rules_{args.name or args.project.name}",
                  {"project": str(args.project), "images": {s: len(outputs[s]) for s in SPLITS},
                   "dice_by_threshold": dice_by_threshold(outputs), "rules": compare(outputs, args.rules)})


if __name__ == "__main__":
    main()
