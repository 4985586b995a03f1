"""Read and write images and masks: PNG, TIFF, JPEG, BMP and GIF, 8/16-bit, gray, RGB, RGBA, palette
and multichannel TIFF (one plane per stain or fluorophore)."""

import math
from contextlib import contextmanager
from pathlib import Path
from xml.etree import ElementTree

import numpy as np
import tifffile
from PIL import Image

from unetseg.errors import UserError
from unetseg.files import atomic_file

IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp", ".gif")  # BMP: GlaS; GIF: DRIVE's masks
TIFF_SUFFIXES = (".tif", ".tiff")
JPEG_SUFFIXES = (".jpg", ".jpeg")
MAX_PIXELS = 1_000_000_000
MAX_CHANNELS = 8  # of one image (stains, fluorophores); more is likely a stack read as channels
LUMA = np.array([0.299, 0.587, 0.114])
PILLOW_ALPHA_MODES = ("LA", "PA", "RGBA")
TIFF_ALPHA_SAMPLES = (1, 2)  # ExtraSamples: associated, unassociated alpha (0 is "unspecified")
MICRONS = {"um": 1.0, "µm": 1.0, "μm": 1.0, "\\u00b5m": 1.0, "micron": 1.0, "microns": 1.0, "micrometer": 1.0,
           "nm": 1e-3, "nanometer": 1e-3, "mm": 1e3, "millimeter": 1e3, "cm": 1e4}  # ImageJ writes µ as \u00B5
TIFF_CENTIMETRE = 3  # ResolutionUnit; 2, inches, is mostly a screen's or scanner's 72-300 dpi


