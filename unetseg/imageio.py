"""Read and write images and masks: PNG and TIFF, 8/16-bit, gray, RGB, RGBA and palette."""

from pathlib import Path

import numpy as np
import tifffile
from PIL import Image, UnidentifiedImageError

from unetseg.errors import UserError

IMAGE_SUFFIXES = (".png", ".tif", ".tiff")
LUMA = np.array([0.299, 0.587, 0.114])


def read_image(path, channels: int) -> np.ndarray:
    """An image as (H, W, channels) in its own dtype; colour becomes luminance for channels=1."""
    return to_channels(read_native(path), channels)


def read_native(path) -> np.ndarray:
    """An image as stored, alpha dropped: (H, W, 1) gray or (H, W, 3) colour, in its own dtype."""
    array = _read_array(path, keep_palette=False)
    if array.ndim == 3 and array.shape[-1] in (2, 4):
        array = array[..., :-1]  # drop alpha
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or array.shape[-1] not in (1, 3):
        raise UserError(f"{path}: unsupported image shape {array.shape}; expected gray or RGB(A)")
    return array


def to_channels(array: np.ndarray, channels: int) -> np.ndarray:
    if array.shape[-1] == channels:
        return array
    if channels == 3:
        return np.repeat(array, 3, axis=-1)
    return (array.astype(np.float64) @ LUMA).astype(array.dtype)[..., None]


def is_colour(array: np.ndarray) -> bool:
    """Three channels that differ somewhere (an RGB file of a gray picture is not colour)."""
    return array.shape[-1] == 3 and not (np.array_equal(array[..., 0], array[..., 1])
                                         and np.array_equal(array[..., 0], array[..., 2]))


def read_mask(path) -> np.ndarray:
    """A mask as (H, W) integers; palette PNGs give their indices, not their colours."""
    array = _read_array(path, keep_palette=True)
    if array.ndim == 3 and array.shape[-1] in (2, 4):
        array = array[..., :-1]
    if array.ndim == 3:
        if not all(np.array_equal(array[..., 0], array[..., c]) for c in range(1, array.shape[-1])):
            raise UserError(f"{path}: colour mask; save masks as gray, palette or label-id images")
        array = array[..., 0]
    if not np.issubdtype(array.dtype, np.integer) and not np.issubdtype(array.dtype, np.bool_):
        if not np.array_equal(array, np.round(array)):
            raise UserError(f"{path}: mask has non-integer values; save class ids as integers")
    return array.astype(np.int64) if array.dtype != np.uint8 else array


def write_png(path, array: np.ndarray) -> None:
    """Write a uint8 or uint16 image, (H, W) or (H, W, 3), as PNG."""
    array = np.asarray(array)
    if array.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"write_png takes uint8 or uint16, got {array.dtype}")
    Image.fromarray(array).save(path, format="PNG")


def _read_array(path, keep_palette: bool) -> np.ndarray:
    path = Path(path)
    try:
        if path.suffix.lower() in (".tif", ".tiff"):
            array = tifffile.imread(path)
            return array[0] if array.ndim == 4 else array
        with Image.open(path) as image:
            if image.format == "PNG" and _is_16_bit_colour_png(path):
                raise UserError(f"{path}: 16-bit colour PNG, which Pillow can only read as 8-bit; "
                                "re-export it as 16-bit TIFF or as gray PNG")
            image.load()
            if image.mode == "P" and not keep_palette:
                image = image.convert("RGBA" if "transparency" in image.info else "RGB")
            elif image.mode in ("1", "CMYK", "YCbCr", "LAB", "HSV"):
                image = image.convert("L" if image.mode == "1" else "RGB")
            return np.asarray(image)
    except (OSError, ValueError, UnidentifiedImageError) as exc:
        raise _unreadable(path, exc) from None


def _is_16_bit_colour_png(path) -> bool:
    """Pillow silently drops the low byte of 16-bit RGB(A) and gray+alpha PNGs; IHDR tells us."""
    with open(path, "rb") as file:
        header = file.read(26)
    bit_depth, colour_type = header[24], header[25]  # IHDR follows the 8-byte signature
    return bit_depth == 16 and colour_type in (2, 4, 6)


def _unreadable(path, exc) -> UserError:
    reason = " ".join(str(exc).split()) or type(exc).__name__
    return UserError(f"{path}: cannot read image ({reason}); re-export it as PNG or TIFF")
