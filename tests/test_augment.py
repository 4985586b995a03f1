import numpy as np
import pytest
from scipy import ndimage

from unetseg.augment import (adjust_intensity, affine_coordinates, augment_patch, deform, elastic_displacement,
                             flip, rot90)
from unetseg.params import Augment

GEOMETRY_ONLY = Augment(flip={"p": 0.5}, rot90={"p": 0.5}, affine={"p": 0.7}, elastic={"p": 0.7},
                        intensity={"p": 0}, noise={"p": 0}, blur={"p": 0})


def blocky_pair(seed, size=48):
    """An image of flat blocks (0.2 or 0.8) and the mask derived from it (image > 0.5)."""
    rng = np.random.default_rng(seed)
    coarse = np.where(rng.random((6, 6)) > 0.5, 0.8, 0.2)
    image = np.kron(coarse, np.ones((size // 6, size // 6)))[..., None].astype(np.float32)
    return image, (image[..., 0] > 0.5).astype(np.uint8)


@pytest.mark.parametrize("seed", range(12))
def test_geometric_augmentation_keeps_masks_exact_and_aligned(seed):
    image, mask = blocky_pair(seed)
    out_image, out_mask = augment_patch(image, mask, np.random.default_rng(seed), GEOMETRY_ONLY)
    assert out_image.shape == image.shape and out_mask.shape == mask.shape
    assert set(np.unique(out_mask)) <= {0, 1}
    derived = (out_image[..., 0] > 0.5).astype(np.uint8)
    edges = ndimage.binary_dilation(out_mask) != ndimage.binary_erosion(out_mask)
    mismatch = derived != out_mask
    assert np.mean(mismatch) < 0.08
    assert not np.any(mismatch & ~edges), "image and mask disagree away from object edges"


def test_multi_class_labels_stay_exact():
    mask = np.kron(np.arange(9).reshape(3, 3) % 4, np.ones((16, 16))).astype(np.uint8)
    image = mask[..., None].astype(np.float32)
    cfg = Augment(affine={"p": 1.0}, elastic={"p": 1.0})
    for seed in range(5):
        _, out = augment_patch(image, mask, np.random.default_rng(seed), cfg)
        assert set(np.unique(out)) <= {0, 1, 2, 3}


def test_same_seed_gives_identical_bytes():
    image, mask = blocky_pair(0)
    first = augment_patch(image, mask, np.random.default_rng(7), Augment())
    second = augment_patch(image, mask, np.random.default_rng(7), Augment())
    assert first[0].tobytes() == second[0].tobytes() and first[1].tobytes() == second[1].tobytes()


@pytest.mark.parametrize("seed", range(6))
def test_weights_follow_the_geometry_only_and_change_no_draw(seed):
    image, mask = blocky_pair(seed)
    weights = np.where(mask > 0, 1.0, 9.0).astype(np.float16)  # high on background, as border weights are
    everything = GEOMETRY_ONLY.model_copy(update={"intensity": Augment(intensity={"p": 1.0}).intensity,
                                                  "noise": Augment(noise={"p": 1.0}).noise})
    out_image, out_mask, out_weights = augment_patch(image, mask, np.random.default_rng(seed), everything, weights)
    plain_image, plain_mask = augment_patch(image, mask, np.random.default_rng(seed), everything)
    assert out_image.tobytes() == plain_image.tobytes() and out_mask.tobytes() == plain_mask.tobytes()
    _, _, geometry_weights = augment_patch(image, mask, np.random.default_rng(seed), GEOMETRY_ONLY, weights)
    assert out_weights.dtype == np.float16 and np.array_equal(out_weights, geometry_weights)
    assert 1.0 <= out_weights.min() and out_weights.max() <= 9.0  # linear: never past the range
    near_edges = ndimage.binary_dilation(out_mask, iterations=2) != ndimage.binary_erosion(out_mask, iterations=2)
    agree = np.isclose(out_weights, np.where(out_mask > 0, 1.0, 9.0), atol=1e-2)
    assert agree[~near_edges].mean() > 0.99  # moved as the mask was (linear and nearest differ at thin corners)


def test_flip_and_rot90_move_image_and_mask_together():
    image, mask = blocky_pair(3)
    for transform in (flip, rot90):
        out_image, out_mask = transform([image, mask], np.random.default_rng(0), 1.0)
        assert not np.array_equal(out_mask, mask)
        assert np.array_equal((out_image[..., 0] > 0.5).astype(np.uint8), out_mask)


def test_identity_affine_and_zero_elastic_change_nothing():
    coordinates = affine_coordinates(16, 0.0, 1.0)
    assert np.allclose(coordinates, np.mgrid[:16, :16])
    assert np.allclose(elastic_displacement(16, 3, 0.0, np.random.default_rng(0)), 0)


@pytest.mark.parametrize("size, grid", [(64, 3), (128, 3), (96, 4), (50, 5)])
def test_elastic_displacement_is_scipys_cubic_zoom_of_the_lattice(size, grid):
    rng = np.random.default_rng(size)
    coarse = np.random.default_rng(size).normal(0.0, 10.0, size=(2, grid, grid))
    zoomed = [ndimage.zoom(c, size / grid, order=3, mode="nearest", grid_mode=True) for c in coarse]
    np.testing.assert_allclose(elastic_displacement(size, grid, 10.0, rng), np.stack(zoomed), atol=1e-9)


def test_float16_images_are_augmented_as_float32():
    image = np.random.default_rng(0).random((16, 16, 2)).astype(np.float16)
    out = augment_patch(image, np.zeros((16, 16), np.uint8), np.random.default_rng(1), GEOMETRY_ONLY)[0]
    assert out.dtype == np.float32 and out.shape == image.shape


def test_elastic_displacement_is_smooth_with_the_requested_scale():
    field = elastic_displacement(64, 3, 10.0, np.random.default_rng(0))
    assert field.shape == (2, 64, 64)
    assert 2 < field.std() < 30
    assert np.abs(np.diff(field, axis=1)).max() < 3  # smooth: no jumps between neighbours


def test_deform_skips_resampling_when_nothing_is_drawn():
    image, mask = blocky_pair(1)
    cfg = Augment(affine={"p": 0}, elastic={"p": 0})
    out_image, out_mask = deform([image, mask], np.random.default_rng(0), cfg.affine, cfg.elastic)
    assert out_image is image and out_mask is mask


def test_intensity_changes_the_image_only_within_reason():
    image, _ = blocky_pair(2)
    cfg = Augment(intensity={"p": 1.0}).intensity
    out = adjust_intensity(image, np.random.default_rng(0), cfg)
    assert out.dtype == np.float32 and not np.array_equal(out, image)
    assert np.abs(out - image).max() < 1.0
