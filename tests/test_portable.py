import hashlib
import os
import subprocess
import sys

import numpy as np

from unetseg import portable
from unetseg.augment import augment_patch
from unetseg.instances import border_term
from unetseg.params import Augment
from unetseg.tiling import gaussian_weights

EVERY_TRANSFORM = Augment(flip={"p": 1}, rot90={"p": 1}, affine={"p": 1}, elastic={"p": 1},
                          intensity={"p": 1}, noise={"p": 1}, blur={"p": 1})


def test_exp_log_and_power_agree_with_numpy_to_a_few_ulp():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.uniform(-700, 700, 10_000), rng.uniform(-3, 3, 10_000)])
    u = np.concatenate([rng.random(10_000), rng.uniform(1, 1e6, 1000), [1e-300, 5e-324, 1e300]])
    np.testing.assert_allclose(portable.exp(x), np.exp(x), rtol=1e-15)
    np.testing.assert_allclose(portable.log(u), np.log(u), rtol=1e-15)
    for exponent in (0.8, 1.0, 1.2, 3.5):
        np.testing.assert_allclose(portable.power(u[:10_000], exponent), u[:10_000] ** exponent, rtol=1e-14)


def test_edges_are_exact():
    assert portable.exp(0.0) == 1.0 and portable.exp(-np.inf) == 0.0 and portable.exp(800.0) == np.inf
    assert portable.log(1.0) == 0.0 and portable.log(0.0) == -np.inf
    assert portable.power(np.array([0.0, 1.0]), 0.7).tolist() == [0.0, 1.0]  # gamma keeps an image's range
    assert portable.exp(np.zeros((2, 3))).shape == (2, 3)


def test_matmul_is_a_matrix_product_of_stacks():
    rng = np.random.default_rng(1)
    a, b, c = rng.normal(size=(7, 3)), rng.normal(size=(2, 3, 3)), rng.normal(size=(3, 5))
    np.testing.assert_allclose(portable.matmul(portable.matmul(a, b), c), a @ b @ c, rtol=1e-12)


DIGEST = "from tests.test_portable import digest; print(digest())"


def digest() -> str:
    """The bytes of every library result that went through exp, power or a matrix product."""
    rng = np.random.default_rng(3)
    image, mask = rng.random((40, 40, 2)).astype(np.float32), (rng.random((40, 40)) > 0.5).astype(np.uint8)
    labels = np.zeros((40, 40), np.int32)
    labels[5:15, 5:15], labels[5:15, 16:30], labels[25:35, 10:20] = 1, 2, 3
    outputs = [*augment_patch(image, mask, np.random.default_rng(4), EVERY_TRANSFORM),
               border_term(labels, 10.0, 5.0), gaussian_weights(32)]
    return hashlib.md5(b"".join(np.ascontiguousarray(out).tobytes() for out in outputs)).hexdigest()


def without_vector_extensions() -> dict:
    """An environment in which NumPy uses none of the loops it picks by CPU (only its baseline) and
    OpenBLAS its oldest x86-64 kernels."""
    try:
        from numpy._core import _multiarray_umath as umath
    except ImportError:  # NumPy 1
        from numpy.core import _multiarray_umath as umath
    present = [name for name in umath.__cpu_dispatch__ if umath.__cpu_features__.get(name)]  # NumPy refuses the others
    return {**os.environ, "NPY_DISABLE_CPU_FEATURES": " ".join(present), "OPENBLAS_CORETYPE": "Prescott"}


def test_augmentation_weights_and_tile_blending_do_not_depend_on_the_cpus_vector_extensions():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    plain = subprocess.run([sys.executable, "-c", DIGEST], cwd=root, capture_output=True, text=True, check=True)
    baseline = subprocess.run([sys.executable, "-c", DIGEST], cwd=root, capture_output=True, text=True, check=True,
                              env=without_vector_extensions())
    assert plain.stdout == baseline.stdout == digest() + "\n"
