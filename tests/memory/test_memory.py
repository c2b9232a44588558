"""Memory: no leaks, 64-bit offsets, and team sizes beyond the core count.

(a) Leaks. Thousands of calls of every public function (accepted and rejected
    ones) on small inputs must not grow the memory traced by tracemalloc
    (NumPy reports its data buffers to tracemalloc, so a leaked scratch or
    output array shows up), nor the RSS of the process beyond a generous
    slack; and fastpe must not keep references to the caller's arrays.
    tools/leak_check.py is the long version (100,000 calls).

(b) 64-bit indexing. Byte offsets of rows and columns beyond 2**31 and 2**32,
    and element indices beyond 2**31:
      * a unit test of the row-offset tables (fastpe._runtime) on views with huge
        strides over a tiny buffer (as_strided: no memory is touched);
      * (slow) real calls on views of a lazily mapped np.zeros buffer of
        2**31+ float32 elements (8.7 GB of address space): only the pages the
        views touch become resident (a few MB; transparent huge pages are
        switched off for the allocation), which the test checks with the RSS.

(c) num_threads larger than the core count (7, 64, 200) gives the reference's
    numbers; an absurd num_threads must not kill the process.
"""

import gc
import json
import sys
import tracemalloc
import weakref

import numpy as np
import pytest

import fastpe
from fastpe import _runtime, reference
from processes import rss_bytes, run_python
from util import add_tolerance, assert_within, max_abs_position_of_add, random_values, rng_for

as_strided = np.lib.stride_tricks.as_strided

# ------------------------------------------------------------------ (a) leaks

N_LEAK_CALLS = 2000           # calls of each function in the tracemalloc test
TRACED_GROWTH_LIMIT = 200_000  # bytes
N_RSS_CALLS = 400              # rounds of team-sized calls in the RSS test
RSS_GROWTH_LIMIT = 16 * 2**20  # bytes: generous (allocator caches, page granularity)


def _small_inputs():
    rng = rng_for("leak")
    return {
        "x": random_values((2, 16, 24), np.float32, rng),
        "x64": random_values((3, 9, 7), np.float64, rng)[:, ::-1],
        "out": np.empty((2, 16, 24), np.float32),
        "offset": np.array([3, 70]),
        "positions": rng.integers(-500, 500, (2, 16)),
        "enc_pos": rng.uniform(-100, 100, (5, 3)),
        "inv_freq": rng.uniform(0, 1, 12),
        "table_out": np.empty((40, 10), np.float64),
    }


def _one_round(a):
    """Every public function once (several paths of add_sinusoidal), plus rejected calls."""
    fastpe.add_sinusoidal(a["x"], offset=a["offset"])
    fastpe.add_sinusoidal(a["x"], positions=a["positions"], out=a["out"], scale=0.5)
    fastpe.add_sinusoidal(a["x"], out=a["x"][::-1], inv_freq=a["inv_freq"])  # overlap: private copy path
    fastpe.add_sinusoidal(a["x64"], offset=2.5, layout="concat")
    fastpe.sinusoidal_table(40, 10, offset=-5)
    fastpe.sinusoidal_table(40, 10, out=a["table_out"], layout="concat")
    fastpe.sinusoidal_encode(a["enc_pos"], 9)
    for call in (
        lambda: fastpe.add_sinusoidal(a["x"], positions=a["positions"], offset=1),
        lambda: fastpe.add_sinusoidal(a["x"].astype(np.longdouble)),
        lambda: fastpe.sinusoidal_table(4, 4, base=-1.0),
        lambda: fastpe.sinusoidal_encode([np.nan], 4),
    ):
        try:
            call()
        except (TypeError, ValueError):
            pass
        else:
            raise AssertionError("a call that must be rejected was accepted")
    # keep values bounded: x grows by PE each round otherwise
    a["x"] *= 0.5
    a["x64"] *= 0.5


N_WINDOWS = 3


