"""Benchmark report: fastpe against what users write instead, its NumPy
reference and a bandwidth probe.

Run it as ``python -m fastpe bench [--quick] [--json PATH] [--plot PATH]
[--threads N] [--repeat N]``, or from Python::

    from fastpe import bench
    report = bench.run(quick=True)
    print(bench.format_report(report))

For every case these implementations are timed:

* ``fastpe``    -- the compiled OpenMP kernels;
* ``numpy``, ``torch`` -- the peers: what a user writes without fastpe. The
  encoding is computed once, outside the timed region, in the case's dtype
  (as the PyTorch tutorial's ``register_buffer`` does); a call adds the rows
  it needs in place, ``x += table[o:o+T]`` or ``x.add_(table[o:o+T])``, at
  the same new offset ``o < 4096`` as fastpe's call. Rotary's peer is
  Hugging Face's ``q * cos + rotate_half(q) * sin`` (and the same for k)
  with cos and sin cached for every position, the scaled frequencies and
  yarn's attention factor folded in; a call gathers its position's rows.
  NumPy runs on one thread (it has no other); torch, imported only when it
  is installed, runs at fastpe's thread count for the run
  (``torch.set_num_threads``, restored afterwards). Before timing, each
  peer's result is compared with fastpe's once (``check_peers``): a peer
  that computes something else stops the run. "fastpe/peer" is fastpe's time
  over the fastest peer's: lower is better, below 1.00x fastpe is faster.
  Ops without a sensible peer (tables, biases) show "-"; a peer that makes
  sense but cannot run here (torch not installed, NumPy without bfloat16
  arithmetic) shows "n/m" and a note;
* ``reference`` -- ``fastpe.reference``, the plain NumPy implementation;
* ``probe``     -- ``fastpe._kernels.probe``: the same array traffic with no
  arithmetic worth the name (``x += c`` for fused adds, ``t[:] = c`` for
  tables), same size, dtype and thread count. It is the speed a memory-bound
  kernel could reach on this machine, so "% of probe" (probe time / fastpe
  time x 100) says how close fastpe gets to that ceiling.

Method: the implementations of one case, peers included, are called
round-robin (the order rotating every round) so that a noisy, shared machine
slows them alike; each figure is the median of its samples. In-place calls
keep adding into the same array; every ``RESET_EVERY`` calls it is restored
from a saved pattern outside the timed region, so values stay small and
finite. Tiny calls are timed in batches (a sample is the mean of up to
``RESET_EVERY`` back-to-back calls). An implementation takes up to
``SAMPLES_PER_VISIT`` samples in a row; each visit starts after a pause of
``SETTLE_S`` and ``WARM_S`` of untimed calls (at least one). The pause outlasts the spinning of the
thread team of the implementation timed before (an OpenMP worker, fastpe's
or torch's, spins for several milliseconds after a parallel loop, and on two
cores it would take a core from the next implementation's team); the
untimed calls wake the implementation's own team (on the development
machine, a virtual one, the first two or three parallel calls after an idle
pause take 100-300 us each while the idle virtual CPU is woken) and bring
its data into the CPU's caches. So a sample measures calls in a loop of that
implementation alone, as a user's program makes them, not the other
implementations' leftovers.
The reference is slow on big arrays, so it gets fewer samples than fastpe,
the peers and the probe, and fewer still when the run's time budget requires
it; the report says so when that happens.

Cases are data (``CASES``, a list of :class:`Case`); what a case does is an
:class:`Op`, with its peers. A new encoding is one ``Op`` plus one
``Case(...)`` line a case.
"""

import gc
import json
import math
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

import numpy as np

import fastpe
from fastpe import _kernels, reference
from fastpe._runtime import default_team, resolve_threads

__all__ = [
    "ADD",
    "ADD_GRID_2D",
    "ADD_LEARNED",
    "ADD_POSITIONS",
    "ADD_PRESET",
    "ALIBI",
    "T5_BIAS",
    "ROTARY",
    "CASES",
    "Case",
    "CaseResult",
    "LLAMA3_SCALING",
    "NEW_OFFSET",
    "Op",
    "PEERS",
    "PeerMismatch",
    "Report",
    "SIDE_BY_SIDE",
    "TABLE",
    "YARN_SCALING",
    "check_peers",
    "format_report",
    "import_torch",
    "max_abs_diff",
    "peer_result",
    "peer_tolerance",
    "plot",
    "run",
    "write_json",
]

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
# New offset for call i, in [1, _OFFSET_RANGE]: keeps the kernels from seeing
# the same positions twice in a row; 1021 is prime, so every offset comes round.
_OFFSET_STEP = 1021
_OFFSET_RANGE = 4095

IMPLS = ("fastpe", "reference", "probe", "numpy", "torch")
# Implementations timed at a chosen thread count (one series per count).
THREADED = ("fastpe", "probe")


# ----------------------------------------------------------------- cases


class State:
    """Arrays of one case, shared by all implementations (attributes as needed)."""

    def __init__(self, **arrays):
        self.__dict__.update(arrays)
        self.calls = 0

    def reset(self):
        """Restore the in-place target from its pattern (never timed)."""
        pattern = getattr(self, "pattern", None)
        if pattern is not None:
            np.copyto(self.target, pattern)
        self.calls = 0


