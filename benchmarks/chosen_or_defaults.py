"""What `unetseg predict` gains from the post-processing that the predict stage chose on the validation
images, against the defaults it uses without a choice: object AP@0.5 and F1 on the test images of a
finished project (kept by `quality.py --keep`), from the same model outputs (seed_rules.py's cache).

    python benchmarks/chosen_or_defaults.py PROJECT [--name NAME]

Writes benchmarks/results/chosen_or_defaults[_NAME].json.
"""

import argparse
import json
from pathlib import Path

from common import write_results
from seed_rules import cached_outputs, pooled_counts

from unetseg.inference import resolved_auto, seeds_of
from unetseg.instances import object_labels, scores_from_matches
from unetseg.params import Predict


def test_scores(outputs, values: dict) -> dict:
    """AP@0.5 and F1@0.5 pooled over the test images, objects grown as predict grows them with `values`."""
    cfg = Predict(**values)

    def objects(probabilities):
        return object_labels(probabilities, "boundary", cfg.threshold, seeds_of(cfg, "boundary"), cfg.min_object_size)

    scores = scores_from_matches(**pooled_counts(outputs["test"], objects, (), [0])[0])
    return {"ap_50": round(scores["ap"], 4), "f1_50": round(scores["f1"], 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("project", type=Path)
    parser.add_argument("--name", default="")
    args = parser.parse_args()
    project = args.project.resolve()
    chosen = json.loads((project / "data/predictions/postprocess.json").read_text())
    ways = {"chosen": resolved_auto(Predict(), chosen), "defaults": resolved_auto(Predict(), {})}
    outputs = cached_outputs(project)
    results = {way: {"values": values, **test_scores(outputs, values)} for way, values in ways.items()}
    print(results)
    write_results("chosen_or_defaults" + (f"_{args.name}" if args.name else ""),
                  {"project": str(args.project), "test_images": len(outputs["test"]), "ways": results})


if __name__ == "__main__":
    main()
