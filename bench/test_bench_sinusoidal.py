"""Benchmarks: sinusoidal tables and fused adds, fastpe vs reference vs probe.

See bench/conftest.py for how to run, save and compare.
"""

import numpy as np
import pytest

import fastpe
from fastpe import _kernels, reference
from fastpe.bench import effective_threads

IMPLS = ["fastpe", "reference", "probe"]
DTYPES = [pytest.param(np.float32, id="float32"), pytest.param(np.float64, id="float64")]
ADD_SHAPES = [(1, 128, 64), (2, 512, 256), (8, 2048, 1024)]
TABLE_SHAPES = [(8192, 4096)]
PROBE_VALUE = 1e-3


def shape_id(shape):
    return "x".join(map(str, shape))


def _api(impl):
    return fastpe if impl == "fastpe" else reference


def _group(kind, x):
    return f"{kind} {x.dtype.name} {shape_id(x.shape)}"


@pytest.mark.parametrize("shape", ADD_SHAPES, ids=shape_id)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("impl", IMPLS)
def test_fused_add(pe_bench, impl, dtype, shape):
    x, pattern = pe_bench.filled(shape, dtype)
    pe_bench.measure(_group("fused add", x), impl, x, pattern, lambda api, x: api.add_sinusoidal(x))


@pytest.mark.parametrize("shape", TABLE_SHAPES, ids=shape_id)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("impl", IMPLS)
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


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("impl", IMPLS)
def test_positions(pe_bench, impl, dtype):
    shape = (8, 2048, 1024)
    x, pattern = pe_bench.filled(shape, dtype)
    # every sequence at its own start (packed or continued sequences)
    starts = np.random.default_rng(1).integers(0, 4096, size=(shape[0], 1))
    positions = starts + np.arange(shape[1])
    pe_bench.measure(_group("positions", x), impl, x, pattern,
                     lambda api, x: api.add_sinusoidal(x, positions=positions))


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
