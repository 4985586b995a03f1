"""Stage train: fit the U-Net on the augmented train shards, keep the best model by validation Dice.

Network width and depth, batch size, loss, epochs and steps come from the plan (data/plan/train.json).
Several GPUs, or several workers (TF_CONFIG), share each batch (unetseg/tf_training.py); only the
chief writes the outputs."""

import os
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import numpy as np
from unetseg.backend import start_keras

keras = start_keras()
import tensorflow as tf  # noqa: E402
from dvclive import Live  # noqa: E402

from stages.common import atomic_dir, load_stage_params, read_json, read_plan, run_stage, write_json  # noqa: E402
from unetseg.instances import output_classes, resolve_target  # noqa: E402
from unetseg.tf_training import (as_dataset, batchnorm_layer, choose_strategy, fit_ready, is_chief,  # noqa: E402
                                 make_strategy, precision_here, set_determinism, with_keras_batchnorm)
from unetseg.training import (EpochTimes, KeepBest, LiveLogger, ShardBatches, StopOnNonFinite,  # noqa: E402
                              all_foreground_dice, collapse_warning, compiled_unet, computing_in_float32,
                              pace_note, save_model)

TRAIN, VAL, PREPARED = "data/augmented", "data/patches/val", "data/prepared/manifest.json"
MODELS, LIVE, SUMMARY = "models", "reports/live", "reports/train.json"
PLAN_REPORT = "reports/plan.json"  # the plan's estimate of this training, read for a warning only


def progress_display() -> int:
    """Keras's verbosity: a progress bar within each epoch on a terminal, one line per epoch in a log."""
    return 1 if sys.stdout.isatty() else 2


def main(argv) -> None:
    params = load_stage_params(argv, __doc__)
    t, plan, prepared = params.train, read_plan("train"), read_json(PREPARED)
    target = resolve_target(params.data.target, prepared["num_classes"], prepared["mask_type"])
    keras.utils.set_random_seed(params.base.seed)
    set_determinism(t.deterministic)

    gpus = tf.config.list_physical_devices("GPU")
    tf_config = os.environ.get("TF_CONFIG")
    strategy_name, chief = choose_strategy(len(gpus), tf_config), is_chief(tf_config)
    devices = [d.name for d in gpus] or ["CPU"]
    precision = precision_here(t.precision)
    print(f"train: devices {', '.join(devices)}; strategy {strategy_name}; precision {precision}"
          + (" (auto)" if t.precision == "auto" else "")
          + ("" if chief else "; a worker, not the chief: its outputs are discarded"))

    batch = plan["train.batch_size"]
    train = ShardBatches(TRAIN, batch, params.base.seed, shuffle=True, flips=t.random_flips,
                         steps_per_epoch=plan["train.steps_per_epoch"], per_image=t.sampling == "image")
    val = ShardBatches(VAL, batch, params.base.seed, shuffle=False)
    strategy = make_strategy(strategy_name)
    with strategy.scope():
        model = compiled_unet(params, plan, train.channels, output_classes(target, prepared["num_classes"]), precision,
                              pixel_weights=train.target_channels == 2, batchnorm_layer=batchnorm_layer(len(gpus)))
    fit_ready(model, strategy_name)

    keep_best, stop_on_nan = KeepBest("val_dice"), StopOnNonFinite()
    with ExitStack() as stack:
        if chief:
            live_dir = stack.enter_context(atomic_dir(LIVE))
            models_dir = stack.enter_context(atomic_dir(MODELS))
        else:  # every worker saves (Keras may sync while saving), into a folder that then vanishes
            live_dir = models_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="unetseg-worker-")))
        live = stack.enter_context(Live(str(live_dir), dvcyaml=False, save_dvc_exp=False, report=None))
        callbacks = [
            stop_on_nan, keep_best, LiveLogger(live), EpochTimes(plan["train.epochs"], warn_if_off_pace),
            keras.callbacks.EarlyStopping("val_dice", mode="max", patience=t.early_stopping_patience),
        ]
        if t.lr_schedule == "plateau":
            callbacks.append(keras.callbacks.ReduceLROnPlateau("val_dice", mode="max", factor=t.reduce_lr_factor,
                                                               patience=t.reduce_lr_patience, verbose=1))
        started = time.perf_counter()
        with strategy.scope():
            model.fit(as_dataset(train, endless=True), steps_per_epoch=len(train),
                      validation_data=as_dataset(val), epochs=plan["train.epochs"],
                      callbacks=callbacks, shuffle=False, verbose=progress_display())
        wall = time.perf_counter() - started
        stop_on_nan.raise_if_stopped()
        kept = keep_best.restore_kept(t.keep)
        save_model(computing_in_float32(with_keras_batchnorm(model)), models_dir / "unet.keras")
        preprocessing = {key: prepared[key] for key in ("channels", "num_classes", "normalization")}
        gap = {"gap_width": val.manifest["gap_width"]} if target == "weighted" else {}
        scale = {"scale": val.manifest["scale"]} if "scale" in val.manifest else {}
        write_json(models_dir / "preprocessing.json", {**preprocessing, "target": target, **gap, **scale})
    if chief:
        one_channel = target in ("binary", "weighted")  # the all-foreground baseline needs a foreground channel
        baseline = all_foreground_dice(val.manifest["foreground_fraction"]) if one_channel else None
        write_summary(model, keep_best.values, kept, baseline, wall, len(train) * batch, devices, precision)


def warn_if_off_pace(projected_minutes: float) -> None:
    """After two epochs: a warning when the training will take far longer or shorter than planned."""
    if Path(PLAN_REPORT).is_file():
        note = pace_note(read_json(PLAN_REPORT), projected_minutes)
        if note:
            print(f"warning: {note}", file=sys.stderr, flush=True)


def write_summary(model, val_dice: list[float], kept: int, baseline: float | None, wall: float,
                  patches_per_epoch: int, devices: list[str], precision: str) -> None:
    """reports/train.json; `val_dice`: each epoch's, `kept`: the saved epoch (0-based); `baseline`: the
    all-foreground Dice on the validation patches, where one applies."""
    warning = collapse_warning(val_dice[kept], baseline)
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
    best, epochs_run = int(np.argmax(val_dice)), len(val_dice)
    print(f"train: best validation Dice {val_dice[best]:.3f} (epoch {best + 1} of {epochs_run}) in {wall:.0f} s; "
          f"saved epoch {kept + 1} (validation Dice {val_dice[kept]:.3f}) -> {MODELS}/unet.keras")
    write_json(SUMMARY, {
        "best_epoch": best + 1,
        "best_val_dice": round(float(val_dice[best]), 6),
        "kept_epoch": kept + 1,
        "kept_val_dice": round(float(val_dice[kept]), 6),
        "val_dice_all_foreground": None if baseline is None else round(baseline, 6),
        "epochs_run": epochs_run,
        "wall_time_s": round(wall, 1),
        "patches_per_s": round(patches_per_epoch * epochs_run / wall, 1),
        "device": ", ".join(devices),
        "precision": precision,
        "parameters": model.count_params(),
    })


if __name__ == "__main__":
    run_stage(main)
