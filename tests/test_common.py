import os
import signal
import subprocess
import sys

import pytest

from stage_runner import REPO
from stage_runner import run_stage as run_stage_in
from stages.common import atomic_dir, atomic_file, read_json, write_json
from unetseg.errors import UserError


def test_atomic_dir_replaces_only_on_success(tmp_path):
    out = tmp_path / "out"
    with atomic_dir(out) as tmp:
        (tmp / "a.txt").write_text("first")
    assert (out / "a.txt").read_text() == "first"

    with pytest.raises(RuntimeError):
        with atomic_dir(out) as tmp:
            (tmp / "a.txt").write_text("half")
            raise RuntimeError("boom")
    assert (out / "a.txt").read_text() == "first"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_atomic_file_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "sub" / "x.json"
    with pytest.raises(ValueError):
        with atomic_file(target) as tmp:
            tmp.write_text("partial")
            raise ValueError
    assert not target.exists()
    assert list(target.parent.iterdir()) == []


def test_write_json_is_sorted_and_stable(tmp_path):
    path = tmp_path / "m.json"
    write_json(path, {"b": 1, "a": [1, 2]})
    first = path.read_bytes()
    write_json(path, {"a": [1, 2], "b": 1})
    assert path.read_bytes() == first
    assert read_json(path) == {"a": [1, 2], "b": 1}
    with pytest.raises(UserError, match="not found"):
        read_json(tmp_path / "missing.json")


def test_run_stage_turns_user_error_into_one_line_and_exit_2():
    code = (
        "from stages.common import run_stage\n"
        "from unetseg.errors import UserError\n"
        "def main(argv):\n"
        "    raise UserError('data/x.png: broken; fix it')\n"
        "run_stage(main)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr == "error: data/x.png: broken; fix it\n"
    assert result.stdout == ""


def test_temporaries_of_a_killed_stage_go_when_the_next_stage_starts(tiny_copy):
    """A real SIGKILL while a stage writes data/patches/.train.tmp; the rerun that DVC would serve from
    its run-cache never cleans it, so the next stage that starts does."""
    writer = subprocess.Popen(
        [sys.executable, "-c", "import time\nfrom stages.common import atomic_dir\n"
         "with atomic_dir('data/patches/train') as tmp:\n"
         "    (tmp / 'shard.npy').write_bytes(bytes(1000))\n"
         "    print('writing', flush=True)\n    time.sleep(60)\n"],
        cwd=tiny_copy, env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE, text=True)
    assert writer.stdout.readline().strip() == "writing"
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait()
    left = tiny_copy / "data/patches/.train.tmp"
    assert left.is_dir() and (tiny_copy / "data/patches/train").is_dir()  # the old output is whole
    (tiny_copy / "reports/.metrics.json.tmp").write_text("half")  # a killed evaluate's file
    raw = tiny_copy / "data/raw"
    raw.mkdir()
    (raw / ".user.tmp").write_text("not ours")  # the user's own folders are never touched
    assert run_stage_in("evaluate", tiny_copy).returncode == 0
    assert not left.exists() and not (tiny_copy / "reports/.metrics.json.tmp").exists()
    assert (raw / ".user.tmp").exists()


def write_to_a_full_disk(path):
    """What writing `path` does on a full disk: the OSError a real ENOSPC raises."""
    import errno

    path.write_bytes(b"part")
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def numpy_on_a_full_disk(path):
    """What np.save raised when a DSB2018 run filled this machine's disk: no errno, a message only."""
    path.write_bytes(b"part")
    raise OSError("Not enough free space to write 201326592 bytes after offset 128")


@pytest.mark.parametrize("full", [write_to_a_full_disk, numpy_on_a_full_disk])
@pytest.mark.parametrize("writer", ["file", "dir"])
def test_a_full_disk_is_named_and_leaves_nothing(tmp_path, writer, full):
    target = tmp_path / "out" / "m.npy"
    with pytest.raises(UserError, match=r"out/m\.npy: no space left on the device while writing it \(\d+ MiB free\)"):
        if writer == "file":
            with atomic_file(target) as tmp:
                full(tmp)
        else:
            with atomic_dir(target) as tmp:
                full(tmp / "part.npy")
    assert not list((tmp_path / "out").iterdir())


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs Linux's /dev/full")
def test_a_full_disk_outside_an_atomic_write_is_one_error_line(tmp_path):
    """The last resort, in run_stage: /dev/full reports ENOSPC on every write."""
    code = ("from stages.common import run_stage\n"
            "def main(argv):\n    open('/dev/full', 'w').write('x' * 10**6)\n"
            "run_stage(main, [])\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.strip().startswith("error: ") and "no space left on the device" in result.stderr
