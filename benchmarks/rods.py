"""A dataset nobody here tuned for: packed rod-shaped bacteria, end to end and side by side.

Nuclei are round; bacteria are capsules 2–6 times as long as wide, and in a colony they lie in
rows, touching along their sides and at their poles where one has just divided. A long object is
where seeded watersheds go wrong (several peaks of p(interior) along one rod, or one valley missing
between two rods end to end), which is why the bacteria tools moved away from them. Half the images
are fluorescence-like (bright rods, dark background), half phase-contrast-like (dark rods with a
bright halo on a gray background); blur, uneven illumination, Poisson-like noise.

    python benchmarks/rods.py OUT [--images 50] [--size 256] [--seed 0]

writes OUT/images (gray PNG), OUT/masks (0/255) and OUT/labels (uint16, one id per rod).
Image i depends only on (seed, i).
"""

import sys
from pathlib import Path

import numpy as np
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import dataset_main, save_labelled  # noqa: E402
from unetseg.synthetic import smooth_field  # noqa: E402

HALF_WIDTH = (3.0, 5.0)      # px, the capsule's radius, drawn per image
LENGTH = (2.0, 6.0)          # a rod's length over its width, drawn per rod
OVERLAP = 0.1                # a new rod may lie this share of its pixels over earlier ones (hidden there)
ALIGNED = 0.7                # share of rods laid beside or after an earlier one, in its direction


def thickness(shape, centre, half_length: float, radius: float, angle: float) -> np.ndarray:
    """A capsule's height seen from above, 0 outside it and 1 on its axis: a cylinder of `radius`
    around the segment of `2 * half_length` through `centre` at `angle`, with round poles."""
    rows, cols = np.ogrid[: shape[0], : shape[1]]
    dy, dx = rows - centre[0], cols - centre[1]
    along = np.clip(dx * np.cos(angle) + dy * np.sin(angle), -half_length, half_length)
    squared = (dx - along * np.cos(angle)) ** 2 + (dy - along * np.sin(angle)) ** 2
    return np.sqrt(np.clip(1 - squared / (radius * radius), 0, None))


def next_rod(rng, rods: list, shape, radius: float) -> tuple:
    """(centre, half length, angle): beside or after an earlier rod (a colony), or anywhere."""
    half_length = radius * (rng.uniform(*LENGTH) - 1)
    if rods and rng.random() < ALIGNED:
        (row, col), other_half, angle = rods[rng.integers(len(rods))]
        angle += rng.normal(0, 0.15)
        if rng.random() < 0.5:   # side by side
            step = 2 * radius + rng.uniform(-0.5, 1.0)
            sign = rng.choice([-1, 1])
            shift = rng.uniform(-other_half, other_half)
            centre = (row + sign * step * np.cos(angle) + shift * np.sin(angle),
                      col - sign * step * np.sin(angle) + shift * np.cos(angle))
        else:                    # pole to pole, as after a division
            step = other_half + half_length + 2 * radius + rng.uniform(-0.5, 1.5)
            sign = rng.choice([-1, 1])
            centre = (row + sign * step * np.sin(angle), col + sign * step * np.cos(angle))
        return np.asarray(centre), half_length, angle
    return rng.uniform([0, 0], shape), half_length, rng.uniform(0, np.pi)


def rod_labels(rng, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(uint16 ids, float height) of rods packed to a drawn density; where two overlap the earlier one
    shows."""
    shape = (size, size)
    radius = rng.uniform(*HALF_WIDTH)
    labels, height = np.zeros(shape, np.int32), np.zeros(shape)
    target = rng.uniform(0.25, 0.55) * size * size
    rods, tries = [], 0
    while (labels > 0).sum() < target and tries < 2000:
        tries += 1
        centre, half_length, angle = next_rod(rng, rods, shape, radius)
        rod = thickness(shape, centre, half_length, radius, angle)
        body = rod > 0
        if body.sum() < np.pi * radius**2 or (body & (labels > 0)).sum() > OVERLAP * body.sum():
            continue
        rods.append((centre, half_length, angle))
        shown = body & (labels == 0)
        labels[shown], height[shown] = len(rods), rod[shown]
    pieces = np.zeros(shape, np.int32)  # an id per connected piece: a rod cut by another is two
    for index in range(1, labels.max() + 1):
        part = ndimage.label(labels == index)[0]
        pieces[part > 0] = part[part > 0] + pieces.max()
    return pieces.astype(np.uint16), height


def rod_image(rng, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(image uint8, labels uint16). A rod's signal follows its height (a cylinder's thickness), so
    touching rods meet in a dim valley, as in a real image."""
    labels, height = rod_labels(rng, size)
    shape = labels.shape
    rods = labels > 0
    contrast = rng.uniform(0.6, 1.0, labels.max() + 1)[labels] * (0.3 + 0.7 * height)
    if rng.random() < 0.5:   # fluorescence: bright rods on a dark background
        signal = np.where(rods, contrast, 0) + rng.uniform(0.05, 0.15)
    else:                    # phase contrast: dark rods, a bright halo around each colony
        halo = ndimage.gaussian_filter(rods.astype(float), 3.0) * ~rods
        signal = rng.uniform(0.45, 0.6) - 0.35 * np.where(rods, contrast, 0) + rng.uniform(0.3, 0.6) * halo
    signal = ndimage.gaussian_filter(signal, rng.uniform(0.8, 1.5))
    illumination = 0.7 + 0.3 * smooth_field(rng, shape, size / 1.5)
    photons = rng.uniform(40, 120)
    noisy = rng.poisson(np.clip(illumination * signal, 0, None) * photons) / photons + rng.normal(0, 0.02, shape)
    return (np.clip(noisy, 0, 1) * 255).round().astype(np.uint8), labels


def write_dataset(out: Path, images: int = 50, size: int = 256, seed: int = 0) -> None:
    for index in range(images):
        save_labelled(out, f"rods_{index:03d}.png", *rod_image(np.random.default_rng([seed, index]), size))


def main() -> None:
    dataset_main(write_dataset, __doc__, images=50, size=256)


if __name__ == "__main__":
    main()
