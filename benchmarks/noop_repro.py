"""How long `dvc repro` takes when nothing changed, on this repository's default pipeline.

Run from the project root after a complete `dvc repro` (it refuses a stale pipeline). Goal: ≤ 3 s.
"""

import statistics
import subprocess
import sys
import time

from common import REPO, write_results

ROUNDS = 5


def timed(args: list[str]) -> tuple[float, str]:
    start = time.perf_counter()
    result = subprocess.run(args, cwd=REPO, capture_output=True, text=True, check=True)
    return time.perf_counter() - start, result.stdout


def main() -> None:
    dvc = [sys.executable, "-m", "dvc"]
    _, status = timed([*dvc, "status"])
    if "up to date" not in status:
        sys.exit("error: the pipeline is not up to date; run `dvc repro` first, then this benchmark")
    repro = [timed([*dvc, "repro"])[0] for _ in range(ROUNDS)]
    status_s = [timed([*dvc, "status"])[0] for _ in range(ROUNDS)]
    startup = [timed([*dvc, "--version"])[0] for _ in range(ROUNDS)]
    write_results("noop_repro", {
        "rounds": ROUNDS,
        "dvc_repro_noop_s": {"median": round(statistics.median(repro), 2), "max": round(max(repro), 2)},
        "dvc_status_s": {"median": round(statistics.median(status_s), 2)},
        "dvc_startup_s": {"median": round(statistics.median(startup), 2)},
        "goal_s": 3.0,
    })


if __name__ == "__main__":
    main()
