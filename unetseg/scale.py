"""Working at another scale: images and masks resized for the network, its output resized back.

The plan halves the images where their large objects would not otherwise fit in a patch with
context around them (`extract.scale`); predict scales each image the same way and its output back,
so masks, objects and scores stay at the image's own size.
"""

import numpy as np
from skimage.transform import resize


def scaled_shape(shape, scale: float) -> tuple[int, int]:
    """(height, width) of an image of `shape` at `scale`."""
    return tuple(max(1, round(n * scale)) for n in shape[:2])


def rescaled_image(image: np.ndarray, scale: float) -> np.ndarray:
    """(H, W, C) float32 image at `scale`: linear interpolation, anti-aliased when shrinking."""
    if scale == 1:
        return image
    shape = scaled_shape(image.shape, scale) + image.shape[2:]
    return resize(image, shape, order=1, anti_aliasing=scale < 1, preserve_range=True).astype(np.float32)


def rescaled_labels(labels: np.ndarray, scale: float) -> np.ndarray:
    """(H, W) class or object ids at `scale`: nearest neighbour, so ids stay ids."""
    if scale == 1:
        return labels
    return resize(labels, scaled_shape(labels.shape, scale), order=0, anti_aliasing=False,
                  preserve_range=True).astype(labels.dtype)


def back_to_shape(output: np.ndarray, shape) -> np.ndarray:
    """(h, w, K) network output resized to (H, W, K), linearly (probabilities still sum to 1)."""
    if output.shape[:2] == tuple(shape[:2]):
        return output
    return resize(output, tuple(shape[:2]) + output.shape[2:], order=1, anti_aliasing=False,
                  preserve_range=True).astype(np.float32)
