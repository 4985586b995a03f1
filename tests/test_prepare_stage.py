import csv
import json
import re

import numpy as np
import pytest
from PIL import Image

from stage_runner import STAGES, TINY, error_line, run_stage, write_params
from unetseg.normalize import load_prepared_image
from unetseg.synthetic import synthesize_image

SIZE = (40, 48)


def make_dataset(root, count=6, shape=SIZE):
    for sub in ("images", "masks"):
        (root / "raw" / sub).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        image = rng.integers(0, 200, shape, dtype=np.uint8)
        mask = np.zeros(shape, np.uint8)
        mask[5:15, 5 + i:20 + i] = 255
        Image.fromarray(image).save(root / "raw" / "images" / f"img{i}.png")
        Image.fromarray(mask).save(root / "raw" / "masks" / f"img{i}.png")
    return root


PARAMS = {"data": {"images": "raw/images", "masks": "raw/masks", "mask_type": "semantic"},
          "prepare": {"val_fraction": 0.2, "test_fraction": 0.2}}


@pytest.fixture
def dataset(tmp_path):
    write_params(make_dataset(tmp_path), PARAMS)
    return tmp_path


def test_prepare_writes_split_arrays_and_manifest(dataset):
    result = run_stage("prepare", dataset)
    assert result.returncode == 0, result.stderr
    manifest = json.loads((dataset / "data/prepared/manifest.json").read_text())
    assert manifest["counts"] == {"train": 4, "val": 1, "test": 1}
    stems = sum(manifest["splits"].values(), [])
    assert sorted(stems) == [f"img{i}" for i in range(6)]
    for split, members in manifest["splits"].items():
        for stem in members:
            path = dataset / f"data/prepared/{split}/images/{stem}.npy"
            stored, image = np.load(path), load_prepared_image(path, manifest, stem)
            assert stored.dtype == np.uint8, "kept as read: a quarter of float32's bytes"
            assert np.array_equal(stored[..., 0], np.asarray(Image.open(dataset / f"raw/images/{stem}.png")))
            assert image.shape == SIZE + (1,) and image.dtype == np.float32
            assert image.min() < 0.05 and 0.95 < image.max() < 1.05  # the percentiles to [0, 1]
            mask = np.load(dataset / f"data/prepared/{split}/masks/{stem}.npy")
            assert mask.shape == SIZE and set(np.unique(mask)) <= {0, 1}
            assert np.load(dataset / f"data/prepared/{split}/labels/{stem}.npy").dtype == np.uint16
    assert manifest["normalization"]["mode"] == "percentile"


def test_prepare_is_byte_identical_across_runs(dataset):
    run_stage("prepare", dataset)
    first = {p.relative_to(dataset): p.read_bytes() for p in (dataset / "data/prepared").rglob("*") if p.is_file()}
    run_stage("prepare", dataset)
    second = {p.relative_to(dataset): p.read_bytes() for p in (dataset / "data/prepared").rglob("*") if p.is_file()}
    assert first == second


def test_dataset_normalisation_uses_train_statistics(dataset):
    write_params(dataset, {**PARAMS, "prepare": {**PARAMS["prepare"], "normalize": "dataset"}})
    assert run_stage("prepare", dataset).returncode == 0
    spec = json.loads((dataset / "data/prepared/manifest.json").read_text())["normalization"]
    assert spec["mode"] == "dataset" and spec["mean"][0] > 0 and spec["std"][0] > 0  # one a channel


def break_image_without_mask(root):
    (root / "raw/masks/img0.png").unlink()


def break_mask_size(root):
    Image.fromarray(np.zeros((40, 50), np.uint8)).save(root / "raw/masks/img1.png")


def break_mask_value(root):
    mask = np.zeros(SIZE, np.uint8)
    mask[0, 0] = 7
    Image.fromarray(mask).save(root / "raw/masks/img2.png")


