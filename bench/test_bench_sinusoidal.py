"""Benchmarks: sinusoidal tables and fused adds, fastpe vs its peers vs reference vs probe.

See bench/conftest.py for how to run, save and compare.
"""

import numpy as np
import pytest

import fastpe
from fastpe import _kernels, bench, reference
from fastpe.bench import effective_threads

IMPLS = ["fastpe", *bench.PEER_NAMES, "reference", "probe"]
# The shapes of "what users write instead" (a new offset o < 4096 every call).
ADD_SHAPES = [(1, 16, 64), (1, 128, 768), (4, 512, 768), (16, 512, 768), bench.SIDE_BY_SIDE, (1, 8192, 1024)]


# float64 and the 16-bit dtypes on the side-by-side shape only (the other_dtype fixture)
TABLE_DTYPES = [pytest.param(np.float32, id="float32"), pytest.param(np.float64, id="float64")]
TABLE_SHAPES = [(8192, 4096)]
PROBE_VALUE = 1e-3


def shape_id(shape):
    return "x".join(map(str, shape))


def _api(impl):
    return fastpe if impl == "fastpe" else reference


def _group(kind, x):
    return f"{kind} {x.dtype.name} {shape_id(x.shape)}"


@pytest.mark.parametrize("shape", ADD_SHAPES, ids=shape_id)
@pytest.mark.parametrize("impl", IMPLS)
def test_fused_add(pe_bench, impl, shape):
    pe_bench.case("fused add", bench.ADD, shape, np.float32, impl, bench.NEW_OFFSET)


@pytest.mark.parametrize("impl", IMPLS)
def test_fused_add_dtypes(pe_bench, impl, other_dtype):
    pe_bench.case("fused add", bench.ADD, bench.SIDE_BY_SIDE, other_dtype, impl, bench.NEW_OFFSET)


@pytest.mark.parametrize("shape", TABLE_SHAPES, ids=shape_id)
@pytest.mark.parametrize("dtype", TABLE_DTYPES)
@pytest.mark.parametrize("impl", ["fastpe", "reference", "probe"])
def test_table(pe_bench, impl, dtype, shape):
    out = np.zeros(shape, dtype=dtype)
    threads = effective_threads(None, out.size)
    pe_bench.describe(_group("table", out), impl, threads, out, 1)
    if impl == "probe":
        flat = out.reshape(-1)

        def fn():
            _kernels.probe(flat, PROBE_VALUE, True, threads)
    else:
        table = _api(impl).sinusoidal_table
        n, dim = shape

        def fn():
            table(n, dim, out=out)
    pe_bench.overwrite(fn, out, impl)


@pytest.mark.parametrize("impl", IMPLS)
def test_positions(pe_bench, impl):
    """Every sequence at its own start (packed or continued sequences); peers gather table[positions]."""
    pe_bench.case("positions", bench.ADD_POSITIONS, bench.SIDE_BY_SIDE, np.float32, impl)


def _thread_counts():
    n = max(1, _kernels.omp_max_threads()) if _kernels.openmp_enabled() else 1
    return sorted({1, max(2, n)})


@pytest.mark.parametrize("threads", _thread_counts(), ids=lambda n: f"{n}thr")
@pytest.mark.parametrize("impl", ["fastpe", "probe"])
def test_threads(pe_bench, impl, threads):
    x, pattern = pe_bench.filled((8, 2048, 1024), np.float32)
    pe_bench.describe(_group("threads", x), f"{impl} {threads} thr", threads, x, 2)
    if impl == "probe":
        flat = x.reshape(-1)

        def fn():
            _kernels.probe(flat, PROBE_VALUE, False, threads)
    else:

        def fn():
            fastpe.add_sinusoidal(x, num_threads=threads)
    pe_bench.inplace(fn, x, pattern, impl)
