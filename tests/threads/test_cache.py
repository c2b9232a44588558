"""The frequency-plan cache: it must never change a result.

Results are compared bitwise between a cold cache, a disabled cache (limit 0)
and a warm cache, and every one of them against the reference (the expected
value). The counters and the byte bound are checked, and so is the cache's
key: different bases, layouts, dims and frequency vectors must never share a
plan.
"""

import threading

import numpy as np
import pytest

import fastpe
from fastpe import reference
from processes import run_python
from util import add_tolerance, assert_within, random_values

CALLS = [
    ("table", lambda: fastpe.sinusoidal_table(700, 64, offset=-50, dtype=np.float64),
     lambda: reference.sinusoidal_table(700, 64, offset=-50, dtype=np.float64), 750),
    ("table-concat-f32", lambda: fastpe.sinusoidal_table(300, 33, offset=10**6, layout="concat"),
     lambda: reference.sinusoidal_table(300, 33, offset=10**6, layout="concat"), 10**6 + 300),
    ("encode", lambda: fastpe.sinusoidal_encode(np.arange(-500, 500)[::-1], 48, dtype=np.float64),
     lambda: reference.sinusoidal_encode(np.arange(-500, 500)[::-1], 48, dtype=np.float64), 500),
    ("add-inv_freq", lambda: fastpe.add_sinusoidal(np.ones((3, 200, 10)), offset=np.array([0, 3, 0]),
                                                   inv_freq=[1.0, 0.5, 0.25, 0.125, 0.0625]),
     lambda: reference.add_sinusoidal(np.ones((3, 200, 10)), offset=np.array([0, 3, 0]),
                                      inv_freq=[1.0, 0.5, 0.25, 0.125, 0.0625]), 203),
    ("add-base", lambda: fastpe.add_sinusoidal(np.ones((2, 300, 20), np.float32), base=500.0, layout="concat"),
     lambda: reference.add_sinusoidal(np.ones((2, 300, 20), np.float32), base=500.0, layout="concat"), 300),
]


@pytest.mark.parametrize("call", CALLS, ids=[c[0] for c in CALLS])
def test_results_bitwise_identical_cold_disabled_warm(call):
    label, run, run_ref, pmax = call
    expected = run_ref()
    fastpe.cache_clear()
    cold = run()
    warm = run()
    assert fastpe.cache_info().hits >= 1, f"{label}: second call did not hit the cache"
    fastpe.set_cache_limit(0)
    fastpe.cache_clear()
    disabled = run()
    disabled_again = run()
    assert fastpe.cache_info().entries == 0
    for name, got in [("cold", cold), ("warm", warm), ("disabled", disabled), ("disabled-again", disabled_again)]:
        assert_within(got, expected, add_tolerance(got.dtype, pmax, 1.0), f"{label} cache {name}")
        assert got.tobytes() == cold.tobytes(), f"{label}: cache {name} result differs bitwise from cold-cache result"


def test_counters_and_entries():
    fastpe.cache_clear()
    info = fastpe.cache_info()
    assert (info.hits, info.misses, info.entries, info.nbytes) == (0, 0, 0, 0)
    assert info._fields == ("hits", "misses", "entries", "nbytes", "limit")
    fastpe.sinusoidal_table(4, 8)
    info = fastpe.cache_info()
    assert (info.hits, info.misses, info.entries) == (0, 1, 1)
    assert info.nbytes > 0
    fastpe.sinusoidal_table(9, 8, dtype=np.float64)  # same plan: dim, layout, base
    fastpe.add_sinusoidal(np.zeros((2, 3, 8), np.float32), layout="interleaved")  # the general path (a layout given)
    info = fastpe.cache_info()
    assert (info.hits, info.misses, info.entries) == (2, 1, 1)
    # The common call adds cached rows: their block (256 rows of 8 float32) misses, its plan hits.
    fastpe.add_sinusoidal(np.zeros((2, 3, 8), np.float32))
    info = fastpe.cache_info()
    assert (info.hits, info.misses, info.entries) == (3, 2, 2)
    fastpe.sinusoidal_table(4, 8, layout="concat")
    fastpe.sinusoidal_table(4, 8, base=100.0)
    fastpe.sinusoidal_table(4, 9)
    fastpe.sinusoidal_table(4, 8, inv_freq=[1, 2, 3, 4])
    info = fastpe.cache_info()
    assert (info.misses, info.entries) == (6, 6)
    fastpe.cache_clear()
    assert fastpe.cache_info()[:4] == (0, 0, 0, 0)


