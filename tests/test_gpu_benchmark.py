"""The GPU benchmark cannot rot while no GPU is at hand: its tiny configuration runs here on CPU,
every variant on every backend."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from stage_runner import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
from gpu_train import PRECISIONS, XLA, peak_tflops, run_child  # noqa: E402


def test_peak_flops_are_looked_up_by_device_name():
    assert peak_tflops("NVIDIA H100 80GB HBM3", "mixed_bfloat16") == 989.4
    assert peak_tflops("NVIDIA H100 PCIe", "float32") == 378.0
    assert peak_tflops("NVIDIA A100-SXM4-40GB", "mixed_float16") == 312.0
    assert peak_tflops("NVIDIA L40S", "float32") == 183.0
    assert peak_tflops("CPU", "float32") is None


@pytest.mark.e2e
def test_gpu_benchmark_runs_every_variant_in_its_tiny_configuration(tmp_path):
    output = tmp_path / "gpu_train.json"
    result = subprocess.run([sys.executable, "benchmarks/gpu_train.py", "--tiny", "--output", str(output)],
                            cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads(output.read_text())
    for backend in ("tensorflow", "jax"):
        run = results["backends"][backend]
        assert run["device"] == "CPU", run
        modes = ("off", "on") if backend == "tensorflow" else ("on",)
        assert sorted(run["variants"]) == sorted(f"{p}, XLA {x}" for p in PRECISIONS for x in modes)
        assert XLA[backend] == tuple(mode == "on" for mode in modes)
        for name, variant in run["variants"].items():
            assert variant["patches_per_s"] > 0 and variant["mfu"] is None, (backend, name, variant)


def test_a_backend_that_dies_keeps_the_variants_it_finished(tmp_path):
    script = ('import json, sys; print(json.dumps({"device": "CPU"})); print("a library speaks"); '
              'print(json.dumps({"variant": "float32, XLA off", "result": {"patches_per_s": 5.0}}), flush=True); '
              'sys.exit(137)')
    saved = []
    run = {"variants": {}}
    run_child([sys.executable, "-c", script], {}, run, lambda: saved.append(json.dumps(run)))
    assert run == {"variants": {"float32, XLA off": {"patches_per_s": 5.0}}, "device": "CPU",
                   "error": "exit status 137 (see its stderr above)"}
    assert json.loads(saved[1])["variants"] == run["variants"]  # saved the moment the variant ended


TINY_SETS = ["extract.patch_size=32", "extract.stride=32", "extract.shard_size=16", "augment.copies=1",
             "model.depth=2", "model.base_filters=4", "train.batch_size=8", "train.precision=float32",
             "predict.tile_size=32", "predict.batch_size=4", "prepare.val_fraction=0.25", "prepare.test_fraction=0.25"]


@pytest.mark.e2e
def test_gpu_quality_runs_the_stages_around_a_jax_training_run_then_scores_them(tiny_run, tmp_path):
    pytest.importorskip("jax")
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu", "TMPDIR": str(tmp_path)}
    script, data, out = "benchmarks/gpu_quality.py", str(tiny_run / "data/synthetic"), tmp_path / "out"
    packed = tmp_path / "packed"  # the device trains on the packed copy, evaluate reads the original
    result = subprocess.run([sys.executable, script, "pack", "--data", data, "--out", str(packed)], cwd=REPO,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    sets = [arg for item in TINY_SETS for arg in ("--set", item)]
    result = subprocess.run([sys.executable, script, "run", "--data", str(packed), "--out", str(out), "--steps", "20",
                             *sets],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    run = json.loads((out / "gpu_quality_run.json").read_text())
    assert run["train"]["steps_run"] == run["train"]["steps_planned"] == 20 and not run["train"]["stopped_by_deadline"]
    assert run["plan"]["values"]["model.base_filters"] == 4 and run["probe"]["patches_per_s"] > 0
    assert {"prepare", "plan", "extract", "augment", "train", "predict"} <= run["stage_seconds"].keys()
    scores = tmp_path / "scores.json"
    result = subprocess.run([sys.executable, script, "evaluate", "--data", data, "--out", str(out),
                             "--output", str(scores)], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    scores = json.loads(scores.read_text())
    assert scores["test"]["n_images"] == 2 and 0 <= scores["test"]["dice"] <= 1
    assert scores["instances"]["truth_objects"] == "instance labels" and scores["train"] == run["train"]


def test_pack_stores_gray_images_in_one_channel_and_colour_ones_without_alpha(tmp_path):
    from types import SimpleNamespace

    from gpu_quality import pack
    from PIL import Image

    from unetseg.imageio import read_image

    data, out = tmp_path / "data", tmp_path / "packed"
    (data / "images").mkdir(parents=True)
    (data / "labels").mkdir()
    gray = np.arange(48, dtype=np.uint8).reshape(6, 8)
    Image.fromarray(np.dstack([gray, gray, gray, np.full_like(gray, 255)])).save(data / "images/gray.png")
    Image.fromarray(np.dstack([gray, gray[::-1], gray])).save(data / "images/colour.png")
    for stem in ("gray", "colour"):
        Image.fromarray(np.eye(6, 8, dtype=np.uint16)).save(data / "labels" / f"{stem}.png")
    pack(SimpleNamespace(data=data, out=out))
    assert Image.open(out / "images/gray.png").mode == "L" and Image.open(out / "images/colour.png").mode == "RGB"
    for stem in ("gray", "colour"):
        path = f"images/{stem}.png"
        assert np.array_equal(read_image(data / path, 3), read_image(out / path, 3))
        assert (out / "labels" / f"{stem}.png").read_bytes() == (data / "labels" / f"{stem}.png").read_bytes()