@dataclass(frozen=True)
class Op:
    """One kind of operation: how to build its arrays and call an implementation.

    setup(shape, dtype, rng, options) -> State with at least ``target`` (the
        array written, which the probe sweeps) and, for in-place ops,
        ``pattern`` (broadcastable initial content of ``target``).
    call(api, state, i, num_threads, options) runs one call; ``api`` is the
        ``fastpe`` module or ``fastpe.reference``; ``i`` counts the calls of
        this implementation (for a new offset every call).
    probe: "add" (x += c: read + write) or "fill" (t[:] = c: write only).
    peers(state, dtype, options, torch) -> {name: call(i)}: what a user
        writes without fastpe (see PEERS), built outside the timed region;
        ``torch`` is the module or None. A call returns None when it works
        in place on ``state.target``, else the arrays it computed.
        None: no peer makes sense for this op.
    peer_ulps: how far a peer may be from fastpe, in units in the last place
        of the inputs' largest magnitude (see peer_tolerance).
    """

    label: str
    group: str
    probe: str
    setup: Callable[..., State]
    call: Callable[..., Any]
    peers: Optional[Callable[..., Dict[str, Callable[[int], Any]]]] = None
    peer_ulps: int = 2

    @property
    def traffic_factor(self):
        """Bytes moved per byte of target: read + write, or write only."""
        return 2 if self.probe == "add" else 1


@dataclass(frozen=True)
class Case:
    """One benchmark case.

    threads: None runs at the run's thread count; a tuple of counts times
        fastpe and the probe at each (thread scaling), one report row each.
    quick: True keeps the case in --quick, False drops it, a shape runs it
        at that shape instead.
    ref_reps: most reference samples (the budget may allow fewer).
    weight: share of the run's time budget, relative to other cases.
    peers: False leaves the op's peers out of this case (thread scaling).
    """

    name: str
    op: Op
    shape: Tuple[int, ...]
    dtype: Any = np.float32
    options: Mapping[str, Any] = field(default_factory=dict)
    threads: Optional[Tuple[int, ...]] = None
    reference: bool = True
    quick: Any = True
    ref_reps: int = 5
    weight: float = 1.0
    peers: bool = True


def _pattern(shape, dtype, rng):
    """Initial content of an (..., T, D) array: one random (T, D) slab, broadcast."""
    return rng.standard_normal(shape[-2:]).astype(dtype)


def _add_setup(shape, dtype, rng, options):
    pattern = _pattern(shape, dtype, rng)
    x = np.empty(shape, dtype=dtype)
    np.copyto(x, pattern)
    return State(target=x, pattern=pattern)


def _offset(i, options):
    return 1 + (i * _OFFSET_STEP) % _OFFSET_RANGE if options.get("new_offset") else 0


def _max_offset(options):
    return _OFFSET_RANGE if options.get("new_offset") else 0


def _add_call(api, st, i, num_threads, options):
    api.add_sinusoidal(st.target, offset=_offset(i, options), num_threads=num_threads)


def _positions_setup(shape, dtype, rng, options):
    st = _add_setup(shape, dtype, rng, options)
    # Each sequence at its own start (packed / continued sequences).
    starts = rng.integers(0, 4096, size=shape[:-2] + (1,))
    st.positions = starts + np.arange(shape[-2])
    return st


def _positions_call(api, st, i, num_threads, options):
    api.add_sinusoidal(st.target, positions=st.positions, num_threads=num_threads)


def _table_setup(shape, dtype, rng, options):
    return State(target=np.zeros(shape, dtype=dtype))


def _table_call(api, st, i, num_threads, options):
    n, dim = st.target.shape
    api.sinusoidal_table(n, dim, offset=_offset(i, options), out=st.target, num_threads=num_threads)


def _preset_call(api, st, i, num_threads, options):
    api.add_sinusoidal(st.target, offset=_offset(i, options), preset=options["preset"], num_threads=num_threads)


def _learned_setup(shape, dtype, rng, options):
    st = _add_setup(shape, dtype, rng, options)
    st.table = rng.standard_normal((shape[-2] + _OFFSET_RANGE + 2, shape[-1])).astype(dtype)
    return st


def _learned_call(api, st, i, num_threads, options):
    api.add_table(st.target, st.table, offset=_offset(i, options), num_threads=num_threads)


def _grid2d_call(api, st, i, num_threads, options):
    h, w = options["grid"]
    api.add_sincos_2d(st.target, h, w, layout=options.get("layout", "mae"), num_threads=num_threads)


def _rotary_setup(shape, dtype, rng, options):
    """q and k of the same shape, stacked on a leading axis so one probe sweep covers both."""
    pattern = _pattern(shape, dtype, rng)
    both = np.empty((2,) + tuple(shape), dtype=dtype)
    np.copyto(both, pattern)
    return State(target=both, pattern=pattern)


def _rotary_call(api, st, i, num_threads, options):
    api.apply_rotary(st.target[0], st.target[1], offset=_offset(i, options), scaling=options.get("scaling"),
                     num_threads=num_threads)


def _alibi_call(api, st, i, num_threads, options):
    api.add_alibi(st.target, offset=i % 7, num_threads=num_threads)


def _t5_setup(shape, dtype, rng, options):
    st = _add_setup(shape, dtype, rng, options)
    st.bias_table = rng.standard_normal((32, shape[1])).astype(dtype)
    return st


def _t5_call(api, st, i, num_threads, options):
    api.add_relative_bias(st.target, st.bias_table, bidirectional=True, num_buckets=32, max_distance=128,
                          num_threads=num_threads)


