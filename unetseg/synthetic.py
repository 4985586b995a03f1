"""The embedded default dataset: fluorescence-microscopy-like nuclei with exact instance labels.

Nuclei are the foreground. Dim out-of-focus blobs and small bright debris are drawn too but are
not foreground, and illumination is uneven, so a global threshold is not enough.
"""

from typing import Iterator

import numpy as np
from scipy import ndimage

RADIUS = (6.0, 16.0)        # nucleus semi-axes, px
BRIGHTNESS = (0.35, 1.0)
TOUCHING = 0.3              # chance that a nucleus is placed against an earlier one
RIM = 0.6                   # brightness at a nucleus' edge relative to its centre


def ellipse(shape, centre, radii, angle) -> np.ndarray:
    """Boolean mask of a rotated ellipse."""
    return squared_radius(shape, centre, radii, angle) <= 1.0


def squared_radius(shape, centre, radii, angle) -> np.ndarray:
    """(u² + v²) of every pixel in the ellipse's own normalised axes: 1 on its outline."""
    rows, cols = np.ogrid[: shape[0], : shape[1]]
    dy, dx = rows - centre[0], cols - centre[1]
    cos, sin = np.cos(angle), np.sin(angle)
    u, v = (dx * cos + dy * sin) / radii[1], (-dx * sin + dy * cos) / radii[0]
    return u * u + v * v


def smooth_field(rng, shape, scale: float) -> np.ndarray:
    """A smooth random field in [0, 1], varying over about `scale` pixels."""
    coarse = rng.random((max(2, int(shape[0] / scale) + 2), max(2, int(shape[1] / scale) + 2)))
    field = ndimage.zoom(coarse, (shape[0] / coarse.shape[0], shape[1] / coarse.shape[1]), order=3)
    field = field[: shape[0], : shape[1]]
    return (field - field.min()) / max(np.ptp(field), 1e-6)


def nucleus_centres(rng, shape, count: int) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """(centre, radii, angle) per nucleus; some placed touching an earlier one."""
    nuclei = []
    for _ in range(count):
        radii = rng.uniform(*RADIUS, size=2)
        if nuclei and rng.random() < TOUCHING:
            other_centre, other_radii, _ = nuclei[rng.integers(len(nuclei))]
            direction = rng.uniform(0, 2 * np.pi)
            distance = 0.9 * (other_radii.mean() + radii.mean())
            centre = other_centre + distance * np.array([np.sin(direction), np.cos(direction)])
        else:
            centre = rng.uniform([0, 0], shape)
        nuclei.append((centre, radii, rng.uniform(0, np.pi)))
    return nuclei


def draw_nuclei(rng, shape, count: int) -> tuple[np.ndarray, np.ndarray]:
    """(signal, labels): nuclei of varied brightness with a little internal texture; labels gives
    each nucleus its id 1..count. A nucleus is brightest in its centre, as a stained ellipsoid seen
    through its thickness, so touching ones show a valley. Where two overlap, the image shows the
    brighter of the two there, and the label is that one's, so labels follow what the image shows."""
    signal = np.zeros(shape, np.float32)
    labels = np.zeros(shape, np.int32)
    for index, (centre, radii, angle) in enumerate(nucleus_centres(rng, shape, count), start=1):
        radius2 = squared_radius(shape, centre, radii, angle)
        inside = radius2 <= 1.0
        dome = np.zeros(shape, np.float32)
        dome[inside] = rng.uniform(*BRIGHTNESS) * (RIM + (1 - RIM) * np.sqrt(1 - radius2[inside]))
        paint_nucleus(signal, labels, dome, index)
    texture = 1.0 + 0.15 * (smooth_field(rng, shape, 4.0) - 0.5)
    return signal * texture, labels


def paint_nucleus(signal: np.ndarray, labels: np.ndarray, dome: np.ndarray, index: int) -> None:
    """Add a nucleus (its brightness `dome`, 0 outside it) in place: where it is brighter than what is
    there, the image shows it and the label is `index`."""
    shown = dome > signal
    signal[shown] = dome[shown]
    labels[shown] = index


def draw_distractors(rng, shape) -> np.ndarray:
    """Dim, very blurred out-of-focus blobs plus tiny bright debris: signal that is not a nucleus."""
    blobs = np.zeros(shape, np.float32)
    for _ in range(rng.integers(2, 6)):
        inside = ellipse(shape, rng.uniform([0, 0], shape), rng.uniform(14, 28, size=2), rng.uniform(0, np.pi))
        blobs[inside] = rng.uniform(0.25, 0.5)
    blobs = ndimage.gaussian_filter(blobs, rng.uniform(5, 8))
    debris = np.zeros(shape, np.float32)
    for _ in range(rng.integers(4, 16)):
        inside = ellipse(shape, rng.uniform([0, 0], shape), rng.uniform(0.8, 2.2, size=2), 0.0)
        debris[inside] = rng.uniform(0.6, 1.0)
    return blobs + debris


def synthesize_image(rng, height: int, width: int, nuclei_range: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """One (image uint8 (H, W), labels int32 (H, W)) pair; labels > 0 is the foreground."""
    shape = (height, width)
    nuclei, labels = draw_nuclei(rng, shape, int(rng.integers(nuclei_range[0], nuclei_range[1] + 1)))
    optics = ndimage.gaussian_filter(nuclei, rng.uniform(0.8, 1.6)) + draw_distractors(rng, shape)
    illumination = 0.45 + 0.55 * smooth_field(rng, shape, min(shape) / 1.5)
    clean = 0.04 + illumination * optics
    photons = rng.uniform(40, 120)
    noisy = rng.poisson(clean * photons) / photons + rng.normal(0, 0.02, shape)
    return (np.clip(noisy, 0, 1) * 255).round().astype(np.uint8), labels


def synthesize_dataset(seed: int, num_images: int, min_size: int, max_size: int,
                       nuclei_range: tuple[int, int]) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """Yield (name, image, labels) per image; image i depends only on (seed, i)."""
    for index in range(num_images):
        rng = np.random.default_rng([seed, index])
        height, width = rng.integers(min_size, max_size + 1, size=2)
        image, labels = synthesize_image(rng, int(height), int(width), nuclei_range)
        yield f"synth_{index:03d}", image, labels
