"""Python threads calling fastpe at the same time.

The kernels release the GIL, so several Python threads run them at once (each
may start its own OpenMP team). Eight threads make a mix of calls (all three
functions; float32/float64; interleaved/concat; C, F, strided, reversed and
transposed layouts; scalar and per-sequence offsets, explicit positions,
scale, inv_freq, out=; num_threads None/1/2/3, small inputs that run serially
and team-sized ones) on SHARED read-only inputs with PRIVATE outputs, released
together by a threading.Barrier before every call. Meanwhile another thread
keeps clearing the plan cache and changing its limit (down to 0 and to a
size that holds about one plan), so plans are built, evicted and looked up
under contention.

Every result is compared
  * with fastpe.reference, within the contract's tolerance (the expected value), and
  * bit for bit with the same call made serially beforehand (a determinism
    check: the same call with the same num_threads must give the same bits,
    whatever else runs at the same time and whatever the cache holds).
The shared inputs must be bit-for-bit unchanged afterwards. Two smaller
tests at the end run four threads with twenty varied calls each, and four
threads reading one read-only x into their own outputs. No timing is asserted.
"""

import threading

import numpy as np
import pytest

import fastpe
from fastpe import reference
from util import (
    DTYPES,
    LAYOUTS,
    add_tolerance,
    array_variants,
    assert_within,
    max_abs_position_of_add,
    random_values,
    rng_for,
)

N_WORKERS = 8
N_CALLS = 25          # per worker, in the default (CI) test
N_CALLS_SLOW = 200    # per worker, in the @slow variant (the figure)
JOIN_TIMEOUT = 300.0  # a deadlock fails the test instead of hanging pytest

_SHAPES = [(3, 40, 24), (2, 256, 64), (50, 33), (2, 2, 30, 17), (1, 300, 128)]
_KINDS = ["C", "F", "T-stride2", "D-reversed", "batch-T-swapped", "TD-transposed"]
_THREADS = [None, 1, 2, 3]


def _shared_inputs():
    """Read-only arrays every worker reads at once: x in several layouts, and positions."""
    shared = {}
    for si, shape in enumerate(_SHAPES):
        for dtype in DTYPES:
            rng = rng_for("shared", si, np.dtype(dtype).name)
            for label, arr in array_variants(shape, dtype, rng, magnitude=4.0, kinds=_KINDS):
                arr.flags.writeable = False
                shared[(si, np.dtype(dtype).name, label)] = arr
    for si, shape in enumerate(_SHAPES):
        pos = rng_for("shared-pos", si).integers(-50000, 50000, shape[:-1])
        pos.flags.writeable = False
        shared[("positions", si)] = pos
    return shared


