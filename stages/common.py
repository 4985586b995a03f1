"""What every stage adapter shares: one-line errors, atomic outputs, small JSON files."""

import argparse
import json
import shutil
import sys
from contextlib import contextmanager
from pathlib import Path

from tqdm import tqdm

from unetseg.errors import UserError
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
    try:
        main(sys.argv[1:] if argv is None else argv)
    except UserError as exc:
        for bar in list(tqdm._instances):  # end any progress bar's line, so the error has its own
            bar.close()
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)


@contextmanager
def atomic_dir(path):
    """Yield a temporary sibling directory that replaces `path` only if the block succeeds."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(path, ignore_errors=True)
    tmp.rename(path)


@contextmanager
def atomic_file(path):
    """Yield a temporary sibling file path that replaces `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        yield tmp
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    tmp.replace(path)


def write_json(path, obj) -> None:
    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def read_plan(stage: str) -> dict:
    """The planned values a stage reads (`data/plan/<stage>.json`, written by the plan stage),
    keyed like params.yaml: {"extract.patch_size": 128, ...}."""
    return read_json(Path("data/plan") / f"{stage}.json")


def read_json(path):
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise UserError(f"{path}: not found; run the stage that writes it first (dvc repro)") from None
