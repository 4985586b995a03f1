"""The plan: what it chooses for a few kinds of data, and that a pinned value always wins."""

import numpy as np
import pytest

from unetseg.errors import UserError
from unetseg.params import parse_params
from unetseg.plan import (PINNED, count_patches, dataset_fingerprint, describe, image_fingerprint, make_plan,
                          scale_reason, stage_values, typical_diameter, unet_flops, working_scale)
from unetseg.unet import build_unet


def fingerprint(shape=(512, 512), count=20, foreground=0.1, channels=1, num_classes=1, val=4, radius=10):
    """A training set of `count` images of `shape` whose masks hold `foreground` of the pixels as discs."""
    height, width = shape
    mask = np.zeros(shape, np.uint8)
    rows, cols = np.ogrid[:height, :width]
    centres = [(y, x) for y in range(radius, height - radius, 3 * radius) for x in range(radius, width - radius, 3 * radius)]
    for y, x in centres:
        if mask.mean() >= foreground:
            break
        mask[(rows - y) ** 2 + (cols - x) ** 2 <= radius**2] = 1
    if mask.mean() < foreground:  # more foreground than discs can give: fill whole rows
        mask[: int(round(foreground * height))] = 1
    image = np.random.default_rng(0).random((height, width, channels)).astype(np.float32)
    per_image = image_fingerprint(image, mask, num_classes)
    return dataset_fingerprint([per_image] * count, [list(shape)] * val, channels, num_classes)


def plan_for(fp, **sections):
    return make_plan(fp, parse_params(sections))


def test_a_typical_dataset_gets_the_classic_network_and_small_patches_for_small_objects():
    plan = plan_for(fingerprint((512, 512)))  # discs of 21 px across: 2x that is under the smallest patch
    values = plan["values"]
    assert values["model.depth"] == 4 and values["extract.patch_size"] == 128
    assert values["extract.stride"] == 64 and values["predict.tile_size"] == 256
    assert values["train.batch_size"] == 16 and values["train.loss"] == "bce_dice"
    assert values["extract.patch_size"] % 2 ** values["model.depth"] == 0
    assert set(plan["reasons"]) == set(values)


def test_tiny_images_get_a_shallower_network_and_a_patch_that_fits():
    values = plan_for(fingerprint((40, 56)))["values"]
    assert values["model.depth"] == 2  # 40 px: two poolings leave 10 px
    assert values["extract.patch_size"] == 40 and values["extract.patch_size"] % 4 == 0
    assert values["train.batch_size"] == 32  # capped


def test_large_objects_get_patches_that_hold_two_of_them():
    plan = plan_for(fingerprint((512, 512), radius=50), extract={"scale": 1})
    assert plan["values"]["extract.patch_size"] == 208  # 2 x 99.94 px, rounded up to a multiple of 16
    assert plan["values"]["train.batch_size"] == 6
    assert "diameter (99.94 px, 95th percentile)" in plan["reasons"]["extract.patch_size"]


def test_huge_objects_halve_the_images_until_they_fit_a_patch():
    plan = plan_for(fingerprint((2048, 3072), count=2, radius=200))  # 400 px wide: halved three times
    values = plan["values"]
    assert values["extract.scale"] == 0.125 and values["model.depth"] == 4
    assert values["extract.patch_size"] == 128  # 2 x 50 px, at an eighth of the size, is under the smallest
    assert "predict scales each image the same way and its output back" in plan["reasons"]["extract.scale"]
    assert plan_for(fingerprint((512, 512), radius=30))["values"]["extract.scale"] == 1.0  # 60 px wide


def test_a_mesh_of_thin_membranes_is_not_shrunk_however_far_it_spreads():
    mask = np.ones((1024, 1024), np.uint8)
    mask[::40], mask[:, ::40] = 0, 0  # cells 39 px wide, parted by 1 px lines
    membranes = 1 - mask
    fp = dataset_fingerprint([image_fingerprint(np.zeros((1024, 1024, 1), np.float32), membranes, 1)] * 4,
                             [], 1, 1)
    assert fp["objects"]["p95_diameter"] > 250 and fp["objects"]["p95_width"] < 3  # one object, 1 px lines
    assert plan_for(fp)["values"]["extract.scale"] == 1.0
    cells = dataset_fingerprint([image_fingerprint(np.zeros((1024, 1024, 1), np.float32), mask, 1)] * 4, [], 1, 1)
    assert 38 <= cells["objects"]["p95_width"] <= 40 and plan_for(cells)["values"]["extract.scale"] == 1.0


