"""TensorFlow's side of training: the distribution strategy, which worker writes, the tf.data input.

`train.batch_size` is the global batch. Under MirroredStrategy (several GPUs on one machine) and
MultiWorkerMirroredStrategy (several machines, each told its role by TF_CONFIG) TensorFlow splits
every batch across the replicas and averages their gradients, so N devices take the same steps over
the same batches as one device would, N times smaller each. Every worker reads the whole batch
stream and keeps its part of each batch (DATA sharding: the shards are not split by file, so each
worker sees the seeded global order). Only the chief writes outputs.
"""

import json
from pathlib import Path

import keras
import tensorflow as tf

from unetseg.training import ShardBatches, uncompiled_copy


def choose_strategy(num_gpus: int, tf_config: str | None) -> str:
    """TensorFlow's own distribution engine: several workers, several GPUs, or one device."""
    if tf_config:
        return "multi_worker_mirrored"
    return "mirrored" if num_gpus > 1 else "default"


FAST_BF16_FLAGS = {"amx_bf16"}


def resolve_precision(setting: str, num_gpus: int, cpu_flags: set[str]) -> str:
    """`train.precision: auto`: mixed_bfloat16 on a CPU with AMX, where it trains 1.5-1.9x faster to
    the same validation Dice; float32 elsewhere (benchmarks/cpu_precision.py). AVX-512 BF16 without
    AMX trains bfloat16 at 0.6-0.75x the speed of float32 on oneDNN's kernels, and CPUs without
    either emulate it; on GPUs TensorFlow's is not measured (under JAX on an H200, 16-bit trains the
    seed network 2.2x faster: README, "On a GPU")."""
    if setting != "auto":
        return setting
    return "mixed_bfloat16" if not num_gpus and cpu_flags & FAST_BF16_FLAGS else "float32"


def precision_here(setting: str) -> str:
    """`setting` (train.precision) resolved for this machine's GPUs and CPU."""
    return resolve_precision(setting, len(tf.config.list_physical_devices("GPU")), cpu_flags())


def cpu_flags() -> set[str]:
    """This CPU's feature flags, from Linux's /proc/cpuinfo (none known elsewhere)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return set()
    return next((set(line.split(":", 1)[1].split()) for line in lines if line.startswith("flags")), set())


class FusedBatchNorm(keras.layers.BatchNormalization):
    """Keras's layer, its training batches normalised by TensorFlow's fused kernel in float32.

    Keras 3 runs the moments, the normalisation and each one's gradient as separate operations: on
    two CPU cores a step of the planned network then takes 1.81x as long as one without batch
    normalisation, and 1.34x with this kernel (benchmarks/batchnorm_cost.py). The arithmetic is the
    same, except that the moving variance takes the batch's unbiased variance (n / (n - 1) of
    Keras's; 1 + 4e-6 for a batch of 16 patches of 128x128). Inference is Keras's own code, and
    `with_keras_batchnorm` turns a trained model back into Keras's layers for saving."""

    def call(self, inputs, training=None, mask=None):
        if not (training and self.trainable) or mask is not None:
            return super().call(inputs, training=training, mask=mask)
        outputs, mean, variance = tf.compat.v1.nn.fused_batch_norm(
            tf.cast(inputs, "float32"), tf.cast(self.gamma, "float32"), tf.cast(self.beta, "float32"),
            epsilon=self.epsilon, data_format="NHWC", is_training=True)
        self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1 - self.momentum))
        self.moving_variance.assign(self.moving_variance * self.momentum + variance * (1 - self.momentum))
        return tf.cast(outputs, self.compute_dtype)


def batchnorm_layer(num_gpus: int) -> type:
    """The fused layer on a CPU; Keras's own on GPUs, where the fused kernel's gradient to the offset
    is not deterministic (TensorFlow's determinism RFC) and where it is not measured."""
    return keras.layers.BatchNormalization if num_gpus else FusedBatchNorm


