import json
import shutil

import pytest

from dvc_project import make_project
from test_dataset import make_folder
from unetseg.dataset import find_pairs
from unetseg.errors import UserError
from unetseg.naming import NameRule, best_rule, pair_by_name, split_shared_folder


def stems(*names):
    return {name: name for name in names}


@pytest.mark.parametrize("images, masks, rule", [
    (["ISIC_0000000", "ISIC_0000001", "ISIC_0000017"],
     ["ISIC_0000000_segmentation", "ISIC_0000001_segmentation", "ISIC_0000017_segmentation"],
     "'*' ↔ '*_segmentation'"),                                    # ISIC
    (["21_training", "22_training", "40_training"], ["21_manual1", "22_manual1", "40_manual1"],
     "'*training' ↔ '*manual1'"),                                  # DRIVE: the end changed
    (["t000", "t001", "t017"], ["man_seg000", "man_seg001", "man_seg017"], "'t*' ↔ 'man_seg*'"),  # Cell Tracking Challenge
    (["a_img", "b_img"], ["a", "b"], "'*_img' ↔ '*'"),             # the image's name has the extra text
    (["img1", "img2"], ["img1", "img2"], "same name"),
])
def test_the_rule_that_pairs_every_image(images, masks, rule):
    found = best_rule(stems(*images), stems(*masks))
    assert found.describe() == rule
    assert found.pairs(images, masks) == dict(zip(images, masks))


def test_same_names_win_over_any_other_rule():
    assert best_rule(stems("a", "a_mask"), stems("a", "a_mask")) == NameRule()


def test_a_missing_mask_is_named_as_the_others_are():
    images = stems("x1", "x2", "x3", "x11")
    masks = stems("x1_m", "x2_m", "x11_m")
    with pytest.raises(UserError, match=r"^x3: no mask named 'x3_m\.\*' in M \(as 'x1' and 'x1_m'\)"):
        pair_by_name({k: _P(k) for k in images}, {k: _P(k) for k in masks}, "I", "M")


def test_a_mask_without_image_is_named():
    with pytest.raises(UserError, match=r"^c_mask: mask without an image named 'c\.\*' in I"):
        pair_by_name({k: _P(k) for k in ("a", "b")}, {k: _P(k) for k in ("a_mask", "b_mask", "c_mask")}, "I", "M")


def test_unrelated_names_say_how_to_name_masks():
    with pytest.raises(UserError, match=r"^M: no mask is named after an image in I .*'a_mask\.png'"):
        pair_by_name({k: _P(k) for k in ("cat", "dog")}, {k: _P(k) for k in ("one", "two")}, "I", "M")


def test_one_folder_holding_images_and_masks():
    files = {k: _P(k) for k in ("a", "a_mask", "b", "b_mask", "b_1", "b_1_mask")}
    images, masks = split_shared_folder(files, "F")
    assert sorted(images) == ["a", "b", "b_1"] and sorted(masks) == ["a_mask", "b_1_mask", "b_mask"]
    with pytest.raises(UserError, match="^F: data.images and data.masks are this one folder"):
        split_shared_folder({k: _P(k) for k in ("a", "b")}, "F")


def test_find_pairs_across_folders_and_in_one(tmp_path):
    images = make_folder(tmp_path / "images", ["ISIC_01.jpg", "ISIC_02.jpg"])
    masks = make_folder(tmp_path / "masks", ["ISIC_01_segmentation.png", "ISIC_02_segmentation.png"])
    pairs, _ = find_pairs(images, masks)
    assert [(s, i.name, m.name) for s, i, m in pairs] == [("ISIC_01", "ISIC_01.jpg", "ISIC_01_segmentation.png"),
                                                         ("ISIC_02", "ISIC_02.jpg", "ISIC_02_segmentation.png")]
    both = make_folder(tmp_path / "both", ["c.tif", "c_mask.tif", "d.tif", "d_mask.tif"])
    pairs, _ = find_pairs(both, both)
    assert [(s, i.name, m.name) for s, i, m in pairs] == [("c", "c.tif", "c_mask.tif"), ("d", "d.tif", "d_mask.tif")]


class _P(str):
    """A stand-in path: its name is itself."""
    @property
    def name(self):
        return str(self)


def test_dvc_repro_on_one_folder_of_images_and_masks(tmp_path):
    """data.images and data.masks the same `dvc add`-ed folder: DVC takes the one folder as both inputs."""
    project = make_project(tmp_path)
    project.repro("prepare")  # the synthetic data to copy from
    both = project.root / "data" / "own" / "all"
    both.mkdir(parents=True)
    for image in sorted((project.root / "data/synthetic/images").glob("*.png")):
        shutil.copy(image, both / image.name)
        shutil.copy(project.root / "data/synthetic/labels" / image.name, both / f"{image.stem}_mask.png")
    project.dvc("add", "data/own/all")
    project.set_params({"data": {"images": "data/own/all", "masks": "data/own/all"}})
    assert project.repro("prepare") == {"prepare"}
    report = json.loads((project.root / "reports/data.json").read_text())
    assert report["pairing"] == {"rule": "'*' ↔ '*_mask'", "example": ["synth_000.png", "synth_000_mask.png"]}
    assert report["images"] == len(list(both.glob("*_mask.png")))
    assert project.repro("prepare") == set()
