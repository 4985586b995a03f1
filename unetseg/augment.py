"""Offline augmentation of (image (P, P, C) float, mask (P, P) uint8) patch pairs, and of the
weighted target's (P, P) loss weights where there are any.

Geometric transforms move image, mask and weights together (the mask by nearest neighbour, so it
keeps exact labels; the weights linearly, so they stay within their range); intensity transforms
touch the image only. `cfg` is the `augment` params section: each transform has its own probability
`p` and range.
"""

from functools import partial

import numpy as np
from scipy import ndimage

from unetseg import portable


ORDERS = (3, 0, 1)  # spline order of the image, the mask and the weights when resampled


def flip(layers, rng, p: float):
    for axis in (0, 1):
        if rng.random() < p:
            layers = [np.flip(layer, axis) for layer in layers]
    return layers


def rot90(layers, rng, p: float):
    if rng.random() < p:
        k = int(rng.integers(1, 4))
        layers = [np.rot90(layer, k, axes=(0, 1)) for layer in layers]
    return layers


def affine_coordinates(size: int, angle_deg: float, scale: float) -> np.ndarray:
    """Source coordinates (2, P, P) of a rotation by `angle_deg` and zoom by `scale` about the centre."""
    centre = (size - 1) / 2
    rows, cols = np.mgrid[:size, :size].astype(np.float64) - centre
    angle = np.deg2rad(angle_deg)
    cos, sin = np.cos(angle) / scale, np.sin(angle) / scale
    return np.stack([cos * rows - sin * cols, sin * rows + cos * cols]) + centre


def elastic_displacement(size: int, grid: int, sigma: float, rng) -> np.ndarray:
    """The U-Net paper's deformation: random vectors (std `sigma` px) on a grid x grid lattice,
    interpolated bicubically to every pixel: (2, P, P)."""
    coarse = rng.normal(0.0, sigma, size=(2, grid, grid))
    spread = cubic_zoom_matrix(grid, size)
    return portable.matmul(portable.matmul(spread, coarse), spread.T)


def cubic_zoom_matrix(grid: int, size: int) -> np.ndarray:
    """(size, grid): the linear map of `ndimage.zoom` (cubic spline, grid mode) from `grid` to `size`
    points. The 2-D zoom is separable, so M @ c @ M.T is its zoom of c, in a fifth of the time."""
    return np.stack([ndimage.zoom(unit, size / grid, order=3, mode="nearest", grid_mode=True)
                     for unit in np.eye(grid)], axis=1)


def resample(layers, coordinates):
    """Image by cubic spline, mask by nearest neighbour, weights linearly, mirrored at the borders."""
    image, *planes = layers
    warped = np.stack([ndimage.map_coordinates(image[..., c], coordinates, order=ORDERS[0], mode="mirror")
                       for c in range(image.shape[-1])], axis=-1)
    return [warped.astype(np.float32)] + [ndimage.map_coordinates(plane, coordinates, order=order, mode="mirror")
                                          for plane, order in zip(planes, ORDERS[1:])]


def deform(layers, rng, affine, elastic):
    """Affine and elastic deformation composed into one coordinate map: a single resampling."""
    size = layers[1].shape[0]
    coordinates = None
    if rng.random() < affine.p:
        angle = rng.uniform(-affine.max_rotation, affine.max_rotation)
        scale = rng.uniform(1 - affine.max_scale, 1 + affine.max_scale)
        coordinates = affine_coordinates(size, angle, scale)
    if rng.random() < elastic.p:
        if coordinates is None:
            coordinates = np.mgrid[:size, :size].astype(np.float64)
        coordinates = coordinates + elastic_displacement(size, elastic.grid, elastic.sigma, rng)
    return layers if coordinates is None else resample(layers, coordinates)


def adjust_intensity(image, rng, cfg):
    """Brightness shift, contrast about the mean, gamma on the patch's own [min, max] range."""
    if rng.random() >= cfg.p:
        return image
    image = image + rng.uniform(-cfg.brightness, cfg.brightness)
    mean = image.mean()
    image = (image - mean) * rng.uniform(1 - cfg.contrast, 1 + cfg.contrast) + mean
    low, high = image.min(), image.max()
    if high > low:
        unit = (image - low) / (high - low)
        image = portable.power(unit, rng.uniform(1 - cfg.gamma, 1 + cfg.gamma)) * (high - low) + low
    return image.astype(np.float32)


def add_noise(image, rng, cfg):
    if rng.random() >= cfg.p:
        return image
    sigma = rng.uniform(0, cfg.sigma)
    return (image + rng.normal(0, sigma, image.shape)).astype(np.float32)


def blur(image, rng, cfg):
    if rng.random() >= cfg.p:
        return image
    sigma = rng.uniform(*cfg.sigma)
    return ndimage.gaussian_filter(image, (sigma, sigma, 0)).astype(np.float32)


def augment_patch(image: np.ndarray, mask: np.ndarray, rng, cfg, weights: np.ndarray | None = None) -> tuple:
    """One augmented version of a patch pair, (image, mask), or with `weights` (image, mask,
    weights); every draw comes from `rng`, in a fixed order, the same with weights or without."""
    as_float32 = partial(np.asarray, dtype=np.float32)  # scipy resamples no float16 (the shards' images, weights)
    layers = [as_float32(image), mask] + ([] if weights is None else [as_float32(weights)])
    layers = flip(layers, rng, cfg.flip.p)
    layers = rot90(layers, rng, cfg.rot90.p)
    image, mask, *weights = deform(layers, rng, cfg.affine, cfg.elastic)
    image = adjust_intensity(image, rng, cfg.intensity)
    image = add_noise(image, rng, cfg.noise)
    image = blur(image, rng, cfg.blur)
    return (np.ascontiguousarray(image, np.float32), np.ascontiguousarray(mask, np.uint8),
            *(np.ascontiguousarray(w, np.float16) for w in weights))