def with_keras_batchnorm(model: keras.Model) -> keras.Model:
    """The same network and weights, its FusedBatchNorm layers made Keras's own again, so that the
    saved model loads anywhere Keras does. The copy is not compiled, so no optimizer state is saved
    with it."""

    def keras_layer(layer):
        kind = keras.layers.BatchNormalization if isinstance(layer, FusedBatchNorm) else type(layer)
        return kind.from_config(layer.get_config())

    return uncompiled_copy(model, keras_layer)


def make_strategy(name: str, devices: list[str] | None = None):
    """The strategy; `devices` (mirrored only) picks the replicas, e.g. two logical CPUs in a test."""
    if name == "mirrored":
        return tf.distribute.MirroredStrategy(devices)
    return {"multi_worker_mirrored": tf.distribute.MultiWorkerMirroredStrategy,
            "default": tf.distribute.get_strategy}[name]()


def is_chief(tf_config: str | None) -> bool:
    """The worker that writes outputs: the `chief` task, else worker 0 (TensorFlow's convention);
    a run without TF_CONFIG is its own chief."""
    if not tf_config:
        return True
    config = json.loads(tf_config)
    task = config.get("task", {})
    if "chief" in config.get("cluster", {}):
        return task.get("type") == "chief"
    return task.get("type", "worker") == "worker" and task.get("index", 0) == 0


def fit_ready(model, strategy_name: str) -> None:
    """Let Keras 3 `fit` under MultiWorkerMirroredStrategy (run `fit` inside the strategy's scope).

    Keras (3.15 and its main branch in 2026; keras-team/keras#20585) fails there twice: to learn the
    input shapes it averages a peeked batch across workers, which the collective strategy cannot do
    for an (images, masks) pair; and it averages every step's scalar logs "along axis 0". So under
    that strategy only, the model builds when its step is first traced, as it does without a
    strategy, and the steps hand their logs over as 1-vectors. Epoch logs, which the callbacks see,
    come from the metrics' variables, summed over every worker, so they are the global values.
    """
    if strategy_name != "multi_worker_mirrored":
        return
    model._distribute_strategy = None  # Keras then takes the strategy from the enclosing scope

    def vector_logs(step):
        return lambda data: {name: tf.reshape(value, [1]) for name, value in step(data).items()}

    model.train_step, model.test_step = vector_logs(model.train_step), vector_logs(model.test_step)


def set_determinism(deterministic: bool) -> None:
    """Deterministic kernels (byte-identical models, run-cache matches) or TensorFlow's faster choice."""
    if deterministic:
        tf.config.experimental.enable_op_determinism()


def as_dataset(batches: ShardBatches, endless: bool = False, readers: int = tf.data.AUTOTUNE) -> tf.data.Dataset:
    """The batch stream as tf.data: `readers` threads (default: one per core) read batches in
    parallel, delivered in stream order; prefetched; sharded by data across workers. One epoch
    (Keras then restarts it at the same batches, as validation wants), or with `endless` the whole
    stream (give `fit` the `steps_per_epoch`; epochs then carry on through it)."""
    size, channels, targets = batches.patch_size, batches.channels, batches.target_channels
    steps = tf.data.Dataset.counter() if endless else tf.data.Dataset.range(len(batches))

    def read(step):
        images, masks = tf.numpy_function(batches.batch, [step], (tf.float32, tf.float32), stateful=False)
        return (tf.ensure_shape(images, (None, size, size, channels)),
                tf.ensure_shape(masks, (None, size, size, targets)))

    dataset = steps.map(read, num_parallel_calls=readers, deterministic=True).prefetch(2)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return untuned(dataset.with_options(options))


def untuned(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """`dataset` with tf.data's autotuning off. Its thread wakes at 10 ms, then at doubling intervals,
    and a `fit` that ends its input may wait for the next wake-up: a fit of 3.4 s then takes 5.12 s,
    one of 1.9 s 2.56 s (benchmarks/fit_modes.py). Our pipelines set their readers and prefetch
    themselves, so there is nothing left to tune."""
    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.with_options(options)
