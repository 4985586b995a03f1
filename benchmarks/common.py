"""Shared by the benchmarks: a scratch copy of the project, peak RSS of a command, result files."""

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml
from PIL import Image
from scipy import ndimage

from unetseg import augment
from unetseg.backend import use_onednn

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
use_onednn()  # before any benchmark imports TensorFlow: measure it as the stages run it


# The speed and memory benchmarks measure one fixed network, not whatever the plan picks for
# the benchmark's data: the planned knobs are pinned to the configuration their figures are for.
PINNED = {"extract": {"patch_size": 128, "stride": 64, "fg_fraction": 0.33, "grid_fraction": 1.0},
          "augment": {"copies": 2},
          "model": {"depth": 4, "base_filters": 8, "batchnorm": False},
          "train": {"batch_size": 16, "loss": "bce_dice", "epochs": 1, "steps_per_epoch": 1},
          "predict": {"tile_size": 256}}


def benchmark_params(overrides: dict | None = None) -> dict:
    """params.yaml with the planned knobs pinned (PINNED), then `overrides`, section by section."""
    values = yaml.safe_load((REPO / "params.yaml").read_text())
    for changes in (PINNED, overrides or {}):
        for section, keys in changes.items():
            values[section] = {**values.get(section, {}), **keys}
    return values


def param_changes(items: list[str]) -> dict:
    """--set KEY=VALUE arguments as {dotted key: value}, each value read as YAML (so 0.5, true, [1, 2])."""
    changes = {}
    for item in items:
        key, equals, value = item.partition("=")
        if not equals or not key:
            sys.exit(f"--set {item}: give KEY=VALUE, e.g. --set train.learning_rate=0.002")
        changes[key] = yaml.safe_load(value)
    return changes


def load_benchmark_params():
    from unetseg.params import parse_params

    return parse_params(benchmark_params())


def copy_code(root: Path) -> Path:
    """The stages and the library, copied into `root`."""
    for name in ("stages", "unetseg"):
        shutil.copytree(REPO / name, root / name, ignore=shutil.ignore_patterns("__pycache__"))
    return root


def scratch_project(root: Path, params: dict) -> Path:
    """A copy of the code and params.yaml (pinned, then updated with `params`), ready to run stages in."""
    copy_code(root)
    (root / "params.yaml").write_text(yaml.safe_dump(benchmark_params(params), sort_keys=False))
    return root


def augmented_project(root: Path, params: dict) -> Path:
    """scratch_project, with the default dataset's augmented training shards made."""
    scratch_project(root, params)
    for name in ("synthesize", "prepare", "plan", "extract", "augment"):
        run_measured(stage(name), root)
    return root


def interleaved_seconds(runs: dict, rounds: int) -> dict[str, list[float]]:
    """Seconds of every round of every run: one warm-up call each, then `rounds` rounds in which each
    runs once in turn, so that drifts in machine load hit all of them alike."""
    for run in runs.values():
        run()
    seconds = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            started = time.perf_counter()
            run()
            seconds[name].append(time.perf_counter() - started)
    return seconds


def run_measured(args: list[str], cwd: Path) -> float:
    """Run a command in a fresh wrapper process; return the command's peak RSS in MiB."""
    wrapper = ("import resource, subprocess, sys\n"
               "subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
               "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n")
    env = {**os.environ, "PYTHONPATH": str(cwd), "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run([sys.executable, "-c", wrapper, *args], cwd=cwd, env=env, check=True,
                            capture_output=True, text=True)
    return int(result.stdout.split()[-1]) / 1024  # ru_maxrss is in KiB on Linux


def input_channels(params) -> int:
    """data.channels as a number; "auto" picks gray (1) on the default synthetic dataset."""
    return 1 if params.data.channels == "auto" else params.data.channels


def stage(name: str) -> list[str]:
    return [sys.executable, "-m", f"stages.{name}"]


def machine() -> dict:
    """Where a figure was measured: cores, architecture, Python and, on Linux, the CPU."""
    return {"cpus": os.cpu_count(), "machine": platform.machine(), "python": platform.python_version(),
            **cpu_description()}


# The vector extensions that decide TensorFlow's kernels and precision (tf_training.resolve_precision)
KERNEL_FLAGS = {"avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni", "amx_bf16"}


def cpu_description() -> dict:
    """The CPU's model name and its KERNEL_FLAGS, from /proc/cpuinfo (none elsewhere)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return {}
    field = {line.split(":")[0].strip(): line.split(":", 1)[1].strip() for line in lines if ":" in line}
    return {"cpu_model": field.get("model name", "?"), "cpu_flags": sorted(set(field.get("flags", "").split()) & KERNEL_FLAGS)}


def smooth_random_patches(count: int, size: int = 128, channels: int = 3):
    """(images float32 (N, size, size, C), masks uint8 (N, size, size)): blurred noise and its
    brighter half, stand-ins for DSB2018's RGB patches in the augment benchmarks."""
    noise = np.random.default_rng(1).random((count, size, size, channels))
    images = ndimage.gaussian_filter(noise, (0, 2, 2, 0)).astype(np.float32)
    return images, (images[..., 0] > images[..., 0].mean()).astype(np.uint8)


def augment_each(images, masks, cfg, **swapped) -> list:
    """Every patch's image augmented once (the same draws every call), with the names of
    `unetseg.augment` in `swapped` (functions, modules) replaced for the call."""
    originals = {name: getattr(augment, name) for name in swapped}
    rng = np.random.default_rng(0)
    try:
        for name, value in swapped.items():
            setattr(augment, name, value)
        return [augment.augment_patch(image, mask, rng, cfg)[0] for image, mask in zip(images, masks)]
    finally:
        for name, value in originals.items():
            setattr(augment, name, value)


def save_labelled(out: Path, name: str, image: np.ndarray, labels: np.ndarray) -> None:
    """A drawn image as a user's dataset holds it: out/images, out/masks (0/255), out/labels (ids)."""
    for folder, array in (("images", image), ("masks", np.where(labels > 0, 255, 0).astype(np.uint8)),
                          ("labels", labels)):
        (out / folder).mkdir(parents=True, exist_ok=True)
        Image.fromarray(array).save(out / folder / name)


def dataset_main(write_dataset, description: str, images: int, size: int) -> None:
    """The command line of a drawn dataset: OUT [--images N] [--size PX] [--seed S] -> write_dataset."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--images", type=int, default=images)
    parser.add_argument("--size", type=int, default=size)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    write_dataset(args.out, args.images, args.size, args.seed)


def write_results(name: str, results: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({**results, "machine": machine()}, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    print(f"written to {path.relative_to(REPO)}")
    return path


def peak_rss_of_this_process_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
