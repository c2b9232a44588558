#!/usr/bin/env python
"""The long leak check of fastpe: many calls of every public function on small inputs.

    python tools/leak_check.py                  # 100,000 rounds
    python tools/leak_check.py --calls 20000 --report-every 2000
    python tools/leak_check.py --no-tracemalloc # RSS only (faster)

One round is one call of each of sinusoidal_table, sinusoidal_encode and
add_sinusoidal (the last alternating between its paths: offset, positions with
out=, out overlapping x, float64/concat), plus one rejected call (every
argument check runs before an error). Every --report-every rounds the script
prints the RSS (from /proc/self/statm, else getrusage's peak) and the memory
traced by tracemalloc (NumPy reports its data buffers to it).

Verdict: after a warm-up (the first 10% of the rounds), a leak grows the
memory in every reporting interval, so the verdict extrapolates the MEDIAN
interval's growth to all rounds after the warm-up: that must stay under
--traced-limit bytes (tracemalloc) and --rss-limit bytes (RSS). A leak of one
small array per call (~100 bytes) over 100,000 calls is 10 MB. One-off jumps
are reported but not taken for leaks: CPython's interned-string dict, which
some NumPy attribute lookups churn (ndarray.__array_interface__ interns its
keys), is resized now and then, ~1 MB at once. Exit status 0 (no leak) or 1
(leak), so it can run in CI.

Which fastpe is checked: the one Python imports (put a built tree first on
PYTHONPATH, or install the wheel).
"""

import argparse
import gc
import os
import resource
import sys
import time
import tracemalloc

import numpy as np

import fastpe

try:  # optional: the tensor path is checked when torch is installed
    import torch
except ImportError:
    torch = None


def rss_bytes():
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        # peak, not current: still catches steady growth
        scale = 1 if sys.platform == "darwin" else 1024
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def make_inputs():
    rng = np.random.default_rng(0)
    return {
        "x": rng.uniform(-1, 1, (2, 16, 32)).astype(np.float32),
        "x64": rng.uniform(-1, 1, (3, 12, 9)),
        "out": np.empty((2, 16, 32), np.float32),
        "offsets": np.array([0, 100]),
        "positions": rng.integers(0, 4096, (2, 16)),
        "enc_pos": rng.uniform(-500, 500, (4, 8)),
        "inv_freq": rng.uniform(0, 1, 16),
        "table_out": np.empty((64, 24), np.float64),
        "learned": rng.uniform(-1, 1, (40, 32)).astype(np.float32),
        "grid_x": rng.uniform(-1, 1, (2, 13, 16)).astype(np.float32),
        "nd_x": rng.uniform(-1, 1, (2, 24, 16)),
        "q": rng.uniform(-1, 1, (2, 4, 16, 8)).astype(np.float32),
        "q_step": rng.uniform(-1, 1, (1, 4, 1, 8)).astype(np.float32),
        "k_step": rng.uniform(-1, 1, (1, 2, 1, 8)).astype(np.float32),
        "k": rng.uniform(-1, 1, (2, 2, 16, 8)).astype(np.float32),
        "scores": rng.uniform(-1, 1, (2, 2, 6, 7)).astype(np.float32),
        "bias_table": rng.uniform(-1, 1, (32, 2)),
        "ids": rng.integers(0, 5, (2, 16)),
        "x16": rng.uniform(-1, 1, (2, 16, 32)).astype(np.float16),
        "scores16": rng.uniform(-1, 1, (2, 2, 6, 7)).astype(np.float16),
        # a CPU tensor, written through DLPack (when torch is installed)
        "tensor": None if torch is None else torch.zeros(2, 16, 32),
    }


LLAMA3 = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
          "original_max_position_embeddings": 64}


