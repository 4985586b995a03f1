"""Backend-portable training pieces: batches streamed from shards, and the callbacks the fit needs."""

import json
import math
import re
import threading
import time
import zipfile

import keras
import numpy as np

from unetseg.errors import UserError
from unetseg.losses import OverlapMetric, SegmentationLoss
from unetseg.shards import patch_files, patch_sources, read_manifest
from unetseg.unet import build_unet

PACE_TOLERANCE = 1.5  # a training this many times slower or faster than planned, and a minute or more off,
                      # says that plan.gflops is not this machine's


class ShardBatches:
    """An endless stream of batches, served `steps_per_epoch` at a time (default: one pass).

    Pass p over the patches is in the seeded global order default_rng([seed, p]) (in file order
    without `shuffle`); an epoch is the next `steps_per_epoch` batches of the stream, so a short
    epoch carries on where the last one stopped. With `per_image`, a pass instead draws as many
    patches, with replacement, so that every source image is equally likely (as nnU-Net samples
    cases): a large image cut into 50 patches then counts as much as a small one cut into 1. Each batch reads just its own patches from the
    shard files, wherever they are, so the dataset need not fit in memory. (Shuffling within a
    shard only would fill a batch with patches of the few images that shard came from.) With
    `flips`, each patch is also flipped at random along each axis. Masks come as (N, P, P, 1), or
    where the shards hold loss weights (the weighted target) as (N, P, P, 2): mask, then weights.

    `batch(step)` gives any batch of the stream directly, so several threads can read batches in
    parallel, and a reader that restarts (as Keras does after peeking at one batch under a
    distribution strategy) gets the same batches again.
    """

    def __init__(self, directory, batch_size: int, seed: int, shuffle: bool = True, flips: bool = False,
                 steps_per_epoch: int | None = None, per_image: bool = False):
        self.batch_size, self.seed = batch_size, seed
        self.shuffle, self.flips = shuffle, flips
        self.manifest = manifest = read_manifest(directory)
        self.count, self.patch_size, self.channels = manifest["count"], manifest["patch_size"], manifest["channels"]
        self.target_channels = 2 if manifest.get("weights") else 1
        self.weights = image_balanced_weights(patch_sources(manifest)) if per_image else None
        self.batches_per_pass = math.ceil(self.count / batch_size)
        self.steps_per_epoch = steps_per_epoch or self.batches_per_pass
        self._files = patch_files(directory)
        sizes = [len(files[1]) for files in self._files]
        self._shard_of = np.repeat(np.arange(len(sizes)), sizes)
        self._index_in_shard = np.concatenate([np.arange(size) for size in sizes]) if sizes else np.empty(0, int)
        self._passes, self._lock, self._epochs_served = {}, threading.Lock(), 0

    def __len__(self) -> int:
        return self.steps_per_epoch

    def __iter__(self):
        """The next epoch's batches."""
        first = self._epochs_served * self.steps_per_epoch
        self._epochs_served += 1
        return (self.batch(step) for step in range(first, first + self.steps_per_epoch))

    def batch(self, step: int) -> tuple[np.ndarray, np.ndarray]:
        """Batch number `step` of the stream: (images, masks) as float32."""
        number, index = divmod(int(step), self.batches_per_pass)
        order, draws = self._pass(number)
        start = index * self.batch_size
        picks = order[start:start + self.batch_size]
        flips = None
        if draws is not None:  # per batch, one draw per patch for rows, then one for columns
            drawn = draws[2 * start:2 * (start + len(picks))].reshape(2, len(picks))
            flips = (drawn < 0.5).T
        return self._read(picks, flips)

    def _pass(self, number: int):
        """Pass `number`'s order and flip draws, computed once (the two newest passes are kept)."""
        with self._lock:
            if number not in self._passes:
                rng = np.random.default_rng([self.seed, number])
                order = self._order(rng)
                draws = rng.random(2 * len(order)) if self.flips else None
                self._passes = {key: value for key, value in self._passes.items() if key > number - 2}
                self._passes[number] = order, draws
            return self._passes[number]

    def _order(self, rng) -> np.ndarray:
        if self.weights is not None:
            return rng.choice(self.count, size=self.count, p=self.weights)
        return rng.permutation(self.count) if self.shuffle else np.arange(self.count)

    def _read(self, picks: np.ndarray, flips: np.ndarray | None):
        """The picked patches in pick order, with one read per patch straight into the batch."""
        outs = [np.empty((len(picks), *file.shape[1:]), file.dtype) for file in self._files[0]]
        shard_of, index_in_shard = self._shard_of[picks], self._index_in_shard[picks]
        for shard in np.unique(shard_of):
            rows = np.flatnonzero(shard_of == shard)
            row_flips = None if flips is None else flips[rows]
            for file, out in zip(self._files[shard], outs):
                file.read_into(out, rows, index_in_shard[rows], row_flips)
        images, *targets = outs
        return images.astype(np.float32, copy=False), np.stack(targets, axis=-1).astype(np.float32)


def compiled_unet(params, plan: dict, channels: int, classes: int, precision: str = "float32",
                  pixel_weights: bool = False, batchnorm_layer=keras.layers.BatchNormalization) -> keras.Model:
    """The U-Net the params and the plan describe, computing in `precision` (a Keras dtype policy),
    with `batchnorm_layer` where model.batchnorm asks, compiled with its loss (`pixel_weights`: the
    targets carry loss weights), metrics and LR schedule (build it inside the strategy's scope to
    train on several devices)."""
    keras.mixed_precision.set_global_policy(precision)
    m, t = params.model, params.train
    model = build_unet(channels, classes, plan["model.depth"], plan["model.base_filters"], m.batchnorm,
                       m.dropout, m.upsampling, batchnorm_layer)
    loss = SegmentationLoss(plan["train.loss"], classes, t.bce_weight, t.dice_weight, t.dice_smooth,
                            pixel_weights=pixel_weights)
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


