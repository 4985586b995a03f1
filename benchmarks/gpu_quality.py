"""Object quality when a GPU trains: the pipeline's own stages around a GPU-sized training run.

The device machines lent to this project have JAX but no TensorFlow, so the train stage (tf.data
input, TensorFlow strategies) cannot run there. `run` executes prepare, plan, extract, augment and
predict as the stages themselves in a scratch copy of the project, and between them trains with the
train stage's own pieces under Keras's JAX backend: the planned U-Net, loss, metrics, LR schedule,
ShardBatches and KeepBest; only the feeding (a Python iterator, not tf.data) differs. `evaluate`
scores the predictions with the evaluate stage on any machine (a CPU is enough), on the same split.

The number of training steps fits a wall-clock deadline for the whole run, so the LR schedule runs
to its end: while the CPU stages extract and augment, a side process times the training step on
random batches (and its compilation), and the steps are set from that.

    python benchmarks/gpu_quality.py pack --out .gpudata/dsb2018     # here: the data, small enough to travel
    KERAS_BACKEND=jax python benchmarks/gpu_quality.py run --data DIR --out DIR [--deadline-s S] [--set k=v]
    python benchmarks/gpu_quality.py evaluate --data DIR --out DIR    # here: -> results/quality_..._gpu.json

benchmarks/gpu_quality_device.sh is the device command that ran it (see README, "Quality with a GPU's budget").
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, RESULTS, copy_code, machine, param_changes  # noqa: E402

DATA_PARAMS = {"data.mask_type": "instances", "prepare.val_fraction": 0.1, "prepare.test_fraction": 0.2}
GPU_PARAMS = {"model.base_filters": 32, "train.batch_size": 32, "train.precision": "mixed_bfloat16",
              "train.jit_compile": True}
ROUNDS = 10  # validation rounds (epochs) over the planned steps
PREDICT_RESERVE_S = 180  # predict on DSB2018 took 148 s on an H200 (GPU inference, then the objects on the CPU)
RUN_SUMMARY, PREDICTIONS = "gpu_quality_run.json", "predictions.tar.gz"


def scratch_project(data: Path, changes: dict) -> Path:
    root = copy_code(Path(tempfile.mkdtemp(prefix="gpu_quality_")))
    values = yaml.safe_load((REPO / "params.yaml").read_text())
    for key, value in {"data.images": str(data / "images"), "data.masks": str(data / "labels"),
                       **DATA_PARAMS, **changes}.items():
        section, name = key.split(".")
        values[section][name] = value
    (root / "params.yaml").write_text(yaml.safe_dump(values, sort_keys=False))
    return root


def stage_env(root: Path) -> dict:
    # Several JAX processes share the GPU one after another: none may take most of its memory up front.
    path = os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path, "XLA_PYTHON_CLIENT_PREALLOCATE": "false"}


def run_stage(root: Path, name: str, log: Path) -> float:
    started = time.perf_counter()
    with log.open("a") as out:
        out.write(f"\n=== {name}\n")
        out.flush()
        subprocess.run([sys.executable, "-m", f"stages.{name}"], cwd=root, env=stage_env(root), stdout=out,
                       stderr=subprocess.STDOUT, check=True)
    seconds = time.perf_counter() - started
    print(f"{name}: {seconds:.0f} s", flush=True)
    return round(seconds, 1)


def side_process(root: Path, log: Path, command: str, *args: str) -> subprocess.Popen:
    """This script's `command` in the scratch project, its output into `log`, its result into <command>.json."""
    with log.open("a") as out:
        return subprocess.Popen([sys.executable, __file__, command, *args, "--project", str(root)], cwd=root,
                                env=stage_env(root), stdout=out, stderr=subprocess.STDOUT)


def result_of(process: subprocess.Popen) -> dict:
    command = process.args[2]
    if process.wait():
        raise SystemExit(f"{command} failed with exit status {process.returncode} (see the log)")
    return json.loads((Path(process.args[-1]) / f"{command}.json").read_text())


