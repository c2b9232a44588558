"""The rotate kernel's row order (fastpe._rotary._visit_order): by blocks of
positions across every head, the heads of a block in groups position by
position, not C order. The order must change no bit: the
same call gives the same bits in C order (block 0) and in blocks of any size,
over dtypes, layouts, memory layouts, head counts, sequence axes, partial
rotary_dim, explicit positions, in place and out=; and the results match the
NumPy reference."""

import numpy as np
import pytest
from rotary_cases import rotary_kwargs, rotary_tolerance
from util import DTYPES, array_variants, assert_same_bits, assert_within, out_variants, rng_for

import fastpe
from fastpe import _frontdoor, _rotary, reference

LAYOUTS = ("half", "interleaved")
MEMORY = ("C", "F", "batch-transposed", "T-reversed", "D-stride2", "all-reversed-D-stride3")
# Positions per block: small ones give many blocks (7: a partial last block)
# on small arrays; None: the rule calls use (_rotary._position_block).
BLOCKS = (4, 7, None)
DEFAULT_RULE = _rotary._position_block

CASES = [
    # (q shape, k shape or None, seq_axis, kwargs); T > 7 and an axis before
    # the sequence axis, so the order differs from C order at blocks 4 and 7.
    ((2, 8, 30, 64), (2, 2, 30, 64), -2, {"offset": 250}),                     # even heads, grouped k
    ((1, 5, 33, 32), (1, 3, 33, 32), -2, {"offset": 250}),                     # odd heads
    ((2, 30, 3, 16), (2, 30, 1, 16), -3, {"offset": np.array([250, 3])}),      # (batch, T, heads, D)
    ((3, 2, 21, 48), (3, 2, 21, 48), -2, {"positions": "T", "rotary_dim": 32}),
    ((2, 3, 19, 24), None, 2, {"positions": "BT"}),
    ((2, 19, 3, 2, 8), None, 1, {"offset": 5.5, "rotary_dim": 4}),             # two axes after T
    ((1, 3, 300, 256), (1, 1, 300, 256), -2, {"offset": 1000}),                # 2 blocks by the default rule
    ((40, 2, 16), None, 0, {"offset": 250}),                                   # T first: C order already
]


def _rotate(arrays, block, use_out, monkeypatch, rng, **kwargs):
    """apply_rotary on copies of arrays (or into out= arrays, of the n-th
    memory layout of out_variants for the n-th block size, so the rows read
    and written have different strides) with the rows visited by blocks of
    `block` positions (0: C order; None: the default rule), on the general path."""
    monkeypatch.setattr(_rotary, "_position_block", DEFAULT_RULE if block is None else lambda n_pairs: block)
    inputs = [a.copy() for a in arrays]
    outs = None
    if use_out:
        n = (0,) + BLOCKS
        outs = [list(out_variants(a.shape, a.dtype, rng))[n.index(block)][1] for a in arrays]
    before = _frontdoor.rotary_calls()
    got = fastpe.apply_rotary(*inputs, out=outs, **kwargs)
    assert _frontdoor.rotary_calls() == before, "these calls must take the general path"
    return got if isinstance(got, tuple) else (got,)


@pytest.mark.parametrize("use_out", [False, True], ids=["in-place", "out"])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("case", range(len(CASES)))
def test_block_order_gives_the_bits_of_c_order(case, layout, dtype, use_out, monkeypatch):
    qshape, kshape, seq_axis, kw = CASES[case]
    rng = rng_for("rotary-visit-order", case, layout, np.dtype(dtype).name, use_out)
    kw = rotary_kwargs(kw, qshape, seq_axis, rng)
    kw.update(layout=layout, seq_axis=seq_axis)
    for label, q in array_variants(qshape, dtype, rng, kinds=MEMORY):
        arrays = [q] if kshape is None else [q, rng.standard_normal(kshape).astype(dtype)]
        c_order = _rotate(arrays, 0, use_out, monkeypatch, rng, **kw)
        expected = reference.apply_rotary(*[a.copy() for a in arrays], **kw)
        expected = expected if isinstance(expected, tuple) else (expected,)
        for g, e in zip(c_order, expected):
            assert_within(g, e, rotary_tolerance(dtype, e), f"C order {label} q{qshape} {kw}")
        for block in BLOCKS:
            blocked = _rotate(arrays, block, use_out, monkeypatch, rng, **kw)
            for i, (b, c) in enumerate(zip(blocked, c_order)):
                assert_same_bits(b, c, f"array {i} block {block} {label} q{qshape} {kw}")


@pytest.mark.parametrize("shape, seq_axis", [((2, 8, 30, 64), 2), ((2, 30, 3, 16), 1), ((2, 19, 3, 2, 8), 1),
                                             ((1, 3, 300, 16), 2), ((3, 7, 10, 4), 2), ((2, 9, 5, 3, 4), 2)])
