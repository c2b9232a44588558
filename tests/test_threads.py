"""Threading: the OpenMP team size must not change a single bit of a result
(README, Threads), and concurrent calls from several Python threads must not
disturb each other.

Nothing here measures time. The arrays are large enough (>= 2**15 elements)
that the kernels really run with a team instead of falling back to one thread.
"""

import threading

import numpy as np
import pytest

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
    threadpoolctl = pytest.importorskip("threadpoolctl")
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
    pytest.importorskip("threadpoolctl")
    from threadpoolctl import threadpool_info

    info = fastpe.show_config(print_out=False)
    loaded = [lib["filepath"] for lib in threadpool_info() if lib["user_api"] == "openmp"]
    assert loaded, "threadpoolctl sees no OpenMP runtime although fastpe was built with OpenMP"
    runtime = info["openmp_runtime"]
    assert runtime is not None and any(runtime.endswith(f"at {path}") for path in loaded), (runtime, loaded)


def _job(i):
    """The i-th job of the concurrency test: a varied call and its arguments."""
    rng = np.random.default_rng(1000 + i)
    dtype = DTYPES[i % 2]
    layout = LAYOUTS[(i // 2) % 2]
    kind = i % 5
    if kind == 0:
        shape, kwargs = (3, 300, 40), {"offset": rng.integers(-1000, 1000, 3)}
    elif kind == 1:
        shape, kwargs = (2, 500, 48), {"positions": rng.integers(-10**5, 10**5, (2, 500))}
    elif kind == 2:
        shape, kwargs = (400, 17), {"offset": float(rng.uniform(-100, 100)), "scale": 2.0}
    elif kind == 3:
        shape, kwargs = (2, 2, 128, 64), {"offset": 5, "num_threads": 2}
    else:
        n_freq = 17 if layout == "interleaved" else 16
        shape, kwargs = (4, 64, 33), {"positions": np.arange(64)[::-1], "inv_freq": rng.uniform(0, 1, n_freq)}
    kwargs["layout"] = layout
    x = random_values(shape, dtype, rng, magnitude=5.0)
    if kind == 1:
        x = x[..., ::-1]
    return x, kwargs


N_THREADS, N_CALLS = 4, 20


def test_concurrent_python_threads():
    """4 Python threads x 20 calls each, released together; every result checked."""
    jobs = [[_job(t * N_CALLS + c) for c in range(N_CALLS)] for t in range(N_THREADS)]
    inputs = [[x.copy() for x, _ in row] for row in jobs]
    expected = [[reference.add_sinusoidal(x.copy(), **kw) for x, kw in row] for row in jobs]
    serial = [[fastpe.add_sinusoidal(x.copy(), **kw) for x, kw in row] for row in jobs]
    barrier = threading.Barrier(N_THREADS)
    errors = []

    def worker(t):
        try:
            barrier.wait()
            for c, (x, kw) in enumerate(jobs[t]):
                fastpe.add_sinusoidal(x, **kw)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append((t, exc))

    workers = [threading.Thread(target=worker, args=(t,)) for t in range(N_THREADS)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert not errors, errors
    for t in range(N_THREADS):
        for c in range(N_CALLS):
            x, kw = jobs[t][c]
            label = f"thread {t} call {c}: x {x.dtype} {x.shape} strides={x.strides} kwargs={sorted(kw)}"
            pmax = float(np.abs(kw.get("positions", kw.get("offset", 0))).max()) + x.shape[-2]
            scale = kw.get("scale", 1.0)
            tol = add_tolerance(x.dtype, min(pmax, 2**20), np.abs(inputs[t][c].astype(np.float64) * scale))
            assert_within(x, expected[t][c], tol, label)
            # concurrency must not change a single bit relative to the same call made alone
            assert x.tobytes() == serial[t][c].tobytes(), f"{label}: differs from the same call run serially"


def test_concurrent_threads_sharing_input_with_out():
    """Threads reading the same read-only x into their own outputs."""
    rng = np.random.default_rng(5)
    x = random_values((4, 600, 32), np.float32, rng)
    x.flags.writeable = False
    offsets = [np.arange(4) * t for t in range(8)]
    outs = [np.empty_like(x) for _ in offsets]
    barrier = threading.Barrier(4)
    errors = []

    def worker(t):
        try:
            barrier.wait()
            for k in range(t, len(offsets), 4):
                for _ in range(5):
                    fastpe.add_sinusoidal(x, offset=offsets[k], out=outs[k], num_threads=2)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    ws = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
    for w in ws:
        w.start()
    for w in ws:
        w.join()
    assert not errors, errors
    for k, off in enumerate(offsets):
        expected = reference.add_sinusoidal(x.copy(), offset=off)
        assert_within(outs[k], expected, add_tolerance(np.float32, 4000, np.abs(x)), f"shared x, offsets {off}")



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
