import struct
import zlib

import numpy as np
import pytest
import tifffile
from PIL import Image

from unetseg.errors import UserError
from unetseg.imageio import (IMAGE_SUFFIXES, image_pixels, pixel_size_of, read_image, read_mask, read_native, unstack,
                             write_png)

RNG = np.random.default_rng(0)
GRAY8 = RNG.integers(0, 256, (5, 7), dtype=np.uint8)
GRAY16 = RNG.integers(0, 65536, (5, 7), dtype=np.uint16)
RGB8 = RNG.integers(0, 256, (5, 7, 3), dtype=np.uint8)


def save(path, array, mode=None):
    Image.fromarray(array, mode=mode).save(path) if mode else Image.fromarray(array).save(path)
    return path


@pytest.mark.parametrize("array", [GRAY8, GRAY16], ids=["8-bit", "16-bit"])
@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_gray_round_trip_keeps_values_and_dtype(tmp_path, array, suffix):
    path = tmp_path / f"x{suffix}"
    write_png(path, array) if suffix == ".png" else tifffile.imwrite(path, array)
    image = read_image(path, channels=1)
    assert image.shape == (5, 7, 1) and image.dtype == array.dtype
    assert np.array_equal(image[..., 0], array)


@pytest.mark.parametrize("compression", ["lzw", "zlib", "zstd"])
@pytest.mark.parametrize("array", [GRAY16, RGB8], ids=["16-bit gray", "8-bit RGB"])
def test_compressed_tiffs_read_like_plain_ones(tmp_path, array, compression):
    """Microscope software often exports LZW or Deflate (zlib) TIFFs."""
    path = tmp_path / f"x_{compression}.tif"
    tifffile.imwrite(path, array, compression=compression, photometric="rgb" if array.ndim == 3 else None)
    assert tifffile.TiffFile(path).pages[0].compression != 1  # really compressed
    channels = 3 if array.ndim == 3 else 1
    assert np.array_equal(read_image(path, channels), array.reshape(*array.shape[:2], channels))
    if array.ndim == 2:
        assert np.array_equal(read_mask(path), array)


def test_rgb_as_three_channels_and_as_luminance(tmp_path):
    path = save(tmp_path / "rgb.png", RGB8)
    assert np.array_equal(read_image(path, 3), RGB8)
    gray = read_image(path, 1)
    expected = (RGB8 @ np.array([0.299, 0.587, 0.114])).astype(np.uint8)
    assert gray.shape == (5, 7, 1) and np.array_equal(gray[..., 0], expected)


def test_gray_repeated_to_three_channels(tmp_path):
    image = read_image(save(tmp_path / "g.png", GRAY8), 3)
    assert image.shape == (5, 7, 3) and all(np.array_equal(image[..., c], GRAY8) for c in range(3))


def test_rgba_drops_alpha(tmp_path):
    rgba = np.concatenate([RGB8, np.full((5, 7, 1), 7, np.uint8)], axis=-1)
    assert np.array_equal(read_image(save(tmp_path / "a.png", rgba), 3), RGB8)
    tifffile.imwrite(tmp_path / "a.tif", rgba)
    assert np.array_equal(read_image(tmp_path / "a.tif", 3), RGB8)


@pytest.mark.parametrize("alpha", ["unassalpha", "assocalpha"])
def test_tiff_with_declared_alpha_drops_it(tmp_path, alpha):
    rgba = np.concatenate([RGB8, np.full((5, 7, 1), 7, np.uint8)], axis=-1)
    tifffile.imwrite(tmp_path / "a.tif", rgba, photometric="rgb", extrasamples=[alpha])
    assert np.array_equal(read_native(tmp_path / "a.tif"), RGB8)


def test_gray_with_alpha_png_drops_alpha(tmp_path):
    path = save(tmp_path / "la.png", np.stack([GRAY8, np.full_like(GRAY8, 9)], -1), mode="LA")
    assert np.array_equal(read_native(path)[..., 0], GRAY8) and np.array_equal(read_mask(path), GRAY8)


