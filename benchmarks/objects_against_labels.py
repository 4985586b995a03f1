"""Score a finished run's objects against other true objects, e.g. a binary-mask run against instance labels.

    python benchmarks/quality.py dsb2018 --keep                # binary masks: objects = connected components
    python benchmarks/objects_against_labels.py /tmp/quality_dsb2018_XXXX ../shared/datasets/dsb2018/labels

A run on binary masks scores its objects against the masks' connected components, which merge every
pair of touching nuclei on both sides. This scores the run's test predictions (`data/predictions`,
objects from `<stem>_instances.png`) with `unetseg evaluate`'s code against the label images of the
same images in LABELS instead, so that a binary run and an instance-target run are scored against the
same objects. Writes benchmarks/results/<name>.json (default: quality_dsb2018_binary_vs_labels).
"""

import argparse
import json
import tempfile
from pathlib import Path

from common import write_results
from unetseg.dataset import list_images
from unetseg.scoring import score_folders


def test_labels(run: Path, labels: Path, folder: Path) -> Path:
    """`folder` filled with links, named by the run's test stems, to their label images in `labels`."""
    manifest = json.loads((run / "data/prepared/manifest.json").read_text())
    by_stem = list_images(labels, "LABELS")
    for stem in manifest["splits"]["test"]:
        source = by_stem[Path(manifest["images"][stem]["image"]).stem]
        (folder / f"{stem}{source.suffix}").symlink_to(source.resolve())
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="a project where dvc repro ran (quality.py --keep prints it)")
    parser.add_argument("labels", type=Path, help="folder of instance label images, named as the run's images")
    parser.add_argument("--name", default="quality_dsb2018_binary_vs_labels")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        scores = score_folders(args.run / "data/predictions", test_labels(args.run, args.labels, Path(folder)))
    metrics = json.loads((args.run / "reports/metrics.json").read_text())
    write_results(args.name, {
        "run_target": json.loads((args.run / "models/preprocessing.json").read_text()).get("target"),
        "test_images": scores["images"],
        "against_labels": scores["instances"],
        "against_the_runs_own_truth": {key: metrics["instances"][key] for key in
                                       ("truth_objects", "objects_true", "ap_50", "f1_50", "merges", "splits")},
    })


if __name__ == "__main__":
    main()