# ------------------------------------------------------------------ peers
#
# A peer is what a user writes instead of fastpe: the encoding computed once
# (outside the timed region, by fastpe.reference, in the case's dtype) and
# one in-place add of the rows a call needs, in NumPy and in torch. Each peer
# works on the case's own arrays (torch through tensors sharing their
# memory) and gets the same call index, so the same positions, as fastpe.

PEERS = ("numpy", "torch")


def import_torch():
    """torch, or None where it is not installed (imported only when a run has peers)."""
    try:
        import torch
    except ImportError:
        return None
    return torch


def _tensor(torch, a):
    """A tensor sharing a's memory (bfloat16 through its 16-bit pattern: torch
    does not know ml_dtypes)."""
    if a.dtype.name == "bfloat16":
        return torch.from_numpy(a.view(np.int16)).view(torch.bfloat16)
    return torch.from_numpy(a)


def numpy_adds(dtype):
    """Whether NumPy can add arrays of `dtype` (ml_dtypes' bfloat16 registers the ufunc)."""
    try:
        np.add(np.zeros(1, dtype), np.zeros(1, dtype))
    except TypeError:
        return False
    return True


def _slice_rows(st, options, convert):
    """Rows of call i: table[o:o+T] at the call's offset o."""
    n = st.target.shape[-2]

    def rows(i):
        o = _offset(i, options)
        return slice(o, o + n)

    return rows


def _position_rows(st, options, convert):
    """Rows of every call: table[positions] (a gather)."""
    index = convert(st.positions)
    return lambda i: index


def _cached_add_peers(build_table, rows_of=_slice_rows):
    """Peers adding rows of a table built once: NumPy ``x += table[rows]`` and
    torch ``x.add_(table[rows])``, broadcast over the batch."""

    def peers(st, dtype, options, torch):
        table = build_table(st, dtype, options)
        x = st.target
        out = {}
        if numpy_adds(dtype):
            numpy_rows = rows_of(st, options, lambda a: a)

            def numpy_add(i):
                np.add(x, table[numpy_rows(i)], out=x)  # x += table[rows]

            out["numpy"] = numpy_add
        if torch is not None:
            xt, tt = _tensor(torch, x), _tensor(torch, table)
            torch_rows = rows_of(st, options, torch.from_numpy)

            def torch_add(i):
                xt.add_(tt[torch_rows(i)])

            out["torch"] = torch_add
        return out

    return peers


def _rows_needed(st, options):
    """Table rows every call of the case reads: the largest offset (or position) + T."""
    last = int(st.positions.max()) if hasattr(st, "positions") else _max_offset(options) + st.target.shape[-2] - 1
    return last + 1


# Position of the first token at offset 0, where a preset does not start at 0:
# fairseq starts after its padding_idx (1), so its model reads rows o + 2 on.
_PRESET_FIRST_POSITION = {"fairseq": 2}


def _sinusoid_table(st, dtype, options):
    """Row o encodes the position of the first token at offset o."""
    preset = options.get("preset")
    return reference.sinusoidal_table(_rows_needed(st, options), st.target.shape[-1], dtype=dtype, preset=preset,
                                      offset=_PRESET_FIRST_POSITION.get(preset, 0))


def _learned_table(st, dtype, options):
    return st.table


def _grid_table(st, dtype, options):
    h, w = options["grid"]
    return reference.sincos_2d(h, w, st.target.shape[-1], layout=options.get("layout", "mae"), dtype=dtype)


def _rotate_half_numpy(a):
    h = a.shape[-1] // 2
    return np.concatenate((-a[..., h:], a[..., :h]), axis=-1)


def _rotate_half_torch(torch):
    def rotate_half(a):
        h = a.shape[-1] // 2
        return torch.cat((-a[..., h:], a[..., :h]), dim=-1)

    return rotate_half


def _rotary_peers(st, dtype, options, torch):
    """Hugging Face's RoPE as its models write it, with cos and sin cached once
    for every position (the scaled frequencies and yarn's attention factor
    folded in, as HF does): per call, gather the rows of the call's
    position_ids, then ``q * cos + rotate_half(q) * sin``, and the same for
    k. Like HF, the results are new arrays; q and k are left as they are."""
    n_rows = _rows_needed(st, options)
    t, dim = st.target.shape[-2:]
    cos, sin = reference.rotary_cos_sin(n_rows, dim, scaling=options.get("scaling"), layout="half", dtype=dtype)
    # position_ids of each offset, made once (a model makes them per step; not what is measured here)
    positions = np.arange(n_rows)
    offsets = range(_max_offset(options) + 1)

    def hf_rotary(q, k, cos, sin, ids, rotate_half, unsqueeze):
        def call(i):
            pid = ids[_offset(i, options)]
            c, s = unsqueeze(cos[pid]), unsqueeze(sin[pid])
            return q * c + rotate_half(q) * s, k * c + rotate_half(k) * s

        return call

    q, k = st.target[0], st.target[1]
    out = {"numpy": hf_rotary(q, k, cos, sin, [positions[None, o:o + t] for o in offsets], _rotate_half_numpy,
                              lambda a: a[:, None])}
    if torch is not None:
        positions_t = torch.from_numpy(positions)
        out["torch"] = hf_rotary(_tensor(torch, q), _tensor(torch, k), _tensor(torch, cos), _tensor(torch, sin),
                                 [positions_t[None, o:o + t] for o in offsets], _rotate_half_torch(torch),
                                 lambda a: a.unsqueeze(1))
    return out


