"""A dataset nobody here tuned for: confluent cells parted by thin dark membranes.

The kind of data issue 11 came from (electron-microscopy membrane slices, ISBI-2012 style) and
that tissue and plant-cell images share: every pixel belongs to a cell except the membranes, so the
foreground (cell interiors) covers about 80 % of the image and every object touches its neighbours.
Cells are a warped Voronoi tiling; their interiors hold dark organelles, which a global threshold
takes for membrane; illumination is uneven and the noise Poisson-like.

    python benchmarks/membranes.py OUT [--images 40] [--size 384] [--seed 0]

writes OUT/images (gray PNG), OUT/masks (0 membrane / 255 cell, ISBI-2012's convention), OUT/labels
(uint16, one id per cell, 0 on membranes) and OUT/membranes (255 membrane: thin foreground, ~18 %).
Image i depends only on (seed, i).
"""

import sys
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import dataset_main, save_labelled  # noqa: E402
from unetseg.synthetic import ellipse, smooth_field  # noqa: E402

SPACING = (26.0, 52.0)       # px between neighbouring cell centres, drawn per image
MEMBRANE = (0.5, 2.0)        # half-width of a membrane, px, drawn per image
WARP = 0.25                  # displacement of the tiling, as a fraction of the spacing


def cell_tiling(rng, shape, spacing: float) -> np.ndarray:
    """Labels 1..N of a Voronoi tiling around jittered grid points, warped so walls curve."""
    rows, cols = int(shape[0] / spacing) + 3, int(shape[1] / spacing) + 3
    grid = np.stack(np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij"), -1).reshape(-1, 2)
    points = (grid - 1 + rng.uniform(-0.35, 0.35, grid.shape)) * spacing
    seeds = np.zeros(shape, bool)
    inside = (points >= 0).all(1) & (points[:, 0] < shape[0]) & (points[:, 1] < shape[1])
    seeds[tuple(points[inside].astype(int).T)] = True
    _, (near_row, near_col) = ndimage.distance_transform_edt(~seeds, return_indices=True)
    ids = np.zeros(shape, np.int32)
    ids[seeds] = np.arange(1, seeds.sum() + 1)
    tiling = ids[near_row, near_col]
    displacement = [WARP * spacing * (2 * smooth_field(rng, shape, spacing * 1.5) - 1) for _ in range(2)]
    coords = np.indices(shape).astype(np.float32) + np.stack(displacement)
    return ndimage.map_coordinates(tiling, coords, order=0, mode="reflect")


def membrane_image(rng, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(image uint8, labels uint16): cells with 0 on the membranes between them."""
    shape = (size, size)
    tiling = cell_tiling(rng, shape, rng.uniform(*SPACING))
    wall = (ndimage.grey_dilation(tiling, size=3) != ndimage.grey_erosion(tiling, size=3))
    cells = ndimage.distance_transform_edt(~wall) >= rng.uniform(*MEMBRANE)
    labels = ndimage.label(cells)[0]  # one id per piece: warping can cut a tile in two
    brightness = rng.uniform(0.5, 0.8, labels.max() + 1)
    brightness[0] = rng.uniform(0.1, 0.25)  # membrane
    signal = brightness[labels] * (1.0 + 0.2 * (smooth_field(rng, shape, 3.0) - 0.5))
    for _ in range(int(rng.integers(size * size // 4000, size * size // 1500))):
        signal[organelle(rng, shape) & (labels > 0)] *= rng.uniform(0.3, 0.6)
    optics = ndimage.gaussian_filter(signal, rng.uniform(0.7, 1.3))
    illumination = 0.6 + 0.4 * smooth_field(rng, shape, size / 1.5)
    photons = rng.uniform(30, 90)
    noisy = rng.poisson(illumination * optics * photons) / photons + rng.normal(0, 0.02, shape)
    return (np.clip(noisy, 0, 1) * 255).round().astype(np.uint8), labels.astype(np.uint16)


def organelle(rng, shape) -> np.ndarray:
    """A dark blob, or (half the time) a vesicle's dark outline: the membrane-like things inside cells."""
    centre, radii, angle = rng.uniform([0, 0], shape), rng.uniform(3, 9, size=2), rng.uniform(0, np.pi)
    blob = ellipse(shape, centre, radii, angle)
    return blob & ~ellipse(shape, centre, radii - 1.5, angle) if rng.random() < 0.5 else blob


def write_dataset(out: Path, images: int = 40, size: int = 384, seed: int = 0) -> None:
    (out / "membranes").mkdir(parents=True, exist_ok=True)
    for index in range(images):
        image, labels = membrane_image(np.random.default_rng([seed, index]), size)
        name = f"cells_{index:03d}.png"
        save_labelled(out, name, image, labels)
        Image.fromarray(np.where(labels > 0, 0, 255).astype(np.uint8)).save(out / "membranes" / name)


def main() -> None:
    dataset_main(write_dataset, __doc__, images=40, size=384)


if __name__ == "__main__":
    main()
