import numpy as np
import pytest

from unetseg.patches import (extract_patches, foreground_corners, grid_corners, grid_starts, mirror_indices,
                             oversampled_count, pad_to_patch, reflect)


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


def test_extract_patches_is_seeded():
    image = np.random.default_rng(2).random((30, 30, 1)).astype(np.float32)
    mask = (image[..., 0] > 0.5).astype(np.uint8)
    first = extract_patches(image, mask, 8, 8, 0.5, np.random.default_rng(3))
    second = extract_patches(image, mask, 8, 8, 0.5, np.random.default_rng(3))
    assert all(a.tobytes() == b.tobytes() for a, b in zip(first, second))