def peer_result(st, call, i, dtype):
    """Run peer `call` once on call index `i` from the case's initial arrays
    (untimed) and return what it computed, in the case's dtype and shaped
    like ``st.target`` (a rotary peer's new q and k stacked). An in-place
    result is ``st.target`` itself: valid until the state's next reset."""
    st.reset()
    result = call(i)
    if result is None:
        return st.target
    # float64 holds every peer dtype exactly (torch's bfloat16 has no NumPy twin)
    arrays = [r if isinstance(r, np.ndarray) else r.detach().double().numpy() for r in result]
    return np.stack(arrays).astype(dtype)


def max_abs_diff(a, b, chunk=1 << 20):
    """max |a - b| in float64, a chunk at a time (the arrays may be 512 MiB)."""
    a, b = a.reshape(-1), b.reshape(-1)
    return max((float(np.max(np.abs(a[k:k + chunk].astype(np.float64) - b[k:k + chunk].astype(np.float64))))
                for k in range(0, a.size, chunk)), default=0.0)


def _ulp(value, dtype):
    """Spacing of `dtype` numbers at `value` (a positive float)."""
    try:
        eps = float(np.finfo(dtype).eps)
    except ValueError:  # ml_dtypes' bfloat16
        import ml_dtypes

        eps = float(ml_dtypes.finfo(dtype).eps)
    return eps * 2.0 ** math.floor(math.log2(value))


# The float64 encoding's own error (numerical contract, against the exact value).
PE_CONTRACT_F64 = 1e-9


def peer_tolerance(pattern, dtype, ulps):
    """How far a peer's result may be from fastpe's: `ulps` units in the last
    place of the inputs' largest magnitude (at least 1, the encoding's) in
    `dtype`, plus the float64 encoding's contract. Peer and fastpe round
    differently (a peer rounds the table, then each product and sum; fastpe
    once), by an ulp or two of the inputs (op.peer_ulps), a wrong row by far more."""
    magnitude = max(1.0, float(np.max(np.abs(np.asarray(pattern, dtype=np.float64)))))
    return ulps * _ulp(magnitude, dtype) + PE_CONTRACT_F64


class PeerMismatch(AssertionError):
    """A peer computed something else than fastpe: the comparison would be meaningless."""


def check_peers(op, st, dtype, options, peers, num_threads, i=0):
    """Run fastpe and every peer once on call `i` (untimed) and compare.

    Returns {peer: {"max_abs_diff", "tolerance"}}; raises PeerMismatch when a
    peer differs from fastpe by more than peer_tolerance. Leaves the state reset.
    """
    expected = peer_result(st, lambda i: op.call(fastpe, st, i, num_threads, options), i, dtype).copy()
    tolerance = peer_tolerance(st.pattern, dtype, op.peer_ulps)
    out = {}
    for name, call in peers.items():
        diff = max_abs_diff(peer_result(st, call, i, dtype), expected)
        if not diff <= tolerance:
            st.reset()
            raise PeerMismatch(f"{op.label}: peer {name} differs from fastpe by {diff:.3g} "
                               f"(tolerance {tolerance:.3g}) at call {i}")
        out[name] = {"max_abs_diff": diff, "tolerance": tolerance}
    st.reset()
    return out


ADD = Op("add_sinusoidal", "fused add", "add", _add_setup, _add_call, _cached_add_peers(_sinusoid_table))
ADD_PRESET = Op("add_sinusoidal(preset=)", "fused add", "add", _add_setup, _preset_call,
                _cached_add_peers(_sinusoid_table))
ADD_LEARNED = Op("add_table", "learned table", "add", _learned_setup, _learned_call,
                 _cached_add_peers(_learned_table))
ADD_GRID_2D = Op("add_sincos_2d", "2-D grid", "add", _add_setup, _grid2d_call, _cached_add_peers(_grid_table))
# HF's formula rounds cos/sin, two products and a sum: a few ulps from fastpe's one rounding.
ROTARY = Op("apply_rotary(q, k)", "rotary", "add", _rotary_setup, _rotary_call, _rotary_peers, peer_ulps=4)
ALIBI = Op("add_alibi", "attention bias", "add", _add_setup, _alibi_call)
T5_BIAS = Op("add_relative_bias", "attention bias", "add", _t5_setup, _t5_call)
ADD_POSITIONS = Op("add_sinusoidal(positions=)", "positions", "add", _positions_setup, _positions_call,
                   _cached_add_peers(_sinusoid_table, _position_rows))
TABLE = Op("sinusoidal_table(out=)", "table", "fill", _table_setup, _table_call)