def test_channel_first_tiff_reads_channels_last(tmp_path):
    planar = np.moveaxis(RGB8, -1, 0)
    tifffile.imwrite(tmp_path / "planar.tif", planar, photometric="rgb", planarconfig="separate")
    assert np.array_equal(read_native(tmp_path / "planar.tif"), RGB8)


def test_multichannel_tiffs_keep_each_plane_as_a_channel(tmp_path):
    planes = np.arange(3 * 5 * 7, dtype=np.uint16).reshape(3, 5, 7) * 100
    tifffile.imwrite(tmp_path / "stains.tif", planes[:2], imagej=True, metadata={"axes": "CYX"})
    tifffile.imwrite(tmp_path / "four.tif", np.moveaxis(np.concatenate([planes, planes[:1]]), 0, -1),
                     photometric="minisblack", planarconfig="contig")
    assert np.array_equal(read_native(tmp_path / "stains.tif"), np.moveaxis(planes[:2], 0, -1))
    assert np.array_equal(read_image(tmp_path / "stains.tif", 2), np.moveaxis(planes[:2], 0, -1))
    assert read_native(tmp_path / "four.tif").shape == (5, 7, 4)
    with pytest.raises(UserError, match=r"four\.tif: 4 channel\(s\), where data\.channels .* takes 3"):
        read_image(tmp_path / "four.tif", 3)


@pytest.mark.parametrize("suffix", [".jpg", ".jpeg"])
def test_jpeg_images_read_as_8_bit(tmp_path, suffix):
    assert suffix in IMAGE_SUFFIXES
    colour = read_native(save(tmp_path / f"c{suffix}", RGB8))
    gray = read_native(save(tmp_path / f"g{suffix}", GRAY8))
    assert colour.shape == (5, 7, 3) and gray.shape == (5, 7, 1)
    assert colour.dtype == gray.dtype == np.uint8


def test_bmp_images_and_gif_masks_are_read(tmp_path):
    """GlaS ships BMP images and label maps, DRIVE its vessel masks as GIF."""
    assert {".bmp", ".gif"} <= set(IMAGE_SUFFIXES)
    assert np.array_equal(read_native(save(tmp_path / "c.bmp", RGB8)), RGB8)
    labels = (GRAY8 % 4).astype(np.uint8)
    assert np.array_equal(read_mask(save(tmp_path / "l.bmp", labels)), labels)
    vessels = np.where(GRAY8 > 128, 255, 0).astype(np.uint8)
    Image.fromarray(vessels).convert("P").save(tmp_path / "v.gif")
    assert np.array_equal(read_mask(tmp_path / "v.gif") > 0, vessels > 0)


