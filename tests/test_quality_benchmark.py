"""The quality benchmark's per-kind scores: image kinds, and object counts pooled back from per-image AP."""

import json
import sys

import numpy as np
from PIL import Image

from stage_runner import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
from quality import copy_shrunk, image_kind, scores_by_kind, stems_of_kind  # noqa: E402


def test_image_kinds_by_colour_and_background():
    gray = np.zeros((8, 8, 3), np.uint8)
    assert image_kind(gray + 20) == "fluorescence"
    assert image_kind(gray + 200) == "brightfield"
    stained = gray + 150
    stained[..., 1] = 60
    assert image_kind(stained) == "colour"


def test_one_kind_of_image_is_copied_with_its_masks(tmp_path):
    """quality.py dsb2018 --kind: a user whose images are all of one kind."""
    for folder in ("images", "masks"):
        (tmp_path / folder).mkdir()
    stained = np.full((8, 8, 3), 150, np.uint8)
    stained[..., 1] = 60
    for stem, image in (("a", np.full((8, 8, 3), 20, np.uint8)), ("b", stained)):
        Image.fromarray(image).save(tmp_path / "images" / f"{stem}.png")
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "masks" / f"{stem}.png")
    stems = stems_of_kind(tmp_path / "images", "colour")
    assert stems == {"b"}
    copy_shrunk(tmp_path / "masks", tmp_path / "out", 1, Image.NEAREST, stems)
    copy_shrunk(tmp_path / "images", tmp_path / "half", 2, Image.BOX, stems)
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["b.png"]
    assert [np.asarray(Image.open(p)).shape for p in (tmp_path / "half").iterdir()] == [(4, 4, 3)]


def test_objects_are_pooled_per_kind_from_each_images_ap(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    (tmp_path / "reports").mkdir()
    dark, stained = np.full((8, 8, 3), 20, np.uint8), np.full((8, 8, 3), 150, np.uint8)
    stained[..., 1] = 60
    for stem, image in (("a", dark), ("b", dark), ("c", stained)):
        Image.fromarray(image).save(images / f"{stem}.png")
    manifest = {"images": {stem: {"image": f"images/{stem[0]}.png"} for stem in ("a", "b", "c_r0c1")}}
    (tmp_path / "data/prepared").mkdir(parents=True)
    (tmp_path / "data/prepared/manifest.json").write_text(json.dumps(manifest))
    # a: 10 true, 9 predicted, 8 matched -> AP 8/11; b: 4 true, 6 predicted, 4 matched -> AP 4/6;
    # c's region: 5 true, 0 predicted -> AP 0; an image with nothing in it has no Dice
    (tmp_path / "reports/per_image.csv").write_text(
        "image,dice,objects_true,objects_predicted,ap_50\n"
        f"a,0.9,10,9,{8 / 11:.6f}\nb,,4,6,{4 / 6:.6f}\nc_r0c1,0.5,5,0,0.000000\n")
    kinds = scores_by_kind(tmp_path)
    assert kinds["fluorescence"] == {"images": 2, "dice": 0.9, "objects_true": 14,
                                     "ap_50": round(12 / (14 + 15 - 12), 6), "f1_50": round(24 / 29, 6)}
    assert kinds["colour"] == {"images": 1, "dice": 0.5, "objects_true": 5, "ap_50": 0.0, "f1_50": 0.0}


def test_membrane_cells_are_one_id_each_parted_by_membrane_and_repeat_from_their_seed(tmp_path):
    from membranes import membrane_image, write_dataset
    from scipy import ndimage

    image, labels = membrane_image(np.random.default_rng([0, 3]), 96)
    again, _ = membrane_image(np.random.default_rng([0, 3]), 96)
    assert image.dtype == np.uint8 and np.array_equal(image, again)
    assert 0.6 < (labels > 0).mean() < 0.95  # most pixels are cell
    for cell in range(1, labels.max() + 1):  # each id one connected piece, no two cells touch
        assert ndimage.label(labels == cell)[1] == 1
    cells, apart = labels > 0, np.where(labels > 0, labels, labels.max() + 1)
    assert (ndimage.grey_dilation(labels, size=3)[cells] == labels[cells]).all()
    assert (ndimage.grey_erosion(apart, size=3)[cells] == labels[cells]).all()
    write_dataset(tmp_path, images=2, size=64)
    for name in ("cells_000.png", "cells_001.png"):
        mask, ids, walls = (np.asarray(Image.open(tmp_path / folder / name)) for folder in ("masks", "labels",
                                                                                            "membranes"))
        assert np.array_equal(mask == 255, ids > 0) and set(np.unique(mask)) <= {0, 255}
        assert np.array_equal(walls, 255 - mask)


def test_rods_are_one_connected_id_each_many_touching_and_repeat_from_their_seed(tmp_path):
    from rods import rod_image, write_dataset
    from scipy import ndimage

    image, labels = rod_image(np.random.default_rng([0, 2]), 96)
    again, _ = rod_image(np.random.default_rng([0, 2]), 96)
    assert image.dtype == np.uint8 and np.array_equal(image, again)
    assert 0.15 < (labels > 0).mean() < 0.7
    for rod in range(1, labels.max() + 1):
        assert ndimage.label(labels == rod)[1] == 1
    rods = labels > 0
    touching = rods & (ndimage.grey_dilation(labels, size=3) != labels)
    assert touching.sum() > 0  # some rods touch another
    write_dataset(tmp_path, images=2, size=64)
    for name in ("rods_000.png", "rods_001.png"):
        mask, ids = (np.asarray(Image.open(tmp_path / folder / name)) for folder in ("masks", "labels"))
        assert np.array_equal(mask == 255, ids > 0) and set(np.unique(mask)) <= {0, 255}


def test_a_dataset_shrunk_keeps_its_object_ids(tmp_path):
    from quality import copy_shrunk

    labels = np.zeros((40, 60), np.uint16)
    labels[4:20, 6:30], labels[20:36, 30:58] = 7, 300
    (tmp_path / "source").mkdir()
    Image.fromarray(labels).save(tmp_path / "source/a.png")
    copy_shrunk(tmp_path / "source", tmp_path / "half", 2, Image.NEAREST)
    half = np.asarray(Image.open(tmp_path / "half/a.png"))
    assert half.shape == (20, 30) and set(np.unique(half)) == {0, 7, 300}
    copy_shrunk(tmp_path / "source", tmp_path / "same", 1, Image.NEAREST)
    assert (tmp_path / "same/a.png").read_bytes() == (tmp_path / "source/a.png").read_bytes()
