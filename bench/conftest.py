"""pytest-benchmark suite of fastpe: fastpe vs fastpe.reference vs a bandwidth probe.

Run from the repository root (after ``python setup.py build_ext --inplace``)::

    PYTHONPATH=. python -m pytest bench --benchmark-only

Every benchmark group is one operation at one dtype and size, and holds three
implementations side by side:

* ``fastpe``    -- the compiled OpenMP kernels;
* ``reference`` -- ``fastpe.reference`` (plain NumPy), given fewer rounds on
  large arrays so the suite finishes in a few minutes;
* ``probe``     -- ``fastpe._kernels.probe``: ``x += c`` (fused adds) or
  ``t[:] = c`` (tables) over the same array, dtype and thread count; the
  memory-bandwidth ceiling of the machine.

Groups: ``fused add <dtype> <shape>``, ``table <dtype> <shape>``,
``positions <dtype> <shape>`` and ``threads <dtype> <shape>`` (fastpe and the
probe at 1 thread and at the default count). Select with ``-k``, e.g.
``-k "fused_add and float32"`` or ``-k "not reference"``.

In-place operations run under ``benchmark.pedantic(fn, setup=..., rounds=...,
iterations=1)``: ``setup`` restores the input from a saved pattern before every
round, outside the timed region. Nothing here asserts anything about speed.

Saving and comparing runs (stored under ``.benchmarks/``, which git ignores)::

    python -m pytest bench --benchmark-only --benchmark-autosave     # save this run
    python -m pytest bench --benchmark-only --benchmark-compare      # compare with the latest save
    python -m pytest bench --benchmark-only --benchmark-compare=0001 --benchmark-compare-fail=median:25%
    pytest-benchmark list
    pytest-benchmark compare 0001 0002 --group-by=group --columns=median,iqr,rounds

Useful display options: ``--benchmark-columns=median,iqr,rounds``,
``--benchmark-sort=name``, ``--benchmark-group-by=group`` (the default),
``--benchmark-histogram``. On a shared or noisy machine compare medians, not
means, and use generous thresholds.

The pyproject's pytest settings apply here too: ``--import-mode=importlib``
(so this file only provides fixtures; nothing imports it) and
``filterwarnings = error``.
"""

import numpy as np
import pytest

import fastpe
from fastpe import _kernels, reference
from fastpe.bench import effective_threads

PROBE_VALUE = 1e-3

# Rounds per implementation, by array size: the reference is slow on large arrays.
_ROUNDS = {
    # (fastpe or probe, reference)
    "small": (200, 50),      # < 1 MiB
    "medium": (50, 10),      # < 32 MiB
    "large": (15, 3),
}


def _size_class(nbytes):
    if nbytes < 2**20:
        return "small"
    if nbytes < 32 * 2**20:
        return "medium"
    return "large"


class PEBench:
    """Helpers for one benchmark (a fixture: importlib mode forbids importing conftest)."""

    def __init__(self, benchmark):
        self.benchmark = benchmark

    @staticmethod
    def rounds(impl, nbytes):
        fast, ref = _ROUNDS[_size_class(nbytes)]
        return ref if impl == "reference" else fast

    @staticmethod
    def filled(shape, dtype, seed=0):
        """(x, pattern): x is filled from pattern, a random (T, D) slab broadcast over the batch."""
        rng = np.random.default_rng(seed)
        pattern = rng.standard_normal(shape[-2:]).astype(dtype)
        x = np.empty(shape, dtype=dtype)
        np.copyto(x, pattern)
        return x, pattern

    def describe(self, group, impl, threads, array, traffic_factor):
        self.benchmark.group = group
        self.benchmark.extra_info.update(
            impl=impl,
            threads=threads,
            shape=list(array.shape),
            dtype=array.dtype.name,
            traffic_bytes=traffic_factor * array.nbytes,
        )

    def inplace(self, fn, x, pattern, impl):
        """Time fn() on a fresh x every round (restored from pattern, untimed)."""

        def setup():
            np.copyto(x, pattern)

        return self.benchmark.pedantic(
            fn, setup=setup, rounds=self.rounds(impl, x.nbytes), iterations=1, warmup_rounds=1
        )

    def measure(self, group, impl, x, pattern, call):
        """Time one implementation in place on x (restored from pattern every
        round): impl "probe" sweeps x += c with fastpe's thread count, any
        other runs call(api, x) with api = fastpe or fastpe.reference."""
        threads = effective_threads(None, x.size)
        self.describe(group, impl, threads, x, 2)
        if impl == "probe":
            flat = x.reshape(-1)

            def fn():
                _kernels.probe(flat, PROBE_VALUE, False, threads)
        else:
            api = fastpe if impl == "fastpe" else reference

            def fn():
                call(api, x)
        return self.inplace(fn, x, pattern, impl)

    def overwrite(self, fn, out, impl):
        """Time fn() that overwrites out entirely (tables): no setup needed."""
        return self.benchmark.pedantic(fn, rounds=self.rounds(impl, out.nbytes), iterations=1, warmup_rounds=1)


@pytest.fixture
def pe_bench(benchmark):
    return PEBench(benchmark)


@pytest.fixture(scope="session")
def default_threads():
    return max(1, _kernels.omp_max_threads()) if _kernels.openmp_enabled() else 1