def test_no_traced_memory_growth():
    """The traced memory of N_WINDOWS consecutive windows of N_LEAK_CALLS // N_WINDOWS
    rounds each: the median window's growth must stay under the limit. A leak grows
    in every window; CPython's interned-string dict, which some NumPy attribute
    lookups churn (ndarray.__array_interface__ interns its keys), is resized now and
    then, a one-off jump of ~1 MB in one window that is not a leak."""
    a = _small_inputs()
    for _ in range(200):  # warm-up: plan cache, NumPy's small-block caches, interned strings
        _one_round(a)
    gc.collect()
    per_window = N_LEAK_CALLS // N_WINDOWS
    growth = []
    tracemalloc.start()
    try:
        for _ in range(50):
            _one_round(a)
        gc.collect()
        for _ in range(N_WINDOWS):
            start, _ = tracemalloc.get_traced_memory()
            snap0 = tracemalloc.take_snapshot()
            for _ in range(per_window):
                _one_round(a)
            gc.collect()
            end, _ = tracemalloc.get_traced_memory()
            growth.append((end - start, snap0, tracemalloc.take_snapshot()))
    finally:
        tracemalloc.stop()
    order = sorted(range(N_WINDOWS), key=lambda i: growth[i][0])
    median = order[N_WINDOWS // 2]
    g, s0, s1 = growth[median]
    limit = TRACED_GROWTH_LIMIT * per_window // N_LEAK_CALLS
    detail = "\n".join(str(st) for st in s1.compare_to(s0, "lineno")[:8])
    assert g <= limit, (
        f"traced memory grew by {[w[0] for w in growth]} bytes in {N_WINDOWS} windows of {per_window} rounds "
        f"(7 accepted + 4 rejected calls each); median {g} > {limit}. Growth by line in that window:\n{detail}"
    )


@pytest.mark.skipif(rss_bytes() is None, reason="needs /proc/self/statm for the RSS")
def test_no_rss_growth_with_teams():
    """Team-sized calls (num_threads=2): per-thread scratch, the overlap copy and the
    row tables are allocated on every call; none may be kept."""
    rng = rng_for("rss")
    x = random_values((4, 128, 64), np.float32, rng)  # 32768 elements: a team
    out = np.empty_like(x)
    pos = rng.integers(0, 5000, (4, 128))
    table_out = np.empty((512, 64), np.float64)

    def round_():
        fastpe.add_sinusoidal(x, out=out, offset=np.array([0, 1, 2, 3]), num_threads=2)
        fastpe.add_sinusoidal(x, out=x[:, ::-1], positions=pos, num_threads=2)
        fastpe.sinusoidal_table(512, 64, out=table_out, num_threads=2)
        fastpe.sinusoidal_encode(pos, 64, num_threads=2)
        x[...] = out * 0.5

    for _ in range(100):
        round_()
    gc.collect()
    before = rss_bytes()
    for _ in range(N_RSS_CALLS):
        round_()
    gc.collect()
    growth = rss_bytes() - before
    assert growth <= RSS_GROWTH_LIMIT, f"RSS grew by {growth / 2**20:.1f} MiB over {N_RSS_CALLS} rounds"


def test_no_references_kept_to_caller_arrays():
    """fastpe (and its plan cache) must not hold on to x, out, positions, offset or
    inv_freq: their reference counts are unchanged and they die when dropped."""
    a = _small_inputs()
    for _ in range(3):
        _one_round(a)
    names = ["x", "out", "offset", "positions", "inv_freq", "table_out", "enc_pos"]
    counts = {k: sys.getrefcount(a[k]) for k in names}
    for _ in range(100):
        _one_round(a)
    gc.collect()
    after = {k: sys.getrefcount(a[k]) for k in names}
    assert after == counts, f"reference counts changed: before {counts}, after {after}"
    refs = {k: weakref.ref(a[k]) for k in names}
    del a
    gc.collect()
    alive = [k for k, r in refs.items() if r() is not None]
    assert not alive, f"arrays kept alive after fastpe calls: {alive}"


def test_failed_calls_release_their_arrays():
    """A rejected call (the error raised deep in validation) must not leak its arguments
    through the exception or a cache."""
    x = np.zeros((3, 4, 5), np.float32)
    pos = np.zeros((3, 4))
    inv = np.ones(3)
    bad_inv = np.ones(7)
    refs = [weakref.ref(v) for v in (x, pos, inv, bad_inv)]
    for _ in range(50):
        for kwargs in ({"positions": pos, "offset": 1}, {"inv_freq": bad_inv}, {"scale": np.nan, "inv_freq": inv}):
            with pytest.raises(ValueError):
                fastpe.add_sinusoidal(x, **kwargs)
    del x, pos, inv, bad_inv, kwargs
    gc.collect()
    assert [r() is None for r in refs] == [True] * 4


# ------------------------------------------------------------ (b) 64-bit


def _expected_offsets(shape, strides):
    """Byte offsets of every index over `shape` in C order, with Python ints."""
    offs = [0]
    for n, s in zip(shape, strides):
        offs = [o + i * s for o in offs for i in range(n)]
    return offs


def test_row_offsets_with_huge_strides():
    """fastpe._runtime computes row byte offsets in intp: strides of 2**31..2**40 bytes
    must not wrap (a tiny buffer viewed with huge strides; nothing is read)."""
    buf = np.zeros(8, np.float32)
    cases = [
        ((3, 5), (2**33 + 4, 2**31 + 8)),
        ((2, 3, 4), (-(2**40), 2**32, -(2**31 - 4))),
        ((7,), (2**31,)),
        ((2, 1, 3), (2**34, 12345, 2**32 + 2**31)),
        ((4, 4), (2**31 * 4, 2**31)),  # contiguous with each other: merged into one axis
    ]
    for lead, lead_strides in cases:
        view = as_strided(buf, shape=lead + (2, 2), strides=lead_strides + (8, 4), writeable=False)
        got = _runtime.lead_row_offsets(view, lead)
        want = _expected_offsets(lead, lead_strides)
        assert got.dtype == np.intp
        assert got.tolist() == want, f"lead_row_offsets for strides {lead_strides}"
        # grouped by per-row keys (the positions path) and by one scalar key (the offset path)
        keys = np.arange(int(np.prod(lead)), dtype=np.float64)[::-1].reshape(lead)
        groups = _runtime.group_rows(keys, lead, [view, view])
        order = np.argsort(keys.ravel(), kind="stable")
        assert groups.rows[0].tolist() == [want[i] for i in order], f"group_rows for strides {lead_strides}"
        assert groups.rows[0].dtype == np.intp
        single = _runtime.group_rows(np.zeros(()).reshape((1,) * len(lead)), lead, [view])
        assert single.rows[0].tolist() == want


HUGE_D = 65
HUGE_COL_STRIDE = 2**25 + 64  # elements: column 64 starts at element 2**31 + 4096
HUGE_ELEMENTS = HUGE_D * HUGE_COL_STRIDE


@pytest.fixture(scope="module")
def huge_zeros():
    """A lazily mapped float32 buffer of 2**31+ elements (8.7 GB of address space)."""
    if sys.maxsize < 2**40:
        pytest.skip("needs a 64-bit address space")
    try:
        from numpy._core import multiarray
    except ImportError:  # NumPy 1.x
        from numpy.core import multiarray

    hugepages = multiarray._set_madvise_hugepage(False)  # 4 KiB pages: touching a row maps 4 KiB, not 2 MiB
    try:
        big = np.zeros(HUGE_ELEMENTS, np.float32)
    except MemoryError:
        pytest.skip("the system refuses an 8.7 GB mapping (overcommit disabled?)")
    finally:
        multiarray._set_madvise_hugepage(hugepages)
    yield big
    del big


def _check_sparse(rss_before, what):
    after = rss_bytes()
    if rss_before is not None and after is not None:
        assert after - rss_before < 1024 * 2**20, f"{what}: RSS grew by {(after - rss_before) / 2**20:.0f} MiB"


@pytest.mark.slow
def test_columns_beyond_2_31_elements(huge_zeros):
    """A (T, 65) view whose columns are 2**25+64 elements apart: column 64 lies past
    element 2**31 (byte 2**33) of the buffer. Written via add, table out= and encode out=."""
    rss0 = rss_bytes()
    T = 300
    x = huge_zeros.reshape(HUGE_D, HUGE_COL_STRIDE).T[:T]  # shape (T, 65), column stride 2**27+256 bytes
    assert x.shape == (T, HUGE_D) and x.strides[1] == HUGE_COL_STRIDE * 4
    last_elem = (x.__array_interface__["data"][0] - huge_zeros.__array_interface__["data"][0]) // 4 \
        + (T - 1) + (HUGE_D - 1) * HUGE_COL_STRIDE
    assert last_elem > 2**31
    rng = rng_for("huge-cols")
    x[...] = random_values((T, HUGE_D), np.float32, rng)
    x0 = x.copy()
    fastpe.add_sinusoidal(x, offset=12345)
    expected = reference.add_sinusoidal(x0.copy(), offset=12345)
    assert_within(x, expected, add_tolerance(np.float32, 12345 + T, np.abs(x0)), "add into columns past 2**31")
    # the element just after each column's T rows is still 0: nothing written past the view
    assert not huge_zeros.reshape(HUGE_D, HUGE_COL_STRIDE)[:, T].any()
    fastpe.sinusoidal_table(T, HUGE_D, offset=-77, out=x, num_threads=2)
    assert_within(x, reference.sinusoidal_table(T, HUGE_D, offset=-77), add_tolerance(np.float32, 77 + T, 0.0),
                  "table out= with columns past 2**31")
    pos = rng.integers(-10**5, 10**5, T)
    fastpe.sinusoidal_encode(pos, HUGE_D, out=x)
    assert_within(x, reference.sinusoidal_encode(pos, HUGE_D), add_tolerance(np.float32, 10**5, 0.0),
                  "encode out= with columns past 2**31")
    _check_sparse(rss0, "columns past 2**31")
    x[...] = 0  # the buffer is shared with the next test, which checks for stray writes


@pytest.mark.slow
def test_rows_and_batches_beyond_4_gib(huge_zeros):
    """Rows 4 MiB apart (the last one past byte 2**33) and batch entries more than
    2**32 bytes apart, through the grid (offset) and grouped (positions) kernels,
    with a team of threads."""
    rss0 = rss_bytes()
    C = 2**20
    R = HUGE_ELEMENTS // C  # 2080 rows of 4 MiB
    x2 = huge_zeros[: R * C].reshape(R, C)[:, 100:164]  # (2080, 64): rows 2**22 bytes apart
    assert (R - 1) * C * 4 > 2**33
    rng = rng_for("huge-rows")
    x2[...] = random_values(x2.shape, np.float32, rng)
    x0 = x2.copy()
    fastpe.add_sinusoidal(x2, offset=-1000, scale=2.0, num_threads=2)
    expected = reference.add_sinusoidal(x0.copy(), offset=-1000, scale=2.0)
    assert_within(x2, expected, add_tolerance(np.float32, 1000 + R, np.abs(2.0 * x0)), "rows past 2**33 bytes")
    assert not huge_zeros[: R * C].reshape(R, C)[:, 164].any(), "write past the view's last column"

    # batch axis: B entries 2**32 + 2**20 bytes apart, each (T, D) block 4 MiB rows apart
    B, T, D = 2, 40, 48
    bstride = (2**32 + 2**20) // 4
    blocks = as_strided(huge_zeros, shape=(B, T, D), strides=(bstride * 4, C * 4, 4), writeable=True)
    assert (B - 1) * bstride + (T - 1) * C + D < HUGE_ELEMENTS
    blocks[...] = random_values((B, T, D), np.float32, rng)
    b0 = blocks.copy()
    offsets = np.array([5, 900000])
    fastpe.add_sinusoidal(blocks, offset=offsets)
    assert_within(blocks, reference.add_sinusoidal(b0.copy(), offset=offsets),
                  add_tolerance(np.float32, 900000 + T, np.abs(b0)), "batch stride > 2**32 bytes, offsets")
    b1 = blocks.copy()
    positions = rng.integers(0, 10**5, (B, T))
    out = as_strided(huge_zeros[D + 8:], shape=(B, T, D), strides=(bstride * 4, C * 4, 4), writeable=True)
    fastpe.add_sinusoidal(blocks, positions=positions, out=out)
    assert_within(out, reference.add_sinusoidal(b1.copy(), positions=positions),
                  add_tolerance(np.float32, 10**5, np.abs(b1)), "batch stride > 2**32 bytes, positions, out=")
    assert np.array_equal(blocks, b1), "x changed although out= was given"
    _check_sparse(rss0, "rows and batches past 4 GiB")
    for v in (x2, blocks, out):
        v[...] = 0


# ------------------------------------------------------- (c) big team sizes


@pytest.mark.parametrize("num_threads", [7, 64, 200])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: np.dtype(d).name)
def test_more_threads_than_cores(num_threads, dtype):
    rng = rng_for("oversubscribe", num_threads, np.dtype(dtype).name)
    cases = [
        ((3, 700, 32), {"offset": np.array([0, 17, 4000])}),
        ((70000, 1), {"offset": -5}),  # one column, many rows: as many work items as threads
        ((4, 300, 40), {"positions": rng.integers(-10**5, 10**5, (4, 300))}),
        ((2, 2, 200, 48), {"offset": 3.5, "scale": 0.25, "layout": "concat"}),
    ]
    for shape, kwargs in cases:
        x = random_values(shape, dtype, rng)
        assert x.size >= fastpe._runtime.SERIAL_BELOW
        x0 = x.copy()
        got = fastpe.add_sinusoidal(x, num_threads=num_threads, **kwargs)
        expected = reference.add_sinusoidal(x0.copy(), **kwargs)
        xs = np.abs(x0.astype(np.float64) * kwargs.get("scale", 1.0))
        pmax = max_abs_position_of_add(shape, kwargs.get("offset", 0), kwargs.get("positions"))
        assert_within(got, expected, add_tolerance(dtype, pmax, xs), f"num_threads={num_threads} {shape} {sorted(kwargs)}")
    table = fastpe.sinusoidal_table(5000, 17, offset=-2500, dtype=dtype, num_threads=num_threads)
    assert_within(table, reference.sinusoidal_table(5000, 17, offset=-2500, dtype=dtype),
                  add_tolerance(dtype, 2500, 0.0), f"table num_threads={num_threads}")
    pos = rng.uniform(-3000, 3000, (64, 100))
    enc = fastpe.sinusoidal_encode(pos, 9, dtype=dtype, num_threads=num_threads)
    assert_within(enc, reference.sinusoidal_encode(pos, 9, dtype=dtype), add_tolerance(dtype, 3000, 0.0),
                  f"encode num_threads={num_threads}")


