"""The model, losses, metrics and fit loop are Keras 3 only, so they run on JAX as well.

Only the data feeding differs from the train stage (which uses tf.data): here the same shard
batches are handed to `fit` as a Python generator, one epoch per call.
"""

import json
import os
import subprocess
import sys

import pytest

from stage_runner import REPO

pytest.importorskip("jax")

SCRIPT = r"""
import json, sys
import keras, numpy as np
from unetseg.losses import OverlapMetric, SegmentationLoss
from unetseg.tiling import predict_image
from unetseg.training import KeepBest, ShardBatches, StopOnNonFinite, save_model
from unetseg.unet import build_unet

assert keras.backend.backend() == "jax"
shards, out = sys.argv[1], sys.argv[2]
keras.utils.set_random_seed(0)
model = build_unet(1, 1, depth=2, base_filters=4)
results = {}
for kind in ("dice", "bce", "bce_dice"):
    model.compile(keras.optimizers.Adam(1e-3), SegmentationLoss(kind), metrics=[OverlapMetric("dice"), OverlapMetric("iou")])
    keep_best, stop = KeepBest("dice"), StopOnNonFinite()
    batches = ShardBatches(shards, batch_size=8, seed=0, flips=True)
    for _ in range(2):
        history = model.fit(iter(batches), epochs=1, steps_per_epoch=len(batches), callbacks=[keep_best, stop], verbose=0)
    stop.raise_if_stopped()
    results[kind] = {"loss": history.history["loss"][-1], "dice": history.history["dice"][-1], "best": keep_best.best}
save_model(model, f"{out}/m.keras")
reloaded = keras.saving.load_model(f"{out}/m.keras", compile=False)
image = np.random.default_rng(0).random((45, 50, 1)).astype(np.float32)
probabilities = predict_image(image, reloaded.predict_on_batch, tile=32)
results["prediction_shape"] = list(probabilities.shape)
results["same_after_reload"] = bool(np.allclose(reloaded.predict_on_batch(image[None, :32, :32]), model.predict_on_batch(image[None, :32, :32]), atol=1e-6))
print(json.dumps(results))
"""


def test_fit_save_reload_and_tiling_run_on_jax(tiny_run, tmp_path):
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-c", SCRIPT, str(tiny_run / "data/augmented"), str(tmp_path)],
                            env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads(result.stdout.strip().splitlines()[-1])
    for kind in ("dice", "bce", "bce_dice"):
        assert results[kind]["loss"] == results[kind]["loss"] and 0 <= results[kind]["dice"] <= 1
    assert results["prediction_shape"] == [45, 50, 1] and results["same_after_reload"]


PREDICT = r"""
import sys
from pathlib import Path
import numpy as np
from unetseg.inference import keras, load_model, predict_probabilities
from unetseg.modelfile import read_preprocessing
from unetseg.normalize import normalize
from unetseg.params import parse_params
from unetseg.imageio import read_image

model_path, image_path, out = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
params = parse_params({"predict": {"tile_size": 32, "batch_size": 4}})
preprocessing = read_preprocessing(model_path)
image = normalize(read_image(image_path, preprocessing["channels"]), preprocessing["normalization"])
np.save(out, predict_probabilities(load_model(model_path), image, params, image_path))
print(keras.backend.backend())
"""


def test_a_model_trained_on_tensorflow_predicts_the_same_on_jax(tiny_run, tmp_path):
    """Train on one backend, serve on the other: the predict code path (overlap tiles, flips) gives
    the same probabilities within 1e-4, and the same masks but where p is that close to the threshold."""
    image = sorted((tiny_run / "data/synthetic/images").glob("*.png"))[0]
    outputs = {}
    for backend in ("tensorflow", "jax"):
        env = {**os.environ, "KERAS_BACKEND": backend, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(REPO)}
        outputs[backend] = tmp_path / f"{backend}.npy"
        result = subprocess.run([sys.executable, "-c", PREDICT, str(tiny_run / "models/unet.keras"), str(image),
                                 str(outputs[backend])], env=env, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-3000:]
        assert result.stdout.strip().splitlines()[-1] == backend
    import numpy as np

    tf_p, jax_p = np.load(outputs["tensorflow"]), np.load(outputs["jax"])
    assert tf_p.shape == jax_p.shape and np.abs(tf_p - jax_p).max() < 1e-4
    foreground = 1 - tf_p[..., 0]  # the boundary target: p(foreground) = 1 - p(background)
    disagree = (foreground >= 0.5) != (1 - jax_p[..., 0] >= 0.5)
    assert not np.any(disagree & (np.abs(foreground - 0.5) > 1e-4))
