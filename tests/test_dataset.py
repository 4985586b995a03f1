import numpy as np
import pytest
import tifffile
from scipy import ndimage
from PIL import Image

from unetseg.dataset import (check_explicit_split, check_pair, check_trainable, find_pairs, instance_labels,
                             integrity_report, integrity_warnings, is_binary, list_images, mask_to_classes,
                             read_user_mask, region_grid, region_windows, resolve_channels, resolve_mask_type,
                             split_stems)
from unetseg.errors import UserError


def make_folder(root, names, shape=(6, 8), value=255):
    root.mkdir(parents=True, exist_ok=True)
    for name in names:
        array = np.zeros(shape, np.uint8)
        array[1:3, 2:5] = value
        Image.fromarray(array).save(root / name)
    return root


def test_find_pairs_matches_stems_across_formats(tmp_path):
    images = make_folder(tmp_path / "images", ["b.png", "a.tif"])
    masks = make_folder(tmp_path / "masks", ["a.png", "b.png"])
    pairs, pairing = find_pairs(images, masks)
    assert pairing.rule.describe() == "same name"
    assert [(stem, img.name, msk.name) for stem, img, msk in pairs] == [("a", "a.tif", "a.png"), ("b", "b.png", "b.png")]


def test_image_without_mask_is_named(tmp_path):
    images = make_folder(tmp_path / "images", ["a.png", "lonely.png"])
    masks = make_folder(tmp_path / "masks", ["a.png"])
    with pytest.raises(UserError, match=r"lonely\.png: no mask named 'lonely\.\*'.* or set prepare\.unpaired: skip "
                                        r"to leave out the 1 of 2 images without one$"):
        find_pairs(images, masks)


def test_skip_unpaired_leaves_out_images_and_masks_without_a_partner(tmp_path):
    images = make_folder(tmp_path / "images", ["t000.tif", "t001.tif", "t002.tif", "t003.tif"])
    masks = make_folder(tmp_path / "masks", ["man_seg001.tif", "man_seg003.tif", "man_seg009.tif"])
    pairs, pairing = find_pairs(images, masks, skip_unpaired=True)
    assert [(stem, image.name, mask.name) for stem, image, mask in pairs] == [
        ("t001", "t001.tif", "man_seg001.tif"), ("t003", "t003.tif", "man_seg003.tif")]
    assert [p.name for p in pairing.lone_images] == ["t000.tif", "t002.tif"]
    assert [p.name for p in pairing.lone_masks] == ["man_seg009.tif"]
    with pytest.raises(UserError, match=r"t000\.tif: no mask named 'man_seg000\.\*'.*the 2 of 4 images without one$"):
        find_pairs(images, masks)


def test_mask_without_image_is_named(tmp_path):
    images = make_folder(tmp_path / "images", ["a.png"])
    masks = make_folder(tmp_path / "masks", ["a.png", "extra.png"])
    with pytest.raises(UserError, match=r"extra\.png: mask without an image.*the 1 of 2 masks without one$"):
        find_pairs(images, masks)


