"""Team data versioning: `dvc add` your own data, push it to a remote, pull it into a fresh clone.

Against a local-directory remote and an SSH remote served by a real `sshd` on 127.0.0.1 with a
key-based login. `.ci/run` installs openssh-server and sets UNETSEG_REQUIRE_SSHD=1, so there the
SSH case fails instead of skipping when sshd is missing.
"""

import getpass
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dvc_project import bring_own_data, DvcProject, copy_project

pytestmark = pytest.mark.e2e

SSHD = Path("/usr/sbin/sshd")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, server: subprocess.Popen, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while True:
        assert server.poll() is None, f"sshd exited: {server.stderr.read().decode()}"
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            assert time.monotonic() < deadline, "sshd did not start listening"
            time.sleep(0.1)


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    """A throwaway sshd on 127.0.0.1 accepting one client key: yields (port, client key path)."""
    if not SSHD.exists():
        if os.environ.get("UNETSEG_REQUIRE_SSHD"):
            pytest.fail(f"{SSHD} is missing: apt-get install openssh-server")
        pytest.skip(f"{SSHD} is missing (apt-get install openssh-server)")
    home = tmp_path_factory.mktemp("sshd")
    for key in ("host_key", "client_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(home / key)], check=True)
    shutil.copy(home / "client_key.pub", home / "authorized_keys")
    port = free_port()
    (home / "sshd_config").write_text(
        f"ListenAddress 127.0.0.1\nPort {port}\nHostKey {home / 'host_key'}\n"
        f"AuthorizedKeysFile {home / 'authorized_keys'}\nPidFile {home / 'sshd.pid'}\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\n"
        "PermitRootLogin prohibit-password\nStrictModes no\nUsePAM no\n"
        "Subsystem sftp internal-sftp\n")
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege separation directory
    server = subprocess.Popen([str(SSHD), "-D", "-e", "-f", str(home / "sshd_config")],
                              stderr=subprocess.PIPE)
    try:
        wait_for_port(port, server)
        yield port, home / "client_key"
    finally:
        server.terminate()
        server.wait()


def checksums(root: Path) -> dict[str, str]:
    """sha256 of every file of a work tree, outside git's and DVC's own folders."""
    skipped = {".git", ".dvc", "__pycache__"}
    return {str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in root.rglob("*")
            if path.is_file() and not skipped & set(path.relative_to(root).parts)}


def add_remote(project: DvcProject, kind: str, storage: Path, request) -> Path | None:
    """A default remote of this kind, committed; returns the SSH client key (None for a folder)."""
    if kind == "local":
        url, keyfile = str(storage), None
    else:
        port, keyfile = request.getfixturevalue("sshd")
        url = f"ssh://{getpass.getuser()}@127.0.0.1:{port}{storage}"
    project.dvc("remote", "add", "--default", "storage", url)
    project.commit("remote")
    if keyfile:  # machine-specific, so in .dvc/config.local, not in git
        project.dvc("remote", "modify", "--local", "storage", "keyfile", str(keyfile))
    return keyfile


def git_clone(project: DvcProject, root: Path, keyfile: Path | None) -> DvcProject:
    clone = DvcProject(root)
    subprocess.run(["git", "clone", "-q", str(project.root), str(clone.root)], check=True)
    if keyfile:
        clone.dvc("remote", "modify", "--local", "storage", "keyfile", str(keyfile))
    return clone


@pytest.mark.parametrize("kind", ["local", "ssh"])
def test_push_then_pull_into_a_fresh_clone_loses_nothing_and_reproduces(kind, reproduced_project,
                                                                           tmp_path, request):
    project = copy_project(reproduced_project, tmp_path)
    bring_own_data(project)
    keyfile = add_remote(project, kind, tmp_path / "storage", request)
    project.dvc("push")

    clone = git_clone(project, tmp_path / "clone", keyfile)
    clone.dvc("pull")

    assert checksums(clone.root) == checksums(project.root)
    assert clone.stale_stages() == set()
    assert "Data and pipelines are up to date." in clone.dvc("repro").stdout
    if kind == "local":  # what a clone reproduces does not depend on the remote it pulled from
        # own data: synthesize is no ancestor of prepare any more, so even --force leaves it alone
        assert clone.repro("--force") == {"prepare", "plan", "extract", "augment", "train", "predict", "measure",
                                          "evaluate"}
        assert_same_results(clone, project)


@pytest.mark.parametrize("kind", ["local", "ssh"])
def test_a_fresh_clone_gets_a_teammates_training_from_the_pushed_run_cache(kind, reproduced_project, tmp_path,
                                                                           request):
    """The README's claim: after `dvc push --run-cache`, params that a teammate already ran come back
    from the remote in a fresh clone (`dvc pull --run-cache`, `dvc repro --pull`) without training."""
    project = copy_project(reproduced_project, tmp_path)
    keyfile = add_remote(project, kind, tmp_path / "storage", request)
    project.dvc("push")  # the committed run
    project.set_params({"train": {"epochs": 3}})  # run here only, never committed
    assert "train" in project.repro()
    trained = project.lock()["stages"]["train"]["outs"]
    project.dvc("push", "--run-cache")

    clone = git_clone(project, tmp_path / "clone", keyfile)
    clone.dvc("pull", "--run-cache")
    clone.set_params({"train": {"epochs": 3}})
    output = clone.dvc("repro", "--pull").stdout  # --pull: fetch the outputs a run-cache entry names
    assert "Running stage 'train'" not in output, "the clone trained again"
    assert "Stage 'train' is cached - skipping run, checking out outputs" in output
    assert clone.lock()["stages"]["train"]["outs"] == trained


def test_a_colleague_gets_the_model_artifact_without_the_pipeline(reproduced_project, tmp_path):
    project = copy_project(reproduced_project, tmp_path)
    add_remote(project, "local", tmp_path / "storage", None)
    project.dvc("push")
    project.git("tag", "-a", "unet@v1.0.0", "-m", "the first model")  # a version, as `gto register` makes it
    colleague = tmp_path / "colleague"  # outside any git or DVC repository
    colleague.mkdir()
    result = subprocess.run([sys.executable, "-m", "dvc", "artifacts", "get", str(project.root), "unet", "-o", "model"],
                            cwd=colleague, env=project.env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert checksums(colleague / "model") == checksums(project.root / "models")
    assert sorted(checksums(colleague / "model")) == ["preprocessing.json", "unet.keras"]
    choice = "data/predictions/postprocess.json"  # and the post-processing chosen for that version
    result = subprocess.run([sys.executable, "-m", "dvc", "get", str(project.root), choice, "--rev", "unet@v1.0.0",
                             "-o", "model/postprocess.json"], cwd=colleague, env=project.env, capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr
    assert (colleague / "model/postprocess.json").read_bytes() == (project.root / choice).read_bytes()


TIMING = {"wall_time_s", "patches_per_s"}  # the train summary's speed figures are the one thing that varies


def assert_same_results(rerun: DvcProject, original: DvcProject) -> None:
    """Every output byte-identical, but for the timing figures of reports/train.json (and its hash)."""
    varying = {"reports/train.json", "dvc.lock"}  # and its hash wherever dvc.lock records it
    expected = {path: digest for path, digest in checksums(original.root).items() if path not in varying}
    assert {path: digest for path, digest in checksums(rerun.root).items() if path not in varying} == expected

    def summary(project):
        train = json.loads((project.root / "reports/train.json").read_text())
        return {key: value for key, value in train.items() if key not in TIMING}

    def lock(project):
        stages = project.lock()["stages"]
        for stage in stages.values():
            for kind in ("deps", "outs"):
                stage[kind] = [entry for entry in stage.get(kind, []) if entry["path"] != "reports/train.json"]
        return stages

    assert summary(rerun) == summary(original)
    assert lock(rerun) == lock(original)
