"""Bring-your-own-data: a folder mixing every format people bring goes through prepare intact."""

import json

import numpy as np
import pytest
import tifffile
from PIL import Image

from stage_runner import run_stage, write_params
from unetseg.imageio import read_image
from unetseg.normalize import load_prepared_image, normalize

RNG = np.random.default_rng(3)


def noise(shape, dtype):
    return RNG.integers(0, np.iinfo(dtype).max, shape, dtype=dtype)


def blob(shape, value=1):
    mask = np.zeros(shape, np.uint8)
    mask[2:shape[0] // 2, 3:shape[1] // 2] = value
    return mask


def palette_png(path, indices: np.ndarray) -> None:
    image = Image.fromarray(indices.astype(np.uint8), mode="P")
    image.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] + [0] * (253 * 3))  # colours unlike the indices
    image.save(path)


def write_mixed_dataset(root, labels: int) -> dict[str, np.ndarray]:
    """Six images of six sizes in every image format, masks in turn 0/255 (or ids), 0/1 (or ids),
    palette PNG and 16-bit TIFF; returns the class ids each mask should read as, by stem."""
    images, masks = root / "own" / "images", root / "own" / "masks"
    images.mkdir(parents=True)
    masks.mkdir(parents=True)
    ids = {}
    cases = {
        "gray8": ((20, 24), np.uint8, None),
        "gray16": ((24, 20), np.uint16, None),
        "rgb8": ((22, 22), np.uint8, 3),
        "rgba8": ((20, 30), np.uint8, 4),
        "gray16tif": ((26, 18), np.uint16, None),
        "rgb16tif": ((18, 26), np.uint16, 3),
    }
    for index, (name, (shape, dtype, colours)) in enumerate(cases.items()):
        array = noise(shape + ((colours,) if colours else ()), dtype)
        if name.endswith("tif"):
            tifffile.imwrite(images / f"{name}.tif", array)
        else:
            Image.fromarray(array).save(images / f"{name}.png")
        truth = blob(shape, 1 + index % labels)
        ids[name] = truth
        mask_kind = index % 4
        if mask_kind == 0:  # 0/255 (binary) or class ids as gray PNG
            Image.fromarray(truth * 255 if labels == 1 else truth).save(masks / f"{name}.png")
        elif mask_kind == 1:  # 0/1 or ids
            Image.fromarray(truth).save(masks / f"{name}.png")
        elif mask_kind == 2:  # palette PNG: indices, not colours
            palette_png(masks / f"{name}.png", truth)
        else:  # 16-bit label TIFF
            tifffile.imwrite(masks / f"{name}.tif", truth.astype(np.uint16))
    return ids


@pytest.mark.parametrize("num_classes", [1, 3])
def test_every_format_is_read_split_and_reported(tmp_path, num_classes):
    truth = write_mixed_dataset(tmp_path, labels=1 if num_classes == 1 else 2)
    write_params(tmp_path, {"data": {"images": "own/images", "masks": "own/masks", "num_classes": num_classes,
                                     "mask_type": "semantic"},
                            "prepare": {"val_fraction": 0.2, "test_fraction": 0.2}})
    result = run_stage("prepare", tmp_path)
    assert result.returncode == 0, result.stderr

    manifest = json.loads((tmp_path / "data/prepared/manifest.json").read_text())
    assert manifest["channels"] == 3, "colour images are present, so data.channels: auto picks RGB"
    for stem, entry in manifest["images"].items():
        path = tmp_path / "data/prepared" / entry["split"] / "images" / f"{stem}.npy"
        image = load_prepared_image(path, manifest, stem)
        mask = np.load(tmp_path / "data/prepared" / entry["split"] / "masks" / f"{stem}.npy")
        assert image.shape == truth[stem].shape + (3,) and image.dtype == np.float32
        assert np.load(path).dtype == np.dtype(entry["dtype"]), "stored in the file's own dtype"
        assert np.array_equal(image, normalize(read_image(tmp_path / entry["image"], 3), manifest["normalization"]))
        expected = (truth[stem] > 0) if num_classes == 1 else truth[stem]
        np.testing.assert_array_equal(mask, expected.astype(np.uint8))

    report = json.loads((tmp_path / "reports/data.json").read_text())
    assert report["images"] == 6 and report["distinct_sizes"] == 6
    assert report["dtypes"] == {"uint16": 3, "uint8": 3}
    assert report["colour_images"] == 3
    assert report["channels"] == {"param": "auto", "used": 3}
    assert set(report["class_pixel_fraction"]) == {str(c) for c in range(max(num_classes, 2))}
    assert "warning: class 2 appears in no mask" not in result.stderr