NEW_OFFSET = {"new_offset": True}
# Llama 3.1's and a YaRN model's rope_parameters (yarn: HF's attention factor 0.1 ln(factor) + 1).
LLAMA3_SCALING = {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
                  "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}
YARN_SCALING = {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 4096}
# The shape on which add_table, a preset, positions, the 2-D grid and the 16-bit
# adds sit beside add_sinusoidal, and its --quick stand-in.
SIDE_BY_SIDE = (8, 2048, 1024)
QUICK_SIDE_BY_SIDE = (2, 2048, 1024)


def _bfloat16_cases():
    """The bfloat16 case, where the optional ml_dtypes is installed."""
    try:
        import ml_dtypes
    except ImportError:
        return []
    return [Case("add, bfloat16, new offset", ADD, SIDE_BY_SIDE, np.dtype(ml_dtypes.bfloat16),
                 options=NEW_OFFSET, quick=QUICK_SIDE_BY_SIDE)]


def _decode_step(name, options):
    """One decode step of rotary: q and k each (1, 32, 1, 128) at a new position every call."""
    return Case(f"rotary decode step{name}", ROTARY, (1, 32, 1, 128), options={**NEW_OFFSET, **options},
                ref_reps=20, weight=0.5)


CASES: List[Case] = [
    Case("add, new offset (serial path)", ADD, (1, 16, 64), options=NEW_OFFSET, ref_reps=20, weight=0.5),
    Case("add, new offset", ADD, (1, 128, 768), options=NEW_OFFSET, ref_reps=20, weight=0.5),
    Case("add, new offset", ADD, (4, 512, 768), options=NEW_OFFSET, quick=False, weight=0.5),
    Case("add, new offset", ADD, (16, 512, 768), options=NEW_OFFSET, quick=False),
    Case("add, new offset", ADD, SIDE_BY_SIDE, options=NEW_OFFSET, quick=QUICK_SIDE_BY_SIDE),
    Case("add, new offset", ADD, SIDE_BY_SIDE, np.float64, options=NEW_OFFSET, quick=False),
    Case("add, long sequence, new offset", ADD, (1, 8192, 1024), options=NEW_OFFSET, quick=(1, 4096, 1024)),
    Case("add, 512 MiB, new offset", ADD, (32, 4096, 1024), options=NEW_OFFSET, quick=False, ref_reps=3,
         weight=4.0),
    Case("add, float16, new offset", ADD, SIDE_BY_SIDE, np.float16, options=NEW_OFFSET, quick=QUICK_SIDE_BY_SIDE),
    *_bfloat16_cases(),
    Case("table into out", TABLE, (8192, 4096), quick=(2048, 4096), weight=1.5),
    Case("add, thread scaling", ADD, (32, 4096, 1024), threads=(1, 2), reference=False, peers=False,
         quick=QUICK_SIDE_BY_SIDE, weight=2.0),
    Case("add, explicit positions", ADD_POSITIONS, SIDE_BY_SIDE, quick=QUICK_SIDE_BY_SIDE, weight=1.5),
    Case("add, fairseq preset, new offset", ADD_PRESET, SIDE_BY_SIDE, options={"preset": "fairseq", **NEW_OFFSET},
         quick=QUICK_SIDE_BY_SIDE),
    Case("learned table, new offset", ADD_LEARNED, SIDE_BY_SIDE, options=NEW_OFFSET, quick=QUICK_SIDE_BY_SIDE),
    Case("2-D grid 32x64 (mae)", ADD_GRID_2D, SIDE_BY_SIDE, options={"grid": (32, 64)}, quick=QUICK_SIDE_BY_SIDE),
    _decode_step("", {}),
    _decode_step(", llama3", {"scaling": LLAMA3_SCALING}),
    _decode_step(", yarn", {"scaling": YARN_SCALING}),
    Case("rotary prefill, q and k, new offset", ROTARY, (1, 32, 4096, 128), options=NEW_OFFSET, ref_reps=3,
         quick=(1, 8, 512, 128)),
    Case("ALiBi bias", ALIBI, (1, 16, 2048, 2048), ref_reps=3, quick=(1, 8, 512, 512)),
    Case("T5 relative bias", T5_BIAS, (1, 16, 2048, 2048), ref_reps=3, quick=(1, 8, 512, 512)),
]


# ------------------------------------------------------------ measurement


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
            "samples_s": [float(v) for v in s],
        }


@dataclass
class CaseResult:
    """Everything measured for one case (one report row per thread count)."""

    case: Case
    shape: Tuple[int, ...]
    dtype: np.dtype
    series: List[Series]
    notes: List[str]
    elapsed_s: float
    # peer -> why it was not measured, for the peers the op has but this run could not time
    peers_not_measured: Dict[str, str] = field(default_factory=dict)
    # peer -> its agreement with fastpe (check_peers)
    peer_check: Dict[str, Dict[str, float]] = field(default_factory=dict)

    @property
    def nbytes(self):
        return int(np.prod(self.shape)) * self.dtype.itemsize

    @property
    def traffic_bytes(self):
        return self.case.op.traffic_factor * self.nbytes

    def get(self, impl, threads=None):
        for s in self.series:
            if s.impl == impl and (threads is None or impl not in THREADED or s.threads == threads):
                return s
        return None

    def thread_counts(self):
        return sorted({s.threads for s in self.series if s.impl == "fastpe"})

    def rows(self):
        """One dict per thread count: medians, speedup vs reference, % of probe, GB/s."""
        out = []
        for t in self.thread_counts():
            f, r, p = self.get("fastpe", t), self.get("reference"), self.get("probe", t)
            tf = f.median
            tr = r.median if r else float("nan")
            tp = p.median if p else float("nan")
            peers = {name: self.get(name) for name in PEERS}
            peer_s = {name: s.median for name, s in peers.items() if s is not None and s.samples}
            best = min(peer_s, key=peer_s.get) if peer_s else None
            out.append({
                "threads": t,
                "fastpe_s": tf,
                "reference_s": tr,
                "probe_s": tp,
                "peers_s": {name: peer_s.get(name) for name in PEERS},
                "best_peer": best,
                "best_peer_s": peer_s[best] if best else None,
                "fastpe_over_best_peer": tf / peer_s[best] if best else None,
                "speedup_vs_reference": tr / tf,
                "percent_of_probe": 100.0 * tp / tf,
                "gbps": {
                    "fastpe": self.traffic_bytes / tf / 1e9,
                    "reference": self.traffic_bytes / tr / 1e9,
                    "probe": self.traffic_bytes / tp / 1e9,
                    **{name: self.traffic_bytes / peer_s[name] / 1e9 if name in peer_s else None
                       for name in PEERS},
                },
                "n": {
                    "fastpe": len(f.samples),
                    "reference": len(r.samples) if r else 0,
                    "probe": len(p.samples) if p else 0,
                    **{name: len(s.samples) if s else 0 for name, s in peers.items()},
                },
            })
        return out

    def to_dict(self):
        return {
            "name": self.case.name,
            "op": self.case.op.label,
            "group": self.case.op.group,
            "shape": list(self.shape),
            "dtype": self.dtype.name,
            "options": dict(self.case.options),
            "array_bytes": self.nbytes,
            "traffic_bytes": self.traffic_bytes,
            "probe": "x += c" if self.case.op.probe == "add" else "t[:] = c",
            "rows": _jsonable(self.rows()),
            "series": [s.stats() for s in self.series],
            "peer_check": self.peer_check,
            "peers_not_measured": dict(self.peers_not_measured),
            "notes": list(self.notes),
            "elapsed_s": self.elapsed_s,
        }


