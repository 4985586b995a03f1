import numpy as np
import pytest

from unetseg.tiling import blend_weights, gaussian_weights, padded_axis, predict_image, tile_starts


def identity(tiles):
    return tiles[..., :1] * 1.0


@pytest.mark.parametrize("shape", [(1, 1), (5, 7), (31, 33), (32, 32), (64, 96), (100, 257), (300, 45)])
@pytest.mark.parametrize("overlap", [0.0, 0.25, 0.5, 0.75])
@pytest.mark.parametrize("blend", ["gaussian", "constant"])
def test_identity_model_reproduces_the_input_exactly(shape, overlap, blend):
    image = np.random.default_rng(sum(shape)).random(shape + (1,)).astype(np.float32)
    out = predict_image(image, identity, tile=32, overlap=overlap, blend=blend, batch_size=3)
    assert out.shape == shape + (1,)
    assert np.allclose(out, image, atol=1e-6)


def test_tta_with_an_identity_model_changes_nothing():
    image = np.random.default_rng(0).random((50, 70, 2)).astype(np.float32)
    for tta in ("flips", "dihedral"):
        for max_whole_pixels in (0, 10**6):
            out = predict_image(image, identity, tile=32, tta=tta, max_whole_pixels=max_whole_pixels)
            assert np.allclose(out, image[..., :1], atol=1e-6)


def test_tta_averages_flipped_predictions():
    def left_biased(tiles):
        return np.broadcast_to(np.linspace(0, 1, tiles.shape[2])[None, None, :, None], tiles.shape[:3] + (1,))

    out = predict_image(np.zeros((32, 32, 1), np.float32), left_biased, tile=32, overlap=0.0, tta="flips")
    assert np.allclose(out[..., 0].mean(axis=0), (np.linspace(0, 1, 32) * 2 + np.linspace(1, 0, 32)) / 3, atol=1e-5)


@pytest.mark.parametrize("max_whole_pixels", [0, 10**6])
def test_dihedral_tta_averages_all_eight_views(max_whole_pixels):
    def corner_biased(batch):  # an output that depends on where a pixel sits in the model's input
        rows, cols = np.meshgrid(np.linspace(0, 1, batch.shape[1]), np.linspace(0, 2, batch.shape[2]), indexing="ij")
        return np.broadcast_to((rows * cols ** 2)[None, :, :, None], batch.shape[:3] + (1,))

    out = predict_image(np.zeros((32, 32, 1), np.float32), corner_biased, tile=32, overlap=0.0, tta="dihedral",
                        max_whole_pixels=max_whole_pixels)[..., 0]
    single = corner_biased(np.zeros((1, 32, 32, 1)))[0, ..., 0]
    views = [np.rot90(image, turns) for image in (single, single[::-1]) for turns in range(4)]
    assert np.allclose(out, np.mean(views, axis=0), atol=1e-6)
    assert np.allclose(out, out.T, atol=1e-6) and np.allclose(out, out[::-1], atol=1e-6)


@pytest.mark.parametrize("shape", [(1, 1), (5, 7), (31, 33), (64, 96), (100, 257)])
@pytest.mark.parametrize("tta", ["none", "flips", "dihedral"])
def test_an_image_that_fits_goes_through_whole_padded_to_the_networks_multiple(shape, tta):
    seen = []

    def record(batch):
        seen.append(batch.shape)
        return batch[..., :1] * 1.0

    image = np.random.default_rng(sum(shape)).random(shape + (1,)).astype(np.float32)
    out = predict_image(image, record, tile=32, overlap=0.5, tta=tta, max_whole_pixels=10**6, multiple=16)
    assert np.allclose(out, image, atol=1e-6)
    padded = tuple(-(-(side + 16) // 16) * 16 for side in shape)  # 8 px of context a side, then the multiple
    assert len(seen) == {"none": 1, "flips": 3, "dihedral": 8}[tta]
    assert {batch[:3] for batch in seen} <= {(1,) + padded, (1,) + padded[::-1]}


def test_an_image_over_the_whole_limit_goes_in_tiles():
    seen = []

    def record(batch):
        seen.append(batch.shape)
        return batch[..., :1]

    padded_pixels = 64 * 96  # (40 + 2 * 8) x (70 + 2 * 8), each rounded up to 16
    predict_image(np.zeros((40, 70, 1), np.float32), record, tile=32, max_whole_pixels=padded_pixels, multiple=16)
    assert seen == [(1, 64, 96, 1)]
    seen.clear()
    predict_image(np.zeros((40, 70, 1), np.float32), record, tile=32, max_whole_pixels=padded_pixels - 1, multiple=16)
    assert seen and all(shape[1:3] == (32, 32) for shape in seen)


def test_several_output_channels_and_a_preallocated_output():
    image = np.random.default_rng(1).random((40, 40, 3)).astype(np.float32)
    out = np.zeros((40, 40, 3), np.float32)
    for max_whole_pixels in (0, 10**6):
        result = predict_image(image, lambda t: t * 2, tile=16, max_whole_pixels=max_whole_pixels, out=out)
        assert result is out and np.allclose(out, image * 2, atol=1e-6)


def test_the_model_only_sees_whole_tiles_of_the_requested_size():
    seen = []

    def record(tiles):
        seen.append(tiles.shape)
        return tiles[..., :1]

    predict_image(np.zeros((45, 70, 1), np.float32), record, tile=32, overlap=0.5, batch_size=4)
    assert all(shape[1:] == (32, 32, 1) and shape[0] <= 4 for shape in seen)


def test_gaussian_weights_are_positive_and_peak_in_the_centre():
    for tile in (16, 33, 256):
        weights = gaussian_weights(tile)
        assert (weights > 0).all() and weights.max() == 1.0
        assert weights[tile // 2, tile // 2] >= weights[0, 0]
        assert np.allclose(weights, weights.T) and np.allclose(weights, weights[::-1, ::-1])
    assert (blend_weights(8, "constant") == 1).all()


def test_tile_starts_cover_the_axis_with_the_requested_overlap():
    for length, tile, overlap in ((100, 32, 0.5), (257, 64, 0.25), (32, 32, 0.5), (33, 32, 0.9)):
        starts = tile_starts(length, tile, overlap)
        assert starts[0] == 0 and starts[-1] == length - tile
        assert max(np.diff(starts), default=0) <= max(1, int(tile * (1 - overlap)))


def test_padded_axis_mirrors_both_borders():
    assert padded_axis(5, 4, 2).tolist() == [2, 1, 0, 1, 2, 3, 4, 3, 2]
    assert padded_axis(2, 8, 0).tolist() == [0, 1, 0, 1, 0, 1, 0, 1]