def test_the_scale_keeps_the_median_image_at_least_a_patch_across():
    big_objects = {"count": 2, "radius": 90}  # 180 px across: twice that is over 256
    assert plan_for(fingerprint((240, 320), **big_objects))["values"]["extract.scale"] == 1.0  # 120 px: too small
    assert plan_for(fingerprint((300, 400), **big_objects))["values"]["extract.scale"] == 0.5  # 150 px
    pinned = plan_for(fingerprint((300, 400), **big_objects), extract={"scale": 1})
    assert pinned["values"]["extract.scale"] == 1 and pinned["reasons"]["extract.scale"] == "pinned in params.yaml"


def test_small_objects_double_the_images_until_they_are_20_px_across():
    plan = plan_for(fingerprint((256, 256), radius=7))  # discs of 149 px: 13.8 px across
    assert plan["values"]["extract.scale"] == 2.0
    assert "the typical object (13.77 px across) is 27.54 px, at least 20 px" in plan["reasons"]["extract.scale"]
    assert plan_for(fingerprint((256, 256), radius=4))["values"]["extract.scale"] == 4.0  # 7.9 px: 15.8 is not enough
    assert plan_for(fingerprint((256, 256), radius=2))["values"]["extract.scale"] == 4.0  # 4.1 px: at most 4x
    assert plan_for(fingerprint((256, 256), radius=10))["values"]["extract.scale"] == 1.0  # 21 px
    pinned = plan_for(fingerprint((256, 256), radius=7), extract={"scale": 1})
    assert pinned["values"]["extract.scale"] == 1 and pinned["reasons"]["extract.scale"] == PINNED


def test_doubling_stops_where_the_large_objects_would_pass_64_px():
    assert working_scale(width=10, short_side=256, typical=15) == 2.0
    assert working_scale(width=40, short_side=256, typical=15) == 1.0  # 80 px: too wide
    assert working_scale(width=20, short_side=256, typical=4) == 2.0   # 4x would make them 80 px
    assert working_scale(width=5, short_side=256, typical=0) == 1.0    # no objects
    assert "but doubling would take the large objects (40 px wide" in scale_reason(40, 15, 1.0)


def test_the_typical_object_is_where_most_foreground_lies_not_the_most_numerous():
    specks_and_a_cell = np.array([1.0] * 100 + [10_000.0])
    assert typical_diameter(specks_and_a_cell) == pytest.approx(2 * np.sqrt(10_000 / np.pi), abs=0.01)
    assert typical_diameter(np.array([50.0] * 9 + [5000.0])) == pytest.approx(79.79, abs=0.01)
    assert typical_diameter(np.array([])) == 0.0


def test_huge_images_and_objects_cap_the_patch():
    values = plan_for(fingerprint((2048, 3072), count=2, radius=200), extract={"scale": 1})["values"]
    assert values["extract.patch_size"] == 256 and values["model.depth"] == 4


def test_rare_foreground_is_oversampled_and_majority_foreground_is_not():
    rare, common = fingerprint(foreground=0.01), fingerprint(foreground=0.9)
    assert 0.005 < rare["foreground_fraction"] < 0.02 and common["foreground_fraction"] >= 0.9
    assert plan_for(rare)["values"]["extract.fg_fraction"] == 0.33
    assert plan_for(common)["values"]["extract.fg_fraction"] == 0.0
    assert f"{common['foreground_fraction']:.1%}" in plan_for(common)["reasons"]["extract.fg_fraction"]


def test_colour_images_cost_more_but_plan_the_same_shapes():
    gray, rgb = plan_for(fingerprint(channels=1)), plan_for(fingerprint(channels=3))
    assert rgb["values"]["extract.patch_size"] == gray["values"]["extract.patch_size"]
    assert rgb["estimate"]["train_gflop_per_patch"] > gray["estimate"]["train_gflop_per_patch"]
    assert rgb["values"]["train.loss"] == "bce_dice"


def test_a_big_dataset_is_held_to_the_budget_and_a_small_one_is_not():
    big = plan_for(fingerprint(count=2000), plan={"train_minutes": 10, "gflops": 120})
    assert big["estimate"]["train_minutes"] <= 10 * 1.05
    assert big["values"]["model.base_filters"] == 8
    small = plan_for(fingerprint(count=5), plan={"train_minutes": 10, "gflops": 120})
    assert small["estimate"]["train_minutes"] < 10 * 0.7  # the data wants less than the budget
    assert small["estimate"]["steps"] >= 600


def supply(plan: dict) -> tuple:
    v = plan["values"]
    return v["extract.stride"], v["augment.copies"], v["extract.grid_fraction"]