def test_empty_and_missing_folders_name_the_key(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no images .* point data.images"):
        list_images(tmp_path / "empty", "data.images")
    with pytest.raises(UserError, match="folder not found; set data.masks"):
        list_images(tmp_path / "nope", "data.masks")


def test_duplicate_stems_are_refused(tmp_path):
    folder = make_folder(tmp_path / "images", ["a.png", "a.tif"])
    with pytest.raises(UserError, match="two files share the stem 'a'"):
        list_images(folder, "data.images")


def test_check_pair_refuses_a_mask_of_another_size(tmp_path):
    image = make_folder(tmp_path / "images", ["a.png"], shape=(6, 8)) / "a.png"
    mask = make_folder(tmp_path / "masks", ["a.png"], shape=(6, 9)) / "a.png"
    with pytest.raises(UserError, match=r"mask is 6x9 but image .* is 6x8"):
        check_pair(image, mask, 1)


def test_check_pair_summarises(tmp_path):
    image = make_folder(tmp_path / "images", ["a.png"]) / "a.png"
    mask = make_folder(tmp_path / "masks", ["a.png"]) / "a.png"
    assert check_pair(image, mask, 1) == {"shape": [6, 8], "dtype": "uint8", "channels": 1, "colour": False,
                                          "class_pixels": [42, 6], "foreground_fraction": 6 / 48, "objects": 1,
                                          "object_ids": False}


def test_check_pair_counts_every_class_and_tells_colour_from_gray_rgb(tmp_path):
    (tmp_path / "images").mkdir()
    rgb = np.zeros((4, 4, 3), np.uint16)
    rgb[..., 0] = 1000
    tifffile.imwrite(tmp_path / "images" / "c.tif", rgb)
    Image.fromarray(np.full((4, 4, 3), 7, np.uint8)).save(tmp_path / "images" / "g.png")
    mask = make_folder(tmp_path / "masks", ["m.png"], shape=(4, 4), value=2) / "m.png"
    colour = check_pair(tmp_path / "images" / "c.tif", mask, 3)
    assert (colour["dtype"], colour["colour"], colour["class_pixels"]) == ("uint16", True, [12, 0, 4])
    assert check_pair(tmp_path / "images" / "g.png", mask, 3)["colour"] is False


def summary(shape=(6, 8), dtype="uint8", colour=False, class_pixels=(40, 8), channels=None):
    total = sum(class_pixels)
    return {"shape": list(shape), "dtype": dtype, "channels": channels or (3 if colour else 1), "colour": colour,
            "class_pixels": list(class_pixels), "foreground_fraction": 1 - class_pixels[0] / total}


def test_auto_channels_follow_the_data():
    gray = {"a": summary(), "b": summary()}
    assert resolve_channels("auto", gray) == 1
    assert resolve_channels("auto", {**gray, "c": summary(colour=True)}) == 3
    assert resolve_channels(1, {"c": summary(colour=True)}) == 1
    stains = {"a": summary(channels=2), "b": summary(channels=2)}
    assert resolve_channels("auto", stains) == 2 and resolve_channels(2, stains) == 2
    with pytest.raises(UserError, match=r"data\.images: the images hold 1 and 2 channels; save them all with the same"):
        resolve_channels("auto", {**stains, "g": summary()})
    with pytest.raises(UserError, match=r"params\.yaml: data\.channels=1, but image 'a' holds 2 channels"):
        resolve_channels(1, stains)


def test_integrity_report_counts_sizes_dtypes_classes_and_empty_masks():
    summaries = {"a": summary(), "b": summary(shape=(10, 4), dtype="uint16", class_pixels=(40, 0)),
                 "c": summary(colour=True, class_pixels=(24, 24))}
    splits = {"train": ["a", "c"], "val": [], "test": ["b"]}
    report = integrity_report(summaries, splits, "auto", 3)
    assert report == {
        "images": 3, "split": {"train": 2, "val": 0, "test": 1},
        "height": {"min": 6, "max": 10}, "width": {"min": 4, "max": 8}, "distinct_sizes": 2,
        "dtypes": {"uint16": 1, "uint8": 2}, "colour_images": 1, "channels": {"param": "auto", "used": 3},
        "class_pixel_fraction": {"0": round(104 / 136, 6), "1": round(32 / 136, 6)},
        "empty_masks": {"count": 1, "images": ["b"]}, "soft_masks": {"count": 0, "images": []},
        "colour_masks": {"count": 0, "images": []},
    }


def test_warnings_name_what_is_odd():
    summaries = {"a": summary(class_pixels=(999, 1)), "b": summary(class_pixels=(1000, 0)),
                 "c": summary(colour=True, dtype="uint16", class_pixels=(1000, 0))}
    report = integrity_report(summaries, {"train": ["a", "b", "c"], "val": [], "test": []}, 1, 1)
    warnings = integrity_warnings(report, "dataset")
    assert len(warnings) == 4
    assert warnings[0].startswith("2 of 3 masks are empty (background only), e.g. 'b'")
    assert warnings[1].startswith("class 1 covers only 0.03% of all pixels (extreme imbalance)")
    assert warnings[2].startswith("1 colour image(s) are read as gray because data.channels=1")
    assert warnings[3].startswith("images mix uint16 and uint8 while prepare.normalize=dataset")
    assert integrity_warnings(integrity_report({"a": summary()}, {"train": ["a"]}, 1, 1), "percentile") == []


def test_a_class_in_no_mask_is_a_warning():
    report = integrity_report({"a": summary(class_pixels=(30, 18, 0))}, {"train": ["a"]}, 1, 1)
    assert integrity_warnings(report, "percentile") == ["class 2 appears in no mask; check data.num_classes"]


def test_training_masks_all_empty_is_refused():
    summaries = {"a": summary(class_pixels=(48, 0)), "b": summary()}
    check_trainable(summaries, ["a", "b"])
    with pytest.raises(UserError, match=r"data.masks: all 1 training masks are empty"):
        check_trainable(summaries, ["a"])


@pytest.mark.parametrize("values", [[0, 255], [0, 1], [0], [255], [1]])
def test_binary_masks_become_0_1(values):
    mask = np.array(values, np.uint8)
    assert mask_to_classes(mask, 1, "m.png").tolist() == [int(v > 0) for v in values]


def test_mask_value_7_in_semantic_masks_of_one_class_is_refused():
    with pytest.raises(UserError, match=r"m\.png: mask values 0, 7, 255 are not binary \(0/1 or 0/255\)"):
        mask_to_classes(np.array([0, 7, 255]), 1, "m.png", "semantic")


def test_class_ids_must_fit_num_classes():
    assert mask_to_classes(np.array([0, 1, 2]), 3, "m.png").tolist() == [0, 1, 2]
    with pytest.raises(UserError, match="mask value 3 is not valid for data.num_classes=3"):
        mask_to_classes(np.array([0, 3]), 3, "m.png")


@pytest.mark.parametrize("count", [3, 4, 10, 48, 101])
def test_split_puts_every_image_in_exactly_one_split(count):
    stems = [f"img{i:03d}" for i in range(count)]
    split = split_stems(stems, 0.15, 0.15, seed=1)
    members = split["train"] + split["val"] + split["test"]
    assert sorted(members) == stems
    assert len(set(members)) == count
    assert split["val"] and split["test"] and split["train"]


def test_split_is_seeded():
    stems = [f"s{i}" for i in range(30)]
    assert split_stems(stems, 0.2, 0.2, 5) == split_stems(list(stems), 0.2, 0.2, 5)
    assert split_stems(stems, 0.2, 0.2, 5) != split_stems(stems, 0.2, 0.2, 6)


def test_too_few_images_for_the_split():
    with pytest.raises(UserError, match="only 2 image"):
        split_stems(["a", "b"], 0.3, 0.3, 0)


def test_explicit_split_is_checked():
    stems = ["a", "b", "c"]
    assert check_explicit_split({"train": ["b", "a"], "val": ["c"], "test": []}, stems)["train"] == ["a", "b"]
    with pytest.raises(UserError, match="'a' is in both train and val"):
        check_explicit_split({"train": ["a", "b"], "val": ["a"], "test": ["c"]}, stems)
    with pytest.raises(UserError, match="'z' is not an image"):
        check_explicit_split({"train": ["a", "b", "z"], "val": ["c"], "test": []}, stems)
    with pytest.raises(UserError, match="image 'c' is in no split"):
        check_explicit_split({"train": ["a", "b"], "val": [], "test": []}, stems)


def test_object_ids_are_kept_and_binary_masks_give_their_components():
    ids = np.array([[0, 3, 3, 0, 7], [0, 3, 3, 0, 7]])
    assert instance_labels(ids).tolist() == ids.tolist()
    binary = np.array([[0, 255, 0, 255], [0, 255, 0, 0]], np.uint8)
    assert instance_labels(binary).tolist() == [[0, 1, 0, 2], [0, 1, 0, 0]]
    assert mask_to_classes(ids, 1, "m.png").tolist() == (ids > 0).astype(int).tolist()


def test_mask_type_auto_is_instances_when_some_mask_holds_ids():
    summaries = {"a": {"object_ids": False}, "b": {"object_ids": True}}
    assert resolve_mask_type("auto", 1, summaries) == "instances"
    assert resolve_mask_type("auto", 1, {"a": {"object_ids": False}}) == "semantic"
    assert resolve_mask_type("semantic", 1, summaries) == "semantic"


def test_negative_mask_values_are_refused():
    with pytest.raises(UserError, match=r"m\.png: mask value -1 is negative"):
        mask_to_classes(np.array([0, -1]), 1, "m.png")


def discs(shape=(64, 64), radius=9, step=24) -> np.ndarray:
    """0/255 discs, some of them touching."""
    rows, cols = np.ogrid[:shape[0], :shape[1]]
    mask = np.zeros(shape, np.uint8)
    for y in range(radius + 2, shape[0] - radius, step):
        for x in range(radius + 2, shape[1] - radius, step - 6):
            mask[(rows - y) ** 2 + (cols - x) ** 2 <= radius**2] = 255
    return mask


def test_a_resized_0_255_mask_is_made_binary_again_and_reported(tmp_path):
    sharp = discs((128, 128))
    blurred = np.asarray(Image.fromarray(sharp).resize((96, 96), Image.BILINEAR))
    assert len(np.unique(blurred)) > 20  # values all along the edges
    Image.fromarray(blurred).save(tmp_path / "m.png")
    Image.fromarray(np.zeros((96, 96), np.uint8)).save(tmp_path / "i.png")
    mask, reading = read_user_mask(tmp_path / "m.png")
    assert reading == "soft" and set(np.unique(mask).tolist()) == {0, 255}
    assert np.array_equal(mask > 0, blurred >= 128)
    summary = check_pair(tmp_path / "i.png", tmp_path / "m.png", 1)
    assert summary["soft_mask"] and not summary["object_ids"]  # not 60 object ids
    report = integrity_report({"m": summary}, {"train": ["m"]}, 1, 1)
    assert report["soft_masks"] == {"count": 1, "images": ["m"]}
    assert integrity_warnings(report, "percentile")[0].startswith(
        "1 of 1 masks hold values between 0 and 255, e.g. 'm', as JPEG or resizing leave")


def test_jpeg_masks_are_read_when_binary_and_refused_otherwise(tmp_path):
    Image.fromarray(discs()).save(tmp_path / "m.jpg", quality=75)
    mask, _ = read_user_mask(tmp_path / "m.jpg")
    assert set(np.unique(mask).tolist()) <= {0, 255}
    assert np.count_nonzero((mask > 0) != (discs() > 0)) < 0.01 * mask.size
    for kwargs in ({"num_classes": 3}, {"mask_type": "instances"}):
        with pytest.raises(UserError, match=r"m\.jpg: JPEG mask, .* \(JPEG only for binary 0/255 masks of one class\)"):
            read_user_mask(tmp_path / "m.jpg", **kwargs)
    ids = np.zeros((8, 8), np.uint8)
    ids[1:3, 1:3], ids[5:7, 5:7] = 1, 2
    Image.fromarray(ids).save(tmp_path / "ids.jpg", quality=100)
    with pytest.raises(UserError, match="JPEG only for binary 0/255 masks of one class"):
        read_user_mask(tmp_path / "ids.jpg")


def colour_coded(path):
    """Three objects on black: red and green touching, and a second red one apart from them."""
    mask = np.zeros((8, 12, 3), np.uint8)
    mask[1:4, 1:4] = mask[5:7, 8:11] = (255, 0, 0)
    mask[1:4, 4:7] = (0, 255, 0)
    Image.fromarray(mask).save(path)
    return path


def test_a_colour_coded_mask_gives_one_object_per_region_of_one_colour(tmp_path):
    """Label images drawn for viewing (QuPath's or Fiji's coloured labels, saved flat): touching
    objects apart by their colours, one colour used again for objects apart."""
    mask, reading = read_user_mask(colour_coded(tmp_path / "c.png"))
    assert reading == "colour" and mask.shape == (8, 12) and mask.max() == 3
    expected = np.zeros((8, 12), int)
    expected[1:4, 1:4], expected[1:4, 4:7], expected[5:7, 8:11] = 1, 2, 3
    assert np.array_equal(mask, expected)  # numbered in raster order
    images = make_folder(tmp_path / "images", ["c.png"], shape=(8, 12))
    summaries = {"c": check_pair(images / "c.png", tmp_path / "c.png", 1)}
    assert summaries["c"]["objects"] == 3 and resolve_mask_type("auto", 1, summaries) == "instances"
    report = integrity_report(summaries, {"train": ["c"]}, 1, 1)
    assert report["colour_masks"] == {"count": 1, "images": ["c"]}
    assert integrity_warnings(report, "percentile")[0].startswith(
        "1 of 1 masks are in colour, e.g. 'c': read as objects, one per connected region of one colour on black")


def test_a_mask_drawn_in_one_colour_is_binary_and_colour_masks_of_classes_or_jpeg_are_refused(tmp_path):
    red = np.zeros((6, 8, 3), np.uint8)
    red[1:3, 1:3] = red[1:3, 5:7] = (200, 30, 30)
    Image.fromarray(red).save(tmp_path / "red.png")
    mask, _ = read_user_mask(tmp_path / "red.png")
    assert np.array_equal(mask, np.where(red[..., 0] > 0, 255, 0))  # binary: its components come later
    with pytest.raises(UserError, match=r"c\.png: colour mask; with data.num_classes=3 save class ids 0\.\.2 as"):
        read_user_mask(colour_coded(tmp_path / "c.png"), num_classes=3)
    Image.fromarray(red).save(tmp_path / "red.jpg", quality=95)
    with pytest.raises(UserError, match=r"red\.jpg: JPEG mask"):
        read_user_mask(tmp_path / "red.jpg")
    with pytest.raises(UserError, match="for object ids data.mask_type: instances"):
        mask_to_classes(read_user_mask(tmp_path / "c.png", mask_type="semantic")[0], 1, "c.png", "semantic")


def test_a_colour_mask_with_blended_edges_is_refused(tmp_path):
    """Resized with interpolation, a colour-coded mask's edges hold in-between colours: specks, not objects."""
    ids = ndimage.label(discs((96, 96)))[0]
    palette = np.random.default_rng(0).integers(40, 256, (ids.max() + 1, 3)).astype(np.uint8)
    palette[0] = 0
    sharp = Image.fromarray(palette[ids])
    sharp.save(tmp_path / "sharp.png")
    assert read_user_mask(tmp_path / "sharp.png")[0].max() == ids.max()
    sharp.resize((144, 144), Image.BILINEAR).save(tmp_path / "resized.png")
    with pytest.raises(UserError, match=r"resized\.png: colour mask whose \d+ of \d+ one-colour regions are specks of "
                                        r"2 px or less, as blended edges leave"):
        read_user_mask(tmp_path / "resized.png")


def test_object_ids_are_not_taken_for_a_blurred_mask(tmp_path):
    ids = np.zeros((16, 256), np.uint8)
    for index in range(255):  # 255 objects of 16 px: the last six hold 6/255 of the foreground
        ids[:, index] = index + 1
    Image.fromarray(ids).save(tmp_path / "ids.png")
    mask, reading = read_user_mask(tmp_path / "ids.png")
    assert reading is None and np.array_equal(mask, ids)
    mask, reading = read_user_mask(tmp_path / "ids.png", mask_type="instances")
    assert reading is None


def test_a_16_bit_0_65535_mask_is_binary():
    assert is_binary(np.array([0, 65535])) and not is_binary(np.array([0, 255, 65535]))
    mask = np.zeros((6, 6), np.uint16)
    mask[0:2, 0:2] = mask[4:6, 4:6] = 65535
    assert instance_labels(mask).max() == 2  # its connected components, not one object of id 65535


def test_masks_of_0_and_one_other_value_are_binary_not_one_object_each(tmp_path):
    """A binary mask saved with palette index 2 (or gray 128): the same single value in every mask."""
    masks = [np.zeros((6, 9), np.uint8) for _ in range(2)]
    masks[0][1:3, 1:3] = masks[0][1:3, 5:8] = 2  # two separate blobs
    masks[1][2:4, 2:6] = 2
    make_folder(tmp_path / "images", ["a.png", "b.png"], shape=(6, 9))
    (tmp_path / "masks").mkdir()
    for name, mask in zip("ab", masks):
        Image.fromarray(mask).save(tmp_path / "masks" / f"{name}.png")
    summaries = {name: check_pair(tmp_path / "images" / f"{name}.png", tmp_path / "masks" / f"{name}.png", 1)
                 for name in "ab"}
    assert summaries["a"]["single_value"] == 2 and summaries["a"]["objects"] == 2
    assert resolve_mask_type("auto", 1, summaries) == "semantic"
    assert instance_labels(masks[0], "semantic").max() == 2  # its components, not one object of id 2
    report = {**integrity_report(summaries, {"train": ["a", "b"], "val": [], "test": []}, "auto", 1),
              "mask_type": "semantic"}
    assert any("masks hold 0 and 2 only" in warning for warning in integrity_warnings(report, "percentile"))
    assert not any("masks hold 0 and 2" in w for w in integrity_warnings({**report, "mask_type": "instances"},
                                                                         "percentile"))
    summaries["b"]["single_value"] = 3  # different values: object ids after all
    assert resolve_mask_type("auto", 1, summaries) == "instances"


@pytest.mark.parametrize("setting, count, explicit, grid", [
    ("auto", 1, False, 4), ("auto", 2, False, 3), ("auto", 3, False, 1), ("auto", 100, False, 1),
    ("auto", 1, True, 1), (4, 100, False, 4), (2, 1, True, 2)])
def test_region_grid_cuts_images_only_when_too_few_for_the_split(setting, count, explicit, grid):
    assert region_grid(setting, count, 0.15, 0.15, explicit) == grid


def test_region_windows_tile_the_image_in_near_equal_parts():
    windows = region_windows((130, 200), 2, "a.png")
    assert windows == [(0, 65, 0, 100), (0, 65, 100, 200), (65, 130, 0, 100), (65, 130, 100, 200)]
    assert region_windows((10, 10), 1, "a.png") == [None]
    with pytest.raises(UserError, match=r"a\.png: 130x200 px is too small to cut into 3x3 regions of 64 px"):
        region_windows((130, 200), 3, "a.png")
