"""Training throughput of the seed network on a GPU: patches/s and model-FLOPs utilisation (MFU).

The seed configuration (depth 4, base 32 filters, transposed up-sampling, no batch norm) on 256²
patches, bce_dice loss, Adam, from in-memory batches (the input pipeline is measured on its own, in
input_pipeline.py). Every precision (float32, mixed_float16, mixed_bfloat16) on each Keras backend
installed (TensorFlow, JAX), each backend in its own process since Keras fixes it at import; with XLA
off and on under TensorFlow, on only under JAX (off, Keras runs JAX op by op: its debugging mode, 9-60x
slower on an H200, which took a run's device time and measured nothing a user runs). A variant that fails is recorded with its error, and the rest still run; the output file is
written again after every variant, so a run stopped part-way keeps what it measured.

MFU = training FLOP/s achieved (FLOPs counted from the network: unetseg.plan.unet_flops, times
TRAIN_FLOPS_PER_FORWARD for the backward pass) / the device's dense peak for the precision, from
PEAK_TFLOPS by device name (float32 counts as TF32, which TensorFlow and JAX use for float32
convolutions on these GPUs by default). On a CPU or an unlisted device MFU is left out.

    python benchmarks/gpu_train.py                    # on the GPU: writes results/gpu_train.json
    python benchmarks/gpu_train.py --tiny --output F  # seconds on a CPU (the test suite runs this)
"""

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, machine  # noqa: E402

sys.path.insert(0, str(REPO))

PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
BACKENDS = ("tensorflow", "jax")
XLA = {"tensorflow": (False, True), "jax": (True,)}
SEED = {"depth": 4, "base_filters": 32, "patch": 256, "batch": 32, "steps": 20, "rounds": 3}
TINY = {"depth": 2, "base_filters": 4, "patch": 32, "batch": 4, "steps": 2, "rounds": 1}

# Dense peak TFLOP/s (no sparsity), from the vendors' data sheets: (16-bit, TF32). The first name
# contained in the device's name wins, so the more specific names come first.
PEAK_TFLOPS = {
    "H100 PCIe": (756.0, 378.0), "H100": (989.4, 494.7), "H200": (989.4, 494.7), "GH200": (989.4, 494.7),
    "A100": (312.0, 156.0), "L40S": (362.1, 183.0), "L4": (121.0, 60.0), "A10G": (70.0, 35.0),
    "A10": (125.0, 62.5), "V100": (125.0, 15.7), "T4": (65.0, 8.1),
}


def peak_tflops(device: str, precision: str) -> float | None:
    for name, (half, tf32) in PEAK_TFLOPS.items():
        if name in device:
            return tf32 if precision == "float32" else half
    return None


def device_name(backend: str) -> str:
    if backend == "jax":
        import jax

        device = jax.devices()[0]
        return device.device_kind if device.platform == "gpu" else "CPU"
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    return tf.config.experimental.get_device_details(gpus[0]).get("device_name", "GPU") if gpus else "CPU"


def patches_per_s(config: dict, precision: str, xla: bool) -> float:
    """Median over timed one-epoch fits of `steps` batches, after one warm-up fit (which compiles)."""
    import keras
    import numpy as np

    from unetseg.losses import SegmentationLoss
    from unetseg.unet import build_unet

    keras.mixed_precision.set_global_policy(precision)
    keras.utils.set_random_seed(0)
    model = build_unet(1, 1, config["depth"], config["base_filters"], upsampling="transpose")
    model.compile(keras.optimizers.Adam(1e-4), SegmentationLoss("bce_dice"), jit_compile=xla)
    count, rng = config["batch"] * config["steps"], np.random.default_rng(0)
    x = rng.random((count, config["patch"], config["patch"], 1), dtype=np.float32)
    y = (x > 0.7).astype(np.float32)

    def fit():
        started = time.perf_counter()
        model.fit(x, y, batch_size=config["batch"], epochs=1, shuffle=False, verbose=0)
        return time.perf_counter() - started

    fit()
    return count / statistics.median(fit() for _ in range(config["rounds"]))


def run_backend(backend: str, config: dict) -> None:
    """This process's variants (KERAS_BACKEND is already `backend`), each printed to stdout as one JSON
    line the moment it ends, after a first line naming the device."""
    from unetseg.plan import TRAIN_FLOPS_PER_FORWARD, unet_flops

    device = device_name(backend)
    print(json.dumps({"device": device}), flush=True)
    flops = TRAIN_FLOPS_PER_FORWARD * unet_flops(config["patch"], 1, config["depth"], config["base_filters"])
    for precision in PRECISIONS:
        for xla in XLA[backend]:
            name = f"{precision}, XLA {'on' if xla else 'off'}"
            try:
                rate = patches_per_s(config, precision, xla)
            except Exception as error:  # noqa: BLE001 - one unsupported variant must not end the run
                result = {"error": f"{type(error).__name__}: {(str(error).splitlines() or [''])[0][:200]}"}
            else:
                peak = peak_tflops(device, precision)
                result = {"patches_per_s": round(rate, 1), "tflops": round(rate * flops / 1e12, 3),
                          "mfu": None if peak is None else round(rate * flops / (peak * 1e12), 4)}
            print(f"{backend} {name}: {result}", file=sys.stderr, flush=True)
            print(json.dumps({"variant": name, "result": result}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="a seconds-long configuration, for CPUs and tests")
    parser.add_argument("--output", type=Path, default=REPO / "benchmarks/results/gpu_train.json")
    parser.add_argument("--backend", choices=BACKENDS, help=argparse.SUPPRESS)  # a child process's own run
    args = parser.parse_args()
    config = TINY if args.tiny else SEED
    if args.backend:
        run_backend(args.backend, config)
        return

    results = {"config": config, "precisions": PRECISIONS, "backends": {}}

    def save() -> None:  # after every variant: a run cut short keeps what it measured
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps({**results, "machine": machine()}, indent=2) + "\n")

    for backend in BACKENDS:
        if importlib.util.find_spec(backend) is None:
            results["backends"][backend] = {"error": "not installed"}
            continue
        command = [sys.executable, __file__, "--backend", backend] + (["--tiny"] if args.tiny else [])
        results["backends"][backend] = run = {"variants": {}}
        run_child(command, {**os.environ, "KERAS_BACKEND": backend}, run, save)
        print(backend, json.dumps(run, indent=1), flush=True)
    save()
    print(f"written to {args.output}")


def run_child(command: list[str], env: dict, run: dict, save) -> None:
    """A backend's process, its stderr shown as it comes: each line it prints goes into `run` (the
    device, then one variant at a time) and is saved at once; a failed process adds its exit status as
    the error, next to the variants it finished."""
    child = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env)
    for line in child.stdout:
        if not line.startswith("{"):  # a library's own print
            print(line, end="", flush=True)
            continue
        message = json.loads(line)
        if "variant" in message:
            run["variants"][message["variant"]] = message["result"]
        else:
            run.update(message)
        save()
    if child.wait():
        run["error"] = f"exit status {child.returncode} (see its stderr above)"
        save()


if __name__ == "__main__":
    main()