def _jsonable(obj):
    """NaN/inf -> None, so the JSON is strict."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    return obj


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


def _add_peers(case, st, dtype, num_threads, torch, series, resets):
    """Build the case's peers (untimed), check them against fastpe, add their series.

    Returns (peers not measured -> why, check_peers' figures)."""
    op, opts = case.op, case.options
    if op.peers is None or not case.peers:
        return {}, {}
    peers = op.peers(st, dtype, opts, torch)
    missing = {}
    for name in PEERS:
        if name not in peers:
            missing[name] = ("torch is not installed" if name == "torch" and torch is None
                             else f"{name} has no {dtype.name} arithmetic")
    check = check_peers(op, st, dtype, opts, peers, num_threads)
    # numpy runs on one thread; torch at its own thread count (set for the run)
    peer_threads = {"numpy": 1, "torch": torch.get_num_threads() if torch is not None else 1}
    for name, call in peers.items():
        series.append(Series(name, peer_threads[name], call, resets))
    return missing, check


def _measure(case, shape, dtype, num_threads, repeat, ref_reps, allowance, seed, quick=False, torch=None):
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
    missing, check = _add_peers(case, st, dtype, num_threads, torch, series, resets)
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
                f"reference: its first (cold) call only, {_fmt_time(ref.first_call_s)}: a warm call did not fit "
                "the time budget, and cold calls are slower, so the speedup is overstated"
            )
        elif n_ref < ref_max:
            notes.append(
                f"reference: median of {n_ref} sample{'s' if n_ref != 1 else ''} instead of {ref_max} "
                f"(about {_fmt_time(ref.median)} a call; more did not fit the time budget)"
            )
    if n_rounds < repeat:
        notes.append(f"fastpe/probe/peers: {n_rounds} samples instead of {repeat} (time budget)")
    del st, flat
    return series, notes, missing, check


# ---------------------------------------------------------------- report


@dataclass
class Report:
    machine: Dict[str, Any]
    config: Dict[str, Any]
    settings: Dict[str, Any]
    results: List[CaseResult]
    elapsed_s: float

    def scaling(self):
        """Thread scaling of every case measured at several thread counts."""
        out = []
        for res in self.results:
            counts = res.thread_counts()
            if len(counts) < 2:
                continue
            lo, hi = counts[0], counts[-1]
            entry = {"case": res.case.name, "shape": list(res.shape), "dtype": res.dtype.name,
                     "threads": [lo, hi]}
            for impl in ("fastpe", "probe"):
                a, b = res.get(impl, lo), res.get(impl, hi)
                if a and b:
                    entry[impl] = {"t_low_s": a.median, "t_high_s": b.median,
                                   "speedup": a.median / b.median}
            out.append(entry)
        return out

    def to_dict(self):
        return _jsonable({
            "machine": self.machine,
            "config": self.config,
            "settings": self.settings,
            "cases": [r.to_dict() for r in self.results],
            "thread_scaling": self.scaling(),
            "elapsed_s": self.elapsed_s,
        })


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _load_average():
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):  # not available on this platform
        return None


