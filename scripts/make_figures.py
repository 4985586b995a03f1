"""Draw docs/data.png for README.md: a synthetic image, its mask, and augmented patches of it.

Uses the library and params.yaml only, so the picture always shows what the pipeline does.
Run from the project root: python scripts/make_figures.py
"""

import sys
from pathlib import Path

import numpy as np
from scipy import ndimage

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from unetseg.augment import augment_patch  # noqa: E402
from unetseg.imageio import write_png  # noqa: E402
from unetseg.normalize import percentile_normalize  # noqa: E402
from unetseg.params import load_params  # noqa: E402
from unetseg.patches import foreground_corners  # noqa: E402
from unetseg.synthetic import synthesize_dataset  # noqa: E402

GAP = 6


def outlined(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """A [0, 1] gray patch as RGB with the mask's outline in yellow."""
    rgb = np.repeat(np.clip(image, 0, 1), 3, axis=-1)
    inside = mask.astype(bool)
    rgb[inside & ~ndimage.binary_erosion(inside)] = (1.0, 0.85, 0.0)
    return rgb


def to_rgb8(image: np.ndarray) -> np.ndarray:
    image = np.clip(image, 0, 1)
    return (np.repeat(image, 3, axis=-1) if image.shape[-1] == 1 else image) * 255


def main() -> None:
    params = load_params(ROOT / "params.yaml")
    cfg, size = params.synthesize, params.extract.patch_size
    _, image, labels = next(synthesize_dataset(params.base.seed, 1, cfg.max_size, cfg.max_size, cfg.nuclei_per_image))
    mask = labels > 0
    normalized = percentile_normalize(image[..., None], *params.prepare.percentiles)
    rng = np.random.default_rng(params.base.seed)
    y, x = foreground_corners(mask, 1, size, rng)[0]
    patch, patch_mask = normalized[y:y + size, x:x + size], mask[y:y + size, x:x + size].astype(np.uint8)
    versions = [(patch, patch_mask)] + [augment_patch(patch, patch_mask, rng, params.augment) for _ in range(3)]

    height = image.shape[0]
    tiles = [to_rgb8(normalized), to_rgb8(mask[..., None].astype(np.float32))]
    grid = np.full((2 * size + GAP, 2 * size + GAP, 3), 255.0)
    for i, (p, m) in enumerate(versions):
        r, c = divmod(i, 2)
        grid[r * (size + GAP):r * (size + GAP) + size, c * (size + GAP):c * (size + GAP) + size] = outlined(p, m) * 255
    canvas_height = max(height, grid.shape[0])
    panels = []
    for panel in tiles + [grid]:
        padded = np.full((canvas_height, panel.shape[1], 3), 255.0)
        padded[: panel.shape[0]] = panel
        panels += [padded, np.full((canvas_height, GAP, 3), 255.0)]
    out = ROOT / "docs" / "data.png"
    out.parent.mkdir(exist_ok=True)
    write_png(out, np.concatenate(panels[:-1], axis=1).round().astype(np.uint8))
    print(f"written {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
