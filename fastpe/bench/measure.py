"""How the benchmark measures: round-robin visits, batches of tiny calls, the
reference's share of the time budget, and the run over every case.

Method: the implementations of one case, peers included, are called
round-robin (the order rotating every round) so that a noisy, shared
machine slows them alike; each figure is the median of its samples.
In-place calls keep adding into the same array; every ``RESET_EVERY``
calls it is restored from a saved pattern outside the timed region, so
values stay small and finite. Tiny calls are timed in batches (a sample is
the mean of up to ``RESET_EVERY`` back-to-back calls). An implementation
takes up to ``SAMPLES_PER_VISIT`` samples in a row; each visit starts after
a pause of ``SETTLE_S`` and ``WARM_S`` of untimed calls (at least one). The
pause outlasts the spinning of the thread team of the implementation timed
before (an OpenMP worker, fastpe's or torch's, spins for several
milliseconds after a parallel loop, and on two cores it would take a core
from the next implementation's team); the untimed calls wake the
implementation's own team (on the development machine, a virtual one, the
first two or three parallel calls after an idle pause take 100-300 us each
while the idle virtual CPU is woken) and bring its data into the CPU's
caches. So a sample measures calls in a loop of that implementation alone,
as a user's program makes them, not the other implementations' leftovers.
The reference is slow on big arrays, so it gets fewer samples than fastpe,
the peers and the probe, and fewer still when the run's time budget
requires it; the report says so when that happens.
"""

import gc
import math
import sys
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable, List

import numpy as np

import fastpe
from fastpe import _kernels, reference
from fastpe._runtime import default_team, resolve_threads

from .cases import CASES, missing_requirement, select_cases
from .peers import build_peers, check_peers, load_peers
from .provenance import installed_root, source_digests
from .results import SPREAD_BOUND, CaseResult, Report, load_average, machine_info, spread
from .report import fmt_time, shape_str

__all__ = ["DEFAULT_BUDGET_S", "QUICK_BUDGET_S", "RESET_EVERY", "Series", "effective_threads", "run"]

# An in-place array is restored from its pattern after this many calls.
RESET_EVERY = 50
# A sample of a tiny call lasts at least this long (calls are batched).
MIN_SAMPLE_S = 200e-6
# Pause before each visit: longer than an OpenMP worker spins after a
# parallel loop before it sleeps (5-8 ms with libgomp's defaults on the
# development machine, for fastpe's team and torch's alike).
SETTLE_S = 15e-3
# Untimed calls at the start of a visit, for at least this long.
WARM_S = 2e-3
# Samples an implementation takes in a row before the next one's turn.
SAMPLES_PER_VISIT = 4
# Time budget of the measurements (seconds); startup and setup come on top.
DEFAULT_BUDGET_S = 60.0
QUICK_BUDGET_S = 4.0
DEFAULT_REPEAT = 20
QUICK_REPEAT = 5
# --quick takes one warm reference sample of calls slower than this.
QUICK_CHEAP_REF_S = 0.01
# A first reference call slower than this is not repeated for a warm estimate.
COLD_REF_S = 0.2
# A reference call estimated below this always gets at least one warm sample.
ALWAYS_WARM_REF_S = 1.5


def effective_threads(num_threads, size):
    """The team size fastpe uses for `size` output elements (probes use the same)."""
    return resolve_threads(num_threads, size)


@dataclass
class Series:
    """Samples of one implementation at one thread count."""

    impl: str
    threads: int
    fn: Callable[[int], Any]
    resets: bool
    wanted: int = 0
    number: int = 1
    samples: List[float] = field(default_factory=list)
    calls: int = 0
    first_call_s: float = float("nan")
    estimate_s: float = float("nan")

    @property
    def median(self):
        return float(np.median(self.samples)) if self.samples else float("nan")

    def stats(self):
        s = self.samples
        return {
            "impl": self.impl,
            "threads": self.threads,
            "n": len(s),
            "calls_per_sample": self.number,
            "first_call_s": self.first_call_s,
            "median_s": self.median,
            "min_s": float(min(s)) if s else None,
            "max_s": float(max(s)) if s else None,
            "spread": spread(s),
            "samples_s": [float(v) for v in s],
        }


