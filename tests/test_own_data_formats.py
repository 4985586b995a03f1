"""Bring-your-own-data: a folder mixing every format people bring goes through prepare intact."""

import json
import subprocess
import sys
from pathlib import Path

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


def test_two_channel_tiffs_train_predict_and_measure_each_channel(tmp_path):
    import csv

    from stage_runner import STAGES, TINY
    from unetseg.synthetic import synthesize_image

    rng = np.random.default_rng(5)
    for sub in ("images", "masks"):
        (tmp_path / "own" / sub).mkdir(parents=True)
    for index in range(6):  # nuclei in the first channel, an unrelated stain in the second
        nuclei, labels = synthesize_image(rng, 64, 72, (3, 6))
        stain = rng.integers(0, 4000, nuclei.shape, dtype=np.uint16)
        tifffile.imwrite(tmp_path / f"own/images/f{index}.tif", np.stack([nuclei.astype(np.uint16) * 16, stain]),
                         imagej=True, metadata={"axes": "CYX"})
        Image.fromarray((labels > 0).astype(np.uint8) * 255).save(tmp_path / f"own/masks/f{index}.png")
    write_params(tmp_path, {**{k: v for k, v in TINY.items() if k not in ("synthesize",)},
                            "data": {"images": "own/images", "masks": "own/masks"}})
    for stage in STAGES[1:]:
        result = run_stage(stage, tmp_path)
        assert result.returncode == 0, f"{stage} failed:\n{result.stderr}"
    manifest = json.loads((tmp_path / "data/prepared/manifest.json").read_text())
    assert manifest["channels"] == 2
    assert json.loads((tmp_path / "models/preprocessing.json").read_text())["channels"] == 2
    (test, *_) = manifest["splits"]["test"]
    header = next(csv.reader((tmp_path / f"data/objects/{test}.csv").open()))
    assert {"mean_intensity_c1", "mean_intensity_c2", "total_intensity_c2"} <= set(header)
    Image.fromarray(np.zeros((40, 40), np.uint8)).save(tmp_path / "gray.png")
    unetseg = [str(Path(sys.executable).with_name("unetseg")), "predict", "--model", "models/unet.keras"]
    new = subprocess.run([*unetseg, "--input", "own/images/f0.tif", "--output", "new"], cwd=tmp_path,
                         capture_output=True, text=True)
    assert new.returncode == 0, new.stderr
    assert "mean_intensity_c2" in (tmp_path / "new/f0_objects.csv").read_text().splitlines()[0]
    gray = subprocess.run([*unetseg, "--input", "gray.png", "--output", "gray"], cwd=tmp_path, capture_output=True,
                          text=True)
    assert gray.returncode != 0 and "gray.png: 1 channel(s), where data.channels" in gray.stderr
    assert not (tmp_path / "gray").exists() or not any((tmp_path / "gray").iterdir())