def break_png(root):
    (root / "raw/images/img3.png").write_bytes(b"\x89PNG\r\n\x1a\ngarbage")


def all_masks_empty(root):
    for path in (root / "raw/masks").iterdir():
        Image.fromarray(np.zeros(SIZE, np.uint8)).save(path)


def empty_folder(root):
    for path in (root / "raw/images").iterdir():
        path.unlink()


def unknown_key(root):
    write_params(root, {**PARAMS, "prepare": {**PARAMS["prepare"], "val_fracton": 0.2}})


def wrong_type(root):
    write_params(root, {**PARAMS, "train": {"epochs": "ten"}})


def no_validation(root):
    write_params(root, {**PARAMS, "prepare": {"val_fraction": 0, "test_fraction": 0.2}})


def explicit_split_without_val(root):
    split = {"train": ["img0", "img1", "img2", "img3"], "val": [], "test": ["img4", "img5"]}
    write_params(root, {**PARAMS, "prepare": {"split": split}})


def patch_size_100(root):
    write_params(root, {**PARAMS, "extract": {"patch_size": 100}, "model": {"depth": 4}})


@pytest.mark.parametrize(
    "breakage, expected",
    [
        (break_image_without_mask, r"raw/images/img0\.png: no mask named 'img0\.\*'"),
        (break_mask_size, r"raw/masks/img1\.png: mask is 40x50 but image .*img1\.png is 40x48"),
        (break_mask_value, r"raw/masks/img2\.png: mask values 0, 7 are not binary \(0/1 or 0/255\) as data\.num_classes=1 expects; .*data\.mask_type: instances"),
        (break_png, r"raw/images/img3\.png: cannot read image"),
        (empty_folder, r"raw/images: no images .* point data\.images"),
        (all_masks_empty, r"data\.masks: all 4 training masks are empty .* nothing to learn"),
        (unknown_key, r"params\.yaml: unknown key 'prepare\.val_fracton'"),
        (wrong_type, r"params\.yaml: train\.epochs: must be auto \(the plan decides\) or a valid integer"),
        (patch_size_100, r"params\.yaml: extract\.patch_size=100 must be divisible by 2\*\*model\.depth = 16"),
        (no_validation, r"params\.yaml: prepare: no validation images, .* set prepare\.val_fraction > 0"),
        (explicit_split_without_val, r"params\.yaml: prepare: no validation images, .* prepare\.split\.val"),
    ],
    ids=["image without mask", "mask of another size", "mask value 7", "corrupt png", "empty folder", "all masks empty",
         "unknown params key", "wrong type", "patch_size 100 with depth 4", "val_fraction 0", "split without val"],
)
def test_bad_input_gives_one_line_exit_2_and_no_output(dataset, breakage, expected):
    breakage(dataset)
    result = run_stage("prepare", dataset)
    assert re.search(expected, error_line(result))
    assert not (dataset / "data/prepared").exists()
    assert not list(dataset.rglob(".*.tmp")), "no half-written output"


def test_a_failed_rerun_keeps_the_previous_output_whole(dataset):
    assert run_stage("prepare", dataset).returncode == 0
    before = (dataset / "data/prepared/manifest.json").read_bytes()
    break_mask_value(dataset)
    assert run_stage("prepare", dataset).returncode == 2
    assert (dataset / "data/prepared/manifest.json").read_bytes() == before


def test_prepare_reports_the_dataset_and_warns_about_empty_masks(dataset):
    Image.fromarray(np.zeros(SIZE, np.uint8)).save(dataset / "raw/masks/img5.png")
    result = run_stage("prepare", dataset)
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
    assert warnings == ["warning: 1 of 6 masks are empty (background only), e.g. 'img5': fine for true "
                        "negatives, otherwise check those masks"]
    report = json.loads((dataset / "reports/data.json").read_text())
    assert report["images"] == 6 and report["split"] == {"train": 4, "val": 1, "test": 1}
    assert report["empty_masks"] == {"count": 1, "images": ["img5"]}
    assert report["channels"] == {"param": "auto", "used": 1}


