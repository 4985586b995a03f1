"""Every bad input gives one line: the file first, then what is wrong and how to fix it."""

import struct
import zlib
from functools import partial

import numpy as np
import pytest
import tifffile
from PIL import Image

from unetseg.errors import UserError
from unetseg.imageio import read_image, read_mask, read_native

GRAY = np.random.default_rng(0).integers(0, 65536, (64, 64), dtype=np.uint16)
read_gray = partial(read_image, channels=1)


def png(array):
    def write(tmp_path):
        Image.fromarray(array).save(tmp_path / "x.png")
        return tmp_path / "x.png"
    return write


def png_claiming(size):
    """A gray PNG whose header says size x size pixels, with the pixel data cut off after two rows."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    def write(tmp_path):
        path = tmp_path / "huge.png"
        header = struct.pack(">IIBBBBB", size, size, 8, 0, 0, 0, 0)
        pixels = zlib.compress(bytes((size + 1) * 2))[:-8]
        chunks = chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
        path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunks)
        return path
    return write


def tiff(array, **options):
    def write(tmp_path):
        tifffile.imwrite(tmp_path / "x.tif", array, **options)
        return tmp_path / "x.tif"
    return write


def truncated(write, cut=100):
    def write_truncated(tmp_path):
        path = write(tmp_path)
        path.write_bytes(path.read_bytes()[:-cut])
        return path
    return write_truncated


def jpeg(tmp_path):
    path = tmp_path / "mask.jpg"
    Image.fromarray((GRAY > 32768).astype(np.uint8) * 255).save(path)
    return path


def broken_link(tmp_path):
    path = tmp_path / "link.png"
    path.symlink_to(tmp_path / "gone.png")
    return path


def floats_with(*values):
    array = np.zeros((5, 7), np.float32)
    array.flat[:len(values)] = values
    return tiff(array)


CASES = [
    pytest.param(png_claiming(100_000), read_gray, "100000x100000 pixels is over the limit of 1,000,000,000",
                 id="huge-header PNG"),
    pytest.param(png_claiming(20_000), read_gray, "image file is truncated",  # not Pillow's bomb check
                 id="big truncated PNG within the limit"),
    pytest.param(png(GRAY[:5, :7]), partial(read_native, max_pixels=10), "5x7 pixels is over the limit of 10",
                 id="max_pixels"),
    pytest.param(truncated(tiff(GRAY, compression="lzw")), read_gray, "cannot read image",
                 id="truncated LZW TIFF"),
    pytest.param(truncated(tiff(GRAY, compression="zlib")), read_mask, "cannot read image",
                 id="truncated zlib TIFF"),
    pytest.param(truncated(png(GRAY)), read_gray, "cannot read image (image file is truncated)",
                 id="truncated PNG"),
    pytest.param(jpeg, read_mask, "re-export masks as PNG or TIFF", id="JPEG mask"),
    pytest.param(broken_link, read_gray, "broken link (points to ", id="broken symlink"),
    pytest.param(lambda tmp_path: tmp_path / "missing.png", read_mask, "file not found", id="missing file"),
    pytest.param(tiff(np.zeros((5, 7, 2), np.uint8), photometric="minisblack", planarconfig="contig"), read_gray,
                 "2 channel(s), where data.channels (and a model trained with it) takes 1", id="2-channel TIFF as gray"),
    pytest.param(tiff(np.zeros((2, 5, 7), np.uint16), imagej=True, metadata={"axes": "CYX"}), read_gray,
                 "set data.channels to auto or 2", id="2-stain ImageJ TIFF as gray"),
    pytest.param(tiff(np.zeros((5, 7, 4), np.uint8), photometric="rgb", extrasamples=["unspecified"]), read_gray,
                 "4 channel(s), where data.channels", id="4-channel TIFF without alpha as gray"),
    pytest.param(tiff(np.zeros((5, 7, 9), np.uint8), photometric="minisblack", planarconfig="contig"), read_gray,
                 "unsupported image shape (5, 7, 9)", id="9-channel TIFF"),
    pytest.param(floats_with(np.nan), read_gray, "1 pixel(s) are NaN or infinite", id="NaN float TIFF"),
    pytest.param(floats_with(np.inf, -np.inf), read_gray, "2 pixel(s) are NaN or infinite", id="inf float TIFF"),
    pytest.param(floats_with(np.nan), read_mask, "1 pixel(s) are NaN or infinite", id="NaN mask"),
]


@pytest.mark.parametrize(("write", "read", "expected"), CASES)
def test_bad_image_gives_one_line_user_error(tmp_path, write, read, expected):
    path = write(tmp_path)
    with pytest.raises(UserError) as caught:
        read(path)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: ")
    assert expected in message
