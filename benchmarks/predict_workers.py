"""The predict stage with its worker processes and without, one after the other on one project.

Both ways run the stage itself (`stages.predict`), forced one way or the other whatever the image
sizes: without workers (the model, the watershed and the files in one process) and with a worker per
core (the watershed and the files beside the model). Their outputs must be the same bytes. On small
data the workers' start (each imports the stage, TensorFlow included) costs more than they save,
which is why the stage starts them only from POOL_MIN_PIXELS (unetseg/inference.py).

    python benchmarks/predict_workers.py [PROJECT] [--rounds 1] [--name NAME]

PROJECT: a project where every stage up to train has run (default: this checkout, the shipped data;
e.g. a DSB2018 project kept by `quality.py --keep`). Its data/predictions is rewritten, with the same
bytes. Writes benchmarks/results/predict_workers[_NAME].json.
"""

import argparse
import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

from common import REPO, write_results

FORCED = """
import stages.predict as stage
import unetseg.inference as inference
inference.POOL_MIN_PIXELS, inference.POOL_MAX_IMAGE_PIXELS = {pool}
stage.run_stage(stage.main, [])
"""
WAYS = {"one_process": "float('inf'), 0", "workers": "0, float('inf')"}


def predictions_digest(project: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted((project / "data/predictions").iterdir()):
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()


def predicted_pixels(project: Path) -> int:
    """What POOL_MIN_PIXELS is compared with, counted by the project's own stage."""
    sys.path.insert(0, str(project))
    os.chdir(project)  # the stage's paths are relative to the project
    from stages import predict
    from stages.common import read_json

    pixels = predict.image_pixels(read_json(predict.PREPARED / "manifest.json")["splits"])
    return sum(sum(split) for split in pixels.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("project", type=Path, nargs="?", default=REPO)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--name", default="", help="suffix of the result file, e.g. dsb2018_instances")
    args = parser.parse_args()
    project = args.project.resolve()
    env = {**os.environ, "PYTHONPATH": str(project), "TF_CPP_MIN_LOG_LEVEL": "3"}
    digests = {}

    def way(name: str):
        def run():
            subprocess.run([sys.executable, "-c", FORCED.format(pool=WAYS[name])], cwd=project, env=env,
                           check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            digests.setdefault(name, set()).add(predictions_digest(project))
        return run

    seconds = {name: [] for name in WAYS}
    for _ in range(args.rounds):  # each run a fresh process, so no warm-up; in turn, so drifts hit both
        for name in WAYS:
            started = time.perf_counter()
            way(name)()
            seconds[name].append(time.perf_counter() - started)
    best = {name: min(values) for name, values in seconds.items()}
    write_results("predict_workers" + (f"_{args.name}" if args.name else ""), {
        "project": str(project), "cores": len(os.sched_getaffinity(0)),
        "validation_and_test_pixels": predicted_pixels(project),
        "seconds": {name: [round(s, 1) for s in values] for name, values in seconds.items()},
        "speedup": round(best["one_process"] / best["workers"], 3),
        "same_bytes": len(set.union(*digests.values())) == 1,
    })


if __name__ == "__main__":
    main()
