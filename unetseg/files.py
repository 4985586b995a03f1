"""Outputs that appear whole or not at all, and a full disk reported by the file it was writing."""

import hashlib
import json
import shutil
from contextlib import contextmanager
from pathlib import Path

from unetseg.errors import UserError, is_disk_full


@contextmanager
def atomic_dir(path):
    """Yield a temporary sibling directory that replaces `path` only if the block succeeds."""
    path = Path(path)
    with staging_dir(path) as tmp:
        yield tmp
    shutil.rmtree(path, ignore_errors=True)
    tmp.rename(path)


@contextmanager
def files_into(path):
    """Yield a temporary sibling directory whose files move into `path` (made where missing) only
    if the block succeeds: files already in `path` stay, those of the same name are replaced, and a
    failure part-way leaves `path` as it was."""
    path = Path(path)
    with staging_dir(path) as tmp:
        yield tmp
    path.mkdir(parents=True, exist_ok=True)
    for file in sorted(tmp.iterdir()):
        file.replace(path / file.name)
    tmp.rmdir()


@contextmanager
def staging_dir(path: Path):
    """Yield an empty temporary sibling directory of `path`, removed if the block fails."""
    tmp = path.with_name(f".{path.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir(parents=True)
        with disk_full_named(path):
            yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextmanager
def atomic_file(path):
    """Yield a temporary sibling file path that replaces `path` only if the block succeeds."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with disk_full_named(path):
            yield tmp
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    tmp.replace(path)


@contextmanager
def disk_full_named(path: Path):
    """A full disk (or quota) while writing `path` becomes one UserError naming it."""
    try:
        yield
    except OSError as exc:
        if not is_disk_full(exc):
            raise
        where = shutil.disk_usage(path.parent if path.parent.exists() else ".")
        raise UserError(f"{path}: no space left on the device while writing it ({where.free / 2**20:.0f} MiB "
                        "free); free some space (e.g. `dvc gc`) or write elsewhere, then rerun") from None


def write_json(path, obj, sort_keys: bool = True) -> None:
    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=sort_keys) + "\n")


def read_json(path):
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise UserError(f"{path}: not found; run the stage that writes it first (dvc repro)") from None


def file_md5(path) -> str:
    """The MD5 of a file's bytes (as DVC names its files)."""
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(2**20), b""):
            digest.update(block)
    return digest.hexdigest()
