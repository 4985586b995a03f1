"""The predict stage's ways of running the network, on one trained project: wall time and test scores.

Each way is the predict stage of this checkout, then its evaluate stage, run in PROJECT with
params.yaml's predict section changed to:
  tiles_flips       overlap tiles, averaged over the image and its two mirror images (the former default)
  whole_flips       whole images in one pass where they fit (max_whole_pixels), the same 3 views
  whole_dihedral    whole images, all 8 rotations and mirror images (the default)
  tiles_dihedral    overlap tiles, 8 views
The post-processing left auto is chosen again each time on the validation images, as in a real run.

    python benchmarks/predict_ways.py [PROJECT] [--ways tiles_flips,whole_flips,whole_dihedral] [--name NAME]

PROJECT: a project where every stage up to train has run (default: this checkout, the shipped data;
e.g. a DSB2018 project kept by `quality.py --keep`). Its params.yaml is restored at the end, its
data/predictions and reports are left as the last way wrote them. Writes
benchmarks/results/predict_ways[_NAME].json.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

from common import REPO, write_results

from unetseg.params import Predict

WHOLE = Predict.model_fields["max_whole_pixels"].default
WAYS = {"tiles_flips": {"max_whole_pixels": 0, "tta": "flips"},
        "whole_flips": {"max_whole_pixels": WHOLE, "tta": "flips"},
        "whole_dihedral": {"max_whole_pixels": WHOLE, "tta": "dihedral"},
        "tiles_dihedral": {"max_whole_pixels": 0, "tta": "dihedral"}}
STAGE = "import sys; sys.path.insert(0, {repo!r}); import stages.{name} as stage; stage.run_stage(stage.main, [])"
SCORES = ("dice", "iou")
OBJECT_SCORES = ("ap_50", "f1_50", "mean_ap", "pq_50", "merges", "splits", "seed_sigma", "seed_depth",
                 "seed_threshold", "min_object_size")


def run_stage(name: str, project: Path) -> float:
    """Seconds that this checkout's stage `name` takes in `project`."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", STAGE.format(repo=str(REPO), name=name)], cwd=project, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    return time.perf_counter() - started


def scores(project: Path) -> dict:
    metrics = json.loads((project / "reports/metrics.json").read_text())
    objects = metrics.get("instances", {})
    return {**{key: metrics[key] for key in SCORES},
            **{key: objects[key] for key in OBJECT_SCORES if key in objects}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("project", type=Path, nargs="?", default=REPO)
    parser.add_argument("--ways", default="tiles_flips,whole_flips,whole_dihedral",
                        help=f"comma-separated, of {', '.join(WAYS)}")
    parser.add_argument("--name", default="", help="suffix of the result file, e.g. dsb2018_instances")
    args = parser.parse_args()
    project, ways = args.project.resolve(), args.ways.split(",")
    unknown = sorted(set(ways) - set(WAYS))
    if unknown:
        parser.error(f"--ways: no way {unknown[0]}; choose from {', '.join(WAYS)}")
    params_file = project / "params.yaml"
    original = params_file.read_text()
    results = {}
    try:
        for way in ways:
            params = yaml.safe_load(original) or {}
            params["predict"] = {**params.get("predict", {}), **WAYS[way]}
            params_file.write_text(yaml.safe_dump(params, sort_keys=False))
            seconds = run_stage("predict", project)
            run_stage("evaluate", project)
            results[way] = {"predict_s": round(seconds, 1), "test": scores(project)}
            print(way, json.dumps(results[way]), flush=True)
    finally:
        params_file.write_text(original)
    write_results("predict_ways" + (f"_{args.name}" if args.name else ""), {
        "project": str(project), "settings": {way: WAYS[way] for way in ways}, "ways": results})


if __name__ == "__main__":
    main()