def test_patches_cut_follow_what_training_sees_however_many_pixels_there_are():
    """Grids overlapping by half and two copies while training sees them all; then no overlap,
    fewer copies, a share of each grid: extract and augment write about what training reads."""
    choices = {}
    for count in (20, 600, 2000, 4000, 8000):
        plan = plan_for(fingerprint(count=count))
        stride, copies, share = choices[count] = supply(plan)
        cut = plan["patches"]["train_per_epoch_pass"]
        assert cut == count_patches([(512, 512)] * count, 128, stride, 0.33, share) * (copies + 1)
        assert cut <= plan["estimate"]["patches_seen"] * 1.01
    assert choices[20] == (64, 2, 1.0)     # 20 images x 73 patches x 3 against the ~51k patches seen
    assert choices[600] == (128, 2, 1.0)   # 600 x 73 x 3 would be more than the ~112k seen
    assert choices[2000] == (128, 1, 1.0)  # 2000 x 24 x 3 would be
    assert choices[4000] == (128, 0, 1.0)
    assert choices[8000][:2] == (128, 0) and 0.5 < choices[8000][2] < 0.6  # 192k grid patches


def test_pinned_stride_copies_or_share_stay_and_the_others_give_way():
    big = fingerprint(count=8000)
    assert supply(plan_for(big, augment={"copies": 2}))[:2] == (128, 2)
    assert supply(plan_for(big, augment={"copies": 2}))[2] < supply(plan_for(big))[2]
    stride, copies, share = supply(plan_for(big, extract={"stride": 64}))
    assert (stride, copies) == (64, 0) and share < 1
    assert supply(plan_for(big, extract={"grid_fraction": 0.5})) == (128, 0, 0.5)
    plan = plan_for(big)
    assert "more than the" in plan["reasons"]["extract.grid_fraction"]
    assert plan["reasons"]["extract.stride"].startswith("the patch: the grid overlapping by half")


def test_a_large_validation_split_is_scored_in_a_share_held_to_a_tenth_of_the_budget():
    few, many = plan_for(fingerprint(val=4)), plan_for(fingerprint(val=750, shape=(520, 704)))
    assert few["values"]["extract.val_grid_fraction"] == 1.0
    assert few["patches"]["val"] == count_patches([(512, 512)] * 4, 128, 128, 0.0)
    share = many["values"]["extract.val_grid_fraction"]
    assert 0 < share < 1 and "over 10% of plan.train_minutes" in many["reasons"]["extract.val_grid_fraction"]
    assert many["patches"]["val"] == count_patches([(520, 704)] * 750, 128, 128, 0.0, share)
    assert many["estimate"]["train_minutes"] <= 21 * 1.1 * 1.02  # training held to the budget, validation within 10 %
    pinned = plan_for(fingerprint(val=750, shape=(520, 704)), extract={"val_grid_fraction": 1.0})
    assert pinned["values"]["extract.val_grid_fraction"] == 1.0 and pinned["reasons"]["extract.val_grid_fraction"] == PINNED


def test_each_step_costs_a_fixed_time_besides_its_patches():
    """Halving a pinned batch doubles the steps for the same patches, and each step's fixed cost
    with them (benchmarks/step_cost.py: 41.7 ms a step besides 10.8 ms a patch, on 2 CPU cores)."""
    sixteen = plan_for(fingerprint(count=10))["estimate"]
    eight = plan_for(fingerprint(count=10), train={"batch_size": 8})["estimate"]
    assert abs(eight["patches_seen"] / sixteen["patches_seen"] - 1) < 0.01
    per_patch = [e["train_minutes"] / e["patches_seen"] for e in (eight, sixteen)]
    assert 1.1 < per_patch[0] / per_patch[1] < 1.3


def test_a_fast_machine_affords_the_seed_network():
    assert plan_for(fingerprint(), plan={"gflops": 100_000})["values"]["model.base_filters"] == 32
    assert plan_for(fingerprint(), plan={"gflops": 10})["values"]["model.base_filters"] == 8


def test_epochs_and_steps_follow_the_budget_and_each_other():
    values = plan_for(fingerprint())["values"]
    assert 8 <= values["train.epochs"] <= 40
    pinned = plan_for(fingerprint(), train={"epochs": 3})
    assert pinned["values"]["train.epochs"] == 3
    assert pinned["values"]["train.steps_per_epoch"] * 3 >= pinned["estimate"]["steps"]
    both = plan_for(fingerprint(), train={"epochs": 2, "steps_per_epoch": 5})["values"]
    assert (both["train.epochs"], both["train.steps_per_epoch"]) == (2, 5)


