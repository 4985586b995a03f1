import numpy as np

from unetseg.scale import back_to_shape, rescaled_image, rescaled_labels, scaled_shape


def test_scaled_shapes_round_and_never_vanish():
    assert scaled_shape((101, 64, 3), 0.5) == (50, 32)
    assert scaled_shape((3, 3), 0.1) == (1, 1)


def test_labels_stay_the_ids_they_were():
    labels = np.zeros((40, 40), np.uint16)
    labels[4:20, 4:20], labels[22:38, 10:30] = 7, 300
    half = rescaled_labels(labels, 0.5)
    assert half.shape == (20, 20) and half.dtype == np.uint16 and set(np.unique(half)) == {0, 7, 300}
    assert rescaled_labels(labels, 1.0) is labels


def test_an_image_goes_to_scale_and_its_output_back():
    image = np.random.default_rng(0).random((30, 44, 3)).astype(np.float32)
    small = rescaled_image(image, 0.5)
    assert small.shape == (15, 22, 3) and small.dtype == np.float32
    probabilities = np.random.default_rng(1).dirichlet([1, 1, 1], size=(15, 22)).astype(np.float32)
    back = back_to_shape(probabilities, image.shape)
    assert back.shape == (30, 44, 3) and np.allclose(back.sum(axis=-1), 1, atol=1e-5)
    assert back_to_shape(probabilities, (15, 22)) is probabilities