def later_functions(i, a):
    """One call of each public function that came after the sinusoid ones."""
    fastpe.add_sinusoidal(a["x"], offset=i % 7, preset=("fairseq", "marian", "whisper")[i % 3])
    fastpe.add_table(a["x"], a["learned"], offset=i % 8, scale=0.5 if i % 2 else None)
    fastpe.make_positions(a["ids"], 1, past_length=i % 3)
    fastpe.add_sincos_2d(a["grid_x"], 3, 4, cls_token=True, layout=("mae", "timm", "big_vision")[i % 3])
    fastpe.sincos_2d(3, 4, 16)
    fastpe.add_sinusoidal_nd(a["nd_x"], (2, 3, 4))
    fastpe.sinusoidal_nd((2, 3), 8)
    fastpe.apply_rotary(a["q"], a["k"], offset=np.array([i % 5, 2]), scaling=LLAMA3 if i % 2 else None)
    # the compiled decode path, its cached frequencies and blocks of cos/sin rows
    fastpe.apply_rotary(a["q_step"], a["k_step"], offset=(i * 37) % 3000, scaling=LLAMA3 if i % 2 else None)
    fastpe.rotary_cos_sin(16, 8, offset=i % 9)
    fastpe.rope_inv_freq(8, scaling=LLAMA3)
    fastpe.alibi_slopes(2 + i % 5)
    fastpe.add_alibi(a["scores"], offset=i % 3)
    fastpe.relative_position_bucket(np.arange(-20, 20), bidirectional=bool(i % 2))
    fastpe.add_relative_bias(a["scores"], a["bias_table"], bidirectional=True, num_buckets=32, max_distance=128)
    a["scores"] *= 0.5
    # 16-bit storage and tensors
    fastpe.add_sinusoidal(a["x16"], offset=i % 5, scale=0.5)
    fastpe.sinusoidal_table(16, 8, dtype=np.float16)
    fastpe.add_alibi(a["scores16"])
    a["scores16"] *= np.float16(0.5)
    if a["tensor"] is not None:
        fastpe.add_sinusoidal(a["tensor"], scale=0.5)


