"""Stage plan: fingerprint the prepared training data, then plan patch size, network, batch, loss and
training length for the budget (reports/plan.json says why; data/plan/<stage>.json feed the stages)."""

from pathlib import Path

import numpy as np
from tqdm import tqdm

from stages.common import atomic_dir, load_stage_params, read_json, run_stage, write_json
from unetseg.normalize import load_prepared_image
from unetseg.plan import dataset_fingerprint, describe, image_fingerprint, make_plan, stage_values

PREPARED = Path("data/prepared")
OUT, REPORT = "data/plan", "reports/plan.json"


def main(argv) -> None:
    params = load_stage_params(argv, __doc__)
    manifest = read_json(PREPARED / "manifest.json")
    num_classes = manifest["num_classes"]
    train = []
    for stem in tqdm(manifest["splits"]["train"], desc="fingerprint"):
        image = load_prepared_image(PREPARED / "train" / "images" / f"{stem}.npy", manifest, stem)
        mask = np.load(PREPARED / "train" / "masks" / f"{stem}.npy")
        train.append(image_fingerprint(image, mask, num_classes))
    val_shapes = [manifest["images"][stem]["shape"] for stem in manifest["splits"]["val"]]
    fingerprint = dataset_fingerprint(train, val_shapes, manifest["channels"], num_classes)
    plan = make_plan(fingerprint, params)
    for line in describe(plan):
        print(f"plan: {line}")
    with atomic_dir(OUT) as out:
        for stage, values in stage_values(plan).items():
            write_json(out / f"{stage}.json", values)
        summary = {key: value for key, value in fingerprint.items() if not key.endswith("_shapes")}
        write_json(REPORT, {**plan, "fingerprint": summary})


if __name__ == "__main__":
    run_stage(main)
