"""Peak memory of extract and augment on the default dataset and on one 8x larger.

Both stages stream (image by image, shard by shard), so their peak RSS should not grow with the
number of images. Goal: larger / default <= 1.25. Run: python benchmarks/memory_extract_augment.py
"""

import tempfile
from pathlib import Path

import yaml

from common import REPO, run_measured, scratch_project, stage, write_results

SCALE = 8


def measure(num_images: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        root = scratch_project(Path(tmp), {"synthesize": {"num_images": num_images}})
        for name in ("synthesize", "prepare", "plan"):
            run_measured(stage(name), root)
        peaks = {name: round(run_measured(stage(name), root), 1) for name in ("extract", "augment")}
        patches = yaml.safe_load((root / "data/augmented/manifest.json").read_text())["count"]
    return {"num_images": num_images, "augmented_patches": patches, "peak_rss_mib": peaks}


def main() -> None:
    default = yaml.safe_load((REPO / "params.yaml").read_text())["synthesize"]["num_images"]
    small, large = measure(default), measure(default * SCALE)
    ratios = {name: round(large["peak_rss_mib"][name] / small["peak_rss_mib"][name], 3)
              for name in ("extract", "augment")}
    write_results("memory_extract_augment", {"default": small, f"{SCALE}x": large,
                                             "ratio_8x_over_default": ratios, "goal": "<= 1.25"})


if __name__ == "__main__":
    main()
