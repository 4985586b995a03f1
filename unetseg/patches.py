"""Patch grids and foreground oversampling: cutting (P, P) patches out of whole images."""

import numpy as np


def grid_starts(length: int, patch: int, stride: int) -> list[int]:
    """Start offsets along one axis so that every pixel lies in a patch; the last is flush with the end."""
    if not 1 <= stride <= patch:
        raise ValueError(f"stride must be in 1..patch ({patch}) to cover every pixel, got {stride}")
    if length <= patch:
        return [0]
    starts = list(range(0, length - patch + 1, stride))
    if starts[-1] != length - patch:
        starts.append(length - patch)
    return starts


def reflect(positions: np.ndarray, size: int) -> np.ndarray:
    """Map any integer positions onto 0..size-1 by mirroring at both ends (the edge is not repeated)."""
    if size == 1:
        return np.zeros_like(positions)
    period = 2 * (size - 1)
    index = np.abs(positions) % period
    return np.where(index < size, index, period - index)


def mirror_indices(size: int, target: int) -> np.ndarray:
    """Indices 0..target-1 into an axis of `size`, mirrored beyond its end."""
    return reflect(np.arange(target), size)


def pad_to_patch(image: np.ndarray, mask: np.ndarray, patch: int) -> tuple[np.ndarray, np.ndarray]:
    """Reflect-pad image (H, W, C) and mask (H, W) at the bottom/right up to at least patch x patch."""
    height, width = mask.shape
    if height >= patch and width >= patch:
        return image, mask
    rows = mirror_indices(height, max(height, patch))[:, None]
    cols = mirror_indices(width, max(width, patch))[None, :]
    return image[rows, cols], mask[rows, cols]


def grid_corners(shape, patch: int, stride: int) -> list[tuple[int, int]]:
    return [(y, x) for y in grid_starts(shape[0], patch, stride) for x in grid_starts(shape[1], patch, stride)]


def foreground_centres(mask: np.ndarray, count: int, rng) -> np.ndarray:
    """`count` random foreground (non-zero) pixels, drawn with replacement: (count, 2) rows and columns.

    A mask without foreground gives none.
    """
    ys, xs = np.nonzero(mask)
    if not len(ys) or not count:
        return np.empty((0, 2), np.int64)
    picks = rng.integers(len(ys), size=count)
    return np.stack([ys[picks], xs[picks]], axis=1)


def centred_corners(centres: np.ndarray, shape, patch: int) -> list[tuple[int, int]]:
    """Corners of patches centred on `centres`, shifted where needed to stay inside an image of `shape`."""
    top = np.clip(centres[:, 0] - patch // 2, 0, shape[0] - patch)
    left = np.clip(centres[:, 1] - patch // 2, 0, shape[1] - patch)
    return list(zip(top.tolist(), left.tolist()))


def foreground_corners(mask: np.ndarray, count: int, patch: int, rng) -> list[tuple[int, int]]:
    """Corners of `count` patches centred on random foreground pixels, shifted to stay inside."""
    return centred_corners(foreground_centres(mask, count, rng), mask.shape, patch)


def kept_count(n_grid: int, grid_fraction: float) -> int:
    """How many of an image's `n_grid` grid patches a share `grid_fraction` keeps (at least one)."""
    return n_grid if grid_fraction >= 1 else max(1, round(n_grid * grid_fraction))


def sampled_corners(corners: list, grid_fraction: float, rng) -> list:
    """A seeded share of the grid corners, in grid order; all of them (and no draw) at 1."""
    if grid_fraction >= 1:
        return corners
    keep = rng.choice(len(corners), size=kept_count(len(corners), grid_fraction), replace=False)
    return [corners[i] for i in sorted(keep)]


def oversampled_count(n_grid: int, fg_fraction: float) -> int:
    """How many foreground-centred patches make them `fg_fraction` of all patches of an image."""
    return round(n_grid * fg_fraction / (1 - fg_fraction))


def cut(image: np.ndarray, mask: np.ndarray, corners, patch: int) -> tuple[np.ndarray, np.ndarray]:
    """Patches at the given top-left `corners`: (N, P, P, C) and (N, P, P), N possibly 0."""
    images = np.empty((len(corners), patch, patch, image.shape[-1]), image.dtype)
    masks = np.empty((len(corners), patch, patch), mask.dtype)
    for index, (y, x) in enumerate(corners):
        images[index], masks[index] = image[y:y + patch, x:x + patch], mask[y:y + patch, x:x + patch]
    return images, masks


def grid_patches(image: np.ndarray, mask: np.ndarray, patch: int, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """The regular grid of patches over an image at least patch x patch (see `pad_to_patch`)."""
    return cut(image, mask, grid_corners(mask.shape, patch, stride), patch)


def centred_patches(image: np.ndarray, mask: np.ndarray, centres: np.ndarray,
                    patch: int) -> tuple[np.ndarray, np.ndarray]:
    """Patches centred on `centres` (clamped inside an image at least patch x patch)."""
    return cut(image, mask, centred_corners(centres, mask.shape, patch), patch)


def extract_patches(image: np.ndarray, mask: np.ndarray, patch: int, stride: int,
                    fg_fraction: float, rng, grid_fraction: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """The grid patches of one image (a seeded share of them for grid_fraction < 1), then
    foreground-centred ones: (N, P, P, C) and (N, P, P).

    The foreground-centred patches make up `fg_fraction` of the image's patches (none if its mask
    is empty). Validation uses fg_fraction=0, the plain grid: an unbiased sample of every pixel
    once or more, so the validation Dice is not inflated by oversampled foreground.
    """
    image, mask = pad_to_patch(image, mask, patch)
    corners = sampled_corners(grid_corners(mask.shape, patch, stride), grid_fraction, rng)
    centres = foreground_centres(mask, oversampled_count(len(corners), fg_fraction), rng)
    return cut(image, mask, corners + centred_corners(centres, mask.shape, patch), patch)