def test_pinned_values_override_the_plan_and_say_so():
    pins = {"extract": {"patch_size": 96, "stride": 48, "fg_fraction": 0.5},
            "model": {"depth": 3, "base_filters": 16},
            "train": {"batch_size": 7, "loss": "dice", "epochs": 4, "steps_per_epoch": 9},
            "predict": {"tile_size": 128}}
    plan = plan_for(fingerprint(), **pins)
    for section, values in pins.items():
        for key, value in values.items():
            assert plan["values"][f"{section}.{key}"] == value
            assert plan["reasons"][f"{section}.{key}"] == "pinned in params.yaml"


def test_a_pinned_size_that_the_planned_depth_cannot_halve_is_a_one_line_error():
    with pytest.raises(UserError, match=r"extract\.patch_size=200 must be divisible by 2\*\*model\.depth = 16"):
        plan_for(fingerprint(), extract={"patch_size": 200})
    with pytest.raises(UserError, match=r"extract\.stride=300 must be <= the patch size \(128\)"):
        plan_for(fingerprint(), extract={"stride": 300})


def test_the_plan_is_a_pure_function():
    assert plan_for(fingerprint()) == plan_for(fingerprint())


def test_each_stage_gets_only_its_own_values():
    files = stage_values(plan_for(fingerprint()))
    assert set(files["extract"]) == {"extract.scale", "extract.patch_size", "extract.stride", "extract.fg_fraction",
                                     "extract.grid_fraction", "extract.val_grid_fraction"}
    assert set(files["augment"]) == {"augment.copies"}
    assert set(files["predict"]) == {"predict.tile_size"}
    assert set(files["train"]) == {"model.depth", "model.base_filters", "train.batch_size", "train.loss",
                                   "train.epochs", "train.steps_per_epoch"}


def test_describe_gives_one_line_per_value_and_the_estimate():
    plan = plan_for(fingerprint())
    lines = describe(plan)
    assert len(lines) == len(plan["values"]) + 1
    assert lines[-1].startswith("training ~ ")
    assert any(line.startswith("extract.patch_size = 128: ") for line in lines)


def test_fingerprint_counts_objects_and_classes():
    mask = np.zeros((20, 20), np.uint8)
    mask[2:5, 2:5] = 1        # 9 px
    mask[10:12, 10:15] = 2    # 10 px
    per_image = image_fingerprint(np.zeros((20, 20, 1), np.float32), mask, num_classes=3)
    assert sorted(per_image["object_areas"]) == [9, 10]
    assert per_image["class_pixels"] == [381, 9, 10]
    fp = dataset_fingerprint([per_image], [], 1, 3)
    assert fp["objects"]["count"] == 2 and fp["foreground_fraction"] == round(19 / 400, 6)


def test_patch_counts_match_what_extract_cuts():
    from unetseg.patches import extract_patches

    shapes = [(70, 90), (30, 40)]
    rng = np.random.default_rng(0)
    cut = 0
    for height, width in shapes:
        mask = np.ones((height, width), np.uint8)
        images, _ = extract_patches(np.zeros((height, width, 1), np.float32), mask, 32, 16, 0.33, rng)
        cut += len(images)
    assert count_patches(shapes, 32, 16, 0.33) == cut
    cut = sum(len(extract_patches(np.zeros((h, w, 1), np.float32), np.ones((h, w), np.uint8), 32, 16, 0.33,
                                  rng, grid_fraction=0.3)[0]) for h, w in shapes)
    assert count_patches(shapes, 32, 16, 0.33, 0.3) == cut


@pytest.mark.parametrize("upsampling", ["transpose", "bilinear"])
def test_flops_count_every_convolution_of_the_network(upsampling):
    """2 FLOPs per multiply-add of each Conv2D/Conv2DTranspose kernel weight at its output size."""
    patch, channels, depth, filters, classes = 32, 3, 2, 4, 2
    model = build_unet(channels, classes, depth, filters, upsampling=upsampling)
    expected = 0
    for layer in model.layers:
        if hasattr(layer, "kernel"):
            kh, kw, c_in, c_out = layer.kernel.shape
            out_side = patch // 2 ** _level(layer.name, depth)
            if "up" in layer.name and upsampling == "transpose":  # stride 2: one tap per output pixel
                kh = kw = 1
            expected += 2 * out_side**2 * kh * kw * c_in * c_out
    assert unet_flops(patch, channels, depth, filters, classes, upsampling) == expected


def _level(name: str, depth: int) -> int:
    if name.startswith("bottleneck"):
        return depth
    if name.startswith(("enc", "dec")):
        return int(name[3])
    return 0
