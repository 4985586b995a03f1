"""Does prepare tell a blurred 0/255 mask from a map of object ids? `is_blurred_binary` on DSB2018's
masks resized (0.5-5x; bilinear, bicubic, Lanczos) or JPEG-compressed (quality 30-95), and on its
instance labels made 8-bit two ways (ids spread over 0-255, ids wrapped at 256), which must not pass.

    python benchmarks/blurred_masks.py [--data ../shared/datasets/dsb2018] [--count 100]

(prepare cuts every JPEG mask of one class at 128 whatever this says; the rule decides for PNG and
TIFF masks.) Writes benchmarks/results/blurred_masks.json.
"""

import argparse
import io
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from common import REPO, write_results

sys.path.insert(0, str(REPO))
from unetseg.dataset import is_blurred_binary  # noqa: E402

SCALES = (0.5, 0.75, 1.5, 3.0, 5.0)
FILTERS = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC, "lanczos": Image.LANCZOS}
QUALITIES = (30, 50, 75, 95)


def variants(mask: np.ndarray, labels: np.ndarray):
    """(kind, array, should pass) for one DSB2018 image."""
    height, width = mask.shape
    for scale in SCALES:
        for name, resample in FILTERS.items():
            size = (max(8, int(width * scale)), max(8, int(height * scale)))
            yield f"resized {scale}x {name}", np.asarray(Image.fromarray(mask).resize(size, resample)), True
    for quality in QUALITIES:
        buffer = io.BytesIO()
        Image.fromarray(mask).save(buffer, "JPEG", quality=quality)
        yield f"JPEG quality {quality}", np.asarray(Image.open(buffer)), True
    if labels.max():
        yield "ids spread over 0-255", np.round(labels / labels.max() * 255).astype(np.uint8), False
        yield "ids wrapped at 256", (labels % 256).astype(np.uint8), False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared/datasets/dsb2018")
    parser.add_argument("--count", type=int, default=100, help="DSB2018 images, from the first by name")
    args = parser.parse_args()
    counts: dict[str, list[int]] = {}
    for path in sorted((args.data / "masks").glob("*.png"))[:args.count]:
        mask = np.asarray(Image.open(path).convert("L"))
        labels = np.asarray(Image.open(args.data / "labels" / path.name))
        for kind, array, should_pass in variants(mask, labels):
            tally = counts.setdefault(kind, [0, 0])
            tally[0] += int(is_blurred_binary(array) == should_pass)
            tally[1] += 1
    write_results("blurred_masks", {
        "images": args.count,
        "right": {kind: f"{right} of {total}" for kind, (right, total) in counts.items()},
        "blurred_masks_recognised": sum(r for k, (r, _) in counts.items() if not k.startswith("ids")),
        "blurred_masks": sum(t for k, (_, t) in counts.items() if not k.startswith("ids")),
        "label_maps_mistaken": sum(t - r for k, (r, t) in counts.items() if k.startswith("ids")),
        "label_maps": sum(t for k, (_, t) in counts.items() if k.startswith("ids")),
    })


if __name__ == "__main__":
    main()
