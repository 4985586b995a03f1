import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from stage_runner import run_with_keras_alone  # noqa: E402
from unetseg.unet import bilinear_doubling, build_unet  # noqa: E402


def test_defaults_are_the_seed_network_with_its_parameter_count():
    model = build_unet(channels=1, num_classes=1, depth=4, base_filters=32, upsampling="transpose")
    assert model.count_params() == 7_759_521
    assert model.input_shape == (None, None, None, 1) and model.output_shape == (None, None, None, 1)


@pytest.mark.parametrize("upsampling", ["transpose", "bilinear"])
@pytest.mark.parametrize("batchnorm, dropout", [(False, 0.0), (True, 0.3)])
def test_any_size_divisible_by_2_to_the_depth(upsampling, batchnorm, dropout):
    model = build_unet(3, 1, depth=2, base_filters=4, batchnorm=batchnorm, dropout=dropout, upsampling=upsampling)
    for shape in ((1, 16, 16, 3), (2, 24, 40, 3)):
        out = np.asarray(model(np.zeros(shape, np.float32)))
        assert out.shape == shape[:3] + (1,)
        assert ((out >= 0) & (out <= 1)).all()


@pytest.mark.parametrize("upsampling", ["transpose", "bilinear"])
def test_predict_takes_one_image_size_after_another(upsampling):
    """predict's traced function loses the height and width after a second size (Keras's bilinear
    UpSampling2D failed there, on the predict stage's second image)."""
    model = build_unet(1, 3, depth=2, base_filters=4, upsampling=upsampling)
    for shape in ((1, 32, 48, 1), (1, 64, 32, 1), (2, 16, 16, 1)):
        assert model.predict_on_batch(np.zeros(shape, np.float32)).shape == shape[:3] + (3,)


def test_a_saved_bilinear_network_loads_and_predicts_without_this_project(tmp_path):
    """As the predict stage and anyone else load it: Keras alone, images of several sizes."""
    from unetseg.training import save_model

    model = build_unet(1, 3, depth=2, base_filters=4, batchnorm=True, upsampling="bilinear")
    save_model(model, tmp_path / "m.keras")
    code = ("model = keras.saving.load_model(sys.argv[1], compile=False)\n"
            "assert 'unetseg' not in sys.modules\n"
            "for shape in ((1, 32, 48, 1), (1, 64, 32, 1)):\n"
            "    assert model.predict_on_batch(np.zeros(shape, np.float32)).shape == shape[:3] + (3,)")
    run_with_keras_alone(code, str(tmp_path / "m.keras"), cwd=tmp_path)


def test_bilinear_doubling_is_kerass_bilinear_resize():
    import keras

    x = np.random.default_rng(0).random((2, 5, 7, 3)).astype(np.float32)
    expected = np.asarray(keras.layers.UpSampling2D(2, interpolation="bilinear")(x))
    inputs = keras.Input((None, None, 3))
    doubling = keras.Model(inputs, bilinear_doubling(inputs, "up"))
    assert np.allclose(doubling.predict_on_batch(x), expected, atol=1e-6)


def test_several_classes_get_a_softmax_head():
    model = build_unet(1, 3, depth=1, base_filters=2)
    out = np.asarray(model(np.random.default_rng(0).random((1, 8, 8, 1)).astype(np.float32)))
    assert out.shape == (1, 8, 8, 3) and np.allclose(out.sum(-1), 1, atol=1e-5)
    assert model.layers[-1].get_config()["activation"] == "softmax"


def test_options_add_their_layers():
    names = [layer.name for layer in build_unet(1, 1, 2, 4, batchnorm=True, dropout=0.5, upsampling="bilinear").layers]
    assert "enc0_bn1" in names and "bottleneck_dropout" in names and "dec0_resize_repeat" in names
