"""Shared helpers of the fastpe tests: awkward-array generators and the tolerance rule.

The array generator follows bottleneck's tests/util.py: one generator yields,
for a logical shape, the same kind of data in every memory layout the kernels
must handle (C and F order, transposed batch axes, strided and negative-stride
views of T and D, size 0). Each array comes with a label, and every assertion
message carries dtype, shape, strides and that label, so a failure says which
layout broke.
"""

import contextlib
import math
import os
import zlib

import numpy as np

import fastpe
from fastpe import reference

# The checkout these tests belong to (README.md, docs/, setup.py): two levels
# above this file, tests/helpers/util.py.
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

DTYPES = (np.float32, np.float64)
LAYOUTS = ("interleaved", "concat")

# --------------------------------------------------------------------------
# Tolerances
#
# Kernels against the NumPy reference. The numerical contract
# (docs/contract.rst) bounds float64 results within 1e-9 of the exact values
# at every accepted position; tests/accuracy/ checks that against mpmath. The
# reference is the less exact side: its float64 products p * w_k of NumPy's
# float64 frequencies drift by about |p| * 2**-53 (1.2e-10 at 2**20, 5e-5 at
# 2**40), so comparisons with it stay within |p| <= 2**20, where
#   float64 results agree to 1e-12 absolute for |p| <= 4096, 1e-9 for |p| <= 2**20;
#   float32 results agree to 1.2e-7 absolute (one float32 ulp at 1; the rounding
#                    of the float64 encoding to float32 is the whole budget).

CONTRACT_SMALL_POSITION = 4096
CONTRACT_MAX_POSITION = 2**20


def contract_atol(dtype, max_abs_position):
    """The absolute tolerance of kernels against the reference for positions up to max_abs_position."""
    dtype = np.dtype(dtype)
    if max_abs_position > CONTRACT_MAX_POSITION:
        raise AssertionError(f"beyond |p| = 2**20 compare with exact values (tests/accuracy/), not the reference; "
                             f"got {max_abs_position}")
    if dtype == np.float32:
        return 1.2e-7
    if dtype == np.float64:
        return 1e-12 if max_abs_position <= CONTRACT_SMALL_POSITION else 1e-9
    raise AssertionError(f"no contract for dtype {dtype}")


def add_tolerance(dtype, max_abs_position, xs_abs):
    """Elementwise bound on |kernel - reference| for add_sinusoidal (and the tables: xs_abs = 0).

    The reference computes x*scale + PE in float64 and rounds once to dtype;
    the kernel rounds PE to dtype first and forms x*scale + PE in dtype (one
    FMA where the CPU has it). They can differ by:
      * the encoding error the contract allows (contract_atol);
      * the rounding of PE (|PE| <= 1) to dtype before the add: eps/2 where
        x*scale != 0 (where it is 0 both sides store PE rounded once, so
        tables, xs_abs = 0, keep the bare contract);
      * the rounding of scale to dtype: eps/2 * |x*scale|;
      * one rounding step of the result, where the two sums straddle a
        rounding boundary: one ulp of |x*scale + PE| <= eps*|x*scale| + eps
        (the eps part, one float32 ulp at 1, is what the contract's 1.2e-7
        already allows for).
    Hence atol = contract + [x*scale != 0] * eps/2 + 2 * eps(dtype) * |x*scale|, elementwise.
    """
    xs = np.asarray(xs_abs, dtype=np.float64)
    if np.dtype(dtype).itemsize == 2:
        # 16-bit storage: the float64 sum rounded once, so one ulp of the
        # 16-bit type at the result's magnitude (<= |x*scale| + 1), plus the
        # float64 encoding's own error.
        mant = 10 if np.dtype(dtype) == np.float16 else 7
        return 2.0 ** (np.floor(np.log2(xs + 1.0)) - mant) + contract_atol(np.float64, max_abs_position)
    eps = float(np.finfo(dtype).eps)
    return contract_atol(dtype, max_abs_position) + np.where(xs != 0, 0.5 * eps, 0.0) + 2.0 * eps * xs


