import numpy as np
from skimage.filters import threshold_otsu

from unetseg.synthetic import ellipse, paint_nucleus, smooth_field, synthesize_dataset


def dice(a, b):
    return 2 * np.count_nonzero(a & b) / max(np.count_nonzero(a) + np.count_nonzero(b), 1)


def test_same_seed_gives_identical_bytes():
    first = list(synthesize_dataset(3, 4, 60, 80, (3, 8)))
    second = list(synthesize_dataset(3, 4, 60, 80, (3, 8)))
    for (n1, i1, m1), (n2, i2, m2) in zip(first, second):
        assert n1 == n2 and i1.tobytes() == i2.tobytes() and m1.tobytes() == m2.tobytes()
    other = next(synthesize_dataset(4, 1, 60, 80, (3, 8)))
    assert other[1].tobytes() != first[0][1].tobytes()


def test_image_i_does_not_depend_on_how_many_are_made():
    few = list(synthesize_dataset(7, 2, 60, 80, (3, 8)))
    many = list(synthesize_dataset(7, 5, 60, 80, (3, 8)))
    assert few[1][1].tobytes() == many[1][1].tobytes()


def test_sizes_types_and_names():
    for name, image, labels in synthesize_dataset(0, 6, 50, 71, (2, 5)):
        assert name.startswith("synth_")
        assert image.dtype == np.uint8 and labels.dtype == np.int32 and image.shape == labels.shape
        assert all(50 <= side <= 71 for side in image.shape)
        assert 0 < (labels > 0).mean() < 0.8
        assert 2 <= len(np.unique(labels)) - 1 <= 5  # one id per nucleus (some may be hidden)


def test_some_nuclei_touch():
    """Touching nuclei are what the instance target must keep apart."""
    touching = 0
    for _, _, labels in synthesize_dataset(42, 4, 200, 240, (12, 30)):
        right = (labels[:, :-1] > 0) & (labels[:, 1:] > 0) & (labels[:, :-1] != labels[:, 1:])
        touching += np.count_nonzero(right)
    assert touching > 0


def test_a_global_threshold_is_not_enough():
    scores = [dice(image > threshold_otsu(image), labels > 0)
              for _, image, labels in synthesize_dataset(42, 6, 160, 200, (12, 30))]
    assert np.mean(scores) < 0.9


def test_nuclei_are_brighter_than_background_on_average():
    for _, image, labels in synthesize_dataset(1, 3, 120, 140, (8, 12)):
        assert image[labels > 0].mean() > image[labels == 0].mean() + 20


def test_ellipse_and_smooth_field():
    disc = ellipse((21, 21), (10, 10), (5, 5), 0.0)
    assert disc[10, 10] and not disc[0, 0] and abs(disc.sum() - np.pi * 25) < 10
    field = smooth_field(np.random.default_rng(0), (30, 40), 10.0)
    assert field.shape == (30, 40) and field.min() == 0 and np.isclose(field.max(), 1)


def test_where_nuclei_overlap_the_label_is_the_one_the_image_shows():
    signal, labels = np.zeros((1, 6), np.float32), np.zeros((1, 6), np.int32)
    paint_nucleus(signal, labels, np.array([[0.9, 0.8, 0.7, 0.6, 0, 0]], np.float32), 1)
    paint_nucleus(signal, labels, np.array([[0, 0, 0.5, 0.7, 0.9, 0]], np.float32), 2)  # dimmer one, after
    assert labels.tolist() == [[1, 1, 1, 2, 2, 0]]
    assert np.allclose(signal, [[0.9, 0.8, 0.7, 0.7, 0.9, 0]])
