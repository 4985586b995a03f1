"""Backend-portable training pieces: batches streamed from shards, and the callbacks the fit needs."""

import itertools
import json
import math
import re
import zipfile

import keras
import numpy as np

from unetseg.errors import UserError
from unetseg.losses import OverlapMetric, SegmentationLoss
from unetseg.shards import patch_files, patch_sources, read_manifest
from unetseg.unet import build_unet


class ShardBatches:
    """An endless stream of batches, served `steps_per_epoch` at a time (default: one pass).

    Pass p over the patches is in the seeded global order default_rng([seed, p]) (in file order
    without `shuffle`); an epoch is the next `steps_per_epoch` batches of the stream, so a short
    epoch carries on where the last one stopped. With `per_image`, a pass instead draws as many
    patches, with replacement, so that every source image is equally likely (as nnU-Net samples
    cases): a large image cut into 50 patches then counts as much as a small one cut into 1. Each batch reads just its own patches from the
    shard files, wherever they are, so the dataset need not fit in memory. (Shuffling within a
    shard only would fill a batch with patches of the few images that shard came from.) With
    `flips`, each patch is also flipped at random along each axis. Masks come as (N, P, P, 1).
    """

    def __init__(self, directory, batch_size: int, seed: int, shuffle: bool = True, flips: bool = False,
                 steps_per_epoch: int | None = None, per_image: bool = False):
        self.directory, self.batch_size, self.seed = directory, batch_size, seed
        self.shuffle, self.flips = shuffle, flips
        manifest = read_manifest(directory)
        self.count, self.patch_size, self.channels = manifest["count"], manifest["patch_size"], manifest["channels"]
        self.weights = image_balanced_weights(patch_sources(manifest)) if per_image else None
        self.steps_per_epoch = steps_per_epoch or math.ceil(self.count / batch_size)
        self._stream = None

    def __len__(self) -> int:
        return self.steps_per_epoch

    def __iter__(self):
        if self._stream is None:
            self._stream = self._passes()
        for _ in range(self.steps_per_epoch):
            yield next(self._stream)

    def _passes(self):
        shards = patch_files(self.directory)
        sizes = [len(masks) for _, masks in shards]
        shard_of = np.repeat(np.arange(len(shards)), sizes)
        index_in_shard = np.concatenate([np.arange(size) for size in sizes]) if shards else np.empty(0, int)
        for number in itertools.count():
            rng = np.random.default_rng([self.seed, number])
            order = self._order(rng)
            for start in range(0, self.count, self.batch_size):
                picks = order[start:start + self.batch_size]
                images, masks = self._read(shards, shard_of[picks], index_in_shard[picks])
                yield self._batch(images, masks, rng)

    def _order(self, rng) -> np.ndarray:
        if self.weights is not None:
            return rng.choice(self.count, size=self.count, p=self.weights)
        return rng.permutation(self.count) if self.shuffle else np.arange(self.count)

    @staticmethod
    def _read(shards, shard_of, index_in_shard):
        """The picked patches in pick order, with one read per patch."""
        images = np.empty((len(shard_of), *shards[0][0].shape[1:]), np.float32)
        masks = np.empty((len(shard_of), *shards[0][1].shape[1:]), np.uint8)
        for shard in np.unique(shard_of):
            rows = np.flatnonzero(shard_of == shard)
            images[rows] = shards[shard][0].read(index_in_shard[rows])
            masks[rows] = shards[shard][1].read(index_in_shard[rows])
        return images, masks

    def _batch(self, images, masks, rng):
        if self.flips:
            images, masks = random_flips(images, masks, rng)
        return np.ascontiguousarray(images), np.ascontiguousarray(masks[..., None], dtype=np.float32)


def compiled_unet(params, plan: dict, channels: int, classes: int) -> keras.Model:
    """The U-Net the params and the plan describe, compiled with its loss, metrics and LR schedule
    (build it inside the strategy's scope to train on several devices)."""
    keras.mixed_precision.set_global_policy(params.train.precision)
    m, t = params.model, params.train
    model = build_unet(channels, classes, plan["model.depth"], plan["model.base_filters"], m.batchnorm,
                       m.dropout, m.upsampling)
    loss = SegmentationLoss(plan["train.loss"], classes, t.bce_weight, t.dice_weight, t.dice_smooth)
    metrics = [OverlapMetric("dice", classes), OverlapMetric("iou", classes)]
    total_steps = plan["train.epochs"] * plan["train.steps_per_epoch"]
    schedule = learning_rate_schedule(t.lr_schedule, t.learning_rate, total_steps, t.warmup_fraction)
    model.compile(keras.optimizers.Adam(schedule), loss, metrics=metrics, jit_compile=t.jit_compile)
    return model


def image_balanced_weights(sources: np.ndarray) -> np.ndarray:
    """Sampling probability of each patch so that every source image gets the same total."""
    _, index, patches_per_image = np.unique(sources, return_inverse=True, return_counts=True)
    weights = 1.0 / patches_per_image[index]
    return weights / weights.sum()


