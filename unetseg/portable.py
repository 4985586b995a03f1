"""exp, log, power and matrix products with the same bits on every CPU.

NumPy picks its float64 `exp` and `power` loops by the CPU's vector extensions at run time (AVX-512
has its own), and BLAS its matrix kernels, so the augment stage wrote different bytes on an
AVX2-only CPU than on an AVX-512 one: a teammate's rerun of the same commit disagreed with the lock
file. These are built from operations IEEE 754 rounds exactly (+, -, *, /, and the exact frexp,
ldexp, rint), so they cannot depend on the machine; exp and log are the classic range reductions
and short series, within 1 and 2 ulp of the true values (power: 10, as exp magnifies the log's
error), against NumPy's 1 (benchmarks/portable_cost.py times what they cost augment).
"""

from math import factorial

import numpy as np

LN2_HIGH = 6.93147180369123816490e-01  # ln 2 in two parts: k * LN2_HIGH is exact for |k| < 2**11
LN2_LOW = 1.90821492927058770002e-10
EXP_TERMS = 14  # the first term left out, (ln 2 / 2)**15 / 15!, is under 2**-60
LOG_TERMS = 12  # the odd series of atanh: s**25 / 25 is under 2**-60 for |s| <= 3 - 2 * sqrt(2)


def exp(x) -> np.ndarray:
    """e ** x in float64: x = k ln 2 + r with |r| <= ln 2 / 2, e ** r from its Taylor series, times 2 ** k."""
    x = np.clip(np.asarray(x, np.float64), -746.0, 710.0)  # beyond: 0 and inf either way
    k = np.rint(x / (LN2_HIGH + LN2_LOW))
    r = (x - k * LN2_HIGH) - k * LN2_LOW
    series = np.full_like(r, 1 / factorial(EXP_TERMS))
    for n in range(EXP_TERMS - 1, -1, -1):
        series *= r
        series += 1 / factorial(n)
    with np.errstate(over="ignore"):
        return np.ldexp(series, k.astype(np.int32))


def log(x) -> np.ndarray:
    """Natural log in float64 of x >= 0 (log 0 = -inf): x = m 2 ** e with m in [sqrt(1/2), sqrt(2)),
    and log m = 2 atanh(s), s = (m - 1) / (m + 1), from its series."""
    x = np.asarray(x, np.float64)
    mantissa, exponent = np.frexp(x)
    low = mantissa < np.sqrt(0.5)
    mantissa, exponent = mantissa * (1.0 + low), exponent - low  # (not np.where: 20x slower)
    s = (mantissa - 1) / (mantissa + 1)
    square, series = s * s, np.full_like(s, 1 / (2 * LOG_TERMS - 1))
    for n in range(LOG_TERMS - 2, -1, -1):
        series *= square
        series += 1 / (2 * n + 1)
    result = np.asarray((exponent * LN2_LOW + 2 * s * series) + exponent * LN2_HIGH)
    result[x == 0] = -np.inf
    return result


def power(base, exponent: float) -> np.ndarray:
    """base ** exponent in float64 for base >= 0 and exponent > 0 (0 ** exponent: exp(-inf) = 0)."""
    return exp(exponent * log(base))


def matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a @ b (stacks of matrices broadcast) with each sum taken in index order, one rounding per
    step. BLAS's kernels sum in an order and with fused multiply-adds that depend on the CPU; this is
    for the small products where that would change a stage's bytes."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    total = a[..., :, :1] * b[..., :1, :]
    for k in range(1, a.shape[-1]):
        total = total + a[..., :, k:k + 1] * b[..., k:k + 1, :]
    return total
