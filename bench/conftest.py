"""pytest-benchmark suite of fastpe: fastpe vs its peers vs fastpe.reference vs a bandwidth probe.

It runs against the installed fastpe, as the README's commands leave it
(``pip install ".[test]"``, or ``".[bench]"`` for pytest-benchmark and
matplotlib alone), from the repository root::

    pytest bench --benchmark-only

pyproject.toml's ``--import-mode=importlib`` keeps the repository root off
``sys.path``, so the installed package is imported, never the uncompiled
sources beside it (``python -m pytest`` would put the current folder on
``sys.path``; run it from another folder, or use the ``pytest`` command).

Every benchmark group is one operation at one dtype and size, and holds its
implementations side by side, so the group's table shows their ratios:

* ``fastpe``    -- the compiled OpenMP kernels;
* the peers (``fastpe.bench.PEER_NAMES``), what users write instead of
  fastpe: the encoding computed once (untimed), then ``x += table[o:o+T]``
  or ``x.add_(table[o:o+T])`` per call, the same under torch.compile
  (rotary: Hugging Face's ``q*cos + rotate_half(q)*sin`` on cached cos/sin
  rows, eager and compiled, and ONNX Runtime's RotaryEmbedding op); see
  ``fastpe.bench``. They run at fastpe's thread count; a peer that is not
  installed, or has nothing for the operation, is skipped, saying why. Each
  peer is checked against fastpe once, untimed;
* ``reference`` -- ``fastpe.reference`` (plain NumPy), given fewer rounds on
  large arrays so the suite finishes in a few minutes;
* ``probe``     -- ``fastpe._kernels.probe``: ``x += c`` (fused adds) or
  ``t[:] = c`` (tables) over the same array, dtype and thread count; the
  memory-bandwidth ceiling of the machine.

Calls with a new offset use a new offset ``o < 4096`` every call, the same
sequence for fastpe and its peers. Groups: ``fused add <dtype> <shape>``,
``table <dtype> <shape>``, ``positions <dtype> <shape>``, ``rotary ...``,
``threads <dtype> <shape>`` (fastpe and the probe at 1 thread and at the
default count), and one group per other operation. Select with ``-k``, e.g.
``-k "fused_add and float32"``, ``-k "not reference"`` or ``-k "fastpe or torch"``.

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

import itertools

import numpy as np
import pytest

import fastpe
from fastpe import _kernels, bench, reference
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

    def __init__(self, benchmark, peer_set):
        self.benchmark = benchmark
        self.peer_set = peer_set

    @staticmethod
    def dtype(name):
        return _dtype(name)

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

    def case(self, kind, op, shape, dtype, impl, options=None):
        """Time one implementation of a fastpe.bench operation: impl is
        "fastpe", "reference", "probe" or a peer (bench.PEER_NAMES). The group is
        `kind` at the dtype and shape; every call gets the next call index
        (a new offset where options ask for one)."""
        options = {} if options is None else options
        dtype = np.dtype(dtype)
        st = op.setup(shape, dtype, np.random.default_rng(0), options)
        calls = itertools.count()
        if impl in bench.PEER_NAMES:
            peers, missing, _ = bench.build_peers(op, st, dtype, options, self.peer_set)
            if impl not in peers:
                pytest.skip(f"{impl}: {missing.get(impl, 'no such peer for this operation')}")
            bench.check_peers(op, st, dtype, options, {impl: peers[impl]}, None)  # untimed
            peer = peers[impl]

            def fn():
                peer(next(calls))
        elif impl == "probe":
            flat = st.target.reshape(-1)
            threads = effective_threads(None, flat.size)

            def fn():
                _kernels.probe(flat, PROBE_VALUE, op.probe == "fill", threads)
        else:
            api = fastpe if impl == "fastpe" else reference

            def fn():
                op.call(api, st, next(calls), None, options)
        threads = 1 if impl in ("reference", "numpy") else effective_threads(None, st.target.size)
        self.describe(f"{kind} {dtype.name} {'x'.join(map(str, shape))}", impl, threads, st.target,
                      op.traffic_factor)
        self.benchmark.extra_info.update(options={k: v for k, v in options.items()})
        return self.inplace(fn, st.target, st.pattern, impl)

    def overwrite(self, fn, out, impl):
        """Time fn() that overwrites out entirely (tables): no setup needed."""
        return self.benchmark.pedantic(fn, rounds=self.rounds(impl, out.nbytes), iterations=1, warmup_rounds=1)


@pytest.fixture
def pe_bench(benchmark, peer_set):
    return PEBench(benchmark, peer_set)


@pytest.fixture(scope="session")
def peer_set(default_threads):
    """The peers that load here; torch's run at fastpe's thread count, its own restored afterwards."""
    with bench.load_peers(default_threads) as peers:
        yield peers


def _dtype(name):
    """The NumPy dtype of `name`; bfloat16 is ml_dtypes' (skipped where it is not installed)."""
    if name != "bfloat16":
        return np.dtype(name)
    ml_dtypes = pytest.importorskip("ml_dtypes", reason="ml_dtypes is not installed")
    return np.dtype(ml_dtypes.bfloat16)


@pytest.fixture(params=["float64", "float16", "bfloat16"])
def other_dtype(request):
    """The dtypes beside float32 that the side-by-side add is timed in."""
    return _dtype(request.param)


@pytest.fixture(params=["float32", "bfloat16"])
def rotary_dtype(request):
    """Rotary in float32 and in bfloat16, the dtype large models run in."""
    return _dtype(request.param)


@pytest.fixture(scope="session")
def default_threads():
    return max(1, _kernels.omp_max_threads()) if _kernels.openmp_enabled() else 1
