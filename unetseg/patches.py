"""Patch grids and foreground oversampling: cutting (P, P) patches out of whole images."""

import numpy as np


def grid_starts(length: int, patch: int, stride: int) -> list[int]:
    """Start offsets along one axis so that every pixel lies in a patch; the last is flush with the end."""
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


def foreground_corners(mask: np.ndarray, count: int, patch: int, rng) -> list[tuple[int, int]]:
    """Corners of `count` patches centred on random foreground pixels, shifted to stay inside."""
    ys, xs = np.nonzero(mask)
    if not len(ys) or not count:
        return []
    picks = rng.integers(len(ys), size=count)
    top = np.clip(ys[picks] - patch // 2, 0, mask.shape[0] - patch)
    left = np.clip(xs[picks] - patch // 2, 0, mask.shape[1] - patch)
    return list(zip(top.tolist(), left.tolist()))


def oversampled_count(n_grid: int, fg_fraction: float) -> int:
    """How many foreground-centred patches make them `fg_fraction` of all patches of an image."""
    return round(n_grid * fg_fraction / (1 - fg_fraction))


def cut(image: np.ndarray, mask: np.ndarray, corners, patch: int) -> tuple[np.ndarray, np.ndarray]:
    images = np.stack([image[y:y + patch, x:x + patch] for y, x in corners])
    masks = np.stack([mask[y:y + patch, x:x + patch] for y, x in corners])
    return images, masks


def extract_patches(image: np.ndarray, mask: np.ndarray, patch: int, stride: int,
                    fg_fraction: float, rng) -> tuple[np.ndarray, np.ndarray]:
    """All grid patches of one image plus foreground-centred ones: (N, P, P, C) and (N, P, P).

    With fg_fraction=0 (as for validation) the patches are the plain grid, an unbiased sample.
    """
    image, mask = pad_to_patch(image, mask, patch)
    corners = grid_corners(mask.shape, patch, stride)
    corners += foreground_corners(mask, oversampled_count(len(corners), fg_fraction), patch, rng)
    return cut(image, mask, corners, patch)