def steps_per_round(steps: int) -> int:
    return max(1, steps // ROUNDS)


def compiled_model(steps: int, pixel_weights: bool = False):
    """The train stage's model, for `steps` steps in ROUNDS epochs; also returns its params, plan,
    the prepared data's manifest and the target."""
    from stages.common import read_json, read_plan
    from unetseg.instances import output_classes, resolve_target
    from unetseg.params import load_params
    from unetseg.training import compiled_unet

    params = load_params("params.yaml")  # not load_stage_params: augment's temporaries may be in the making
    prepared = read_json(Path("data/prepared/manifest.json"))
    target = resolve_target(params.data.target, prepared["num_classes"], prepared["mask_type"])
    plan = {**read_plan("train"), "train.epochs": ROUNDS, "train.steps_per_epoch": steps_per_round(steps)}
    classes = output_classes(target, prepared["num_classes"])
    model = compiled_unet(params, plan, prepared["channels"], classes, params.train.precision,
                          pixel_weights=pixel_weights)
    return model, params, plan, prepared, target


def probe() -> dict:
    """Seconds to compile the training step, then patches/s of the compiled step on random batches."""
    import keras
    import numpy as np

    from stages.common import read_plan

    model, _, plan, prepared, _ = compiled_model(1000)
    batch, patch = plan["train.batch_size"], read_plan("extract")["extract.patch_size"]
    rng = np.random.default_rng(0)
    x = rng.random((batch, patch, patch, prepared["channels"]), dtype=np.float32)
    y = (rng.random((batch, patch, patch, 1)) > 0.8).astype(np.float32)
    started = time.perf_counter()
    keras.ops.convert_to_numpy(model.train_on_batch(x, y, return_dict=False)[0])
    compile_s = time.perf_counter() - started
    for _ in range(20):
        model.train_on_batch(x, y)
    steps, started = 200, time.perf_counter()
    for _ in range(steps):
        loss = model.train_on_batch(x, y, return_dict=False)[0]
    keras.ops.convert_to_numpy(loss)
    return {"compile_s": round(compile_s, 1), "patches_per_s": round(steps * batch / (time.perf_counter() - started), 1)}


def deadline_stop(stop_at: float):
    """A Keras callback that ends training at a wall-clock time (the deadline's safety net); its
    `stopped` says whether it had to."""
    import keras

    class StopAt(keras.callbacks.Callback):
        stopped = False

        def on_train_batch_end(self, batch, logs=None):
            if time.perf_counter() > stop_at:
                self.model.stop_training = self.stopped = True

    return StopAt()


def prefetched(data, epoch: int, threads: int = 6, ahead: int = 24):
    """Epoch `epoch`'s batches of a ShardBatches, read by a few threads ahead of the training step."""
    first, end = epoch * len(data), (epoch + 1) * len(data)
    with ThreadPoolExecutor(threads) as pool:
        pending = deque(pool.submit(data.batch, step) for step in range(first, min(first + ahead, end)))
        upcoming = first + len(pending)
        while pending:
            batch = pending.popleft().result()
            if upcoming < end:
                pending.append(pool.submit(data.batch, upcoming))
                upcoming += 1
            yield batch


def train(steps: int, seconds_left: float) -> dict:
    """The train stage's fit under JAX: models/unet.keras, preprocessing.json and a summary."""
    from stages.common import read_plan, write_json
    from unetseg.params import load_params
    from unetseg.training import (KeepBest, ShardBatches, StopOnNonFinite, computing_in_float32, save_model,
                                  uncompiled_copy)

    stop = deadline_stop(time.perf_counter() + seconds_left)
    params, batch = load_params("params.yaml"), read_plan("train")["train.batch_size"]
    t = params.train
    data = ShardBatches("data/augmented", batch, params.base.seed, shuffle=True, flips=t.random_flips,
                        steps_per_epoch=steps_per_round(steps), per_image=t.sampling == "image")
    val = ShardBatches("data/patches/val", batch, params.base.seed, shuffle=False)
    model, _, plan, prepared, target = compiled_model(steps, pixel_weights=data.target_channels == 2)
    keep_best, stop_on_nan = KeepBest("val_dice"), StopOnNonFinite()
    started, history = time.perf_counter(), []
    for epoch in range(plan["train.epochs"]):
        logs = model.fit(prefetched(data, epoch), steps_per_epoch=len(data), validation_data=iter(val),
                         validation_steps=len(val), initial_epoch=epoch, epochs=epoch + 1,
                         callbacks=[stop_on_nan, keep_best, stop], verbose=2).history
        history.append({key: round(float(values[-1]), 5) for key, values in logs.items()})
        if model.stop_training:
            break
    wall = time.perf_counter() - started
    stop_on_nan.raise_if_stopped()
    kept = keep_best.restore_kept(t.keep)
    Path("models").mkdir(exist_ok=True)
    save_model(computing_in_float32(uncompiled_copy(model)), "models/unet.keras")
    preprocessing = {key: prepared[key] for key in ("channels", "num_classes", "normalization")}
    gap = {"gap_width": val.manifest["gap_width"]} if target == "weighted" else {}  # as the train stage writes it
    write_json(Path("models/preprocessing.json"), {**preprocessing, "target": target, **gap})
    return {"steps_planned": plan["train.epochs"] * plan["train.steps_per_epoch"],
            "steps_run": len(history) * plan["train.steps_per_epoch"], "stopped_by_deadline": stop.stopped,
            "best_epoch": keep_best.best_epoch + 1, "best_val_dice": round(keep_best.best, 6),
            "kept_epoch": kept + 1, "kept_val_dice": round(keep_best.values[kept], 6),
            "epochs_run": len(history), "wall_time_s": round(wall, 1),
            "patches_per_s": round(len(history) * len(data) * batch / wall, 1), "parameters": model.count_params(),
            "precision": t.precision, "history": history}


def run(args) -> None:
    started = time.perf_counter()
    deadline = started + args.deadline_s
    changes = {**GPU_PARAMS, **param_changes(args.set)}
    root, out = scratch_project(args.data.resolve(), changes), args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    log, seconds = out / "stages.log", {}
    for name in ("prepare", "plan"):
        seconds[name] = run_stage(root, name, log)
    prober = side_process(root, out / "probe.log", "probe")
    for name in ("extract", "augment"):
        seconds[name] = run_stage(root, name, log)
    timing = result_of(prober)
    reserve = PREDICT_RESERVE_S if args.predict else 0
    budget = deadline - time.perf_counter() - reserve - timing["compile_s"] - 10
    batch = json.loads((root / "data/plan/train.json").read_text())["train.batch_size"]
    steps = args.steps or int(0.8 * budget * timing["patches_per_s"] / batch)
    print(f"probe: {timing}; {budget:.0f} s left for training: {steps} steps of {batch}", flush=True)
    trainer = side_process(root, out / "train.log", "train", "--steps", str(steps),
                           "--seconds", str(budget + timing["compile_s"]))
    summary = result_of(trainer)
    seconds["train"] = summary["wall_time_s"]
    result = {"params_set": changes, "probe": timing, "train": summary, "stage_seconds": seconds,
              "plan": json.loads((root / "reports/plan.json").read_text())}
    for name in ("unet.keras", "preprocessing.json"):
        shutil.copy(root / "models" / name, out / name)
    if args.predict:
        seconds["predict"] = run_stage(root, "predict", log)
        with tarfile.open(out / PREDICTIONS, "w:gz") as archive:
            archive.add(root / "data/predictions", arcname="predictions")
    result["run_wall_s"] = round(time.perf_counter() - started, 1)
    (out / RUN_SUMMARY).write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {out}; scratch project {root}")


def evaluate(args) -> None:
    """The run's predictions scored by the evaluate stage on the same split (prepare rerun here);
    where the run did not predict, the predict stage runs here first, on its model."""
    from quality import scores_by_kind

    result = json.loads((args.out / RUN_SUMMARY).read_text())
    root = scratch_project(args.data.resolve(), result["params_set"])
    log = args.out / "evaluate.log"
    run_stage(root, "prepare", log)
    if (args.out / PREDICTIONS).exists():
        with tarfile.open(args.out / PREDICTIONS) as archive:
            archive.extractall(root / "data", filter="data")
    else:
        (root / "models").mkdir()
        for name in ("unet.keras", "preprocessing.json"):
            shutil.copy(args.out / name, root / "models" / name)
        run_stage(root, "plan", log)
        result["stage_seconds"]["predict, here"] = run_stage(root, "predict", log)
    (root / "reports").mkdir(exist_ok=True)  # evaluate copies what training reached into the metrics
    train = {key: value for key, value in result["train"].items() if key != "history"}
    (root / "reports/train.json").write_text(json.dumps({**train, "val_dice_all_foreground": None}))
    run_stage(root, "evaluate", log)
    metrics = json.loads((root / "reports/metrics.json").read_text())
    scores = {
        "dataset": args.data.resolve().name, "device": args.device, "params_set": result["params_set"],
        "test": {key: metrics.get(key) for key in ("n_images", "dice", "iou", "precision", "recall")},
        "baselines": metrics["baselines"], "instances": metrics.get("instances"),
        "by_image_kind": scores_by_kind(root),
        "plan": result["plan"]["values"], "probe": result["probe"], "train": result["train"],
        "stage_seconds": result["stage_seconds"], "run_wall_s": result.get("run_wall_s"),
        "machine_here": "this machine ran prepare again, evaluate" + ("" if (args.out / PREDICTIONS).exists()
                                                                     else " and predict"),
    }
    args.output.write_text(json.dumps({**scores, "machine": machine()}, indent=2) + "\n")
    print(f"written to {args.output}")
    shutil.rmtree(root, ignore_errors=True)


def pack(args) -> None:
    """A copy of the dataset's images and labels that reads back as the same arrays, smaller: gray
    images stored as one channel, alpha dropped (DSB2018: 61 -> 42 MiB, under the device's 64 MiB)."""
    import numpy as np
    from PIL import Image

    from unetseg.imageio import is_colour, read_image, read_native, to_channels

    (args.out / "images").mkdir(parents=True, exist_ok=True)
    shutil.copytree(args.data / "labels", args.out / "labels", dirs_exist_ok=True)
    for path in sorted((args.data / "images").iterdir()):
        native = read_native(path)
        pixels = native if is_colour(native) else native[..., 0]
        Image.fromarray(pixels).save(args.out / "images" / f"{path.stem}.png", optimize=True)
        if not np.array_equal(to_channels(native, 3), read_image(args.out / "images" / f"{path.stem}.png", 3)):
            raise SystemExit(f"{path}: its packed copy reads back differently")
    print(f"packed {args.data} into {args.out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["pack", "run", "evaluate", "probe", "train"])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared/datasets/dsb2018")
    parser.add_argument("--out", type=Path, default=Path("gpu_quality"))
    parser.add_argument("--deadline-s", type=float, default=560, help="run: seconds for everything up to predict")
    parser.add_argument("--no-predict", dest="predict", action="store_false",
                        help="run: stop after training (predict where `evaluate` runs), leaving training more time")
    parser.add_argument("--steps", type=int, help="run: train this many steps instead of filling the deadline")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="run: one more param")
    parser.add_argument("--device", default="", help="evaluate: the machine the run trained on, for the record")
    parser.add_argument("--output", type=Path, default=RESULTS / "quality_dsb2018_instances_gpu.json",
                        help="evaluate: the result file")
    parser.add_argument("--project", type=Path, help=argparse.SUPPRESS)  # probe, train: the scratch project
    parser.add_argument("--seconds", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.command in ("probe", "train"):  # side processes, run in the scratch project
        result = probe() if args.command == "probe" else train(args.steps, args.seconds)
        (args.project / f"{args.command}.json").write_text(json.dumps(result))
    else:
        {"pack": pack, "run": run, "evaluate": evaluate}[args.command](args)


if __name__ == "__main__":
    main()
