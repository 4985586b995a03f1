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


@pytest.mark.parametrize("kind", ["local", "ssh"])
def test_push_then_pull_into_a_fresh_clone_loses_nothing_and_reproduces(kind, reproduced_project,
                                                                           tmp_path, request):
    project = copy_project(reproduced_project, tmp_path)
    bring_own_data(project)
    storage = tmp_path / "storage"
    if kind == "local":
        url, keyfile = str(storage), None
    else:
        port, keyfile = request.getfixturevalue("sshd")
        url = f"ssh://{getpass.getuser()}@127.0.0.1:{port}{storage}"
    project.dvc("remote", "add", "--default", "storage", url)
    project.commit("remote")
    if keyfile:  # machine-specific, so in .dvc/config.local, not in git
        project.dvc("remote", "modify", "--local", "storage", "keyfile", str(keyfile))
    project.dvc("push")

    clone = DvcProject(tmp_path / "clone")
    subprocess.run(["git", "clone", "-q", str(project.root), str(clone.root)], check=True)
    if keyfile:
        clone.dvc("remote", "modify", "--local", "storage", "keyfile", str(keyfile))
    clone.dvc("pull")

    assert checksums(clone.root) == checksums(project.root)
    assert clone.stale_stages() == set()
    assert "Data and pipelines are up to date." in clone.dvc("repro").stdout
    # own data: synthesize is no ancestor of prepare any more, so even --force leaves it alone
    assert clone.repro("--force") == {"prepare", "plan", "extract", "augment", "train", "predict", "evaluate"}
    assert_same_results(clone, project)


TIMING = {"wall_time_s", "patches_per_s"}  # the train summary's speed figures are the one thing that varies


def assert_same_results(rerun: DvcProject, original: DvcProject) -> None:
    """Every output byte-identical, but for the timing figures of reports/train.json (and its hash)."""
    varying = {"reports/train.json", "dvc.lock"}
    expected = {path: digest for path, digest in checksums(original.root).items() if path not in varying}
    assert {path: digest for path, digest in checksums(rerun.root).items() if path not in varying} == expected

    def summary(project):
        train = json.loads((project.root / "reports/train.json").read_text())
        return {key: value for key, value in train.items() if key not in TIMING}

    def lock(project):
        stages = project.lock()["stages"]
        stages["train"]["outs"] = [out for out in stages["train"]["outs"] if out["path"] != "reports/train.json"]
        return stages

    assert summary(rerun) == summary(original)
    assert lock(rerun) == lock(original)