def float_dtypes():
    """float32, float64, float16 and (with ml_dtypes) bfloat16: every dtype the functions take."""
    dtypes = [np.dtype(np.float32), np.dtype(np.float64), np.dtype(np.float16)]
    try:
        import ml_dtypes
    except ImportError:
        return dtypes
    return dtypes + [np.dtype(ml_dtypes.bfloat16)]


def describe(a):
    """dtype, shape, strides and contiguity of an array, for assertion messages."""
    if a is None:
        return "None"
    a = np.asarray(a)
    order = "C" if a.flags.c_contiguous else ("F" if a.flags.f_contiguous else "non-contiguous")
    return f"dtype={a.dtype} shape={a.shape} strides={a.strides} {order}"


def assert_same_bits(actual, expected, msg):
    """actual and expected hold the same bits (same dtype and shape): no tolerance."""
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    assert actual.dtype == expected.dtype, f"{msg}: dtype {actual.dtype} != {expected.dtype}"
    assert actual.shape == expected.shape, f"{msg}: shape {actual.shape} != expected {expected.shape}"
    uint = np.dtype(f"u{actual.dtype.itemsize}")
    a_bits = np.ascontiguousarray(actual).view(uint)
    e_bits = np.ascontiguousarray(expected).view(uint)
    differ = a_bits != e_bits
    if differ.any():
        idx = np.unravel_index(np.argmax(differ), differ.shape)
        raise AssertionError(
            f"{msg}: {int(differ.sum())} of {differ.size} elements differ in their bits; first at index {idx}: "
            f"{actual[idx]!r} != {expected[idx]!r}"
        )


def assert_within(actual, expected, tol, msg):
    """|actual - expected| <= tol elementwise (tol scalar or array), with a diagnosable message."""
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    assert actual.shape == expected.shape, f"{msg}: shape {actual.shape} != expected {expected.shape}"
    if actual.size == 0:
        return
    a64 = actual.astype(np.float64)
    e64 = expected.astype(np.float64)
    assert np.all(np.isfinite(a64)), f"{msg}: non-finite values in the result"
    err = np.abs(a64 - e64)
    tol = np.broadcast_to(np.asarray(tol, dtype=np.float64), err.shape)
    bad = err > tol
    if bad.any():
        idx = np.unravel_index(np.argmax(np.where(bad, err - tol, -np.inf)), err.shape)
        raise AssertionError(
            f"{msg}: {int(bad.sum())} of {err.size} elements out of tolerance; worst at index {idx}: "
            f"got {a64[idx]!r}, expected {e64[idx]!r}, |error| {err[idx]:.3e} > tol {tol[idx]:.3e}; "
            f"max |error| {err.max():.3e}"
        )


def max_abs_position_of_add(x_shape, offset=0, positions=None):
    """Largest |position| add_sinusoidal uses for x of x_shape."""
    if positions is not None:
        p = np.asarray(positions, dtype=np.float64)
        return float(np.abs(p).max()) if p.size else 0.0
    off = np.asarray(offset, dtype=np.float64)
    T = x_shape[-2]
    if off.size == 0 or T == 0:
        return 0.0
    return float(max(np.abs(off).max(), np.abs(off + (T - 1)).max()))


def check_add_against_reference(x, msg, *, out=None, **kwargs):
    """Run fastpe.add_sinusoidal and reference.add_sinusoidal on copies of the
    same input and compare; also checks the return value and that x is left
    alone when out is separate. Returns the kernel's result."""
    x_before = x.copy()
    ref_x = np.array(x, copy=True)  # the reference writes in place too
    expected = reference.add_sinusoidal(ref_x, **kwargs)
    result = fastpe.add_sinusoidal(x, out=out, **kwargs)
    full = (f"{msg} [x {describe(x_before)}; out {describe(out)}; "
            f"layout={kwargs.get('layout', 'interleaved')}; {fmt_kwargs(kwargs)}]")
    if out is None:
        assert result is x, f"{full}: add_sinusoidal(x) must return x itself"
    else:
        assert result is out, f"{full}: add_sinusoidal(x, out=out) must return out"
        if not np.shares_memory(out, x):
            assert x.tobytes() == x_before.tobytes(), f"{full}: x changed although out= was given"
    assert result.dtype == x_before.dtype, f"{full}: result dtype {result.dtype}"
    scale = kwargs.get("scale")
    xs_abs = np.abs(x_before.astype(np.float64) * (1.0 if scale is None else scale))
    pmax = max_abs_position_of_add(x_before.shape, kwargs.get("offset", 0), kwargs.get("positions"))
    assert_within(result, expected, add_tolerance(x_before.dtype, pmax, xs_abs), full)
    return result


