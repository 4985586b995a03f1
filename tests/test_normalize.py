import numpy as np

from unetseg.normalize import dataset_statistics, normalize, percentile_normalize, standardize


def test_percentile_normalize_maps_percentiles_to_unit_range_per_channel():
    image = np.stack([np.arange(101), 2 * np.arange(101) + 10], axis=-1).reshape(101, 1, 2).astype(np.uint16)
    out = percentile_normalize(image, 0, 100)
    assert out.dtype == np.float32
    assert np.allclose(out.min(axis=(0, 1)), 0) and np.allclose(out.max(axis=(0, 1)), 1)


def test_constant_image_does_not_divide_by_zero():
    assert np.isfinite(percentile_normalize(np.full((4, 4, 1), 7, np.uint8), 1, 99)).all()


def test_dataset_statistics_stream_matches_numpy():
    rng = np.random.default_rng(0)
    images = [rng.random((5 + i, 7, 1)) * 100 for i in range(4)]
    mean, std = dataset_statistics(iter(images))
    everything = np.concatenate([i.ravel() for i in images])
    assert np.isclose(mean, everything.mean()) and np.isclose(std, everything.std())


def test_normalize_follows_the_spec():
    image = np.array([[[0.0], [10.0]]])
    assert np.allclose(normalize(image, {"mode": "dataset", "mean": 5.0, "std": 5.0, "percentiles": [1, 99]}),
                       standardize(image, 5.0, 5.0))
    assert np.allclose(normalize(image, {"mode": "percentile", "percentiles": [0, 100], "mean": None, "std": None}),
                       [[[0.0], [1.0]]])
