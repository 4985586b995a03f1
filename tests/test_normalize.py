import json

import numpy as np
import pytest

from unetseg.normalize import (choose_inversion, dataset_statistics, has_bright_background, normalize,
                               normalize_with_levels, object_contrast, percentile_normalize, standardize, with_levels)


def test_percentile_normalize_maps_percentiles_to_unit_range_per_channel():
    image = np.stack([np.arange(101), 2 * np.arange(101) + 10], axis=-1).reshape(101, 1, 2).astype(np.uint16)
    out = percentile_normalize(image, 0, 100)
    assert out.dtype == np.float32
    assert np.allclose(out.min(axis=(0, 1)), 0) and np.allclose(out.max(axis=(0, 1)), 1)


def test_constant_image_does_not_divide_by_zero():
    assert np.isfinite(percentile_normalize(np.full((4, 4, 1), 7, np.uint8), 1, 99)).all()


def test_dataset_statistics_stream_matches_numpy():
    rng = np.random.default_rng(0)
    images = [rng.random((5 + i, 7, 2)) * [100, 3] + [0, 50] for i in range(4)]  # channels of their own range
    mean, std = dataset_statistics(iter(images))
    everything = np.concatenate([i.reshape(-1, 2) for i in images])
    assert np.allclose(mean, everything.mean(axis=0)) and np.allclose(std, everything.std(axis=0))
    standardized = np.concatenate([standardize(i, mean, std).reshape(-1, 2) for i in images])
    assert np.allclose(standardized.mean(axis=0), 0, atol=1e-5) and np.allclose(standardized.std(axis=0), 1)


def test_normalize_follows_the_spec():
    image = np.array([[[0.0], [10.0]]])
    assert np.allclose(normalize(image, {"mode": "dataset", "mean": 5.0, "std": 5.0, "percentiles": [1, 99]}),
                       standardize(image, 5.0, 5.0))
    assert np.allclose(normalize(image, {"mode": "percentile", "percentiles": [0, 100], "mean": None, "std": None}),
                       [[[0.0], [1.0]]])


def percentile_spec(invert="bright_background"):
    return {"mode": "percentile", "percentiles": [0, 100], "mean": None, "std": None, "invert": invert}


def objects_on(background: float, objects: float) -> np.ndarray:
    image = np.full((10, 10, 3), background, np.float32)
    image[2:5, 2:5] = objects
    return image


def test_invert_mirrors_only_images_with_a_bright_background():
    brightfield, fluorescence = objects_on(200, 20), objects_on(20, 200)
    assert np.allclose(normalize(brightfield, percentile_spec()), normalize(fluorescence, percentile_spec()))
    assert np.allclose(normalize(fluorescence, percentile_spec()), normalize(fluorescence, percentile_spec("none")))
    assert normalize(brightfield, percentile_spec())[3, 3, 0] == 1.0


def test_invert_in_dataset_mode_mirrors_about_zero():
    spec = {"mode": "dataset", "mean": 100.0, "std": 50.0, "percentiles": [1, 99], "invert": "bright_background"}
    assert np.allclose(normalize(objects_on(200, 0), spec), -standardize(objects_on(200, 0), 100.0, 50.0))


def test_a_spec_without_invert_leaves_images_as_they_are():
    """preprocessing.json of models trained before prepare.invert existed."""
    spec = percentile_spec()
    del spec["invert"]
    assert normalize(objects_on(200, 20), spec)[3, 3, 0] == 0.0


def test_has_bright_background_and_object_contrast():
    image, foreground = objects_on(0.9, 0.1), np.zeros((10, 10), bool)
    foreground[2:5, 2:5] = True
    assert has_bright_background(image, "percentile") and not has_bright_background(1 - image, "percentile")
    assert np.isclose(object_contrast(image, foreground), -0.8)
    assert object_contrast(image, np.zeros((10, 10), bool)) is None
    assert object_contrast(image, np.ones((10, 10), bool)) is None


@pytest.mark.parametrize("images, used", [
    ([(False, 0.5)] * 8 + [(True, -0.4)] * 2, "bright_background"),  # fluorescence + brightfield
    ([(False, 0.5)] * 10, "none"),  # one polarity: nothing to do
    ([(True, -0.5)] * 10, "none"),  # all brightfield: already one polarity
    ([(False, 0.5)] * 5 + [(False, -0.5)] * 3 + [(True, -0.5)] * 2, "none"),  # brightness does not tell
    ([(True, 0.3)] * 4 + [(False, 0.3)] * 4 + [(True, -0.3)] * 2, "none"),  # would mix the bright objects
    ([(False, 0.5)] * 8 + [(True, -0.4)] * 2 + [(False, None)] * 5, "bright_background"),  # empty masks: no vote
])
def test_auto_inverts_only_when_that_makes_one_polarity(images, used):
    assert choose_inversion("auto", images)[0] == used


def test_a_pinned_inversion_is_used_as_set():
    assert choose_inversion("none", [(False, 0.5)] * 8 + [(True, -0.4)] * 2) == ("none", "set in params.yaml")
    assert choose_inversion("bright_background", [])[0] == "bright_background"


@pytest.mark.parametrize("spec", [percentile_spec("none"), percentile_spec(),
                                  {"mode": "dataset", "mean": 90.0, "std": 40.0, "percentiles": [1, 99],
                                   "invert": "bright_background"}])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_an_image_stored_as_read_with_its_levels_normalises_to_the_same_bytes(spec, dtype):
    """prepare keeps images in their own dtype and their levels in the manifest (JSON)."""
    rng = np.random.default_rng(1)
    for image in (objects_on(200, 20), objects_on(20, 200), rng.integers(0, 250, (9, 11, 3)).astype(np.float32)):
        image = image.astype(dtype)
        normalized, levels = normalize_with_levels(image, spec)
        stored = json.loads(json.dumps(levels))
        assert with_levels(image, spec, stored).tobytes() == normalized.tobytes() == normalize(image, spec).tobytes()