def _settle(series, st):
    """The start of a visit (untimed): a pause, then WARM_S of calls."""
    time.sleep(SETTLE_S)
    end = time.perf_counter() + WARM_S
    while True:
        if series.resets and st.calls + 1 > RESET_EVERY:
            st.reset()
        series.fn(series.calls)
        series.calls += 1
        st.calls += 1
        if time.perf_counter() >= end:
            break


def _timed(series, st, number):
    """One sample: `number` back-to-back calls, after the array is restored
    if due (untimed)."""
    if series.resets and st.calls + number > RESET_EVERY:
        st.reset()
    fn, i0 = series.fn, series.calls
    t0 = time.perf_counter()
    for k in range(number):
        fn(i0 + k)
    dt = time.perf_counter() - t0
    series.calls += number
    st.calls += number
    return dt


def _batch(cost):
    """Calls per sample for a call of `cost` seconds."""
    if not cost > 0:
        return 1
    return int(min(RESET_EVERY, max(1, math.ceil(MIN_SAMPLE_S / cost))))


def _add_peers(case, st, dtype, num_threads, peer_set, series, resets):
    """Build the case's peers (untimed), check them against fastpe, add their series.

    Returns (peers not measured -> why, check_peers' figures)."""
    op, opts = case.op, case.options
    if op.peer_family is None or not case.peers:
        return {}, {}
    calls, missing, threads = build_peers(op, st, dtype, opts, peer_set)
    check = check_peers(op, st, dtype, opts, calls, num_threads)
    for name, call in calls.items():
        series.append(Series(name, threads[name], call, resets))
        if hasattr(call, "compile_count"):
            call.compile_count.start_timing()
    return missing, check


