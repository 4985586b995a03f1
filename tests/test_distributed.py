"""Training on several replicas, for real: MirroredStrategy over two logical CPU devices, and
MultiWorkerMirroredStrategy with two worker processes on 127.0.0.1. A few steps on tiny shards each;
TensorFlow only (each case runs in its own process, as devices are fixed when TensorFlow starts)."""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from stage_runner import REPO, TINY, write_params

pytestmark = pytest.mark.e2e

MIRRORED = r"""
import json, sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras, numpy as np
from unetseg.params import parse_params
from unetseg.tf_training import as_dataset, make_strategy
from unetseg.training import ShardBatches, compiled_unet, save_model

shards, out = sys.argv[1], sys.argv[2]
params = parse_params({"model": {"batchnorm": False}, "train": {"learning_rate": 0.01}})
plan = {"model.depth": 2, "model.base_filters": 4, "train.loss": "bce", "train.epochs": 2,
        "train.steps_per_epoch": 3}

def fit(strategy):
    keras.utils.set_random_seed(0)
    with strategy.scope():
        model = compiled_unet(params, plan, 1, 1)
    batches = ShardBatches(shards, 8, seed=0, shuffle=True, flips=True, steps_per_epoch=3)
    history = model.fit(as_dataset(batches, endless=True), steps_per_epoch=3, epochs=2, verbose=0)
    return model, history.history["loss"]

single, single_loss = fit(make_strategy("default"))
strategy = make_strategy("mirrored", ["/cpu:0", "/cpu:1"])
mirrored, mirrored_loss = fit(strategy)
save_model(mirrored, f"{out}/mirrored.keras")
reloaded = keras.saving.load_model(f"{out}/mirrored.keras", compile=False)
image = np.random.default_rng(1).random((2, 32, 32, 1)).astype(np.float32)
print(json.dumps({
    "replicas": strategy.num_replicas_in_sync,
    "single_loss": single_loss, "mirrored_loss": mirrored_loss,
    "weights_max_difference": max(float(np.abs(a - b).max()) for a, b in
                                  zip(single.get_weights(), mirrored.get_weights())),
    "reloaded_same": bool(np.allclose(reloaded.predict_on_batch(image),
                                      keras.ops.convert_to_numpy(mirrored(image, training=False)), atol=1e-6)),
}))
"""


@pytest.fixture(scope="module")
def mirrored_run(tiny_run, tmp_path_factory):
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = tmp_path_factory.mktemp("mirrored")
    result = subprocess.run([sys.executable, "-c", MIRRORED, str(tiny_run / "data/augmented"), str(out)],
                            env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_mirrored_over_two_devices_trains_saves_and_reloads(mirrored_run):
    assert mirrored_run["replicas"] == 2
    assert all(np.isfinite(mirrored_run["mirrored_loss"])) and mirrored_run["reloaded_same"]


def test_mirrored_over_two_devices_matches_one_device_on_the_same_global_batch(mirrored_run):
    # The same global batches, split 4 + 4, with the gradients averaged, should be the same training
    # (the cross-entropy loss is a mean over pixels, so it adds up across replicas exactly).
    assert np.allclose(mirrored_run["mirrored_loss"], mirrored_run["single_loss"], rtol=1e-4), mirrored_run
    assert mirrored_run["weights_max_difference"] < 1e-4, mirrored_run


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def test_two_workers_train_together_and_only_the_chief_writes(tiny_run, tiny_copy):
    params = {**TINY, "model": {**TINY["model"], "batchnorm": False}}
    write_params(tiny_copy, params)
    for stage in ("plan", "train"):  # the single-worker reference run of the same params
        assert subprocess.run([sys.executable, "-m", f"stages.{stage}"], cwd=tiny_copy, capture_output=True,
                              env={**os.environ, "PYTHONPATH": str(REPO)}).returncode == 0
    single = json.loads((tiny_copy / "reports/train.json").read_text())
    for output in ("models", "reports/live", "reports/train.json"):
        subprocess.run(["rm", "-rf", str(tiny_copy / output)], check=True)
    before = sorted(p.name for p in tiny_copy.iterdir())

    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(2)]}
    workers = [subprocess.Popen([sys.executable, "-m", "stages.train"], cwd=tiny_copy, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env={**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3",
                                     "TF_CONFIG": json.dumps({"cluster": cluster,
                                                              "task": {"type": "worker", "index": index}})})
               for index in range(2)]
    outputs = [worker.communicate(timeout=600) for worker in workers]
    for worker, (stdout, stderr) in zip(workers, outputs):
        assert worker.returncode == 0, stderr[-3000:]
    assert "strategy multi_worker_mirrored" in outputs[0][0] and "best validation Dice" in outputs[0][0]
    assert "not the chief: its outputs are discarded" in outputs[1][0]
    assert "best validation Dice" not in outputs[1][0]
    assert sorted({p.name for p in tiny_copy.iterdir()} - set(before)) == ["models"]  # and nothing else
    assert sorted(p.name for p in (tiny_copy / "models").iterdir()) == ["preprocessing.json", "unet.keras"]
    together = json.loads((tiny_copy / "reports/train.json").read_text())
    assert together["epochs_run"] == single["epochs_run"]
    assert abs(together["best_val_dice"] - single["best_val_dice"]) < 0.05, (together, single)