def fmt_kwargs(kwargs):
    parts = []
    for k, v in kwargs.items():
        if isinstance(v, np.ndarray):
            v = f"array{v.shape}" if v.size > 6 else np.array2string(v, separator=",").replace("\n", "")
        parts.append(f"{k}={v}")
    return ", ".join(parts)


# --------------------------------------------------------------------------
# Arrays


def rng_for(*key):
    """A deterministic generator per test case (str hashes are salted per process, crc32 is not)."""
    return np.random.default_rng(zlib.crc32("|".join(map(str, key)).encode()))


def random_values(shape, dtype, rng, magnitude=3.0):
    return (rng.uniform(-magnitude, magnitude, size=shape)).astype(dtype)


def array_variants(shape, dtype, rng, *, magnitude=3.0, kinds=None):
    """Yield (label, array): arrays of logical `shape` (..., T, D) in awkward memory layouts.

    Every array is writeable and owns no overlapping memory; views keep their
    parent alive. `kinds` restricts the labels yielded (None: all that apply)."""
    shape = tuple(shape)
    nd = len(shape)

    def want(label):
        return kinds is None or label in kinds

    def fill(s):
        return random_values(s, dtype, rng, magnitude)

    if want("C"):
        yield "C", fill(shape)
    if want("F") and nd >= 2:
        yield "F", np.asfortranarray(fill(shape))
    if want("batch-transposed") and nd >= 4:
        # batch axes stored in reverse order: x.transpose of a C array
        lead = shape[:-2]
        base = fill(lead[::-1] + shape[-2:])
        perm = tuple(range(nd - 3, -1, -1)) + (nd - 2, nd - 1)
        yield "batch-transposed", base.transpose(perm)
    if want("batch-T-swapped") and nd >= 3:
        # T outermost in memory, batch inside it (like a (T, B, D) array seen as (B, T, D))
        base = fill(shape[:-3] + (shape[-2], shape[-3], shape[-1]))
        yield "batch-T-swapped", np.swapaxes(base, -3, -2)
    if want("TD-transposed"):
        # each (T, D) matrix stored column-major: column stride T * itemsize
        base = fill(shape[:-2] + (shape[-1], shape[-2]))
        yield "TD-transposed", np.swapaxes(base, -1, -2)
    if want("T-stride2"):
        base = fill(shape[:-2] + (2 * shape[-2], shape[-1]))
        yield "T-stride2", base[..., ::2, :]
    if want("D-stride2"):
        base = fill(shape[:-1] + (2 * shape[-1],))
        yield "D-stride2", base[..., ::2]
    if want("T-reversed"):
        yield "T-reversed", fill(shape)[..., ::-1, :]
    if want("D-reversed"):
        yield "D-reversed", fill(shape)[..., ::-1]
    if want("batch-stride2-reversed") and nd >= 3:
        base = fill((2 * shape[0],) + shape[1:])
        yield "batch-stride2-reversed", base[::-2]
    if want("all-reversed-D-stride3"):
        base = fill(shape[:-1] + (3 * shape[-1],))
        yield "all-reversed-D-stride3", base[(slice(None, None, -1),) * (nd - 1) + (slice(None, None, -3),)]
    if want("F-sliced"):
        base = np.asfortranarray(fill(shape[:-2] + (shape[-2] + 3, shape[-1] + 2)))
        yield "F-sliced", base[..., 1 : 1 + shape[-2], 2:]