def test_pillows_own_size_limit_does_not_apply(tmp_path, monkeypatch):
    """Pillow refuses images over its MAX_IMAGE_PIXELS; only our max_pixels should decide."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10)
    assert np.array_equal(read_native(save(tmp_path / "g.png", GRAY8))[..., 0], GRAY8)
    assert Image.MAX_IMAGE_PIXELS == 10


def test_palette_mask_reads_indices_not_colours(tmp_path):
    indices = np.array([[0, 1, 2], [2, 1, 0]], np.uint8)
    image = Image.fromarray(indices, mode="P")
    image.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] + [0] * 759)
    image.save(tmp_path / "p.png")
    assert np.array_equal(read_mask(tmp_path / "p.png"), indices)
    assert read_image(tmp_path / "p.png", 3)[0, 1].tolist() == [255, 0, 0]


def test_mask_from_equal_rgb_channels_and_16_bit_labels(tmp_path):
    labels = np.array([[0, 255], [255, 0]], np.uint8)
    assert np.array_equal(read_mask(save(tmp_path / "m.png", np.stack([labels] * 3, -1))), labels)
    ids = np.array([[0, 300], [2, 0]], np.uint16)
    write_png(tmp_path / "ids.png", ids)
    assert np.array_equal(read_mask(tmp_path / "ids.png"), ids)


def test_colour_mask_is_refused(tmp_path):
    with pytest.raises(UserError, match="colour mask"):
        read_mask(save(tmp_path / "c.png", RGB8))


def test_corrupt_file_names_the_file(tmp_path):
    path = tmp_path / "broken.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(UserError, match=r"broken\.png: cannot read image .*re-export it as PNG or TIFF"):
        read_image(path, 1)
    with pytest.raises(UserError, match="broken.png"):
        read_mask(path)


def test_write_png_refuses_float(tmp_path):
    with pytest.raises(ValueError):
        write_png(tmp_path / "f.png", np.zeros((2, 2), np.float32))


def test_16_bit_rgb_tiff_round_trip(tmp_path):
    rgb16 = RNG.integers(0, 65536, (5, 7, 3), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "rgb16.tif", rgb16)
    image = read_image(tmp_path / "rgb16.tif", 3)
    assert image.dtype == np.uint16 and np.array_equal(image, rgb16)


def png_bytes_16_bit_rgb(array):
    """A minimal 16-bit RGB PNG (Pillow cannot write one)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    rows = b"".join(b"\x00" + row.astype(">u2").tobytes() for row in array)
    header = struct.pack(">IIBBBBB", array.shape[1], array.shape[0], 16, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def test_16_bit_colour_png_is_refused_rather_than_truncated(tmp_path):
    path = tmp_path / "rgb16.png"
    path.write_bytes(png_bytes_16_bit_rgb(RNG.integers(0, 65536, (2, 3, 3), dtype=np.uint16)))
    with pytest.raises(UserError, match=r"rgb16\.png: 16-bit colour PNG.*re-export it as 16-bit TIFF"):
        read_image(path, 3)


def test_gray_palette_image_reads_as_gray(tmp_path):
    indices = np.array([[0, 1], [1, 0]], np.uint8)
    image = Image.fromarray(indices, mode="P")
    image.putpalette([10, 10, 10, 200, 200, 200] + [0] * 762)
    image.save(tmp_path / "gp.png")
    assert read_image(tmp_path / "gp.png", 1)[..., 0].tolist() == [[10, 200], [200, 10]]


def test_image_pixels_from_the_header_and_zero_where_it_cannot_be_read(tmp_path):
    Image.fromarray(np.zeros((30, 41, 3), np.uint8)).save(tmp_path / "a.png")
    tifffile.imwrite(tmp_path / "b.tif", np.zeros((3, 17, 5), np.uint16), photometric="minisblack", planarconfig="separate")
    (tmp_path / "c.png").write_bytes(b"not a png")
    assert [image_pixels(tmp_path / name) for name in ("a.png", "b.tif", "c.png", "missing.tif")] == [30 * 41, 17 * 5, 0, 0]


def test_a_stack_is_refused_with_the_command_that_splits_it(tmp_path):
    tifffile.imwrite(tmp_path / "volume.tif", np.zeros((30, 16, 16), np.uint8))
    with pytest.raises(UserError, match=r"volume\.tif: a stack of 30 images .* `unetseg unstack .*volume\.tif FOLDER`"):
        read_native(tmp_path / "volume.tif")
    tifffile.imwrite(tmp_path / "rgb_stack.tif", np.zeros((5, 16, 16, 3), np.uint8), photometric="rgb")
    with pytest.raises(UserError, match="a stack of 5 images"):  # once its first page was read silently
        read_native(tmp_path / "rgb_stack.tif")
    tifffile.imwrite(tmp_path / "one.tif", np.full((1, 16, 16), 7, np.uint8))  # a stack of one is one image
    assert read_native(tmp_path / "one.tif").shape == (16, 16, 1)


@pytest.mark.parametrize("stack, kwargs, page_shape", [
    (np.arange(12 * 6 * 5, dtype=np.uint16).reshape(12, 6, 5), {}, (6, 5, 1)),
    (np.arange(3 * 6 * 5 * 3, dtype=np.uint8).reshape(3, 6, 5, 3), {"photometric": "rgb"}, (6, 5, 3)),
    (np.arange(4 * 2 * 6 * 5, dtype=np.uint8).reshape(4, 2, 6, 5), {"imagej": True, "metadata": {"axes": "TZYX"}},
     (6, 5, 1)),
])
def test_unstack_writes_each_image_in_stack_order_and_its_own_dtype(tmp_path, stack, kwargs, page_shape):
    tifffile.imwrite(tmp_path / "volume.tif", stack, **kwargs)
    written = unstack(tmp_path / "volume.tif", tmp_path / "out")
    pages = stack.reshape(-1, *page_shape)
    assert [p.name for p in written] == sorted(p.name for p in written) and len(written) == len(pages)
    assert written[0].name == f"volume_{0:0{len(str(len(pages) - 1))}d}.tif"
    for path, page in zip(written, pages):
        image = read_native(path)
        assert image.dtype == stack.dtype and np.array_equal(image, page)
    with pytest.raises(UserError, match=r"volume_0+\.tif: exists; unstack into an empty folder"):
        unstack(tmp_path / "volume.tif", tmp_path / "out")
    assert unstack(tmp_path / "volume.tif", tmp_path / "out", name="slice")[0].name.startswith("slice_")


@pytest.mark.parametrize("name, kwargs, expected", [
    ("imagej_um", {"imagej": True, "resolution": (1 / 0.325, 1 / 0.325), "metadata": {"unit": "um"}}, 0.325),
    ("imagej_micro_sign", {"imagej": True, "resolution": (2, 2), "metadata": {"unit": "\\u00B5m"}}, 0.5),
    ("imagej_nm", {"imagej": True, "resolution": (0.25, 0.25), "metadata": {"unit": "nm"}}, 0.004),
    ("imagej_uncalibrated", {"imagej": True}, None),
    ("ome_nm", {"ome": True, "metadata": {"PhysicalSizeX": 4.0, "PhysicalSizeXUnit": "nm",
                                          "PhysicalSizeY": 4.0, "PhysicalSizeYUnit": "nm"}}, 0.004),
    ("ome_default_unit", {"ome": True, "metadata": {"PhysicalSizeX": 0.65, "PhysicalSizeY": 0.65}}, 0.65),
    ("ome_without_size", {"ome": True}, None),
    ("per_centimetre", {"resolution": (20000, 20000), "resolutionunit": "CENTIMETER"}, 0.5),
    ("per_inch", {"resolution": (72, 72), "resolutionunit": "INCH"}, None),  # a screen's dpi, no microscope's
    ("not_square", {"resolution": (20000, 10000), "resolutionunit": "CENTIMETER"}, None),
    ("no_resolution", {}, None),
])
def test_pixel_size_as_the_tiff_records_it(tmp_path, name, kwargs, expected):
    path = tmp_path / f"{name}.tif"
    tifffile.imwrite(path, np.zeros((20, 30), np.uint8), **kwargs)
    assert pixel_size_of(path) == expected


def test_png_and_unreadable_files_record_no_pixel_size(tmp_path):
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "a.png", dpi=(300, 300))
    (tmp_path / "broken.tif").write_bytes(b"II*\0garbage")
    assert pixel_size_of(tmp_path / "a.png") is None and pixel_size_of(tmp_path / "broken.tif") is None


def test_unstack_gives_each_image_the_stacks_pixel_size(tmp_path):
    stack = np.zeros((3, 6, 5), np.uint8)
    tifffile.imwrite(tmp_path / "volume.tif", stack, imagej=True, resolution=(1 / 0.065, 1 / 0.065),
                     metadata={"axes": "ZYX", "unit": "um"})
    tifffile.imwrite(tmp_path / "plain.tif", stack, photometric="minisblack")
    assert [pixel_size_of(p) for p in unstack(tmp_path / "volume.tif", tmp_path / "out")] == [0.065] * 3
    assert [pixel_size_of(p) for p in unstack(tmp_path / "plain.tif", tmp_path / "out")] == [None] * 3
