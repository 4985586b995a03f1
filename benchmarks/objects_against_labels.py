"""Score a finished run's objects against other true objects, e.g. a binary-mask run against instance labels.

    python benchmarks/quality.py dsb2018 --keep                # binary masks: objects = connected components
    python benchmarks/objects_against_labels.py /tmp/quality_dsb2018_XXXX ../shared/datasets/dsb2018/labels

A run on binary masks scores its objects against the masks' connected components, which merge every
pair of touching nuclei on both sides. This matches the run's predicted objects (`data/predictions/
<stem>_instances.png`) of its test images with the label image of the same name in LABELS instead, so
that a binary run and an instance-target run are scored against the same objects. Writes
benchmarks/results/<name>.json (default: quality_dsb2018_binary_vs_labels).
"""

import argparse
import json
from pathlib import Path

import numpy as np
from PIL import Image

from common import write_results
from unetseg.imageio import IMAGE_SUFFIXES
from unetseg.instances import evaluate_instances, headline, summarize_instances


def label_image(folder: Path, stem: str) -> np.ndarray:
    matches = [path for path in folder.glob(f"{stem}.*") if path.suffix.lower() in IMAGE_SUFFIXES]
    if len(matches) != 1:
        raise SystemExit(f"{folder}: expected one label image named {stem}.*, found {len(matches)}")
    return np.asarray(Image.open(matches[0])).astype(np.int64)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="a project where dvc repro ran (quality.py --keep prints it)")
    parser.add_argument("labels", type=Path, help="folder of instance label images, named as the run's images")
    parser.add_argument("--name", default="quality_dsb2018_binary_vs_labels")
    args = parser.parse_args()
    manifest = json.loads((args.run / "data/prepared/manifest.json").read_text())
    per_image = []
    for stem in manifest["splits"]["test"]:
        source = Path(manifest["images"][stem]["image"]).stem
        predicted = np.asarray(Image.open(args.run / "data/predictions" / f"{stem}_instances.png")).astype(np.int64)
        per_image.append(evaluate_instances(label_image(args.labels, source), predicted))
    metrics = json.loads((args.run / "reports/metrics.json").read_text())
    write_results(args.name, {
        "run_target": json.loads((args.run / "models/preprocessing.json").read_text()).get("target"),
        "test_images": len(per_image),
        "against_labels": headline(summarize_instances(per_image)),
        "against_the_runs_own_truth": {key: metrics["instances"][key] for key in
                                       ("truth_objects", "objects_true", "ap_50", "f1_50", "merges", "splits")},
    })


if __name__ == "__main__":
    main()
