"""Run a stage as `python -m stages.<name>` in a scratch directory, as DVC would."""

import os
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]

STAGES = ["synthesize", "prepare", "plan", "extract", "augment", "train", "predict", "measure", "evaluate"]
# Small enough that the whole pipeline runs in well under a minute on 2 cores.
TINY = {
    "synthesize": {"num_images": 8, "min_size": 56, "max_size": 72, "nuclei_per_image": [3, 6]},
    "prepare": {"val_fraction": 0.25, "test_fraction": 0.25},
    "extract": {"patch_size": 32, "stride": 32, "shard_size": 16},
    "augment": {"copies": 1},
    "model": {"depth": 2, "base_filters": 4},
    "train": {"epochs": 2, "steps_per_epoch": 6, "batch_size": 8},
    "predict": {"tile_size": 32, "batch_size": 4},
    "evaluate": {"overlays": 1},
}



def run_stage(name: str, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, "-m", f"stages.{name}", *args], cwd=cwd, env=env,
                          capture_output=True, text=True)


def run_with_keras_alone(code: str, *args: str, cwd: Path) -> None:
    """Run `code` (with sys, numpy as np and keras imported, `args` in sys.argv) in a fresh Python
    that cannot import this project, as a user of the saved model would; fails if it raises or if
    anything imported unetseg."""
    script = f"import sys, numpy as np, keras\n{code}\nassert 'unetseg' not in sys.modules\n"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    subprocess.run([sys.executable, "-c", script, *args], check=True, cwd=cwd, env=env, capture_output=True)


def write_params(cwd: Path, params: dict) -> None:
    (cwd / "params.yaml").write_text(yaml.safe_dump(params))


def error_line(result: subprocess.CompletedProcess) -> str:
    """The single error line of a failed stage (asserting there is exactly one)."""
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]