def collapse_warning(val_dice: float, baseline: float | None) -> str | None:
    """`val_dice`: the saved model's."""
    if baseline is not None and 1 - val_dice > (1 - MIN_ERROR_REDUCTION) * (1 - baseline):
        return (f"validation Dice {val_dice:.3f} is no clear gain on marking every pixel "
                f"foreground ({baseline:.3f}): the model may have collapsed to a trivial answer; check the "
                "masks, keep train.loss auto (bce_dice), or train longer (plan.train_minutes)")
    return None


KEEP_LAST_WITHIN = 0.01  # keep: auto saves the last epoch unless its validation Dice is further below the best


def kept_epoch(val_dice: list[float], keep: str) -> int:
    """The epoch (0-based) whose weights train.keep saves, from the validation Dice of each: best,
    the first with the highest; last, the last; auto, the last unless its Dice falls more than
    KEEP_LAST_WITHIN below the best, else the best. The schedules anneal the learning rate to ~0 over
    the planned steps, so the last weights are the settled ones, while the validation Dice of the last
    epochs differs by less than its noise (the shipped run: epochs 8 to 12 within 0.0008), which
    made `best` keep an earlier, less settled epoch; the margin still catches a late collapse."""
    best = int(np.argmax(val_dice))
    last = len(val_dice) - 1
    if keep == "last" or (keep == "auto" and val_dice[last] >= val_dice[best] - KEEP_LAST_WITHIN):
        return last
    return best


class StopOnNonFinite(keras.callbacks.Callback):
    """Stops training after an epoch whose mean loss is NaN or infinite (one NaN batch makes it so);
    `raise_if_stopped` turns that into a UserError. Checked per epoch, not per batch, so the host
    never waits on the device for a batch's loss."""

    def __init__(self):
        super().__init__()
        self.bad_epoch = None

    def on_epoch_end(self, epoch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.bad_epoch = epoch
            self.model.stop_training = True

    def raise_if_stopped(self) -> None:
        if self.bad_epoch is not None:
            raise UserError(f"params.yaml: train.learning_rate: the loss became NaN/infinite in epoch "
                            f"{self.bad_epoch + 1}; lower train.learning_rate or check the input data")


class KeepBest(keras.callbacks.Callback):
    """Remembers each epoch's `monitor` (`values`) and the weights of the epoch with the best (higher
    is better)."""

    def __init__(self, monitor: str = "val_dice"):
        super().__init__()
        self.monitor, self.best, self.best_epoch, self.weights = monitor, -math.inf, None, None
        self.values: list[float] = []

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None:
            return
        self.values.append(float(value))
        if value > self.best:
            self.best, self.best_epoch = float(value), epoch
            self.weights = self.model.get_weights()

    def restore_kept(self, keep: str) -> int:
        """Leaves the model with the weights of the epoch train.keep picks (`kept_epoch`): the best
        epoch's, remembered, or the last's, which it has; returns that epoch (0-based)."""
        kept = kept_epoch(self.values, keep)
        if kept != len(self.values) - 1 and self.weights is not None:
            self.model.set_weights(self.weights)
        return kept


class EpochTimes(keras.callbacks.Callback):
    """Wall seconds of each epoch, validation included (`seconds`). After the second (the first also
    builds the graph), projects the whole training's minutes and hands them to `on_projection`."""

    def __init__(self, epochs: int, on_projection=None):
        super().__init__()
        self.epochs, self.on_projection, self.seconds, self._started = epochs, on_projection, [], None

    def on_epoch_begin(self, epoch, logs=None):
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._started)
        if len(self.seconds) == 2 and self.on_projection is not None:
            first, second = self.seconds
            self.on_projection((first + second * (self.epochs - 1)) / 60)


def pace_note(plan: dict, projected_minutes: float) -> str | None:
    """A line for a training that runs well off the estimate of `plan` (reports/plan.json): the
    machine's throughput is not plan.gflops (a CPU without AMX trains in float32, 1.3-1.9x as long as
    the reference machine in bfloat16), so the budget plan.train_minutes does not hold."""
    planned, gflops = plan["estimate"]["train_minutes"], plan["budget"]["gflops"]
    if abs(projected_minutes - planned) < 1:
        return None
    ratio = projected_minutes / planned
    if 1 / PACE_TOLERANCE <= ratio <= PACE_TOLERANCE:
        return None
    here = gflops / ratio
    return (f"training will take ~{projected_minutes:.0f} min, {ratio:.1f}x the plan's {planned:g} min: this machine "
            f"trains at ~{here:.3g} GFLOP/s, not plan.gflops={gflops:g}. Set plan.gflops: {here:.3g} in params.yaml "
            f"(or measure it: python -m unetseg.calibrate) for a plan that fits plan.train_minutes")


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


def uncompiled_copy(model: keras.Model, clone_function=None) -> keras.Model:
    """The same network (each layer through `clone_function`, if given) and weights, not compiled:
    saved, it carries no optimizer state (a third of the file's size with Adam)."""
    copy = keras.models.clone_model(model, clone_function=clone_function)
    copy.set_weights(model.get_weights())
    return copy


def computing_in_float32(model: keras.Model) -> keras.Model:
    """The model with every layer set to compute in float32 (the weights are float32 already), so
    that a model trained in mixed precision is saved to run in float32 wherever it is loaded: on a
    CPU without native bfloat16 kernels those would be emulated, and slow."""
    for layer in model.layers:
        layer.dtype_policy = "float32"
    keras.mixed_precision.set_global_policy("float32")
    return model


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
