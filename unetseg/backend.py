"""Start Keras and its backend without the native start-up noise.

TensorFlow's C++ runtime writes its start-up lines (oneDNN notes, "Could not find cuda drivers", and
on a machine without a GPU an `E0000 ... failed call to cuInit` error) straight to the stderr file
descriptor, before any logging setting applies. They are silenced only while Keras is imported and
the devices are listed; everything after, Python errors included, reaches stderr as usual.
"""

import os
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


def start_keras():
    """The `keras` module, imported with its backend, the devices already probed (quietly)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with native_stderr_silenced():
        import keras
        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf
            tf.config.list_physical_devices("GPU")
    return keras
