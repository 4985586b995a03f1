import numpy as np
import pytest

from unetseg.patches import (centred_patches, extract_patches, foreground_centres, foreground_corners, grid_corners,
                             grid_patches, grid_starts, kept_count, mirror_indices, oversampled_count, pad_to_patch,
                             reflect, sampled_corners)


@pytest.mark.parametrize("seed", range(20))
def test_grid_covers_every_pixel(seed):
    rng = np.random.default_rng(seed)
    height, width = rng.integers(1, 90, size=2)
    patch = int(rng.choice([8, 16, 32]))
    stride = int(rng.integers(1, patch + 1))
    image = rng.random((height, width, 1)).astype(np.float32)
    padded, _ = pad_to_patch(image, np.zeros((height, width), np.uint8), patch)
    covered = np.zeros(padded.shape[:2], bool)
    for y, x in grid_corners(padded.shape[:2], patch, stride):
        assert 0 <= y <= padded.shape[0] - patch and 0 <= x <= padded.shape[1] - patch
        covered[y:y + patch, x:x + patch] = True
    assert covered.all()


def test_grid_starts_end_flush_and_respect_the_stride():
    assert grid_starts(10, 4, 3) == [0, 3, 6]
    assert grid_starts(11, 4, 3) == [0, 3, 6, 7]
    assert grid_starts(3, 4, 2) == [0]
    with pytest.raises(ValueError, match="stride"):
        grid_starts(20, 4, 5)


def test_reflect_padding_keeps_image_and_mask_aligned():
    image = np.arange(6, dtype=np.float32).reshape(2, 3, 1)
    mask = np.arange(6, dtype=np.uint8).reshape(2, 3)
    padded_image, padded_mask = pad_to_patch(image, mask, 7)
    assert padded_image.shape == (7, 7, 1) and padded_mask.shape == (7, 7)
    assert np.array_equal(padded_image[..., 0].astype(np.uint8), padded_mask)
    assert np.array_equal(padded_mask[:2, :3], mask)
    assert padded_mask[0, 3] == mask[0, 1]  # mirrored, the edge not repeated


def test_reflect_maps_any_position_inside():
    assert mirror_indices(3, 9).tolist() == [0, 1, 2, 1, 0, 1, 2, 1, 0]
    assert reflect(np.array([-2, -1, 0, 4]), 3).tolist() == [2, 1, 0, 0]
    assert reflect(np.array([5, -3]), 1).tolist() == [0, 0]


def test_foreground_corners_centre_on_foreground():
    mask = np.zeros((50, 60), np.uint8)
    mask[10, 45] = 1
    corners = foreground_corners(mask, 5, 16, np.random.default_rng(0))
    assert corners == [(2, 37)] * 5
    assert foreground_corners(np.zeros((20, 20)), 3, 8, np.random.default_rng(0)) == []


def test_foreground_centres_are_foreground_pixels():
    rng = np.random.default_rng(4)
    mask = (rng.random((40, 30)) > 0.9).astype(np.uint8)
    centres = foreground_centres(mask, 50, rng)
    assert centres.shape == (50, 2) and mask[centres[:, 0], centres[:, 1]].all()
    assert foreground_centres(np.zeros((5, 5)), 3, rng).shape == (0, 2)


def test_centred_patches_hold_their_centre_pixel_and_stay_inside():
    image = np.arange(40 * 30, dtype=np.float32).reshape(40, 30, 1)
    mask = np.zeros((40, 30), np.uint8)
    centres = np.array([[20, 15], [0, 0], [39, 29]])
    images, masks = centred_patches(image, mask, centres, 8)
    assert images.shape == (3, 8, 8, 1) and masks.shape == (3, 8, 8)
    assert images[0, 4, 4, 0] == image[20, 15, 0]  # centre = patch // 2
    assert images[1, 0, 0, 0] == image[0, 0, 0] and images[2, -1, -1, 0] == image[39, 29, 0]  # clamped


def test_grid_patches_cut_the_grid_in_order():
    image = np.arange(12 * 10, dtype=np.float32).reshape(12, 10, 1)
    images, masks = grid_patches(image, np.ones((12, 10), np.uint8), 8, 4)
    assert [im[0, 0, 0] for im in images] == [image[y, x, 0] for y in (0, 4) for x in (0, 2)]
    assert masks.shape == (4, 8, 8)


def test_oversampled_count_makes_the_requested_fraction():
    assert oversampled_count(20, 0.0) == 0
    assert oversampled_count(20, 0.5) == 20
    assert oversampled_count(40, 0.2) == 10


def test_extract_patches_counts_and_shapes():
    rng = np.random.default_rng(1)
    image = rng.random((40, 50, 2)).astype(np.float32)
    mask = (image[..., 0] > 0.7).astype(np.uint8)
    images, masks = extract_patches(image, mask, 16, 16, 0.25, np.random.default_rng(0))
    n_grid = len(grid_corners((40, 50), 16, 16))
    assert len(images) == n_grid + oversampled_count(n_grid, 0.25)
    assert images.shape[1:] == (16, 16, 2) and masks.shape[1:] == (16, 16)
    assert np.array_equal(masks, (images[..., 0] > 0.7).astype(np.uint8))


@pytest.mark.parametrize("fg_fraction", [0.0, 0.2, 0.33, 0.5, 0.75])
def test_foreground_patches_are_the_requested_fraction(fg_fraction):
    rng = np.random.default_rng(5)
    mask = np.zeros((100, 90), np.uint8)
    mask[60:70, 10:25] = 1
    image = mask[..., None].astype(np.float32)
    images, masks = extract_patches(image, mask, 16, 8, fg_fraction, rng)
    n_grid = len(grid_corners(mask.shape, 16, 8))
    n_fg = len(images) - n_grid
    assert abs(n_fg / len(images) - fg_fraction) < 0.01
    assert all(m[8, 8] == 1 for m in masks[n_grid:])  # every extra patch is centred on foreground


def test_images_without_foreground_get_grid_patches_only():
    image = np.zeros((20, 20, 1), np.float32)
    images, _ = extract_patches(image, np.zeros((20, 20), np.uint8), 8, 8, 0.5, np.random.default_rng(0))
    assert len(images) == len(grid_corners((20, 20), 8, 8))


def test_extract_patches_is_seeded():
    image = np.random.default_rng(2).random((30, 30, 1)).astype(np.float32)
    mask = (image[..., 0] > 0.5).astype(np.uint8)
    first = extract_patches(image, mask, 8, 8, 0.5, np.random.default_rng(3))
    second = extract_patches(image, mask, 8, 8, 0.5, np.random.default_rng(3))
    assert all(a.tobytes() == b.tobytes() for a, b in zip(first, second))


def test_a_grid_fraction_keeps_a_seeded_share_of_the_grid_in_order():
    corners = grid_corners((100, 100), 10, 10)
    kept = sampled_corners(corners, 0.25, np.random.default_rng(0))
    assert len(kept) == kept_count(100, 0.25) == 25 and kept == sorted(kept) and set(kept) <= set(corners)
    assert kept == sampled_corners(corners, 0.25, np.random.default_rng(0))
    assert kept_count(3, 0.01) == 1  # every image keeps a patch


def test_the_whole_grid_draws_nothing_so_earlier_outputs_stay_the_same():
    rng = np.random.default_rng(4)
    assert sampled_corners(grid_corners((30, 30), 10, 5), 1.0, rng) == grid_corners((30, 30), 10, 5)
    assert rng.integers(1 << 30) == np.random.default_rng(4).integers(1 << 30)
