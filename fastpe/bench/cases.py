"""The benchmark's cases: what each operation does, on which arrays, at which
sizes. A case is data (a :class:`Case` line in ``CASES``); what it does is an
:class:`Op`. Peers read what an op needs from it (``peer_family``,
``peer_table``, ``peer_rows``) and are built in :mod:`fastpe.bench.peers`.
"""

import functools
import importlib
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional, Tuple

import numpy as np

from fastpe import reference

# New offset for call i, in [1, OFFSET_RANGE]: keeps the kernels from seeing
# the same positions twice in a row; 1021 is prime, so every offset comes round.
_OFFSET_STEP = 1021
OFFSET_RANGE = 4095


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
    peer_family: which peers make sense (see fastpe.bench.peers): "cached add"
        (a table computed once, then its rows added in place), "rotary"
        (Hugging Face's formula with cached cos/sin rows), or None.
    peer_table(state, dtype, options) -> the table a "cached add" peer
        caches, computed once by fastpe.reference in the case's dtype.
    peer_rows: "slice" (rows o..o+T of the call's offset o) or "positions"
        (a gather of ``state.positions``).
    peer_ulps: how far a peer may be from fastpe, in units in the last place
        of the inputs' largest magnitude (see peers.peer_tolerance).
    """

    label: str
    group: str
    probe: str
    setup: Callable[..., State]
    call: Callable[..., Any]
    peer_family: Optional[str] = None
    peer_table: Optional[Callable[..., np.ndarray]] = None
    peer_rows: str = "slice"
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
    requires: modules the case needs beyond fastpe (e.g. "fastpe.torch"): a
        case whose modules do not import is left out of the run, and the
        report says why.
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
    requires: Tuple[str, ...] = ()


def call_offset(i, options):
    """The offset of call i: a new one every call where the case asks for it, else 0."""
    return 1 + (i * _OFFSET_STEP) % OFFSET_RANGE if options.get("new_offset") else 0


def max_offset(options):
    return OFFSET_RANGE if options.get("new_offset") else 0


def rows_needed(st, options):
    """Table rows every call of the case reads: the largest offset (or position) + T."""
    last = int(st.positions.max()) if hasattr(st, "positions") else max_offset(options) + st.target.shape[-2] - 1
    return last + 1


def _pattern(shape, dtype, rng):
    """Initial content of an (..., T, D) array: one random (T, D) slab, broadcast."""
    return rng.standard_normal(shape[-2:]).astype(dtype)


def _add_setup(shape, dtype, rng, options):
    pattern = _pattern(shape, dtype, rng)
    x = np.empty(shape, dtype=dtype)
    np.copyto(x, pattern)
    return State(target=x, pattern=pattern)


def _add_call(api, st, i, num_threads, options):
    api.add_sinusoidal(st.target, offset=call_offset(i, options), num_threads=num_threads)


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
    api.sinusoidal_table(n, dim, offset=call_offset(i, options), out=st.target, num_threads=num_threads)


def _preset_call(api, st, i, num_threads, options):
    api.add_sinusoidal(st.target, offset=call_offset(i, options), preset=options["preset"], num_threads=num_threads)


def _learned_setup(shape, dtype, rng, options):
    st = _add_setup(shape, dtype, rng, options)
    st.table = rng.standard_normal((shape[-2] + OFFSET_RANGE + 2, shape[-1])).astype(dtype)
    return st


def _learned_call(api, st, i, num_threads, options):
    api.add_table(st.target, st.table, offset=call_offset(i, options), num_threads=num_threads)


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
    api.apply_rotary(st.target[0], st.target[1], offset=call_offset(i, options), scaling=options.get("scaling"),
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


# Position of the first token at offset 0, where a preset does not start at 0:
# fairseq starts after its padding_idx (1), so its model reads rows o + 2 on.
_PRESET_FIRST_POSITION = {"fairseq": 2}


def _sinusoid_table(st, dtype, options):
    """Row o encodes the position of the first token at offset o."""
    preset = options.get("preset")
    return reference.sinusoidal_table(rows_needed(st, options), st.target.shape[-1], dtype=dtype, preset=preset,
                                      offset=_PRESET_FIRST_POSITION.get(preset, 0))


def _learned_table(st, dtype, options):
    return st.table


def _grid_table(st, dtype, options):
    h, w = options["grid"]
    return reference.sincos_2d(h, w, st.target.shape[-1], layout=options.get("layout", "mae"), dtype=dtype)


def _torch():
    """torch; a case that reaches it requires fastpe.torch, which needs it."""
    return importlib.import_module("torch")


@functools.lru_cache(maxsize=None)
def _fastpe_torch(api):
    """fastpe.torch, the tensor API beside `api` (the fastpe module): imported once, not in every timed call
    (importlib's look-up costs about half a microsecond, a tenth of a decode step)."""
    return importlib.import_module(api.__name__ + ".torch")


def _torch_rotary_setup(shape, dtype, rng, options):
    """q and k as the rotary setup makes them, and tensors sharing their memory."""
    st = _rotary_setup(shape, dtype, rng, options)
    st.tensors = tuple(_torch().from_numpy(a) for a in st.target)
    return st


def _torch_rotary_call(api, st, i, num_threads, options):
    """fastpe.torch.apply_rotary out of place, as a model's forward calls it: new q and k."""
    q, k = st.tensors
    return _fastpe_torch(api).apply_rotary(q, k, offset=call_offset(i, options), scaling=options.get("scaling"),
                                           num_threads=num_threads)


def _rotary_training_setup(shape, dtype, rng, options):
    """q and k as leaf tensors that require grad (sharing the case's arrays), and
    the gradients of the rotated q and k that a backward pass receives."""
    st = _rotary_setup(shape, dtype, rng, options)
    torch = _torch()
    st.leaves = tuple(torch.from_numpy(a).requires_grad_() for a in st.target)
    st.grad_out = tuple(torch.from_numpy(rng.standard_normal(shape).astype(dtype)) for _ in range(2))
    return st


def _rotary_training_call(api, st, i, num_threads, options):
    """Forward and backward: the gradients of q and k, new tensors (nothing accumulates in .grad)."""
    q, k = st.leaves
    rotated = _fastpe_torch(api).apply_rotary(q, k, offset=call_offset(i, options), num_threads=num_threads)
    return _torch().autograd.grad(rotated, (q, k), st.grad_out)


def _hf_model():
    """fastpe.bench.hf_model (it imports this module): the end-to-end model case."""
    return importlib.import_module(__package__ + ".hf_model")


CACHED_ADD = "cached add"
ROTARY_FAMILY = "rotary"
# forward and backward of the rotation (the peers return the gradients of q and k)
ROTARY_TRAINING = "rotary training"
# a Hugging Face model's step (the torch peer: the same model unpatched)
HF_MODEL = "hf model"

ADD = Op("add_sinusoidal", "fused add", "add", _add_setup, _add_call, CACHED_ADD, _sinusoid_table)
ADD_PRESET = Op("add_sinusoidal(preset=)", "preset", "add", _add_setup, _preset_call, CACHED_ADD, _sinusoid_table)
ADD_LEARNED = Op("add_table", "learned table", "add", _learned_setup, _learned_call, CACHED_ADD, _learned_table)
ADD_GRID_2D = Op("add_sincos_2d", "2-D grid", "add", _add_setup, _grid2d_call, CACHED_ADD, _grid_table)
# HF's formula rounds cos/sin, two products and a sum: a few ulps from fastpe's one rounding.
ROTARY = Op("apply_rotary(q, k)", "rotary", "add", _rotary_setup, _rotary_call, ROTARY_FAMILY, peer_ulps=4)
# fastpe.torch (the cases requiring it): the decode step beside the same peers, and training
TORCH_ROTARY = Op("fastpe.torch.apply_rotary(q, k)", "rotary, fastpe.torch", "add", _torch_rotary_setup,
                  _torch_rotary_call, ROTARY_FAMILY, peer_ulps=4)
ROTARY_TRAIN = Op("fastpe.torch.apply_rotary(q, k) forward+backward", "rotary training, fastpe.torch", "add",
                  _rotary_training_setup, _rotary_training_call, ROTARY_TRAINING, peer_ulps=4)
# The logits (up to about 10) of two float32 models through 4 layers: they round differently, and the
# unpatched one forms its angles in float32, which alone moves its logits by up to 3e-4 at the positions
# timed (tests/packaging/test_bench_hf.py). 4096 ulps of 1 (the magnitude peer_tolerance reads from the zero
# pattern) is 4.9e-4; a rotation at a wrong position moves them by more than 1.
LLAMA_STEP = Op("Llama decode step, fastpe.hf.apply_to", "model, fastpe.hf", "fill",
                lambda *args: _hf_model().setup(*args), lambda *args: _hf_model().call(*args), HF_MODEL,
                peer_ulps=4096)
ALIBI = Op("add_alibi", "ALiBi bias", "add", _add_setup, _alibi_call)
T5_BIAS = Op("add_relative_bias", "T5 bias", "add", _t5_setup, _t5_call)
ADD_POSITIONS = Op("add_sinusoidal(positions=)", "positions", "add", _positions_setup, _positions_call,
                   CACHED_ADD, _sinusoid_table, peer_rows="positions")
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


DECODE_STEP = (1, 32, 1, 128)
PREFILL = (1, 32, 4096, 128)
QUICK_PREFILL = (1, 8, 512, 128)


def _bfloat16():
    """ml_dtypes' bfloat16, or None where the optional ml_dtypes is not installed."""
    try:
        import ml_dtypes
    except ImportError:
        return None
    return np.dtype(ml_dtypes.bfloat16)


def _bfloat16_add():
    bfloat16 = _bfloat16()
    return [] if bfloat16 is None else [Case("add, bfloat16, new offset", ADD, SIDE_BY_SIDE, bfloat16,
                                             options=NEW_OFFSET, quick=QUICK_SIDE_BY_SIDE)]


def _bfloat16_rotary():
    """Rotary in bfloat16, the dtype large models run in (against torch's bfloat16)."""
    bfloat16 = _bfloat16()
    if bfloat16 is None:
        return []
    return [Case("rotary decode step, bfloat16", ROTARY, DECODE_STEP, bfloat16, options=NEW_OFFSET, ref_reps=20,
                 weight=0.5),
            Case("rotary prefill, bfloat16, new offset", ROTARY, PREFILL, bfloat16, options=NEW_OFFSET, ref_reps=3,
                 quick=QUICK_PREFILL)]


def _decode_step(name, options):
    """One decode step of rotary: q and k each (1, 32, 1, 128) at a new position every call."""
    return Case(f"rotary decode step{name}", ROTARY, DECODE_STEP, options={**NEW_OFFSET, **options},
                ref_reps=20, weight=0.5)


CASES = [
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
    *_bfloat16_add(),
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
    Case("rotary prefill, q and k, new offset", ROTARY, PREFILL, options=NEW_OFFSET, ref_reps=3,
         quick=QUICK_PREFILL),
    *_bfloat16_rotary(),
    Case("rotary decode step, fastpe.torch", TORCH_ROTARY, DECODE_STEP, options=NEW_OFFSET, reference=False,
         weight=0.5, requires=("fastpe.torch",)),
    Case("rotary forward+backward, fastpe.torch", ROTARY_TRAIN, (4, 32, 2048, 128), options=NEW_OFFSET,
         reference=False, quick=QUICK_PREFILL, weight=2.0, requires=("fastpe.torch",)),
    Case("tiny Llama decode step, fastpe.hf", LLAMA_STEP, (1, 1, 1000), options=NEW_OFFSET, reference=False,
         weight=0.5, requires=("fastpe.torch", "fastpe.hf", "transformers")),
    Case("ALiBi bias", ALIBI, (1, 16, 2048, 2048), ref_reps=3, quick=(1, 8, 512, 512)),
    Case("T5 relative bias", T5_BIAS, (1, 16, 2048, 2048), ref_reps=3, quick=(1, 8, 512, 512)),
]


def missing_requirement(case):
    """Why the case cannot run here (a module it requires does not import), or None."""
    for module in case.requires:
        try:
            importlib.import_module(module)
        except ImportError as why:
            return f"{module} does not import: {why}"
    return None


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
