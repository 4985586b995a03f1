"""A throwaway copy of this repository as its own git + DVC project, for end-to-end tests."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml
from dvc.repo import Repo

from stage_runner import TINY

REPO = Path(__file__).resolve().parents[1]
COPIED = ["dvc.yaml", "data/synthetic/dvc.yaml", "params.yaml", "pyproject.toml", ".gitignore", ".dvcignore",
          ".dvc/config", ".dvc/.gitignore", "stages", "unetseg"]


def deep_update(base: dict, changes: dict) -> dict:
    merged = dict(base)
    for key, value in changes.items():
        merged[key] = deep_update(base.get(key, {}), value) if isinstance(value, dict) else value
    return merged


class DvcProject:
    def __init__(self, root: Path):
        self.root = root
        venv_bin = str(Path(sys.executable).parent)
        self.env = {**os.environ, "PATH": venv_bin + os.pathsep + os.environ.get("PATH", ""),
                    "PYTHONPATH": str(root), "TF_CPP_MIN_LOG_LEVEL": "2",
                    "GIT_AUTHOR_NAME": "test", "GIT_AUTHOR_EMAIL": "test@example.invalid",
                    "GIT_COMMITTER_NAME": "test", "GIT_COMMITTER_EMAIL": "test@example.invalid"}

    def run(self, *args, check=True) -> subprocess.CompletedProcess:
        result = subprocess.run(args, cwd=self.root, env=self.env, capture_output=True, text=True)
        if check and result.returncode:
            raise AssertionError(f"{' '.join(args)} failed ({result.returncode}):\n"
                                 f"{result.stdout}\n{result.stderr}")
        return result

    def dvc(self, *args, check=True) -> subprocess.CompletedProcess:
        return self.run(sys.executable, "-m", "dvc", *args, check=check)

    def git(self, *args) -> subprocess.CompletedProcess:
        return self.run("git", *args)

    def commit(self, message: str) -> None:
        self.git("add", "-A")
        self.git("commit", "-qm", message)

    def params(self) -> dict:
        return yaml.safe_load((self.root / "params.yaml").read_text())

    def write_params(self, params: dict) -> None:
        (self.root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))

    def set_params(self, changes: dict) -> None:
        self.write_params(deep_update(self.params(), changes))

    def repro(self, *args) -> set[str]:
        """Run `dvc repro`; return the stages whose command actually ran (without their dvc.yaml's path)."""
        output = self.dvc("repro", *args).stdout
        return {line.split("'")[1].split(":")[-1] for line in output.splitlines() if line.startswith("Running stage '")}

    def stale_stages(self) -> set[str]:
        """The stages `dvc status` reports as changed (through DVC's API: no process start-up)."""
        with Repo(str(self.root)) as repo:
            return {name.split(":")[-1] for name in repo.status()}

    def lock(self, pipeline: str = "dvc.lock") -> dict:
        return yaml.safe_load((self.root / pipeline).read_text())


def make_project(tmp_path: Path, params: dict | None = None) -> DvcProject:
    root = tmp_path / "project"
    root.mkdir()
    for name in COPIED:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, root / name, ignore=shutil.ignore_patterns("__pycache__", ".*.tmp"))
        else:
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, root / name)
    project = DvcProject(root)
    project.set_params(deep_update(TINY, params or {}))
    project.git("init", "-q")
    project.commit("copy of the project")
    return project


def bring_own_data(project: DvcProject) -> None:
    """A dataset of one's own (binary masks), tracked by DVC, with the pipeline pointed at it, reproduced
    and committed."""
    for kind in ("images", "masks"):
        shutil.copytree(project.root / "data" / "synthetic" / kind, project.root / "data" / "own" / kind)
    project.dvc("add", "data/own/images", "data/own/masks")
    project.set_params({"data": {"images": "data/own/images", "masks": "data/own/masks"}})
    project.dvc("repro")
    project.commit("own data")


def copy_project(project: DvcProject, parent: Path) -> DvcProject:
    """An independent copy (work tree, git history and DVC cache) that a test may change freely."""
    root = parent / "project"
    shutil.copytree(project.root, root, symlinks=True)
    return DvcProject(root)
