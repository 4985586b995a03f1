"""Do objects come apart better at another scale? A finished project's model (one kept by `quality.py
--keep`) predicts each validation and test image resized by a few factors; the output goes back to
the image's size and through the predict stage's post-processing (the seeds and minimum size it
chose, data/predictions/postprocess.json), then is matched with the true objects at IoU 0.5.

    python benchmarks/object_scale.py /tmp/quality_dsb2018_xxxx [--scales 0.5 1 2] [--tta flips]

Scored: each factor on every image; the best factor per image (an oracle, the most any rule could
gain); and a rule a stage could run: from the objects found at factor 1, an image whose median object
area is under `small` px is predicted at the largest factor, over `large` px at the smallest (both
chosen on the validation images, then scored on the test images). Per-image counts are cached in the
project (object_scale_cache/). Writes benchmarks/results/object_scale_<name>.json.
"""

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
import yaml
from skimage.transform import resize

from common import REPO, write_results

sys.path.insert(0, str(REPO))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
from unetseg import instances  # noqa: E402

SPLITS = ("val", "test")
AREA_GRID = (0, 25, 50, 75, 100, 150, 200, 300, 400, 600, 800, 1200, 1600, 10 ** 9)


def resized(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    return resize(image, shape + image.shape[2:], order=1, anti_aliasing=False, preserve_range=True).astype(np.float32)


def image_counts(model, params, image: np.ndarray, truth: np.ndarray, scale: float, chosen: dict) -> dict:
    """Match counts at IoU 0.5 and the median object area (px at the image's own size) at one factor."""
    from unetseg.inference import predict_probabilities
    height, width = image.shape[:2]
    shape = (max(16, round(height * scale)), max(16, round(width * scale)))
    output = predict_probabilities(model, resized(image, shape) if scale != 1 else image, params, Path("-"))
    if scale != 1:
        output = resized(output, (height, width))
    seeds = instances.Seeds("maxima", sigma=chosen["predict.seed_sigma"], depth=chosen["predict.seed_depth"])
    labels = instances.labels_from_boundary(output, params.predict.threshold, seeds, chosen["predict.min_object_size"])
    areas = np.bincount(labels.ravel())[1:]
    counts = instances.match_counts(instances.iou_matrix(instances.overlap_matrix(truth, labels)), 0.5)
    return {**counts, "median_area": float(np.median(areas)) if len(areas) else 0.0}


def all_counts(project: Path, scales, tta: str) -> dict:
    """{split: {stem: {scale: counts}}}: what the cache in the project lacks is computed and added."""
    from stages.common import read_json
    from unetseg.inference import load_model
    from unetseg.normalize import load_prepared_image
    from unetseg.params import parse_params, with_predict

    cache = project / "object_scale_cache" / f"{tta}.json"
    done = json.loads(cache.read_text()) if cache.exists() else {}
    params = parse_params(yaml.safe_load((project / "params.yaml").read_text()))
    plan = read_json(project / "reports/plan.json")["values"]
    params = with_predict(params, {"tile_size": plan["predict.tile_size"], "tta": tta})
    chosen = read_json(project / "data/predictions/postprocess.json")
    model = load_model(project / "models/unet.keras")
    prepared = project / "data/prepared"
    manifest = read_json(prepared / "manifest.json")
    for split in SPLITS:
        for path in sorted((prepared / split / "images").glob("*.npy")):
            image = load_prepared_image(path, manifest, path.stem)
            truth = np.load(prepared / split / "labels" / path.name).astype(np.int32)
            per_scale = done.setdefault(split, {}).setdefault(path.stem, {})
            for scale in (s for s in scales if str(s) not in per_scale):
                per_scale[str(scale)] = image_counts(model, params, image, truth, scale, chosen)

        cache.parent.mkdir(exist_ok=True)
        cache.write_text(json.dumps(done))
    return done


def pooled(per_image: list[dict]) -> dict:
    total = instances.NO_MATCHES
    for counts in per_image:
        total = instances.added(total, {key: counts[key] for key in total})
    return {key: round(value, 4) for key, value in instances.scores_from_matches(**total).items()}


def ap_of_image(counts: dict) -> float:
    return counts["tp"] / max(1, counts["tp"] + counts["fp"] + counts["fn"])


def by_size(split: dict, scales, small: float, large: float) -> list[dict]:
    """Each image's counts at the factor the size rule picks from its objects at factor 1."""
    low, high = str(min(scales)), str(max(scales))
    picked = []
    for counts in split.values():
        area = counts["1"]["median_area"]
        picked.append(counts[high] if area < small else counts[low] if area > large else counts["1"])
    return picked


def compare(done: dict, scales) -> dict:
    results = {"fixed": {split: {str(s): pooled([c[str(s)] for c in done[split].values()]) for s in scales}
                         for split in SPLITS},
               "oracle": {split: pooled([max((c[str(s)] for s in scales), key=ap_of_image)
                                         for c in done[split].values()]) for split in SPLITS}}
    rules = [(small, large) for small in AREA_GRID for large in AREA_GRID if small <= large]
    val = {rule: pooled(by_size(done["val"], scales, *rule))["ap"] for rule in rules}
    best = max(sorted(rules, key=lambda rule: (rule[0], -rule[1])), key=val.get)
    results["size_rule"] = {"small": best[0], "large": best[1], "val": pooled(by_size(done["val"], scales, *best)),
                            "test": pooled(by_size(done["test"], scales, *best))}
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("project", type=Path, help="a project whose pipeline ran (quality.py --keep)")
    parser.add_argument("--scales", nargs="+", type=float, default=[0.5, 1.0, 2.0])
    parser.add_argument("--tta", default="flips", choices=["none", "flips", "dihedral"])
    parser.add_argument("--name", default=None, help="results name (default: the project folder's)")
    args = parser.parse_args()
    scales = sorted(set(args.scales) | {1.0})
    scales = [int(s) if s == int(s) else s for s in scales]
    done = all_counts(args.project.resolve(), scales, args.tta)
    results = compare(done, scales)
    print(json.dumps(results, indent=1))
    write_results(f"object_scale_{args.name or args.project.name}",
                  {"project": str(args.project), "tta": args.tta, "scales": scales, **results})


if __name__ == "__main__":
    main()