@pytest.mark.parametrize("block", [4, 7, 256])
def test_visit_order_walks_blocks_of_positions(shape, seq_axis, block):
    """Every row once, sorted by (position block, head group, position, head
    in its group, rows after the sequence axis), where a head is a row of the
    axes before the sequence axis in C order and its group head // G (the
    last group holds the remainder): worked out here from each row's
    indices, not from the implementation's reshapes."""
    order = _rotary._visit_order(shape, seq_axis, block)
    assert order is not None
    lead = shape[:-1]
    index = np.indices(lead).reshape(len(lead), -1)
    head = np.ravel_multi_index(index[:seq_axis], lead[:seq_axis])
    position = index[seq_axis]
    after = (np.ravel_multi_index(index[seq_axis + 1:], lead[seq_axis + 1:]) if seq_axis + 1 < len(lead)
             else np.zeros_like(position))
    group = _rotary._HEAD_GROUP
    expected = np.lexsort((after, head % group, position, head // group, position // block))
    assert np.array_equal(order, expected)


@pytest.mark.parametrize("shape, seq_axis", [((1, 40, 3, 16), 1), ((40, 2, 16), 0), ((40, 16), 0)])
def test_positions_outermost_keep_c_order(shape, seq_axis):
    """No axis before the sequence axis (or only axes of length 1): C order
    already visits the positions in order, so there is nothing to permute."""
    assert _rotary._visit_order(shape, seq_axis, 4) is None


@pytest.mark.parametrize("shape", [(2, 8, 1, 64), (1, 32, 1, 128), (2, 8, 0, 64)])
def test_one_position_keeps_c_order(shape):
    """A decode step: C order already visits every head at its one position
    (and there is nothing to order without positions: a regression, the
    grouped order's first form raised on no positions)."""
    assert _rotary._visit_order(shape, 2, 4) is None


def test_no_heads_gives_an_empty_order():
    assert _rotary._visit_order((0, 8, 30, 64), 2, 4).size == 0


class _RecordingKernels:
    """fastpe._kernels, recording the intp arrays of every rotate_vector_rows call."""

    def __init__(self, module):
        self._module = module
        self.calls = []

    def __getattr__(self, name):
        attr = getattr(self._module, name)
        if name != "rotate_vector_rows":
            return attr

        def record(*args, **kwargs):
            self.calls.append([a for a in args if isinstance(a, np.ndarray) and a.dtype == np.intp])
            return attr(*args, **kwargs)

        return record


def test_the_kernel_gets_the_rows_by_blocks_of_positions(monkeypatch):
    """A prefill of q and k (C-contiguous, seq axis -2): each array's rows
    reach the kernel position block by position block, each row with its own
    table row (offset + t: table row t)."""
    monkeypatch.setattr(_rotary, "_position_block", lambda n_pairs: 8)
    recording = _RecordingKernels(_rotary._kernels)
    monkeypatch.setattr(_rotary, "_kernels", recording)
    rng = rng_for("rotary-visit-order-kernel")
    q = rng.standard_normal((2, 4, 40, 16)).astype(np.float32)
    k = rng.standard_normal((2, 2, 40, 16)).astype(np.float32)
    expected = reference.apply_rotary(q.copy(), k.copy(), offset=1000)
    got = fastpe.apply_rotary(q, k, offset=1000)
    for g, e in zip(got, expected):
        assert_within(g, e, rotary_tolerance(np.float32, e), "recorded call")
    assert len(recording.calls) == 2
    for a, intp_args in zip((q, k), recording.calls):
        dst_rows, table_idx = intp_args[0], intp_args[-1]
        position = (dst_rows // a.strides[-2]) % a.shape[-2]  # C-contiguous rows: byte offset / row size
        assert np.array_equal(table_idx, position)
        assert np.all(np.diff(position // 8) >= 0), "rows must come block of positions by block"
        assert np.array_equal(np.sort(dst_rows), np.arange(a.size // a.shape[-1]) * a.strides[-2])


@pytest.mark.parametrize("num_threads", [1, 2, None])
def test_regression_num_threads_reaches_the_cos_sin_table(num_threads, monkeypatch):
    """The general path built its cos/sin table with the default team whatever
    num_threads said (apply_rotary(..., num_threads=1) ran two threads)."""
    seen = []
    table = _rotary.cos_sin_rows

    def recording(positions, plan, attention_factor, num_threads=None):
        seen.append(num_threads)
        return table(positions, plan, attention_factor, num_threads)

    monkeypatch.setattr(_rotary, "cos_sin_rows", recording)
    q = rng_for("rotary-table-team", num_threads).standard_normal((1, 4, 300, 32))
    expected = reference.apply_rotary(q.copy(), offset=3)
    got = fastpe.apply_rotary(q, offset=3, num_threads=num_threads)
    assert_within(got, expected, rotary_tolerance(np.float64, expected), "table team")
    assert seen == [num_threads]


def test_regression_one_shape_two_sequence_axes_in_c_order():
    """The cached table index of a shape visited in C order was keyed without
    its sequence axis: a (40, 2, 16) array rotated along axis 0 and then
    along axis 1 got the first call's index."""
    rng = rng_for("rotary-two-axes")
    x = rng.standard_normal((40, 2, 16))
    for seq_axis in (0, 1, 0):
        expected = reference.apply_rotary(x.copy(), offset=300, seq_axis=seq_axis)
        got = fastpe.apply_rotary(x.copy(), offset=300, seq_axis=seq_axis)
        assert_within(got, expected, rotary_tolerance(np.float64, expected), f"seq_axis={seq_axis}")