_HUGE_TEAM = r"""
import json, sys
import numpy as np
import fastpe
from fastpe import reference
func, nt = sys.argv[1], int(sys.argv[2])
n = 200000  # rows of one column: as many work items as rows
try:
    if func == "add":
        got = fastpe.add_sinusoidal(np.zeros((n, 1), np.float32), num_threads=nt)
        expected = reference.add_sinusoidal(np.zeros((n, 1), np.float32))
    elif func == "table":
        got = fastpe.sinusoidal_table(n, 1, num_threads=nt)
        expected = reference.sinusoidal_table(n, 1)
    else:
        got = fastpe.sinusoidal_encode(np.arange(n), 1, num_threads=nt)
        expected = reference.sinusoidal_encode(np.arange(n), 1)
except (TypeError, ValueError) as exc:
    print(json.dumps({"outcome": "rejected", "message": str(exc)}))
else:
    err = float(np.abs(got.astype(np.float64) - expected).max())
    print(json.dumps({"outcome": "ran", "max_err": err}))
"""


@pytest.mark.parametrize("func", ["add", "table", "encode"])
def test_regression_huge_num_threads_kills_the_process(func):
    """num_threads passes validation for any int >= 1 and goes to OpenMP as the team
    size, capped only by the number of work items. With 200,000 one-column rows
    there are 200,000 items, so num_threads=100000 asks libgomp for a team of
    100,000 threads: it overflows its stack setting them up (SIGSEGV); a team of
    50,000 exceeds the system's thread limit and libgomp ends the interpreter
    ("libgomp: Thread creation failed: Resource temporarily unavailable", exit 1).
    Expected: the right numbers (the team capped to what the system can run) or a
    ValueError naming num_threads; never a dead process. Found by this test on
    0ec7a9b; fixed in 1860627 (the team is capped at 4 x the CPU count)."""
    code = _HUGE_TEAM
    res = run_python(code.replace("sys.argv[1], int(sys.argv[2])", f"{func!r}, 100000"), timeout=300)
    assert res.returncode == 0, (
        f"the interpreter died (exit status {res.returncode}) in {func} with num_threads=100000 "
        f"over 200000 rows; stderr: {res.stderr.strip()[-300:]!r}"
    )
    out = json.loads(res.stdout.strip().splitlines()[-1])
    if out["outcome"] == "rejected":
        assert "num_threads" in out["message"], out
    else:
        assert out["max_err"] <= 1.2e-7, out