def one_round(i, a):
    fastpe.sinusoidal_table(64, 24, offset=i % 1000, out=a["table_out"] if i % 2 else None)
    fastpe.sinusoidal_encode(a["enc_pos"], 17, dtype=np.float64 if i % 2 else np.float32)
    # the compiled common call and its blocks of cached rows
    fastpe.add_sinusoidal(a["x"], offset=(i * 37) % 3000)
    k = i % 4
    if k == 0:
        fastpe.add_sinusoidal(a["x"], offset=a["offsets"])
    elif k == 1:
        fastpe.add_sinusoidal(a["x"], positions=a["positions"], out=a["out"], scale=0.5)
    elif k == 2:
        fastpe.add_sinusoidal(a["x"], out=a["x"][:, ::-1], inv_freq=a["inv_freq"])
    else:
        fastpe.add_sinusoidal(a["x64"], offset=1.5, layout="concat")
    try:
        if i % 2:
            fastpe.add_sinusoidal(a["x"], positions=a["positions"], offset=1)
        else:
            fastpe.sinusoidal_table(8, 8, inv_freq=np.ones(5))
    except ValueError:
        pass
    else:
        raise AssertionError("a call that must be rejected was accepted")
    later_functions(i, a)
    if k == 3:
        a["x"] *= 0.5
        a["x64"] *= 0.5
        a["q_step"] *= 0.5
        a["k_step"] *= 0.5
        a["grid_x"] *= 0.5
        a["nd_x"] *= 0.5


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--calls", type=int, default=100_000, help="rounds (each calls every public function)")
    p.add_argument("--report-every", type=int, default=10_000)
    p.add_argument("--no-tracemalloc", action="store_true", help="RSS only (tracemalloc slows calls ~2x)")
    p.add_argument("--traced-limit", type=int, default=256 * 1024, help="bytes of traced growth allowed")
    p.add_argument("--rss-limit", type=int, default=8 * 2**20, help="bytes of RSS growth allowed")
    args = p.parse_args(argv)

    print(f"fastpe {fastpe.__version__} from {os.path.dirname(fastpe.__file__)}")
    cfg = fastpe.show_config(print_out=False)
    print(f"openmp={cfg['openmp']} simd={cfg['simd']} compile_args={cfg['compile_args']}")
    print(f"{args.calls} rounds (sinusoidal_table + sinusoidal_encode + add_sinusoidal + a rejected call each)")
    a = make_inputs()
    trace = not args.no_tracemalloc
    if trace:
        tracemalloc.start()
    warmup = max(args.calls // 10, 1)
    base_rss = base_traced = base_snap = None
    samples = []
    t0 = time.perf_counter()
    print(f"{'round':>8} {'calls':>8} {'RSS MiB':>9} {'traced KiB':>11} {'s':>7}")
    for i in range(1, args.calls + 1):
        one_round(i, a)
        if i == warmup or i % args.report_every == 0 or i == args.calls:
            gc.collect()
            rss = rss_bytes()
            traced = tracemalloc.get_traced_memory()[0] if trace else 0
            if i == warmup:
                base_rss, base_traced = rss, traced
                base_snap = tracemalloc.take_snapshot() if trace else None
            samples.append((i, rss, traced))
            mark = "  <- baseline (end of warm-up)" if i == warmup else ""
            print(f"{i:>8} {4 * i:>8} {rss / 2**20:>9.2f} {traced / 1024:>11.1f} {time.perf_counter() - t0:>7.1f}{mark}",
                  flush=True)
    rss_growth = samples[-1][1] - base_rss
    traced_growth = samples[-1][2] - base_traced
    after = args.calls - warmup
    print(f"after warm-up: {after} rounds, RSS {rss_growth / 1024:+.1f} KiB, traced {traced_growth / 1024:+.1f} KiB"
          f" ({traced_growth / max(after, 1):+.2f} bytes/round)")
    # per-interval growth rates after the warm-up; the median one is the steady trend
    rates = [((b[1] - a_[1]) / (b[0] - a_[0]), (b[2] - a_[2]) / (b[0] - a_[0]))
             for a_, b in zip(samples, samples[1:]) if a_[0] >= warmup]
    if rates:
        med_rss = sorted(r[0] for r in rates)[len(rates) // 2]
        med_traced = sorted(r[1] for r in rates)[len(rates) // 2]
    else:
        med_rss = med_traced = 0.0
    trend_rss, trend_traced = med_rss * after, med_traced * after
    print(f"median interval growth: RSS {med_rss:+.2f} bytes/round, traced {med_traced:+.2f} bytes/round "
          f"-> trend over {after} rounds: RSS {trend_rss / 1024:+.1f} KiB, traced {trend_traced / 1024:+.1f} KiB")
    if trace:
        snap = tracemalloc.take_snapshot()
        tracemalloc.stop()
        filters = [tracemalloc.Filter(False, tracemalloc.__file__)]
        diff = snap.filter_traces(filters).compare_to(base_snap.filter_traces(filters), "lineno")
        print("largest growth of traced memory since the baseline, by line:")
        for stat in diff[:5]:
            print(f"  {stat}")
    leak = []
    if trace and trend_traced > args.traced_limit:
        leak.append(f"traced memory grows steadily: {trend_traced:.0f} bytes > {args.traced_limit}")
    if trend_rss > args.rss_limit:
        leak.append(f"RSS grows steadily: {trend_rss:.0f} bytes > {args.rss_limit}")
    info = fastpe.cache_info()
    print(f"plan cache: {info}")
    if leak:
        print("VERDICT: LEAK? " + "; ".join(leak))
        return 1
    print(f"VERDICT: no leak (steady traced growth <= {args.traced_limit} bytes, steady RSS growth <= "
          f"{args.rss_limit} bytes over {after} rounds)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