def _measure(case, shape, dtype, num_threads, repeat, ref_reps, allowance, seed, quick, peer_set):
    op, opts = case.op, case.options
    rng = np.random.default_rng(seed)
    st = op.setup(shape, dtype, rng, opts)
    flat = st.target.reshape(-1)
    resets = getattr(st, "pattern", None) is not None
    size = st.target.size
    fill = op.probe == "fill"
    probe_value = 0.0 if fill else 1e-3

    thread_list = case.threads if case.threads is not None else (num_threads,)
    series = []
    for nt in thread_list:
        eff = effective_threads(nt, size)
        series.append(Series("fastpe", eff, lambda i, nt=nt: op.call(fastpe, st, i, nt, opts), resets))
        series.append(Series("probe", eff,
                             lambda i, eff=eff: _kernels.probe(flat, probe_value, fill, eff), resets))
    missing, check = _add_peers(case, st, dtype, num_threads, peer_set, series, resets)
    if case.reference:
        series.append(Series("reference", 1, lambda i: op.call(reference, st, i, None, opts), resets))

    notes = []
    case_start = time.perf_counter()
    # Warm up (plan cache, OpenMP team, page faults, the allocator) and estimate each call's cost.
    for s in series:
        t0 = time.perf_counter()
        s.fn(s.calls)
        s.first_call_s = time.perf_counter() - t0
        s.calls += 1
        st.calls += 1
        if s.impl != "reference" or s.first_call_s < COLD_REF_S:
            s.estimate_s = _timed(s, st, 1)  # a second call: a warm estimate
        else:
            # The reference's first call on a large array is several times
            # slower than later ones (fresh memory from the OS): it only
            # bounds the cost, until the first sample refines it.
            s.estimate_s = s.first_call_s
        s.number = _batch(s.estimate_s)

    fast = [s for s in series if s.impl != "reference"]
    ref = next((s for s in series if s.impl == "reference"), None)
    reset_cost = 0.0
    if resets:
        t0 = time.perf_counter()
        st.reset()
        reset_cost = time.perf_counter() - t0
    per_visit = SETTLE_S + WARM_S
    per_round = sum(s.estimate_s * (s.number + 1 / SAMPLES_PER_VISIT) + per_visit / SAMPLES_PER_VISIT for s in fast)
    per_round += reset_cost * sum(s.number for s in fast) / RESET_EVERY

    def left():
        return allowance - (time.perf_counter() - case_start)

    # Plan: the reference gets up to ref_max samples, at least one; fastpe
    # and the probe `repeat` rounds, at least min(5, repeat), within the allowance.
    n_rounds = repeat
    ref_cost = ref.estimate_s * ref.number if ref else 0.0
    ref_max = min(ref_reps, repeat) if ref else 0
    if quick and ref_cost > QUICK_CHEAP_REF_S:
        ref_max = 1
    ref_wanted = ref_max
    if ref and ref_max * ref_cost > left() - n_rounds * per_round:
        ref_wanted = max(1, min(ref_max, int((left() - n_rounds * per_round) // max(ref_cost, 1e-9))))
    if per_round > 0 and n_rounds * per_round > left() - ref_wanted * ref_cost:
        n_rounds = max(min(5, repeat), int((left() - ref_wanted * ref_cost) // per_round))
    # The cold call overstates a warm one several times: skip the warm call
    # only when even the cold estimate is long and far beyond this case's share.
    cold_only = (ref is not None and ref.first_call_s >= COLD_REF_S
                 and ref_cost > max(ALWAYS_WARM_REF_S, left() + allowance))
    if cold_only:
        # Report the cold call, and say so.
        ref.samples.append(ref.first_call_s)
        ref_wanted = 1
    for s in fast:
        s.wanted = n_rounds
    if ref:
        ref.wanted = ref_wanted

    # Round-robin: every round times fastpe, the probe and the peers
    # SAMPLES_PER_VISIT times each, and the reference once in rounds spread
    # evenly over the run, rotating the order. Before each further reference
    # sample the plan is revised with the reference's measured cost: more
    # samples if they fit, fewer if not.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for r in range(0, n_rounds, SAMPLES_PER_VISIT):
            todo = list(fast)
            if ref and not cold_only:
                if ref.samples:
                    cost = float(np.median(ref.samples)) * ref.number
                    fits = int((left() - (n_rounds - r) * per_round) // max(cost, 1e-9))
                    ref.wanted = max(len(ref.samples), min(ref_max, len(ref.samples) + fits))
                if len(ref.samples) < ref.wanted and len(ref.samples) * n_rounds <= r * ref.wanted:
                    todo.append(ref)
            k = (r // SAMPLES_PER_VISIT) % len(todo)
            for s in todo[k:] + todo[:k]:
                _settle(s, st)
                for _ in range(1 if s is ref else min(SAMPLES_PER_VISIT, n_rounds - r)):
                    s.samples.append(_timed(s, st, s.number) / s.number)
    finally:
        if gc_was_enabled:
            gc.enable()
    if ref:
        n_ref = len(ref.samples)
        if cold_only:
            notes.append(
                f"reference: its first (cold) call only, {fmt_time(ref.first_call_s)}: a warm call did not fit "
                "the time budget, and cold calls are slower, so the speedup is overstated"
            )
        elif n_ref < ref_max:
            notes.append(
                f"reference: median of {n_ref} sample{'s' if n_ref != 1 else ''} instead of {ref_max} "
                f"(about {fmt_time(ref.median)} a call; more did not fit the time budget)"
            )
    if n_rounds < repeat:
        notes.append(f"fastpe/probe/peers: {n_rounds} samples instead of {repeat} (time budget)")
    compiles = {s.impl: s.fn.compile_count.figures() for s in series if hasattr(s.fn, "compile_count")}
    elapsed = time.perf_counter() - case_start
    del st, flat
    return series, notes, missing, check, compiles, elapsed


def _measure_case(case, shape, dtype, num_threads, repeat, allowance, seed, quick, peer_set, cpus):
    """Measure one case: a CaseResult, and the seconds its timed part took."""
    load_before = load_average()
    series, notes, missing, check, compiles, elapsed = _measure(case, shape, dtype, num_threads, repeat,
                                                                case.ref_reps, allowance, seed, quick, peer_set)
    load = {"before": load_before, "after": load_average(), "usable_cpus": cpus}
    return CaseResult(case, shape, dtype, series, notes, elapsed, missing, check, compiles, load), elapsed


def run(*, quick=False, threads=None, repeat=None, cases=None, budget_s=None, seed=0, remeasure=True,
        log=sys.stderr):
    """Measure every case; progress goes to `log` (None for silence).

    The time budget covers the timed part of each case; building the peers
    (torch.compile compiles then) comes on top. With `remeasure`, a case the
    busy-machine rule calls unreliable (results.SPREAD_BOUND) is measured
    once more and the second measurement kept."""

    def say(msg):
        if log is not None:
            print(msg, file=log, flush=True)

    machine = machine_info()  # before we load the machine ourselves
    started = time.perf_counter()
    repeat = repeat if repeat is not None else (QUICK_REPEAT if quick else DEFAULT_REPEAT)
    if repeat < 1:
        raise ValueError(f"repeat must be at least 1, got {repeat}")
    if threads is not None and threads < 1:
        raise ValueError(f"threads must be at least 1, got {threads}")
    budget_s = budget_s if budget_s is not None else (QUICK_BUDGET_S if quick else DEFAULT_BUDGET_S)
    default_threads = default_team()
    run_threads = threads if threads is not None else default_threads
    plan, cases_missing = [], {}
    for case, shape in select_cases(CASES if cases is None else cases, quick):
        why = missing_requirement(case)
        if why:
            cases_missing[case.name] = why
        else:
            plan.append((case, shape))
    if threads is not None:
        # thread scaling compares one thread with the requested count
        plan = [(c if c.threads is None else replace(c, threads=(1, max(2, threads))), s) for c, s in plan]

    config = fastpe.show_config(print_out=False)
    results = []
    weights = [c.weight for c, _ in plan]
    spent = 0.0
    wanted = any(c.peers and c.op.peer_family for c, _ in plan)
    with load_peers(run_threads, wanted=wanted, quick=quick) as peer_set:
        for k, (case, shape) in enumerate(plan):
            dtype = np.dtype(case.dtype)
            say(f"[{k + 1}/{len(plan)}] {case.name} {shape_str(shape)} {dtype.name} ...")
            t0 = time.perf_counter()
            earlier = []
            while True:
                allowance = max(0.05, (budget_s - spent) * case.weight / sum(weights[k:]))
                res, elapsed = _measure_case(case, shape, dtype, threads, repeat, allowance, seed + k, quick,
                                             peer_set, machine["usable_cpus"])
                spent += elapsed
                reasons = res.unreliable_reasons()
                if not (remeasure and reasons and not earlier):
                    break
                say(f"      {'; '.join(reasons)}: measuring again")
                earlier = reasons
            res.remeasured = earlier
            res.elapsed_s = time.perf_counter() - t0
            results.append(res)
            for row in res.rows():
                peers = "".join(f", {name} {fmt_time(s)}" for name, s in row["peers_s"].items() if s is not None)
                say(f"      fastpe {fmt_time(row['fastpe_s'])}{peers}, reference {fmt_time(row['reference_s'])}, "
                    f"probe {fmt_time(row['probe_s'])} at {row['threads']} thread(s)")
            say(f"      ({res.elapsed_s:.1f} s)")
        peers, peers_missing = peer_set.describe(), dict(peer_set.missing)
    settings = {
        "mode": "quick" if quick else "default",
        "threads": run_threads,
        "threads_requested": threads,
        "repeat": repeat,
        "budget_s": budget_s,
        "reset_every": RESET_EVERY,
        "statistic": "median",
        "spread_bound": SPREAD_BOUND,
        "remeasure": remeasure,
        "peers": peers,
        "peers_not_measured": peers_missing,
        "cases_not_measured": cases_missing,
    }
    machine["load_average_1min_end"] = load_average()
    source = {"files": source_digests(installed_root(), strict=False), "commit": None}
    return Report(machine, config, settings, results, time.perf_counter() - started, source)