def read_image(path, channels: int, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """An image as (H, W, channels) in its own dtype: colour becomes luminance for channels=1, gray is
    repeated for 3; another count of channels must be the image's own."""
    return to_channels(read_native(path, max_pixels), channels, path)


def in_region(array: np.ndarray, region) -> np.ndarray:
    """The part of an image-sized array in a region (top, bottom, left, right); all of it for None."""
    if region is None:
        return array
    top, bottom, left, right = region
    return array[top:bottom, left:right]


def read_native(path, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """An image as stored, alpha dropped: (H, W, 1) gray, (H, W, 3) colour or (H, W, C) channels, in
    its own dtype."""
    return _read_array(path, keep_palette=False, max_pixels=max_pixels)


def converts(have: int, channels: int) -> bool:
    """Whether an image of `have` channels reads as `channels`: its own count, or gray and RGB either way."""
    return have == channels or {have, channels} == {1, 3}


def to_channels(array: np.ndarray, channels: int, path="image") -> np.ndarray:
    have = array.shape[-1]
    if have == channels:
        return array
    if not converts(have, channels):
        raise UserError(f"{path}: {have} channel(s), where data.channels (and a model trained with it) "
                        f"takes {channels}: only gray and RGB convert; set data.channels to auto or {have}, or "
                        f"save {channels} channels")
    if channels == 3:
        return np.repeat(array, 3, axis=-1)
    return (array.astype(np.float64) @ LUMA).astype(array.dtype)[..., None]


def is_colour(array: np.ndarray) -> bool:
    """Three channels that differ somewhere (an RGB file of a gray picture is not colour)."""
    return array.shape[-1] == 3 and not (np.array_equal(array[..., 0], array[..., 1])
                                         and np.array_equal(array[..., 0], array[..., 2]))


def image_pixels(path) -> int:
    """Height x width of an image file from its header (0 where that cannot be read: reading the
    pixels then says why)."""
    try:
        if Path(path).suffix.lower() in TIFF_SUFFIXES:
            with tifffile.TiffFile(path) as tiff:
                page = tiff.series[0].keyframe
                return page.imagelength * page.imagewidth
        with Image.open(path) as image:
            return image.height * image.width
    except Exception:
        return 0


def pixel_size_of(path) -> float | None:
    """µm per pixel as the image file records it: an OME-TIFF's PhysicalSizeX, an ImageJ TIFF's
    resolution in its unit, or a TIFF's resolution per centimetre. None for other files (PNG's and
    JPEG's resolutions are dpi for print), resolutions per inch, unreadable tags and pixels that are
    not square."""
    if Path(path).suffix.lower() not in TIFF_SUFFIXES:
        return None
    try:
        with tifffile.TiffFile(path) as tiff:
            x, y = _ome_sizes(tiff.ome_metadata) if tiff.is_ome else _resolution_sizes(tiff)
    except Exception:
        return None
    return float(f"{x:.6g}") if x and y and math.isclose(x, y, rel_tol=1e-3) else None  # 40/13 px per µm: 0.325


def _ome_sizes(xml: str) -> tuple[float | None, float | None]:
    pixels = next(e for e in ElementTree.fromstring(xml).iter() if e.tag.rpartition("}")[2] == "Pixels")
    return tuple(_in_microns(pixels.get(f"PhysicalSize{axis}"), pixels.get(f"PhysicalSize{axis}Unit", "µm"))
                 for axis in "XY")


def _resolution_sizes(tiff) -> tuple[float | None, float | None]:
    """(x, y) µm per pixel from the first page's resolution tags (pixels per unit)."""
    tags = tiff.pages.first.tags
    if tiff.is_imagej:
        unit = str((tiff.imagej_metadata or {}).get("unit", ""))
    else:
        unit = "cm" if tags.valueof("ResolutionUnit") == TIFF_CENTIMETRE else ""
    return tuple(_in_microns(1 / _fraction(tags.valueof(name)), unit) for name in ("XResolution", "YResolution"))


def _fraction(value) -> float:
    numerator, denominator = value
    return numerator / denominator


def _in_microns(value, unit: str) -> float | None:
    scale = MICRONS.get(unit.strip().lower())
    return float(value) * scale if value is not None and scale and float(value) > 0 else None


def read_mask(path, max_pixels: int = MAX_PIXELS, jpeg: bool = False) -> np.ndarray:
    """A mask as (H, W) integers; palette PNGs give their indices, not their colours. JPEG only with
    `jpeg` (for binary masks, `unetseg.dataset.read_user_mask`): its lossy compression changes label
    values at object edges."""
    layers = read_mask_layers(path, max_pixels, jpeg)
    if is_colour_mask(layers):
        raise UserError(f"{path}: colour mask; save masks as gray, palette or label-id images")
    return layers[..., 0]


def read_mask_layers(path, max_pixels: int = MAX_PIXELS, jpeg: bool = False) -> np.ndarray:
    """A mask as stored, (H, W, C) integers (C = 3 for a colour mask), palette PNGs as their indices."""
    if Path(path).suffix.lower() in JPEG_SUFFIXES and not jpeg:
        raise jpeg_mask_error(path)
    array = _read_array(path, keep_palette=True, max_pixels=max_pixels)
    if not np.issubdtype(array.dtype, np.integer) and not np.issubdtype(array.dtype, np.bool_):
        if not np.array_equal(array, np.round(array)):
            raise UserError(f"{path}: mask has non-integer values; save class ids as integers")
    return array.astype(np.int64) if array.dtype != np.uint8 else array


def is_colour_mask(layers: np.ndarray) -> bool:
    return not all(np.array_equal(layers[..., 0], layers[..., c]) for c in range(1, layers.shape[-1]))


def jpeg_mask_error(path) -> UserError:
    return UserError(f"{path}: JPEG mask, whose lossy compression changes label values at object edges; "
                     "re-export masks as PNG or TIFF (JPEG only for binary 0/255 masks of one class)")


def write_png(path, array: np.ndarray) -> None:
    """Write a uint8 or uint16 image, (H, W) or (H, W, 3), as PNG."""
    array = np.asarray(array)
    if array.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"write_png takes uint8 or uint16, got {array.dtype}")
    Image.fromarray(array).save(path, format="PNG")


def _read_array(path, keep_palette: bool, max_pixels: int) -> np.ndarray:
    """(H, W, C), declared alpha dropped, every pixel finite."""
    path = Path(path)
    _check_exists(path)
    if path.suffix.lower() in TIFF_SUFFIXES:
        array, has_alpha = _read_tiff(path, max_pixels)
    else:
        array, has_alpha = _read_pillow(path, keep_palette, max_pixels)
    array = _channels_last(path, array, has_alpha)
    _check_finite(path, array)
    return array


def _check_exists(path: Path) -> None:
    if path.is_symlink() and not path.exists():
        raise UserError(f"{path}: broken link (points to {path.readlink()}); "
                        "if DVC tracks the data, run `dvc pull` (or `dvc checkout`)")
    if not path.exists():
        raise UserError(f"{path}: file not found; check the path, or run `dvc pull` if DVC tracks the data")


def _read_tiff(path: Path, max_pixels: int) -> tuple[np.ndarray, bool]:
    """The image of the first series, channels last; whether its last channel is declared alpha. A
    stack of several images (pages, slices, time points) is refused: one image per file."""
    with _decoding(path), tifffile.TiffFile(path) as tiff:
        series = tiff.series[0]
        _check_size(path, series.keyframe.imagelength, series.keyframe.imagewidth, max_pixels)
        pages = stack_size(series.shape, series.axes)
        if pages > 1:
            raise UserError(f"{path}: a stack of {pages} images ({series.axes} {'x'.join(map(str, series.shape))}); "
                            f"the pipeline reads one image per file: split it with `unetseg unstack {path} FOLDER`")
        array, axes, extrasamples = series.asarray(), series.axes, series.keyframe.extrasamples
    return one_image(array, axes), bool(extrasamples) and extrasamples[-1] in TIFF_ALPHA_SAMPLES


IMAGE_AXES = "YXSC"  # tifffile's axes of one image: rows, columns, samples, channels; any other stacks images


def stack_size(shape, axes: str) -> int:
    """How many images a TIFF series of this shape and these axes stacks."""
    return int(np.prod([n for n, axis in zip(shape, axes) if axis not in IMAGE_AXES]))


def one_image(array: np.ndarray, axes: str) -> np.ndarray:
    """One image of a series (its stacking axes of length 1), channels last: planar-separate samples
    and ImageJ channels come first in the file."""
    keep = [axis in IMAGE_AXES for axis in axes]
    array = array.reshape([n for n, kept in zip(array.shape, keep) if kept])
    axes = "".join(axis for axis in axes if axis in IMAGE_AXES)
    return np.moveaxis(array, 0, -1) if array.ndim == 3 and axes[0] in "SC" else array


def unstack(path, folder, name: str | None = None) -> list[Path]:
    """Each image of a TIFF stack as a TIFF of its own in `folder`, in its own dtype and with the stack's
    pixel size (pixel_size_of) where it records one: `<name>_<index>.tif` (name: the stack's stem),
    indices zero-padded so the files sort in stack order. Refuses to overwrite."""
    path, folder = Path(path), Path(folder)
    _check_exists(path)
    if path.suffix.lower() not in TIFF_SUFFIXES:
        raise UserError(f"{path}: not a TIFF; unstack splits multi-page TIFF stacks")
    with _decoding(path), tifffile.TiffFile(path) as tiff:
        series = tiff.series[0]
        array, axes = series.asarray(), series.axes
    stacked = [i for i, axis in enumerate(axes) if axis not in IMAGE_AXES]
    kept = [i for i, axis in enumerate(axes) if axis in IMAGE_AXES]
    array = np.transpose(array, stacked + kept)
    images = array.reshape((-1, *array.shape[len(stacked):]))
    digits = len(str(len(images) - 1))
    targets = [folder / f"{name or path.stem}_{index:0{digits}d}.tif" for index in range(len(images))]
    existing = [target for target in targets if target.exists()]
    if existing:
        raise UserError(f"{existing[0]}: exists; unstack into an empty folder or give another --name")
    folder.mkdir(parents=True, exist_ok=True)
    image_axes = "".join(axes[i] for i in kept)
    size = pixel_size_of(path)
    resolution = {} if size is None else {"resolution": (1e4 / size,) * 2, "resolutionunit": "CENTIMETER"}
    for image, target in zip(images, targets):
        image = one_image(image, image_axes)
        colour = image.ndim == 3 and image.shape[-1] in (3, 4)
        with atomic_file(target) as tmp:
            tifffile.imwrite(tmp, image, photometric="rgb" if colour else "minisblack", **resolution)
    return targets


def _read_pillow(path: Path, keep_palette: bool, max_pixels: int) -> tuple[np.ndarray, bool]:
    """Pixels (palette indices if keep_palette); whether the last channel is declared alpha."""
    with _decoding(path), _pillow_bomb_check_off(), Image.open(path) as image:
        _check_size(path, image.height, image.width, max_pixels)
        if image.format == "PNG" and _is_16_bit_colour_png(path):
            raise UserError(f"{path}: 16-bit colour PNG, which Pillow can only read as 8-bit; "
                            "re-export it as 16-bit TIFF or as gray PNG")
        image.load()
        if image.mode in ("P", "PA") and not keep_palette:
            image = image.convert("RGBA" if image.mode == "PA" or "transparency" in image.info else "RGB")
        elif image.mode in ("1", "CMYK", "YCbCr", "LAB", "HSV"):
            image = image.convert("L" if image.mode == "1" else "RGB")
        return np.asarray(image), image.mode in PILLOW_ALPHA_MODES


@contextmanager
def _decoding(path):
    """Corrupt or truncated files fail anywhere in the decoders: OSError, zlib.error, IndexError..."""
    try:
        yield
    except (UserError, MemoryError):
        raise
    except Exception as exc:
        raise _unreadable(path, exc) from None


@contextmanager
def _pillow_bomb_check_off():
    """Pillow refuses images over ~179 Mpx; _check_size applies our own limit from the header instead."""
    saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS = saved


def _check_size(path, height: int, width: int, max_pixels: int) -> None:
    if height * width > max_pixels:
        raise UserError(f"{path}: {height}x{width} pixels is over the limit of {max_pixels:,}; "
                        "cut it into smaller tiles or downscale it")


def _is_16_bit_colour_png(path) -> bool:
    """Pillow silently drops the low byte of 16-bit RGB(A) and gray+alpha PNGs; IHDR tells us."""
    with open(path, "rb") as file:
        header = file.read(26)
    bit_depth, colour_type = header[24], header[25]  # IHDR follows the 8-byte signature
    return bit_depth == 16 and colour_type in (2, 4, 6)


def _channels_last(path, array: np.ndarray, has_alpha: bool) -> np.ndarray:
    """(H, W, C), 1 <= C <= MAX_CHANNELS; a last channel is only dropped when the file declares it alpha."""
    if array.ndim == 2:
        array = array[..., None]
    if has_alpha:
        array = array[..., :-1]
    if array.ndim != 3 or not 1 <= array.shape[-1] <= MAX_CHANNELS:
        raise UserError(f"{path}: unsupported image shape {array.shape}; save one image per file, gray, RGB "
                        f"or up to {MAX_CHANNELS} channels (a stack: unetseg unstack)")
    return array


def _check_finite(path, array: np.ndarray) -> None:
    if np.issubdtype(array.dtype, np.floating):
        bad = np.count_nonzero(~np.isfinite(array).all(axis=-1))
        if bad:
            raise UserError(f"{path}: {bad} pixel(s) are NaN or infinite; "
                            "replace them (e.g. with 0) when exporting")


def _unreadable(path, exc) -> UserError:
    reason = " ".join(str(exc).split()) or type(exc).__name__
    return UserError(f"{path}: cannot read image ({reason}); re-export it as PNG or TIFF")
