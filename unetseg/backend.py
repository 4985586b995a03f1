"""Start Keras and its backend without the native start-up noise.

TensorFlow's C++ runtime writes its start-up lines (oneDNN notes, "Could not find cuda drivers", and
on a machine without a GPU an `E0000 ... failed call to cuInit` error) straight to the stderr file
descriptor, before any logging setting applies. They are silenced only while Keras is imported and
the devices are listed; everything after, Python errors included, reaches stderr as usual.

TensorFlow turns its oneDNN kernels on by itself only on CPUs with AVX-512 VNNI/BF16 or AMX; on the
many CPUs with AVX2 alone (AMD's before Zen 4, older Intel) it runs Eigen's, and this U-Net then
trains 2-2.7x slower (`python benchmarks/onednn.py`). `use_onednn` asks for oneDNN on every x86 CPU, before
TensorFlow is imported (it reads the setting once, then); TF_ENABLE_ONEDNN_OPTS=0 in the environment
still turns it off.
"""

import os
import platform
from contextlib import contextmanager


@contextmanager
def native_stderr_silenced():
    """Point file descriptor 2 at /dev/null for the block (Python's own sys.stderr included)."""
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def use_onednn():
    """TensorFlow's oneDNN CPU kernels on every x86 CPU, unless the environment says otherwise."""
    if platform.machine().lower() in ("x86_64", "amd64"):
        os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")


def start_keras():
    """The `keras` module, imported with its backend, the devices already probed (quietly)."""
    use_onednn()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with native_stderr_silenced():
        import keras
        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf
            tf.config.list_physical_devices("GPU")
    return keras
