"""Would choosing predict.threshold on the validation images raise the test Dice? On a kept project.

    python benchmarks/quality.py dsb2018 --kind colour --masks labels --mask-type instances --keep
    python benchmarks/threshold_choice.py /tmp/quality_dsb2018_XXXX [--name colour]

For projects whose predict stage kept 0.5 (releases before predict.threshold auto, or it pinned): predicts
the validation images with the project's model and predict settings (as the predict stage does to
choose), scores the foreground mask at each threshold the stage tries (MASK_THRESHOLDS) on them, and reads
the test images' saved foreground probabilities (data/predictions/<stem>_prob.png) to score the same
thresholds there: the mean Dice per image of foreground against background, as evaluate's sweep. Writes the
threshold the validation images choose, the test Dice there and at 0.5, and the best test threshold
(an oracle) to benchmarks/results/threshold_choice_<name>.json.
"""

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

from common import REPO, write_results

sys.path.insert(0, str(REPO))
from stages.evaluate import foreground_probability  # noqa: E402
from stages.predict import validation_outputs  # noqa: E402
from unetseg.inference import load_model  # noqa: E402
from unetseg.modelfile import model_scale, model_target, read_preprocessing  # noqa: E402
from unetseg.params import load_params, with_predict  # noqa: E402
from unetseg.postprocess import best_threshold, dice_by_threshold, foreground_of  # noqa: E402


def rounded(dice: dict) -> dict:
    return {t: round(d, 6) for t, d in dice.items()}


def test_pairs(manifest: dict):
    for stem in manifest["splits"]["test"]:
        truth = np.load(Path("data/prepared/test/masks") / f"{stem}.npy")
        yield truth, foreground_probability(stem, truth.shape)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("project", type=Path)
    parser.add_argument("--name", help="results file suffix (default: the project folder's name)")
    args = parser.parse_args()
    os.chdir(args.project)
    manifest = json.loads(Path("data/prepared/manifest.json").read_text())
    tile = json.loads(Path("data/plan/predict.json").read_text())["predict.tile_size"]
    params = with_predict(load_params("params.yaml"), {"tile_size": tile})
    model, preprocessing = load_model("models/unet.keras"), read_preprocessing("models/unet.keras")
    target = model_target(preprocessing)
    outputs = validation_outputs(model, manifest, manifest["splits"]["val"], params, model_scale(preprocessing))
    validation = rounded(dice_by_threshold((mask, foreground_of(output, target)) for mask, _, output in outputs))
    test = rounded(dice_by_threshold(test_pairs(manifest)))
    chosen, oracle = best_threshold(validation), max(test, key=test.get)
    metrics = json.loads(Path("reports/metrics.json").read_text())
    write_results(f"threshold_choice_{args.name or args.project.name}", {
        "project": str(args.project), "validation_images": len(manifest["splits"]["val"]),
        "test_images": len(manifest["splits"]["test"]),
        "validation_dice": validation, "test_dice": test, "chosen_on_validation": chosen,
        "test_dice_at_0.5": test[0.5], "test_dice_at_chosen": test[chosen],
        "test_best": {"threshold": oracle, "dice": test[oracle]},
        "evaluate_dice": metrics["dice"],
    })


if __name__ == "__main__":
    main()
