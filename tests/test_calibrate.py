import subprocess
import sys

from stage_runner import REPO


def test_calibrate_prints_the_gflops_to_set(tmp_path):
    result = subprocess.run([sys.executable, "-m", "unetseg.calibrate", "--base-filters", "2", "--patch-size", "32",
                             "--batch-size", "2", "--steps", "2"], cwd=tmp_path, capture_output=True, text=True,
                            env={"PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3", "PATH": ""})
    assert result.returncode == 0, result.stderr
    line = result.stdout.strip().splitlines()[-1]
    assert "patches/s of 32x32 at base_filters 2 in " in line and ": set plan.gflops:" in line
    assert float(line.rsplit(":", 1)[1].split()[0]) > 0