def test_three_images_split_one_each_and_warn_that_one_trains(tmp_path):
    write_params(make_dataset(tmp_path, count=3), {"data": PARAMS["data"]})
    result = run_stage("prepare", tmp_path)
    assert result.returncode == 0, result.stderr
    assert "split 1/1/1" in result.stdout
    assert "warning: one training image of 3: the model learns from it alone; prepare.regions: 2" in result.stderr


def test_a_partly_annotated_dataset_trains_on_the_annotated_images_with_unpaired_skip(dataset):
    for stem in ("img1", "img4"):
        (dataset / f"raw/masks/{stem}.png").unlink()
    Image.fromarray(np.zeros(SIZE, np.uint8)).save(dataset / "raw/masks/gone.png")
    assert "or set prepare.unpaired: skip" in error_line(run_stage("prepare", dataset))
    write_params(dataset, {**PARAMS, "prepare": {**PARAMS["prepare"], "unpaired": "skip"}})
    result = run_stage("prepare", dataset)
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
    assert warnings == [
        "warning: 2 of 6 images in raw/images have no mask and are left out (prepare.unpaired: skip), e.g. "
        "img1.png; reports/data.json lists them (pairing.images_without_mask)",
        "warning: 1 of 5 masks in raw/masks have no image and are left out (prepare.unpaired: skip), e.g. "
        "gone.png; reports/data.json lists them (pairing.masks_without_image)"]
    manifest = json.loads((dataset / "data/prepared/manifest.json").read_text())
    assert sorted(manifest["images"]) == ["img0", "img2", "img3", "img5"]
    report = json.loads((dataset / "reports/data.json").read_text())
    assert report["pairing"] == {"rule": "same name", "example": ["img0.png", "img0.png"],
                                 "images_without_mask": ["img1.png", "img4.png"],
                                 "masks_without_image": ["gone.png"]}


def test_jpeg_masks_of_one_class_are_cut_at_128_and_reported(tmp_path):
    """As Kvasir-SEG ships them; with mask_type auto they must not pass for maps of object ids."""
    make_dataset(tmp_path)
    for path in sorted((tmp_path / "raw/masks").glob("*.png")):
        Image.open(path).save(path.with_suffix(".jpg"), quality=75)
        path.unlink()
    write_params(tmp_path, {**PARAMS, "data": {**PARAMS["data"], "mask_type": "auto"}})
    result = run_stage("prepare", tmp_path)
    assert result.returncode == 0, result.stderr
    assert "warning: 6 of 6 masks hold values between 0 and 255, e.g. 'img0'" in result.stderr
    report = json.loads((tmp_path / "reports/data.json").read_text())
    assert report["mask_type"] == "semantic" and report["soft_masks"]["count"] == 6 and report["objects"] == 6
    manifest = json.loads((tmp_path / "data/prepared/manifest.json").read_text())
    stem = manifest["splits"]["train"][0]
    mask = np.load(tmp_path / f"data/prepared/train/masks/{stem}.npy")
    assert np.count_nonzero(mask) == 10 * 15  # the rectangle, edges exact after the cut
    write_params(tmp_path, {**PARAMS, "data": {**PARAMS["data"], "num_classes": 3}})
    assert "JPEG only for binary 0/255 masks of one class" in error_line(run_stage("prepare", tmp_path))


def make_mixed_polarity(root, count=6):
    """Bright objects on dark (fluorescence) in even images, dark on bright (brightfield) in odd ones."""
    for sub in ("images", "masks"):
        (root / "raw" / sub).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    for i in range(count):
        mask = np.zeros(SIZE, np.uint8)
        mask[5:15, 5 + i:20 + i] = 255
        image = np.where(mask > 0, 180, 30).astype(np.uint8) + rng.integers(0, 20, SIZE, dtype=np.uint8)
        Image.fromarray(image if i % 2 == 0 else 255 - image).save(root / "raw" / "images" / f"img{i}.png")
        Image.fromarray(mask).save(root / "raw" / "masks" / f"img{i}.png")
    return root


