"""OpenMP team size: it must not change a single bit of a result (README,
Threads), whatever the team (1, 2, 7 threads or the default), and
threadpoolctl's limits reach fastpe's OpenMP runtime. Concurrent calls from
several Python threads: test_python_threads.py.

Nothing here measures time. The arrays are large enough (>= 2**15 elements)
that the kernels really run with a team instead of falling back to one thread.
"""

import numpy as np
import pytest
from optional import extra_import

import fastpe
from fastpe import _kernels, reference
from util import (DTYPES, LAYOUTS, add_tolerance, assert_same_bits, assert_within, check_add_against_reference,
                  random_values, rng_for)

TEAM_SIZES = [1, 2, 7, None]  # 7 > the cores of the CI machines: oversubscription must be harmless


def _big_cases(rng):
    """(label, x shape, kwargs): grid path (offsets) and grouped path (positions), with batch sharing."""
    yield "2d-offset", (4096, 64), {"offset": -2000}
    yield "3d-scalar-offset", (4, 1000, 48), {"offset": 7.5}
    yield "3d-per-seq-offsets-with-repeats", (6, 700, 40), {"offset": np.array([0, 700, 0, 1400, 5, 5])}
    yield "4d-offsets", (2, 3, 600, 33), {"offset": rng.integers(-10**6, 10**6, (2, 3))}
    yield "3d-wide", (2, 40, 1024), {"offset": 1}
    yield "positions-1d", (5, 800, 32), {"positions": np.arange(800)[::-1]}
    yield "positions-per-batch", (4, 900, 24), {"positions": rng.integers(-5000, 5000, (4, 900))}
    yield "positions-runs", (3, 1000, 40), {"positions": np.arange(3000).reshape(3, 1000) + 10**6}
    yield "positions-repeated", (8, 512, 16), {"positions": rng.integers(0, 5, (8, 512))}


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_team_size_does_not_change_results(dtype, layout):
    rng = rng_for("team", dtype, layout)
    for label, shape, kwargs in _big_cases(rng):
        x = random_values(shape, dtype, rng, magnitude=10.0)
        assert x.size >= 2**15
        results, results_out = {}, {}
        for nt in TEAM_SIZES:
            # each team size checked against the reference: that is the expected value
            results[nt] = check_add_against_reference(
                x.copy(), f"{label} num_threads={nt} layout={layout}", num_threads=nt, layout=layout, **kwargs
            )
            results_out[nt] = np.empty_like(x)
            check_add_against_reference(x, f"{label} out= num_threads={nt}", out=results_out[nt], num_threads=nt,
                                        layout=layout, scale=0.5, **kwargs)
        # and the team sizes against each other: the same bits
        for nt in TEAM_SIZES[1:]:
            assert_same_bits(results[nt], results[1], f"{label}: num_threads={nt} vs 1")
            assert_same_bits(results_out[nt], results_out[1], f"{label} out=: num_threads={nt} vs 1")


@pytest.mark.parametrize("layout", LAYOUTS)
def test_team_size_tables(layout):
    for dtype in DTYPES:
        expected = reference.sinusoidal_table(3000, 64, offset=-1234, layout=layout, dtype=dtype)
        pos = np.random.default_rng(3).integers(-4000, 4000, (40, 50))
        expected_enc = reference.sinusoidal_encode(pos, 64, layout=layout, dtype=dtype)
        tables, encodings = {}, {}
        for nt in TEAM_SIZES:
            tables[nt] = fastpe.sinusoidal_table(3000, 64, offset=-1234, layout=layout, dtype=dtype, num_threads=nt)
            assert_within(tables[nt], expected, add_tolerance(dtype, 4300, 0.0), f"table threads={nt} {layout}")
            encodings[nt] = fastpe.sinusoidal_encode(pos, 64, layout=layout, dtype=dtype, num_threads=nt)
            assert_within(encodings[nt], expected_enc, add_tolerance(dtype, 4000, 0.0), f"encode threads={nt} {layout}")
        for nt in TEAM_SIZES[1:]:
            assert_same_bits(tables[nt], tables[1], f"table threads={nt} vs 1 {layout}")
            assert_same_bits(encodings[nt], encodings[1], f"encode threads={nt} vs 1 {layout}")


def test_openmp_is_enabled_in_this_build():
    """The wheel under test is meant to be built with OpenMP (otherwise the team-size tests test nothing)."""
    assert _kernels.openmp_enabled(), "fastpe was built without OpenMP: threaded kernels are untested"
    assert _kernels.omp_max_threads() >= 1


def test_threadpool_limits_caps_the_team():
    """threadpoolctl.threadpool_limits(1) reaches fastpe's OpenMP runtime: calls run on one thread."""
    threadpoolctl = extra_import("threadpoolctl", "test")
    from fastpe._runtime import resolve_threads

    big = 1 << 22
    fastpe.add_sinusoidal(np.zeros((2, 64, 32), dtype=np.float32), num_threads=2)  # the runtime is loaded
    before = _kernels.omp_max_threads()
    with threadpoolctl.threadpool_limits(limits=1, user_api="openmp"):
        assert _kernels.omp_max_threads() == 1
        assert resolve_threads(None, big) == 1
        x = random_values((4, 256, 64), np.float32, rng_for("threadpool-limits"))
        check_add_against_reference(x, "inside threadpool_limits(1)", offset=3)
    assert _kernels.omp_max_threads() == before, "threadpool_limits did not restore the team size"
    if before > 1:
        assert resolve_threads(None, big) > 1


def test_show_config_names_the_loaded_openmp_runtime():
    extra_import("threadpoolctl", "test")
    from threadpoolctl import threadpool_info

    info = fastpe.show_config(print_out=False)
    loaded = [lib["filepath"] for lib in threadpool_info() if lib["user_api"] == "openmp"]
    assert loaded, "threadpoolctl sees no OpenMP runtime although fastpe was built with OpenMP"
    runtime = info["openmp_runtime"]
    assert runtime is not None and any(runtime.endswith(f"at {path}") for path in loaded), (runtime, loaded)


@pytest.mark.parametrize("case", ["grid", "per-sequence", "positions", "table", "encode", "rotary"])
def test_regression_results_independent_of_thread_count(case):
    """The same call gives the same bits on any number of threads. Work items
    were sized from the team size and each item starts from a fresh seed, so a
    call with num_threads=None differed (1.4e-11 in float64) between a thread
    whose OpenMP default differed from another's (found by the concurrency
    tests in a full run)."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((3, 700, 48))
    calls = {
        "grid": lambda n: fastpe.add_sinusoidal(x.copy(), offset=5, scale=0.7, num_threads=n),
        "per-sequence": lambda n: fastpe.add_sinusoidal(x.copy(), offset=np.array([0, 9, 2000]), num_threads=n),
        "positions": lambda n: fastpe.add_sinusoidal(x.copy(), positions=np.arange(700)[::-1] * 3, num_threads=n),
        "table": lambda n: fastpe.sinusoidal_table(5000, 48, offset=1e5, dtype=np.float64, num_threads=n),
        "encode": lambda n: fastpe.sinusoidal_encode(np.arange(6000) * 1.5, 48, dtype=np.float64, num_threads=n),
        "rotary": lambda n: fastpe.apply_rotary(x.copy().reshape(3, 700, 2, 24), offset=np.array([1, 2, 3]), seq_axis=-3, num_threads=n),
    }
    results = [calls[case](n) for n in (1, 2, 3, 7)]
    for n, r in zip((2, 3, 7), results[1:]):
        assert np.array_equal(results[0], r), f"{case}: {n} threads differ from 1 thread"