def learning_rate_schedule(kind: str, learning_rate: float, total_steps: int, warmup_fraction: float):
    """cosine: linear warm-up over the first `warmup_fraction` of the steps, then cosine decay to 1 %;
    poly: nnU-Net's (1 - step/total)**0.9; plateau: constant here (ReduceLROnPlateau lowers it)."""
    if kind == "plateau":
        return learning_rate
    if kind == "poly":
        return keras.optimizers.schedules.PolynomialDecay(learning_rate, total_steps, 0.0, power=0.9)
    warmup = int(total_steps * warmup_fraction)
    if not warmup:
        return keras.optimizers.schedules.CosineDecay(learning_rate, total_steps, alpha=0.01)
    return keras.optimizers.schedules.CosineDecay(0.0, total_steps - warmup, alpha=0.01,
                                                  warmup_target=learning_rate, warmup_steps=warmup)


def all_foreground_dice(foreground_fraction: float) -> float:
    """Pooled Dice of marking every pixel foreground when a fraction f of them is: 2f / (1 + f)."""
    return 2 * foreground_fraction / (1 + foreground_fraction)


MIN_ERROR_REDUCTION = 0.25  # a model must remove this share of the trivial answer's error 1 - Dice


def collapse_warning(best_val_dice: float, baseline: float | None) -> str | None:
    if baseline is not None and 1 - best_val_dice > (1 - MIN_ERROR_REDUCTION) * (1 - baseline):
        return (f"best validation Dice {best_val_dice:.3f} is no clear gain on marking every pixel "
                f"foreground ({baseline:.3f}): the model may have collapsed to a trivial answer; check the "
                "masks, keep train.loss auto (bce_dice), or train longer (plan.train_minutes)")
    return None


def random_flips(images, masks, rng):
    """Flip each patch along each spatial axis with probability 1/2."""
    images, masks = images.copy(), masks.copy()
    for axis in (1, 2):
        chosen = rng.random(len(images)) < 0.5
        images[chosen] = np.flip(images[chosen], axis)
        masks[chosen] = np.flip(masks[chosen], axis)
    return images, masks


class StopOnNonFinite(keras.callbacks.Callback):
    """Stops training at the first NaN or infinite loss; `raise_if_stopped` turns it into a UserError."""

    def __init__(self):
        super().__init__()
        self.bad_batch = None

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.bad_batch = batch
            self.model.stop_training = True

    def raise_if_stopped(self, epoch_hint: str = "") -> None:
        if self.bad_batch is not None:
            raise UserError(f"params.yaml: train.learning_rate: the loss became NaN/infinite at batch "
                            f"{self.bad_batch}{epoch_hint}; lower train.learning_rate or check the input data")


class KeepBest(keras.callbacks.Callback):
    """Remembers the weights of the epoch with the best `monitor` (higher is better)."""

    def __init__(self, monitor: str = "val_dice"):
        super().__init__()
        self.monitor, self.best, self.best_epoch, self.weights = monitor, -math.inf, None, None

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is not None and value > self.best:
            self.best, self.best_epoch = float(value), epoch
            self.weights = self.model.get_weights()

    def restore(self) -> None:
        if self.weights is not None:
            self.model.set_weights(self.weights)


class LiveLogger(keras.callbacks.Callback):
    """Logs train/val loss, Dice, IoU and the learning rate to dvclive once per epoch."""

    def __init__(self, live):
        super().__init__()
        self.live = live

    def on_epoch_end(self, epoch, logs=None):
        for key, value in sorted((logs or {}).items()):
            if key != "learning_rate":
                split, name = ("val", key[4:]) if key.startswith("val_") else ("train", key)
                self.live.log_metric(f"{split}/{name}", float(value))
        learning_rate = keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)  # the schedule's, now
        self.live.log_metric("learning_rate", float(learning_rate))
        self.live.next_step()


def save_model(model: keras.Model, path) -> None:
    """Save as .keras, then rewrite the zip with fixed timestamps so equal weights give equal bytes."""
    model.save(path)
    with zipfile.ZipFile(path) as archive:
        entries = [(info.filename, archive.read(info)) for info in archive.infolist()]
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in entries:
            if name == "metadata.json":
                metadata = json.loads(data)
                metadata["date_saved"] = "1980-01-01@00:00:00"
                data = json.dumps(metadata, sort_keys=True).encode()
            elif name == "config.json":
                data = renumber_shared_objects(data.decode()).encode()
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)


def renumber_shared_objects(config: str) -> str:
    """Keras writes Python object ids as `shared_object_id`; number them 1, 2, ... by first appearance
    instead (the same object keeps the same number, so loading is unchanged)."""
    numbers: dict[str, int] = {}

    def renumber(match):
        return f'"shared_object_id": {numbers.setdefault(match.group(1), len(numbers) + 1)}'

    return re.sub(r'"shared_object_id": (\d+)', renumber, config)