def _machine():
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        usable = os.cpu_count()
    return {
        "load_average_1min": _load_average(),
        "cpu": _cpu_model(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": usable,
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "numpy": np.__version__,
    }


def select_cases(cases, quick):
    """(case, shape) pairs to run: --quick drops or shrinks cases."""
    out = []
    for case in cases:
        shape = tuple(case.shape)
        if quick:
            if case.quick is False:
                continue
            if case.quick is not True:
                shape = tuple(case.quick)
        out.append((case, shape))
    return out


def run(*, quick=False, threads=None, repeat=None, cases=None, budget_s=None, seed=0, log=sys.stderr):
    """Measure every case; progress goes to `log` (None for silence)."""

    def say(msg):
        if log is not None:
            print(msg, file=log, flush=True)

    machine = _machine()  # before we load the machine ourselves
    started = time.perf_counter()
    repeat = repeat if repeat is not None else (QUICK_REPEAT if quick else DEFAULT_REPEAT)
    if repeat < 1:
        raise ValueError(f"repeat must be at least 1, got {repeat}")
    if threads is not None and threads < 1:
        raise ValueError(f"threads must be at least 1, got {threads}")
    budget_s = budget_s if budget_s is not None else (QUICK_BUDGET_S if quick else DEFAULT_BUDGET_S)
    default_threads = default_team()
    run_threads = threads if threads is not None else default_threads
    plan = select_cases(CASES if cases is None else cases, quick)
    if threads is not None:
        # thread scaling compares one thread with the requested count
        plan = [(c if c.threads is None else _with_threads(c, (1, max(2, threads))), s) for c, s in plan]

    config = fastpe.show_config(print_out=False)
    torch = import_torch() if any(c.peers and c.op.peers for c, _ in plan) else None
    torch_threads = torch.get_num_threads() if torch is not None else None
    results = []
    weights = [c.weight for c, _ in plan]
    try:
        if torch is not None:
            torch.set_num_threads(run_threads)  # the peers run at fastpe's thread count
        for k, (case, shape) in enumerate(plan):
            dtype = np.dtype(case.dtype)
            remaining = budget_s - (time.perf_counter() - started)
            allowance = max(0.05, remaining * case.weight / sum(weights[k:]))
            say(f"[{k + 1}/{len(plan)}] {case.name} {_shape_str(shape)} {dtype.name} ...")
            t0 = time.perf_counter()
            series, notes, missing, check = _measure(case, shape, dtype, threads, repeat, case.ref_reps, allowance,
                                                     seed + k, quick, torch)
            res = CaseResult(case, shape, dtype, series, notes, time.perf_counter() - t0, missing, check)
            results.append(res)
            for row in res.rows():
                peers = "".join(f", {name} {_fmt_time(row['peers_s'][name])}" for name in PEERS
                                if row["peers_s"][name] is not None)
                say(f"      fastpe {_fmt_time(row['fastpe_s'])}{peers}, reference {_fmt_time(row['reference_s'])}, "
                    f"probe {_fmt_time(row['probe_s'])} at {row['threads']} thread(s)")
            say(f"      ({res.elapsed_s:.1f} s)")
    finally:
        if torch is not None:
            torch.set_num_threads(torch_threads)
    settings = {
        "mode": "quick" if quick else "default",
        "threads": run_threads,
        "threads_requested": threads,
        "repeat": repeat,
        "budget_s": budget_s,
        "reset_every": RESET_EVERY,
        "statistic": "median",
        "peers": {"numpy": np.__version__, "torch": torch.__version__ if torch is not None else None,
                  "torch_threads": run_threads if torch is not None else None},
    }
    machine["load_average_1min_end"] = _load_average()
    return Report(machine, config, settings, results, time.perf_counter() - started)


def _with_threads(case, threads):
    from dataclasses import replace

    return replace(case, threads=threads)


def _shape_str(shape):
    return "(" + ",".join(str(n) for n in shape) + ")"


def _fmt_time(s):
    if s is None or not math.isfinite(s):
        return "-"
    if s < 1e-3:
        return f"{s * 1e6:.1f} us"
    if s < 1.0:
        return f"{s * 1e3:.2f} ms"
    return f"{s:.2f} s"


def _fmt_ratio(v):
    if v is None or not math.isfinite(v):
        return "-"
    return f"{v:.0f}x" if v >= 100 else f"{v:.1f}x"


def _fmt_pct(v):
    if v is None or not math.isfinite(v):
        return "-"
    return f"{v:.0f}%" if v >= 10 else f"{v:.1f}%"


def _load_text(m):
    load = m.get("load_average_1min")
    if load is None:
        return ""
    text = f"; load average {load:.2f} before the run"
    if m.get("usable_cpus") and load >= 0.5:
        text += " (busy machine: other work competes for the cores, expect noise)"
    return text


def _peer_versions(settings):
    peers = settings.get("peers", {})
    torch = (f"torch {peers['torch']} at {peers['torch_threads']} thread(s)" if peers.get("torch")
             else "torch not measured")
    return f"numpy {peers.get('numpy')} (1 thread), {torch}"


def format_report(report):
    """The report as text: header, one row per case and thread count, scaling, notes."""
    cfg, m, st = report.config, report.machine, report.settings
    lines = [
        f"fastpe {cfg.get('fastpe')} benchmark ({st['mode']} run)  --  numpy {m['numpy']}, "
        f"Python {m['python']}, {m['platform']}",
        f"CPU: {m['cpu']} ({m['usable_cpus']} usable of {m['logical_cpus']} logical CPUs)"
        + _load_text(m),
        f"threads: {st['threads']}"
        + ("" if st["threads_requested"] is not None else " (default: omp_max_threads)")
        + f"  |  openmp: {cfg.get('openmp')} ({cfg.get('openmp_version')})  |  simd: {cfg.get('simd')}",
        "times: medians of round-robin interleaved samples; probe = x += c (add) or t[:] = c (table)",
        "       at the same size, dtype and thread count; vs ref = reference/fastpe; "
        "% probe = probe/fastpe x 100",
        "peers (what users write instead): the encoding computed once, untimed, then per call numpy "
        "`x += table[o:o+T]`, torch `x.add_(table[o:o+T])`",
        "       (rotary: HF's `q*cos + rotate_half(q)*sin` with cached cos/sin rows), checked against fastpe "
        "once per case; " + _peer_versions(st),
        "fastpe/peer = fastpe time / fastest peer's time (lower is better; below 1.00x fastpe is faster); "
        "- = no peer for this op, n/m = not measured",
        "",
    ]
    header = ("case", "shape", "dtype", "thr", "fastpe", *PEERS, "reference", "probe",
              "fastpe/peer", "vs ref", "% probe", "GB/s", "n f/r/p")
    table = []
    notes = []

    def mark(note):
        if note not in notes:
            notes.append(note)
        return f"[{notes.index(note) + 1}]"

    for res in report.results:
        marks = "".join(mark(note) for note in res.notes)
        for row in res.rows():
            n = row["n"]
            peer_cells = []
            for name in PEERS:
                if name in res.peers_not_measured:
                    peer_cells.append("n/m" + mark(f"{name}: not measured, {res.peers_not_measured[name]}"))
                else:
                    peer_cells.append(_fmt_time(row["peers_s"][name]))
            best = row["best_peer"]
            table.append((
                res.case.name,
                _shape_str(res.shape),
                "f32" if res.dtype == np.float32 else "f64" if res.dtype == np.float64 else res.dtype.name,
                str(row["threads"]),
                _fmt_time(row["fastpe_s"]),
                *peer_cells,
                _fmt_time(row["reference_s"]) + marks,
                _fmt_time(row["probe_s"]),
                f"{row['fastpe_over_best_peer']:.2f}x {best}" if best else "-",
                _fmt_ratio(row["speedup_vs_reference"]),
                _fmt_pct(row["percent_of_probe"]),
                f"{row['gbps']['fastpe']:.1f}",
                f"{n['fastpe']}/{n['reference'] or '-'}/{n['probe']}",
            ))
    widths = [max(len(h), *(len(r[i]) for r in table)) if table else len(h) for i, h in enumerate(header)]
    right = set(range(3, len(header)))

    def fmt(cells):
        return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    lines.append(fmt(header))
    lines.append("  ".join("-" * w for w in widths))
    lines.extend(fmt(r) for r in table)
    lines.append("GB/s: fastpe's array traffic (add: read + write of x; table: write of out) per second")
    scaling = report.scaling()
    if scaling:
        lines.append("")
        lines.append("thread scaling (time at fewer threads / time at more threads):")
        for sc in scaling:
            lo, hi = sc["threads"]
            parts = []
            for impl in ("fastpe", "probe"):
                if impl in sc:
                    e = sc[impl]
                    parts.append(f"{impl} {_fmt_time(e['t_low_s'])} -> {_fmt_time(e['t_high_s'])} "
                                 f"= {e['speedup']:.2f}x")
            lines.append(f"  {sc['case']} {_shape_str(sc['shape'])} {sc['dtype']}, {lo} -> {hi} threads: "
                         + "; ".join(parts))
    if notes:
        lines.append("")
        lines.extend(f"[{i + 1}] {note}" for i, note in enumerate(notes))
    lines.append("")
    lines.append(f"total {report.elapsed_s:.1f} s")
    return "\n".join(lines)


def write_json(report, path):
    """All figures of the report as JSON."""
    with open(path, "w") as fh:
        json.dump(report.to_dict(), fh, indent=2, allow_nan=False)
        fh.write("\n")


def matplotlib_available():
    import importlib.util

    return importlib.util.find_spec("matplotlib") is not None


PLOT_MISSING = (
    "--plot needs matplotlib, which is not installed; install it with "
    "`pip install matplotlib` (or `pip install 'fastpe[bench]'`)"
)


def plot(report, path):
    """PNG chart: GB/s of array traffic against array size for every implementation."""
    try:
        import matplotlib
    except ImportError:
        raise RuntimeError(PLOT_MISSING) from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {"fastpe": "tab:blue", "reference": "tab:orange", "probe": "tab:gray", "numpy": "tab:green",
              "torch": "tab:red"}
    markers = {"fused add": "o", "table": "s", "positions": "^"}
    fig, ax = plt.subplots(figsize=(9, 5.5))
    default_threads = report.settings["threads"]
    seen = set()
    for impl in IMPLS:
        line = []
        for res in report.results:
            if res.case.threads is not None:
                continue  # thread scaling: repeats a size measured elsewhere
            rows = res.rows()
            row = next((r for r in rows if r["threads"] == default_threads), rows[-1])
            gbps = row["gbps"][impl]
            if gbps is None or not math.isfinite(gbps):
                continue
            mib = res.nbytes / 2**20
            marker = markers.get(res.case.op.group, "D")
            label = impl if impl not in seen else None
            seen.add(impl)
            f32 = res.dtype == np.float32
            ax.scatter([mib], [gbps], marker=marker, label=label, zorder=3, edgecolors=colors[impl],
                       facecolors=colors[impl] if f32 else "none")
            if res.case.op.group == "fused add" and f32:
                line.append((mib, gbps))
        if len(line) > 1:
            line.sort()
            ax.plot(*zip(*line), color=colors[impl], alpha=0.6)
    for group, marker in markers.items():
        if any(r.case.op.group == group for r in report.results):
            ax.scatter([], [], color="black", marker=marker, label=group)
    if any(r.dtype == np.float64 for r in report.results):
        ax.scatter([], [], facecolors="none", edgecolors="black", marker="o", label="float64 (hollow)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("array size (MiB)")
    ax.set_ylabel("GB/s of array traffic (add: read + write, table: write)")
    cfg = report.config
    ax.set_title(f"fastpe {cfg.get('fastpe')} ({report.settings['mode']} run): threads {report.settings['threads']}, "
                 f"simd {cfg.get('simd')}; lines join float32 fused adds", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
