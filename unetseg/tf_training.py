"""TensorFlow's side of training: the distribution strategy, which worker writes, the tf.data input.

`train.batch_size` is the global batch. Under MirroredStrategy (several GPUs on one machine) and
MultiWorkerMirroredStrategy (several machines, each told its role by TF_CONFIG) TensorFlow splits
every batch across the replicas and averages their gradients, so N devices take the same steps over
the same batches as one device would, N times smaller each. Every worker reads the whole batch
stream and keeps its part of each batch (DATA sharding: the shards are not split by file, so each
worker sees the seeded global order). Only the chief writes outputs.
"""

import json

import tensorflow as tf

from unetseg.training import ShardBatches

STRATEGIES = ("default", "mirrored", "multi_worker_mirrored")


def choose_strategy(num_gpus: int, tf_config: str | None) -> str:
    """TensorFlow's own distribution engine: several workers, several GPUs, or one device."""
    if tf_config:
        return "multi_worker_mirrored"
    return "mirrored" if num_gpus > 1 else "default"


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


def set_determinism(deterministic: bool) -> None:
    """Deterministic kernels (byte-identical models, run-cache matches) or TensorFlow's faster choice."""
    if deterministic:
        tf.config.experimental.enable_op_determinism()


def as_dataset(batches: ShardBatches) -> tf.data.Dataset:
    """The batch stream as a tf.data pipeline with a known length, prefetched, sharded by data."""
    size, channels = batches.patch_size, batches.channels
    signature = (tf.TensorSpec((None, size, size, channels), tf.float32),
                 tf.TensorSpec((None, size, size, 1), tf.float32))
    dataset = tf.data.Dataset.from_generator(lambda: iter(batches), output_signature=signature)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(len(batches))).prefetch(2)
    return dataset.with_options(options)