@pytest.mark.parametrize("invert, used", [("auto", "bright_background"), ("none", "none")])
def test_prepare_inverts_bright_background_images_when_polarity_is_mixed(tmp_path, invert, used):
    write_params(make_mixed_polarity(tmp_path), {**PARAMS, "prepare": {**PARAMS["prepare"], "invert": invert}})
    result = run_stage("prepare", tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "reports/data.json").read_text())
    assert report["invert"]["param"] == invert and report["invert"]["used"] == used
    assert f"prepare: invert {used}: " in result.stdout
    manifest = json.loads((tmp_path / "data/prepared/manifest.json").read_text())
    assert manifest["normalization"]["invert"] == used
    polarity = set()
    for split, members in manifest["splits"].items():
        for stem in members:
            image = load_prepared_image(tmp_path / f"data/prepared/{split}/images/{stem}.npy", manifest, stem)[..., 0]
            mask = np.load(tmp_path / f"data/prepared/{split}/masks/{stem}.npy") > 0
            polarity.add(bool(image[mask].mean() > image[~mask].mean()))
    assert polarity == ({True} if used == "bright_background" else {True, False})


def one_image_dataset(root, shape=(280, 300)):
    """One gray image whose mask holds a blob cut by the region borders, and one inside a region."""
    for sub in ("images", "masks"):
        (root / "raw" / sub).mkdir(parents=True, exist_ok=True)
    image = np.random.default_rng(0).integers(0, 200, shape, dtype=np.uint8)
    mask = np.zeros(shape, np.uint8)
    mask[55:85, 60:90] = 255  # across the first row and column cuts of a 4x4 grid (70, 75 px)
    mask[230:250, 240:260] = 255
    Image.fromarray(image).save(root / "raw/images/field.png")
    Image.fromarray(mask).save(root / "raw/masks/field.png")
    return image, mask


def test_one_image_is_cut_into_regions_split_like_images(tmp_path):
    image, mask = one_image_dataset(tmp_path)
    write_params(tmp_path, {"data": PARAMS["data"]})  # the default fractions: too few images to split
    result = run_stage("prepare", tmp_path)
    assert result.returncode == 0, result.stderr
    assert "1 image pairs cut into 4x4 regions (16)" in result.stdout and "split 12/2/2" in result.stdout
    manifest = json.loads((tmp_path / "data/prepared/manifest.json").read_text())
    stems = sorted(sum(manifest["splits"].values(), []))
    assert stems == sorted(f"field_r{i}c{j}" for i in range(4) for j in range(4))
    stored = {stem: {kind: np.load(tmp_path / f"data/prepared/{manifest['images'][stem]['split']}/{kind}/{stem}.npy")
                     for kind in ("images", "masks", "labels")} for stem in stems}
    rows = [np.concatenate([stored[f"field_r{i}c{j}"]["images"] for j in range(4)], axis=1) for i in range(4)]
    assert np.array_equal(np.concatenate(rows)[..., 0], image)  # the regions tile the image exactly
    rows = [np.concatenate([stored[f"field_r{i}c{j}"]["masks"] for j in range(4)], axis=1) for i in range(4)]
    assert np.array_equal(np.concatenate(rows), mask > 0)
    entries = manifest["images"]
    assert entries["field_r1c2"]["region"] == [70, 140, 150, 225] and entries["field_r1c2"]["shape"] == [70, 75]
    assert len({json.dumps(entries[stem]["levels"]) for stem in stems}) == 1  # the whole image's normalisation
    for stem in ("field_r0c0", "field_r1c0", "field_r0c1", "field_r1c1"):  # the cut blob: an object in each
        assert stored[stem]["labels"].max() == 1 and entries[stem]["objects"] == 1
    assert "warning: 11 of 16 regions' masks are empty (background only)" in result.stderr
    report = json.loads((tmp_path / "reports/data.json").read_text())
    assert report["regions"]["grid"] == 4 and "1 image(s) are too few for the split" in report["regions"]["reason"]


