"""What every stage adapter shares: one-line errors, atomic outputs, small JSON files."""

import argparse
import shutil
import sys
from pathlib import Path

from unetseg.errors import exit_on_user_error
from unetseg.files import atomic_dir, atomic_file, read_json, write_json  # noqa: F401 (the stages' writers)
from unetseg.params import Params, load_params


# Where the stages write (atomic_dir / atomic_file put `.<name>.tmp` beside each output)
OUTPUT_FOLDERS = (".", "data", "data/synthetic", "data/patches", "models", "reports")


def load_stage_params(argv, description: str) -> Params:
    """The params of a stage that takes no other arguments than `--params PATH`; temporaries that a
    killed stage left behind are removed first."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--params", default="params.yaml", help="the params file (default: params.yaml)")
    params = load_params(parser.parse_args(argv).params)
    remove_stale_temporaries()
    return params


def remove_stale_temporaries(folders=OUTPUT_FOLDERS) -> None:
    """Delete the `.<name>.tmp` entries in the stages' output folders. DVC runs one stage at a time
    in a workspace, so any found when a stage starts were left by one that was killed (kill -9, power
    loss) and, if DVC later restored that stage from its run-cache, would otherwise stay forever."""
    for folder in folders:
        for tmp in Path(folder).glob(".*.tmp"):
            if tmp.is_dir() and not tmp.is_symlink():
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                tmp.unlink(missing_ok=True)


def run_stage(main, argv=None) -> None:
    """Run a stage's main; a UserError becomes one line on stderr and exit status 2."""
    exit_on_user_error(main, sys.argv[1:] if argv is None else argv)


def read_plan(stage: str) -> dict:
    """The planned values a stage reads (`data/plan/<stage>.json`, written by the plan stage),
    keyed like params.yaml: {"extract.patch_size": 128, ...}."""
    return read_json(Path("data/plan") / f"{stage}.json")
