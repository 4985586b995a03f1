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
    out = predict_image(image, identity, tile=32, tta=True)
    assert np.allclose(out, image[..., :1], atol=1e-6)


def test_tta_averages_flipped_predictions():
    def left_biased(tiles):
        return np.broadcast_to(np.linspace(0, 1, tiles.shape[2])[None, None, :, None], tiles.shape[:3] + (1,))

    out = predict_image(np.zeros((32, 32, 1), np.float32), left_biased, tile=32, overlap=0.0, tta=True)
    assert np.allclose(out[..., 0].mean(axis=0), (np.linspace(0, 1, 32) * 2 + np.linspace(1, 0, 32)) / 3, atol=1e-5)


def test_several_output_channels_and_a_preallocated_output():
    image = np.random.default_rng(1).random((40, 40, 3)).astype(np.float32)
    out = np.zeros((40, 40, 3), np.float32)
    result = predict_image(image, lambda t: t * 2, tile=16, out=out)
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
