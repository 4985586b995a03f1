"""Print README's "Results on real data" table from benchmarks/results/quality_*.json.

    python scripts/results_table.py
"""

import json
from pathlib import Path

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"
ORDER = ["synthetic", "inverted", "sparse", "dsb2018"]
NAMES = {"synthetic": "synthetic (shipped default)", "inverted": "synthetic, masks inverted",
         "sparse": "synthetic, 1–2 nuclei per image", "dsb2018": "DSB2018 nuclei"}


def row(result: dict) -> str:
    test, plan, fingerprint = result["test"], result["plan"], result["fingerprint"]
    baselines = {name: scores["dice"] for name, scores in result["baselines"].items() if scores["dice"] is not None}
    best = max(baselines, key=baselines.get)
    minutes, seconds = divmod(round(result["dvc_repro_wall_s"]), 60)
    planned = (f"patch {plan['extract.patch_size']}, base {plan['model.base_filters']}, "
               f"{plan['train.epochs']}×{plan['train.steps_per_epoch']} steps of {plan['train.batch_size']}")
    return (f"| {NAMES[result['dataset']]} | {test['n_images']} | {fingerprint['foreground_fraction']:.1%} | "
            f"**{test['dice']:.3f}** | {test['iou']:.3f} | {baselines['all_foreground']:.3f} | "
            f"{best} {baselines[best]:.3f} | {planned} | {minutes} min {seconds:02d} s |")


def main() -> None:
    print("| dataset | test images | foreground | Dice | IoU | all-foreground Dice | best baseline | plan | "
          "`dvc repro` |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in ORDER:
        path = RESULTS / f"quality_{name}.json"
        if path.is_file():
            print(row(json.loads(path.read_text())))


if __name__ == "__main__":
    main()