def test_dataset_normalisation_of_regions_takes_the_training_regions_pixels(tmp_path):
    image, _ = one_image_dataset(tmp_path)
    write_params(tmp_path, {"data": PARAMS["data"], "prepare": {"normalize": "dataset"}})
    assert run_stage("prepare", tmp_path).returncode == 0
    manifest = json.loads((tmp_path / "data/prepared/manifest.json").read_text())
    train = [np.load(tmp_path / f"data/prepared/train/images/{stem}.npy") for stem in manifest["splits"]["train"]]
    pixels = np.concatenate([region.ravel() for region in train]).astype(np.float64)
    assert pixels.size < image.size  # not the whole image's
    assert manifest["normalization"]["mean"] == [pytest.approx(pixels.mean())]
    assert manifest["normalization"]["std"] == [pytest.approx(pixels.std())]


def test_regions_pinned_cut_every_image_and_an_explicit_split_names_them(tmp_path):
    dataset = make_dataset(tmp_path, shape=(130, 140))
    split = {"train": [f"img{i}_r{r}c{c}" for i in range(6) for r in range(2) for c in range(2)][2:],
             "val": ["img0_r0c0"], "test": ["img0_r0c1"]}
    write_params(dataset, {**PARAMS, "prepare": {"regions": 2, "split": split}})
    result = run_stage("prepare", dataset)
    assert result.returncode == 0, result.stderr
    manifest = json.loads((dataset / "data/prepared/manifest.json").read_text())
    assert manifest["counts"] == {"train": 22, "val": 1, "test": 1}
    assert manifest["images"]["img0_r0c1"]["region"] == [0, 65, 70, 140]


def test_regions_too_small_are_refused_in_one_line(dataset):
    write_params(dataset, {**PARAMS, "prepare": {"regions": 2}})
    result = run_stage("prepare", dataset)
    assert re.search(r"raw/images/img0\.png: 40x48 px is too small to cut into 2x2 regions of 64 px or more "
                     r"\(prepare\.regions", error_line(result))
    assert not (dataset / "data/prepared").exists()


def test_one_image_goes_through_every_stage_and_its_test_regions_are_measured(tmp_path):
    image, labels = synthesize_image(np.random.default_rng(1), 260, 260, (24, 24))
    for sub, array in (("images", image), ("masks", (labels > 0).astype(np.uint8) * 255)):
        (tmp_path / "raw" / sub).mkdir(parents=True)
        Image.fromarray(array).save(tmp_path / "raw" / sub / "field.png")
    write_params(tmp_path, {**{k: v for k, v in TINY.items() if k not in ("synthesize", "prepare")},
                            "data": PARAMS["data"]})
    for stage in STAGES[1:]:
        result = run_stage(stage, tmp_path)
        assert result.returncode == 0, f"{stage} failed:\n{result.stderr}"
    manifest = json.loads((tmp_path / "data/prepared/manifest.json").read_text())
    measured = 0
    for test in manifest["splits"]["test"]:
        top, bottom, left, right = manifest["images"][test]["region"]
        objects = np.asarray(Image.open(tmp_path / f"data/predictions/{test}_instances.png"))
        assert objects.shape == (bottom - top, right - left)
        crop = image[top:bottom, left:right]
        for row in csv.DictReader((tmp_path / f"data/objects/{test}.csv").open()):  # the region's intensities
            assert float(row["mean_intensity"]) == pytest.approx(crop[objects == int(row["object"])].mean(), abs=1e-3)
            measured += 1
    assert measured
    metrics = json.loads((tmp_path / "reports/metrics.json").read_text())
    assert metrics["n_images"] == 2