def test_limit_bounds_bytes_and_evicts_lru():
    fastpe.cache_clear()
    fastpe.sinusoidal_table(2, 1024)
    one = fastpe.cache_info().nbytes
    assert one > 0
    fastpe.set_cache_limit(one)  # room for exactly one 1024-wide plan
    for base in (10.0, 20.0, 30.0):
        got = fastpe.sinusoidal_table(40, 1024, offset=3, base=base, dtype=np.float64)
        assert_within(got, reference.sinusoidal_table(40, 1024, offset=3, base=base, dtype=np.float64),
                      1e-12, f"base={base} under a one-plan cache")
        info = fastpe.cache_info()
        assert info.nbytes <= one and info.entries <= 1, info
    fastpe.set_cache_limit(10 * one)
    fastpe.cache_clear()
    for dim in (1024, 1000, 1024):  # the third call must hit
        fastpe.sinusoidal_table(2, dim)
    assert fastpe.cache_info().hits == 1
    fastpe.set_cache_limit(one // 2)  # shrinking evicts down to the new bound
    info = fastpe.cache_info()
    assert info.nbytes <= one // 2 and info.limit == one // 2


def test_plans_not_shared_between_keys():
    """Each of these differs from the previous call only in one key component;
    a wrongly shared plan would give the previous call's numbers."""
    fastpe.cache_clear()
    x0 = random_values((3, 50, 12), np.float64, np.random.default_rng(0))
    variants = [
        {},
        {"layout": "concat"},
        {"base": 100.0},
        {"base": 100.0, "layout": "concat"},
        {"inv_freq": np.linspace(0.1, 1, 6)},
        {"inv_freq": np.linspace(0.1, 1, 6) * 2},
        {"inv_freq": np.linspace(0.1, 1, 6) * 2, "layout": "concat"},
        {"base": 10000.000000001},
    ]
    for _ in range(2):  # second round: every plan comes from the cache
        for kw in variants:
            got = fastpe.add_sinusoidal(x0.copy(), offset=5, **kw)
            assert_within(got, reference.add_sinusoidal(x0.copy(), offset=5, **kw),
                          add_tolerance(np.float64, 60, np.abs(x0)), f"key {kw}")
    for dim in (11, 12, 13):
        got = fastpe.sinusoidal_table(30, dim, offset=2, dtype=np.float64)
        assert_within(got, reference.sinusoidal_table(30, dim, offset=2, dtype=np.float64), 1e-12, f"dim {dim}")


def test_inv_freq_float32_vs_float64_values_are_distinct_keys():
    """float32 frequencies are used as their float32 values, cached separately from float64 ones."""
    f64 = np.array([0.1, 0.3, 0.7])
    f32 = f64.astype(np.float32)
    for freq in (f64, f32, f64, f32):
        got = fastpe.sinusoidal_table(20, 6, offset=1000, inv_freq=freq, dtype=np.float64)
        expected = reference.sinusoidal_table(20, 6, offset=1000, inv_freq=freq, dtype=np.float64)
        assert_within(got, expected, 1e-12, f"inv_freq {freq.dtype}")


def test_regression_inv_freq_left_writeable():
    """Passing inv_freq must not change the caller's array: it is the caller's,
    and they may update it in place (learned frequencies). fastpe 0.1.0 caches
    the caller's own float64 array in the plan and marks it read-only."""
    for impl in (reference, fastpe):
        fastpe.cache_clear()  # a cache hit would hide the problem
        freq = np.array([1.0, 0.1, 0.01])
        impl.sinusoidal_table(4, 6, inv_freq=freq)
        assert freq.flags.writeable, f"{impl.__name__}: inv_freq became read-only"
        fastpe.cache_clear()
        freq = np.array([1.0, 0.1, 0.01])
        impl.add_sinusoidal(np.zeros((4, 6)), inv_freq=freq)
        assert freq.flags.writeable, f"{impl.__name__}: inv_freq became read-only (add_sinusoidal)"


def test_regression_inv_freq_cache_aliasing():
    """A cached plan must not see later changes to the caller's inv_freq array.

    fastpe 0.1.0 keys the plan by the bytes of inv_freq but keeps the caller's
    array itself as the plan's frequencies; after the caller updates their
    array, calls with the *original* values hit that plan and seed with the
    updated frequencies."""
    fastpe.cache_clear()
    freq = np.array([1.0, 0.1, 0.01])
    fastpe.sinusoidal_table(4, 6, offset=3, inv_freq=freq)
    if not freq.flags.writeable:
        freq.flags.writeable = True  # the caller owns the data; NumPy allows this
    freq[0] = 5.0  # the caller updates their frequencies
    original = np.array([1.0, 0.1, 0.01])
    got = fastpe.sinusoidal_table(4, 6, offset=3, inv_freq=original, dtype=np.float64)
    expected = reference.sinusoidal_table(4, 6, offset=3, inv_freq=original, dtype=np.float64)
    assert_within(got, expected, 1e-12, "table with the original inv_freq after the caller changed their array")


def test_clear_and_limit_while_other_threads_compute():
    """Clearing and resizing the cache concurrently with calls never changes their results."""
    rng = np.random.default_rng(9)
    xs = [random_values((2, 300, d), np.float64, rng) for d in (8, 9, 64, 65)]
    expected = [reference.add_sinusoidal(x.copy(), offset=11) for x in xs]
    stop = threading.Event()
    errors = []

    def churn():
        limits = [0, 10**3, 10**9, 0, 64 * 2**20]
        i = 0
        while not stop.is_set():
            fastpe.cache_clear()
            fastpe.set_cache_limit(limits[i % len(limits)])
            fastpe.cache_info()
            i += 1

    def work():
        try:
            for _ in range(25):
                for x, exp in zip(xs, expected):
                    got = fastpe.add_sinusoidal(x.copy(), offset=11)
                    assert_within(got, exp, add_tolerance(np.float64, 311, np.abs(x)), f"dim {x.shape[-1]}")
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    churner = threading.Thread(target=churn)
    workers = [threading.Thread(target=work) for _ in range(3)]
    churner.start()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    stop.set()
    churner.join()
    assert not errors, errors[0]


@pytest.mark.parametrize("bad, error", [(-1, ValueError), (1.5, TypeError), ("100", TypeError), (True, TypeError),
                                        (None, TypeError)])
def test_set_cache_limit_rejects(bad, error):
    """Regression: set_cache_limit(True) and set_cache_limit(1.5) raised ValueError
    where every other wrongly typed argument raises TypeError."""
    before = fastpe.cache_info()
    with pytest.raises(error, match="nbytes"):
        fastpe.set_cache_limit(bad)
    assert fastpe.cache_info().limit == before.limit


def test_set_cache_limit_takes_numpy_integers():
    before = fastpe.cache_info().limit
    try:
        fastpe.set_cache_limit(np.int64(12345))
        assert fastpe.cache_info().limit == 12345
    finally:
        fastpe.set_cache_limit(before)


def test_cache_limit_from_environment():
    code = "import fastpe, numpy as np; fastpe.sinusoidal_table(3, 8); i = fastpe.cache_info(); print(i.limit, i.entries)"
    res = run_python(code, env=dict(FASTPE_CACHE_BYTES="0"))
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["0", "0"]
    res = run_python(code, env=dict(FASTPE_CACHE_BYTES="12345"))
    assert res.returncode == 0, res.stderr
    assert res.stdout.split()[0] == "12345"


@pytest.mark.parametrize("raw", ["lots", "-5", "1.5e6", "64MiB"])
def test_regression_malformed_cache_bytes_warns_and_keeps_import_working(raw):
    """A malformed FASTPE_CACHE_BYTES made `import fastpe` itself fail; now it
    warns (RuntimeWarning naming the variable and the value) and uses the default."""
    code = ("import warnings, fastpe\n"
            "from fastpe._runtime import DEFAULT_CACHE_LIMIT\n"
            "with warnings.catch_warnings(record=True) as caught:\n"
            "    warnings.simplefilter('always')\n"
            "    limit = fastpe._runtime.cache_limit_from_environment()\n"
            "print(fastpe.cache_info().limit == DEFAULT_CACHE_LIMIT == limit)\n"
            "print(caught[0].category.__name__)\n"
            "print(caught[0].message)\n"
            "fastpe.sinusoidal_table(3, 8)\n")
    res = run_python(code, env=dict(FASTPE_CACHE_BYTES=raw, PYTHONWARNINGS="ignore"))
    assert res.returncode == 0, res.stderr
    same, category, message = res.stdout.splitlines()
    assert same == "True" and category == "RuntimeWarning"
    assert "FASTPE_CACHE_BYTES" in message and repr(raw) in message


def test_malformed_cache_bytes_warning_is_shown_at_import():
    res = run_python("import fastpe", env=dict(FASTPE_CACHE_BYTES="lots", PYTHONWARNINGS="default"))
    assert res.returncode == 0, res.stderr
    assert "RuntimeWarning" in res.stderr and "FASTPE_CACHE_BYTES" in res.stderr and "'lots'" in res.stderr