class Job:
    """One call: `run()` makes fresh private outputs (and in-place inputs) and returns the result."""

    def __init__(self, i, shared):
        rng = rng_for("job", i)
        self.i = i
        self.kind = ["add-out", "add-inplace", "table", "encode"][i % 4]
        self.dtype = DTYPES[(i // 4) % 2]
        self.layout = LAYOUTS[(i // 8) % 2]
        self.num_threads = _THREADS[(i // 16) % 4]
        self.si = int(rng.integers(len(_SHAPES)))
        self.shape = _SHAPES[self.si]
        self.label = _KINDS[int(rng.integers(len(_KINDS)))]
        if self.label == "batch-T-swapped" and len(self.shape) < 3:
            self.label = "C"
        self.kwargs = {"layout": self.layout, "num_threads": self.num_threads}
        self.shared = shared
        n_freq = (self.shape[-1] + 1) // 2 if self.layout == "interleaved" else self.shape[-1] // 2
        if rng.random() < 0.25:
            # a private inv_freq per job: a cache key of its own
            self.kwargs["inv_freq"] = rng.uniform(0.0, 1.0, n_freq)
        elif rng.random() < 0.3:
            self.kwargs["base"] = float(rng.choice([500.0, 10000.0, 1e5]))
        if self.kind.startswith("add"):
            choice = i % 3
            lead = self.shape[:-2]
            if choice == 0:
                self.kwargs["offset"] = int(rng.integers(-5000, 5000))
            elif choice == 1:
                self.kwargs["offset"] = rng.integers(-10**5, 10**5, lead) if lead else float(rng.uniform(-99, 99))
            else:
                self.kwargs["positions"] = shared[("positions", self.si)]
            if rng.random() < 0.4:
                self.kwargs["scale"] = float(rng.uniform(0.5, 3.0))
        elif self.kind == "table":
            self.n_positions = self.shape[-2] * (int(np.prod(self.shape[:-2])) if i % 3 == 0 else 1)
            self.kwargs["offset"] = int(rng.integers(-3000, 3000))
            self.kwargs["dtype"] = self.dtype
        else:
            self.kwargs["dtype"] = self.dtype
        self.use_out = self.kind in ("table", "encode") and i % 2 == 1

    def _x_shared(self):
        return self.shared[(self.si, np.dtype(self.dtype).name, self.label)]

    def run(self):
        kw = self.kwargs
        if self.kind == "add-out":
            x = self._x_shared()
            return fastpe.add_sinusoidal(x, out=np.empty_like(x), **kw)
        if self.kind == "add-inplace":
            # a private writeable array in the same awkward layout, same values each time
            src = self._x_shared()
            x = next(array_variants(self.shape, self.dtype, rng_for("unused"), kinds=[self.label]))[1]
            x[...] = src
            return fastpe.add_sinusoidal(x, **kw)
        if self.kind == "table":
            out = np.full((self.n_positions, self.shape[-1]), 7.0, self.dtype)[::-1] if self.use_out else None
            kw = dict(kw, dtype=self.dtype) if out is None else {k: v for k, v in kw.items() if k != "dtype"}
            return fastpe.sinusoidal_table(self.n_positions, self.shape[-1], out=out, **kw)
        pos = self.shared[("positions", self.si)]
        out = np.full(pos.shape + (self.shape[-1],), 7.0, self.dtype) if self.use_out else None
        kw = dict(kw) if out is None else {k: v for k, v in kw.items() if k != "dtype"}
        return fastpe.sinusoidal_encode(pos, self.shape[-1], out=out, **kw)

    def expected_and_tolerance(self):
        kw = {k: v for k, v in self.kwargs.items() if k != "num_threads"}
        D = self.shape[-1]
        if self.kind.startswith("add"):
            x = self._x_shared()
            expected = reference.add_sinusoidal(x.copy(), **kw)
            xs = np.abs(x.astype(np.float64) * kw.get("scale", 1.0))
            pmax = max_abs_position_of_add(x.shape, kw.get("offset", 0), kw.get("positions"))
            return expected, add_tolerance(self.dtype, pmax, xs)
        if self.kind == "table":
            expected = reference.sinusoidal_table(self.n_positions, D, **kw)
            pmax = abs(kw["offset"]) + self.n_positions
            return expected, add_tolerance(self.dtype, pmax, 0.0)
        pos = self.shared[("positions", self.si)]
        expected = reference.sinusoidal_encode(pos, D, **kw)
        return expected, add_tolerance(self.dtype, float(np.abs(pos).max()), 0.0)

    def describe(self):
        kw = {k: (f"array{v.shape}" if isinstance(v, np.ndarray) else v) for k, v in self.kwargs.items()}
        return f"job {self.i}: {self.kind} {np.dtype(self.dtype).name} shape={self.shape} layout-kind={self.label} {kw}"


def _run_concurrently(jobs_per_worker, cache_chaos):
    """Run each worker's job list in its own thread, all released together before
    every call; optionally a further thread churns the plan cache meanwhile.
    Returns results[w][c]."""
    n_rounds = max(len(j) for j in jobs_per_worker)
    barrier = threading.Barrier(len(jobs_per_worker))
    results = [[None] * len(j) for j in jobs_per_worker]
    errors = []
    done = threading.Event()

    def worker(w):
        try:
            for c in range(n_rounds):
                barrier.wait(timeout=JOIN_TIMEOUT)
                if c < len(jobs_per_worker[w]):
                    results[w][c] = jobs_per_worker[w][c].run()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append((w, repr(exc)))
            barrier.abort()

    def churn():
        limits = [0, 1500, 4096, 1 << 20]
        k = 0
        try:
            while not done.is_set():
                fastpe.cache_clear()
                fastpe.set_cache_limit(limits[k % len(limits)])
                info = fastpe.cache_info()
                assert info.nbytes <= info.limit or info.entries == 0, info
                k += 1
        except BaseException as exc:  # noqa: BLE001
            errors.append(("churn", repr(exc)))

    threads = [threading.Thread(target=worker, args=(w,), daemon=True) for w in range(len(jobs_per_worker))]
    chaos = threading.Thread(target=churn, daemon=True) if cache_chaos else None
    if chaos:
        chaos.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join(JOIN_TIMEOUT)
    done.set()
    if chaos:
        chaos.join(JOIN_TIMEOUT)
    alive = [t.name for t in threads + ([chaos] if chaos else []) if t.is_alive()]
    assert not alive, f"threads still running after {JOIN_TIMEOUT} s (deadlock?): {alive}"
    assert not errors, errors
    return results


def _check(n_calls, cache_chaos):
    shared = _shared_inputs()
    snapshots = {k: v.tobytes() for k, v in shared.items()}
    jobs = [[Job(w * n_calls + c, shared) for c in range(n_calls)] for w in range(N_WORKERS)]
    # Serial run first, with a tiny cache so the concurrent run cannot lean on warm plans.
    fastpe.set_cache_limit(1500)
    serial = [[job.run() for job in row] for row in jobs]
    fastpe.cache_clear()
    concurrent = _run_concurrently(jobs, cache_chaos)
    for w in range(N_WORKERS):
        for c in range(n_calls):
            job = jobs[w][c]
            got = concurrent[w][c]
            expected, tol = job.expected_and_tolerance()
            assert_within(got, expected, tol, f"{job.describe()} (concurrent) vs reference")
            assert got.dtype == serial[w][c].dtype and got.shape == serial[w][c].shape, job.describe()
            assert np.array_equal(got, serial[w][c]) and got.tobytes() == serial[w][c].tobytes(), (
                f"{job.describe()}: the concurrent result differs from the same call made serially "
                f"(max |diff| {np.abs(got.astype(np.float64) - serial[w][c]).max():.3e})"
            )
    for k, v in shared.items():
        assert v.tobytes() == snapshots[k], f"shared read-only input {k} was modified"
    info = fastpe.cache_info()
    assert info.nbytes <= info.limit or info.entries == 0, info


def test_job_mix_covers_the_axes():
    """The job list really mixes what the docstring says (so the concurrency test is not vacuous)."""
    shared = _shared_inputs()
    jobs = [Job(i, shared) for i in range(N_WORKERS * N_CALLS)]
    assert {j.kind for j in jobs} == {"add-out", "add-inplace", "table", "encode"}
    assert {np.dtype(j.dtype).name for j in jobs} == {"float32", "float64"}
    assert {j.layout for j in jobs} == set(LAYOUTS)
    assert set(j.num_threads for j in jobs) == set(_THREADS)
    assert {"positions", "offset"} <= {k for j in jobs for k in j.kwargs}
    assert any("inv_freq" in j.kwargs for j in jobs) and any("scale" in j.kwargs for j in jobs)
    assert len({j.label for j in jobs}) >= 4
    big = [j for j in jobs if int(np.prod(j.shape)) >= fastpe._runtime.SERIAL_BELOW and j.num_threads != 1]
    assert big, "no team-sized job: OpenMP teams inside Python threads would go untested"


def test_threads_shared_inputs_private_outputs_with_cache_churn():
    _check(N_CALLS, cache_chaos=True)


def test_threads_without_cache_churn():
    _check(N_CALLS // 2 or 1, cache_chaos=False)


@pytest.mark.slow
def test_threads_200_calls_each():
    """The issue's figure: 8 threads x 200 calls, with cache churn."""
    _check(N_CALLS_SLOW, cache_chaos=True)


def test_same_array_in_place_from_threads_on_disjoint_halves():
    """Threads updating disjoint views of ONE array in place (a common pattern:
    one batch, sequences split between workers): no write strays into a neighbour."""
    rng = rng_for("halves")
    x = random_values((16, 300, 40), np.float32, rng)
    x0 = x.copy()
    offsets = rng.integers(0, 4000, 16)
    barrier = threading.Barrier(8)
    errors = []

    def worker(w):
        try:
            barrier.wait(timeout=JOIN_TIMEOUT)
            for _ in range(3):  # three passes: x = x*0.5 + PE, thrice
                fastpe.add_sinusoidal(x[w::8], offset=offsets[w::8], scale=0.5, num_threads=1 + w % 2)
        except BaseException as exc:  # noqa: BLE001
            errors.append(repr(exc))

    ts = [threading.Thread(target=worker, args=(w,), daemon=True) for w in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(JOIN_TIMEOUT)
    assert not errors, errors
    expected = x0.copy()
    for _ in range(3):
        expected = reference.add_sinusoidal(expected, offset=offsets, scale=0.5)
    # three roundings to float32 on each side: three times the one-call tolerance
    assert_within(x, expected, 3 * add_tolerance(np.float32, 4400, np.abs(x0) + 2.0), "disjoint halves")


def _job(i):
    """The i-th job of the four-thread test: a varied call and its arguments."""
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


N_PAIR_THREADS, N_PAIR_CALLS = 4, 20


def test_concurrent_python_threads():
    """4 Python threads x 20 calls each, released together; every result checked."""
    jobs = [[_job(t * N_PAIR_CALLS + c) for c in range(N_PAIR_CALLS)] for t in range(N_PAIR_THREADS)]
    inputs = [[x.copy() for x, _ in row] for row in jobs]
    expected = [[reference.add_sinusoidal(x.copy(), **kw) for x, kw in row] for row in jobs]
    serial = [[fastpe.add_sinusoidal(x.copy(), **kw) for x, kw in row] for row in jobs]
    barrier = threading.Barrier(N_PAIR_THREADS)
    errors = []

    def worker(t):
        try:
            barrier.wait()
            for c, (x, kw) in enumerate(jobs[t]):
                fastpe.add_sinusoidal(x, **kw)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append((t, exc))

    workers = [threading.Thread(target=worker, args=(t,)) for t in range(N_PAIR_THREADS)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert not errors, errors
    for t in range(N_PAIR_THREADS):
        for c in range(N_PAIR_CALLS):
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