ALL_KINDS = (
    "C", "F", "batch-transposed", "batch-T-swapped", "TD-transposed", "T-stride2", "D-stride2",
    "T-reversed", "D-reversed", "batch-stride2-reversed", "all-reversed-D-stride3", "F-sliced",
)


def out_variants(shape, dtype, rng):
    """Yield (label, out): separate output arrays of `shape`, contiguous and not,
    pre-filled with garbage that must be overwritten."""
    shape = tuple(shape)
    garbage = 1e3
    yield "out-C", random_values(shape, dtype, rng, garbage)
    yield "out-F", np.asfortranarray(random_values(shape, dtype, rng, garbage))
    base = random_values(shape[:-1] + (2 * shape[-1],), dtype, rng, garbage)
    yield "out-D-stride2", base[..., ::2]
    yield "out-reversed", random_values(shape, dtype, rng, garbage)[(slice(None, None, -1),) * len(shape)]


# --------------------------------------------------------------------------
# Independent pure-Python encodings (math module only, elementwise)


def math_frequencies(dim, base, layout):
    n = (dim + 1) // 2 if layout == "interleaved" else dim // 2
    return [math.pow(base, -(2.0 * k) / dim) for k in range(n)]


def math_encoding_row(p, dim, base=10000.0, layout="interleaved", inv_freq=None):
    """The encoding of one position as a list of floats, straight from the definition."""
    w = math_frequencies(dim, base, layout) if inv_freq is None else [float(v) for v in inv_freq]
    row = [0.0] * dim
    if layout == "interleaved":
        for j in range(dim):
            a = float(p) * w[j // 2]
            row[j] = math.sin(a) if j % 2 == 0 else math.cos(a)
    else:
        half = dim // 2
        for k in range(half):
            a = float(p) * w[k]
            row[k] = math.sin(a)
            row[half + k] = math.cos(a)
    return row


def exact_bucket(rp, bidirectional, num_buckets, max_distance):
    """T5's bucket from its definition, in integers only (no logarithms):
    floor(log(d / e) / log(D / e) * n) >= k  <=>  d**n * e**k >= D**k * e**n."""
    nb = num_buckets // 2 if bidirectional else num_buckets
    bucket = nb if (bidirectional and rp > 0) else 0
    d = abs(rp) if bidirectional else max(-rp, 0)
    e = nb // 2
    if d < e:
        return bucket + d
    n = nb - e
    k = 0
    while k < n and d**n * e ** (k + 1) >= max_distance ** (k + 1) * e**n:
        k += 1
    return bucket + min(e + k, nb - 1)


def root_array(a):
    """The array that owns the memory a views (a itself if it owns it)."""
    while isinstance(a.base, np.ndarray):
        a = a.base
    return a


def snapshot(*arrays):
    """Bytes of every array and of the buffer it views, to prove a failed call wrote nothing."""
    return [(a, a.tobytes(), root_array(a), root_array(a).tobytes()) for a in arrays if isinstance(a, np.ndarray)]


def assert_unchanged(snaps, msg):
    for a, view_bytes, root, root_bytes in snaps:
        assert a.tobytes() == view_bytes, f"{msg}: array {describe(a)} was modified"
        assert root.tobytes() == root_bytes, f"{msg}: the buffer under {describe(a)} was modified"


# --------------------------------------------------------------------------
# Compiled fast paths (add_sinusoidal's, apply_rotary's)

@contextlib.contextmanager
def general_path_only(module, name):
    """Switch off the fast path `module.name` (a function that returns None
    for a call it leaves to the general path) while the block runs."""
    saved = getattr(module, name)
    setattr(module, name, lambda *args: None)
    try:
        yield
    finally:
        setattr(module, name, saved)


def outcome(call):
    """("ok", return value) or ("error", type, message) of call()."""
    try:
        return ("ok", call())
    except Exception as exc:  # noqa: BLE001 - the error itself is what is compared
        return ("error", type(exc), str(exc))
