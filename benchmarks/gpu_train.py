"""Training throughput of the seed network on a GPU: patches/s and model-FLOPs utilisation (MFU).

The seed configuration (depth 4, base 32 filters, transposed up-sampling, no batch norm) on 256²
patches, bce_dice loss, Adam, from in-memory batches (the input pipeline is measured on its own, in
input_pipeline.py). Every precision (float32, mixed_float16, mixed_bfloat16) with XLA off and on,
on each Keras backend installed (TensorFlow, JAX), each backend in its own process since Keras fixes
it at import. A variant that fails is recorded with its error, and the rest still run.

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


def run_backend(backend: str, config: dict) -> dict:
    """This process's variants (KERAS_BACKEND is already `backend`)."""
    from unetseg.plan import TRAIN_FLOPS_PER_FORWARD, unet_flops

    device = device_name(backend)
    flops = TRAIN_FLOPS_PER_FORWARD * unet_flops(config["patch"], 1, config["depth"], config["base_filters"])
    variants = {}
    for precision in PRECISIONS:
        for xla in (False, True):
            name = f"{precision}, XLA {'on' if xla else 'off'}"
            try:
                rate = patches_per_s(config, precision, xla)
            except Exception as error:  # noqa: BLE001 - one unsupported variant must not end the run
                variants[name] = {"error": f"{type(error).__name__}: {(str(error).splitlines() or [''])[0][:200]}"}
                continue
            peak = peak_tflops(device, precision)
            variants[name] = {"patches_per_s": round(rate, 1), "tflops": round(rate * flops / 1e12, 3),
                              "mfu": None if peak is None else round(rate * flops / (peak * 1e12), 4)}
            print(f"{backend} {name}: {variants[name]}", file=sys.stderr, flush=True)
    return {"device": device, "variants": variants}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="a seconds-long configuration, for CPUs and tests")
    parser.add_argument("--output", type=Path, default=REPO / "benchmarks/results/gpu_train.json")
    parser.add_argument("--backend", choices=BACKENDS, help=argparse.SUPPRESS)  # a child process's own run
    args = parser.parse_args()
    config = TINY if args.tiny else SEED
    if args.backend:
        print(json.dumps(run_backend(args.backend, config)))
        return

    results = {"config": config, "precisions": PRECISIONS, "backends": {}}
    for backend in BACKENDS:
        if importlib.util.find_spec(backend) is None:
            results["backends"][backend] = {"error": "not installed"}
            continue
        command = [sys.executable, __file__, "--backend", backend] + (["--tiny"] if args.tiny else [])
        results["backends"][backend] = run_child(command, {**os.environ, "KERAS_BACKEND": backend})
        print(backend, json.dumps(results["backends"][backend], indent=1), flush=True)
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps({**results, "machine": machine()}, indent=2) + "\n")
    print(f"written to {args.output}")


def run_child(command: list[str], env: dict) -> dict:
    """A backend's process: its result, or its last stderr line as the error; its stderr echoed as it
    comes, so a long GPU run shows each variant when it ends."""
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    last = ""
    for line in child.stderr:
        print(line, end="", file=sys.stderr, flush=True)
        last = line.strip() or last
    stdout = child.stdout.read()
    if child.wait():
        return {"error": (last or f"exit status {child.returncode}")[:300]}
    return json.loads(stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    main()
