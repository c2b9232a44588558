"""The public functions: validate everything, then hand raw memory to the kernels."""

from __future__ import annotations

import os
from typing import Optional

import numpy as np
import numpy.typing as npt

from . import _forksafe, _kernels, reference
from ._plan import sinusoid_plan
from ._interop import caller_result
from ._memory import new_array, read_apart, same_view, shares_memory
from ._rows import balanced_chunks, group_rows
from ._typing import ArrayT, Int, Layout, OptArrayLike, OptInt, OptReal, Preset, Real, Table
from ._validation import (
    FLOAT16,
    NATIVE_FLOATS,
    Encoding,
    add_request,
    table_request,
    check_count,
    check_dtype_argument,
    check_num_threads,
    check_out,
    check_real_scalar,
    encoding_dtype_for,
    real_array,
)

# Below this many output elements a call runs on one thread: waking a team
# costs more than it saves.
SERIAL_BELOW = 1 << 15
# Positions between libm seeds; the recurrence's rounding grows ~2e-16 a step.
RESEED_INTERVAL = 256
# The largest team fastpe starts: more threads than this only oversubscribe
# the cores, and a team of 10**5 makes libgomp kill the process.
MAX_TEAM = max(8, 4 * (os.cpu_count() or 1))
# Work items a call is cut into (enough to balance a few threads), and the
# fewest positions an item covers (each item pays for one seed).
ITEMS_PER_CALL = 8
MIN_BLOCK = 16
# Work items per thread for kernels whose results do not depend on how the
# work is split (the attention biases): there the team size may set it.
ITEMS_PER_THREAD = 4
# Rows per tile. Written straight into one sequence, a tile of output rows
# stays in L2 across the frequency chunks; shared by several sequences, a tile
# of encoding rows is generated once and swept over each sequence's
# contiguous span, long enough for the prefetcher and still in L2/L3.
TILE_DIRECT_BYTES = 256 * 1024
TILE_SHARED_BYTES = 1024 * 1024

_NO_ZERO_POSITION = float("nan")


def resolve_threads(num_threads, work):
    """The team size for one call: 1 for small work, without OpenMP, or in a
    child forked after a team was started (see _forksafe)."""
    if not _kernels.openmp_enabled() or work < SERIAL_BELOW or _forksafe.serial_only():
        return 1
    n = num_threads if num_threads is not None else max(1, _kernels.omp_max_threads())
    n = min(n, MAX_TEAM)
    if n > 1:
        _forksafe.note_team_started()
    return n


def storage_kind(dtype):
    """The kernels' STORAGE_* code of a supported dtype."""
    if dtype == FLOAT16:
        return _kernels.STORAGE_F16
    if dtype in NATIVE_FLOATS:
        return _kernels.STORAGE_NATIVE
    return _kernels.STORAGE_BF16


def _tile_rows(nbytes, n_cols, dst, block):
    # Tile rows are encoding rows: 16-bit storage is fed from float64 ones.
    row_itemsize = encoding_dtype_for(dst.dtype).itemsize
    return max(1, min(block, nbytes // max(n_cols * row_itemsize, 1)))


def _blocks(T, n_seq, max_block):
    """Positions per work item: at most max_block, and about ITEMS_PER_CALL
    items per sequence. It depends on the input only, never on the team size:
    each item starts from a fresh seed, so the same call gives the same bits
    on any number of threads."""
    block = max(MIN_BLOCK, -(-T // ITEMS_PER_CALL))
    block = min(block, max_block, max(T, 1))
    return block, n_seq * -(-T // block)


def _chunks(group_ptr):
    """Work items of the grouped kernels, from the groups alone (not the team size)."""
    n_groups = group_ptr.shape[0] - 1
    return balanced_chunks(group_ptr, min(ITEMS_PER_CALL, -(-n_groups // MIN_BLOCK)))


def _grid(dst, src, plan, keys, lead_shape, T, scale, mode, n_threads, zero_pos=_NO_ZERO_POSITION):
    """Rows at positions key + t (t along axis -2), for every key group."""
    groups = group_rows(keys, lead_shape, [dst, src])
    n_seq = groups.keys.shape[0]
    block, n_items = _blocks(T, n_seq, RESEED_INTERVAL)
    _kernels.sinusoid_grid(
        dst, src, plan, groups.keys, groups.group_ptr, groups.rows[0], groups.rows[1],
        T, block, _tile_rows(TILE_DIRECT_BYTES, plan.n_cols, dst, block),
        _tile_rows(TILE_SHARED_BYTES, plan.n_cols, dst, block),
        dst.strides[-2], dst.strides[-1] // dst.itemsize,
        src.strides[-2], src.strides[-1] // src.itemsize,
        scale, mode, zero_pos, storage_kind(dst.dtype), min(n_threads, n_items),
    )


def _grouped(dst, src, plan, keys, lead_shape, scale, mode, n_threads, zero_pos=_NO_ZERO_POSITION):
    """Rows at arbitrary positions `keys` (aligned to lead_shape)."""
    groups = group_rows(keys, lead_shape, [dst, src])
    chunks = _chunks(groups.group_ptr)
    _kernels.sinusoid_grouped(
        dst, src, plan, groups.keys, groups.group_ptr, groups.rows[0], groups.rows[1], chunks,
        RESEED_INTERVAL, dst.strides[-1] // dst.itemsize, src.strides[-1] // src.itemsize,
        scale, mode, zero_pos, storage_kind(dst.dtype), min(n_threads, chunks.shape[0] - 1),
    )


def _source_and_mode(x, dst):
    """What a fused add reads, and whether it writes in place."""
    if same_view(dst, x):
        return x, _kernels.MODE_ADD_INPLACE
    if shares_memory(dst, x):
        # out overlaps x without being x: read from a private copy so no
        # element is read after it was overwritten.
        return x.copy(), _kernels.MODE_ADD_TO
    return x, _kernels.MODE_ADD_TO


def _table_out(out, shape, dtype, what):
    """A new table, or the caller's out (whose dtype then wins over `dtype`)."""
    dtype = check_dtype_argument(dtype)
    if out is None:
        return new_array(shape, dtype, f"a table ({what})")
    return check_out(out, shape)


def sinusoidal_table(n_positions: Int, dim: Int, *, offset: Real = 0, base: OptReal = None,
                     layout: Optional[Layout] = None, dtype: npt.DTypeLike = np.float32, out: Optional[Table] = None,
                     num_threads: OptInt = None, inv_freq: OptArrayLike = None, preset: Optional[Preset] = None,
                     padding_idx: OptInt = None, min_timescale: OptReal = None,
                     max_timescale: OptReal = None) -> Table:
    """The (n_positions, dim) table of encodings of positions offset .. offset + n_positions - 1."""
    n_positions = check_count("n_positions", n_positions)
    dim = check_count("dim", dim)
    offset = check_real_scalar("offset", offset)
    enc = Encoding(dim, base, layout, inv_freq, preset, padding_idx, min_timescale, max_timescale)
    num_threads = check_num_threads(num_threads)
    table = _table_out(out, (n_positions, dim), dtype, "n_positions x dim")
    enc.inv_freq = read_apart(enc.inv_freq, (table,))
    if table.size:
        n_threads = resolve_threads(num_threads, table.size)
        _grid(table, table, sinusoid_plan(enc), np.full((), offset), (), n_positions, 1.0,
              _kernels.MODE_STORE, n_threads, enc.zero_position)
    return caller_result(table, out)


def sinusoidal_encode(positions: npt.ArrayLike, dim: Int, *, base: OptReal = None, layout: Optional[Layout] = None,
                      dtype: npt.DTypeLike = np.float32, out: Optional[Table] = None, num_threads: OptInt = None,
                      inv_freq: OptArrayLike = None, preset: Optional[Preset] = None, padding_idx: OptInt = None,
                      min_timescale: OptReal = None, max_timescale: OptReal = None) -> Table:
    """Encodings of arbitrary (int or fractional) positions: shape positions.shape + (dim,)."""
    pos = real_array("positions", positions)
    dim = check_count("dim", dim)
    enc = Encoding(dim, base, layout, inv_freq, preset, padding_idx, min_timescale, max_timescale)
    num_threads = check_num_threads(num_threads)
    shape = pos.shape + (dim,)
    table = _table_out(out, shape, dtype, "positions.shape + (dim,)")
    pos, enc.inv_freq = read_apart(pos, (table,)), read_apart(enc.inv_freq, (table,))
    if table.size:
        n_threads = resolve_threads(num_threads, table.size)
        _grouped(table, table, sinusoid_plan(enc), pos, pos.shape, 1.0, _kernels.MODE_STORE, n_threads,
                 enc.zero_position)
    return caller_result(table, out)


def add_sinusoidal(x: ArrayT, *, offset: npt.ArrayLike = 0, positions: OptArrayLike = None, scale: OptReal = None,
                   base: OptReal = None, layout: Optional[Layout] = None, out: Optional[ArrayT] = None,
                   num_threads: OptInt = None, inv_freq: OptArrayLike = None, preset: Optional[Preset] = None,
                   padding_idx: OptInt = None, min_timescale: OptReal = None,
                   max_timescale: OptReal = None) -> ArrayT:
    """x * scale + PE, written into x (or out); see the README for the conventions."""
    req = add_request(x, offset, positions, scale, base, layout, inv_freq, out, num_threads,
                      preset, padding_idx, min_timescale, max_timescale)
    dst = req.x if req.out is None else req.out
    if dst.size == 0:
        return caller_result(x, out)
    src, mode = _source_and_mode(req.x, dst)
    scale = 1.0 if req.scale is None else req.scale
    n_threads = resolve_threads(req.num_threads, dst.size)
    plan = sinusoid_plan(req.encoding)
    enc = req.encoding
    if req.positions is None:
        offsets = req.offset + enc.implicit_shift if enc.implicit_shift else req.offset
        _grid(dst, src, plan, offsets, dst.shape[:-2], dst.shape[-2], scale, mode, n_threads, enc.zero_position)
    else:
        _grouped(dst, src, plan, req.positions, dst.shape[:-1], scale, mode, n_threads, enc.zero_position)
    return caller_result(x, out)


def make_positions(token_ids: npt.ArrayLike, padding_idx: Int, *,
                   past_length: npt.ArrayLike = 0) -> npt.NDArray[np.int64]:
    """Padding-aware positions (fairseq make_positions, HF create_position_ids_from_input_ids).

    NumPy is already a single pass here, so this is the reference function."""
    return reference.make_positions(token_ids, padding_idx, past_length=past_length)


_NO_INDEX = np.zeros(2, dtype=np.intp)
_NO_POSITIONS = np.zeros(1, dtype=np.float64)


def add_table(x: ArrayT, table: npt.ArrayLike, *, offset: npt.ArrayLike = 0, positions: OptArrayLike = None,
              scale: OptReal = None, out: Optional[ArrayT] = None, num_threads: OptInt = None) -> ArrayT:
    """x * scale + table[position] in one fused pass (learned position tables).

    Token t sits at row offset + t (offset: int, or one per sequence), or at
    the rows `positions` gives. Positions outside the table are an IndexError
    raised before anything is written. x and table may differ in dtype: the
    sum is then formed in float64 (always, for a 16-bit x)."""
    req = table_request(x, table, offset, positions, scale, out, num_threads)
    dst = req.x if req.out is None else req.out
    if dst.size == 0:
        return caller_result(x, out)
    src, mode = _source_and_mode(req.x, dst)
    table_rows = req.table
    rows = req.offset if req.positions is None else req.positions
    first_row = 0
    if table_rows.dtype not in NATIVE_FLOATS:
        # A 16-bit table: the rows this call reads, widened (exactly) to float64,
        # so a float32 x takes the mixed-dtype rule (the sum in float64) too.
        first_row = int(rows.min())
        last_row = int(rows.max()) + (dst.shape[-2] if req.positions is None else 1)
        table_rows = table_rows[first_row:last_row].astype(np.float64)
    elif table_rows.strides[1] != table_rows.itemsize:
        table_rows = np.ascontiguousarray(table_rows)  # the leaf loops read table rows with unit stride
    scale = 1.0 if req.scale is None else req.scale
    n_threads = resolve_threads(req.num_threads, dst.size)
    cs = (dst.strides[-1] // dst.itemsize, src.strides[-1] // src.itemsize)
    kind = storage_kind(dst.dtype)
    if req.positions is None:
        T = dst.shape[-2]
        groups = group_rows((req.offset - first_row).astype(np.float64), dst.shape[:-2], [dst, src])
        block, n_items = _blocks(T, groups.keys.shape[0], 1 << 30)
        tile = _tile_rows(TILE_SHARED_BYTES, table_rows.shape[1], dst, block)
        _kernels.table_add(dst, src, table_rows, True, groups.keys.astype(np.intp), groups.group_ptr, T, block, tile,
                           _NO_POSITIONS, _NO_INDEX, _NO_INDEX, groups.rows[0], groups.rows[1],
                           dst.strides[-2], cs[0], src.strides[-2], cs[1], scale, mode, kind, n_items,
                           min(n_threads, n_items))
    else:
        groups = group_rows((req.positions - first_row).astype(np.float64), dst.shape[:-1], [dst, src])
        chunks = _chunks(groups.group_ptr)
        n_items = chunks.shape[0] - 1
        _kernels.table_add(dst, src, table_rows, False, _NO_INDEX, _NO_INDEX, 0, 1, 1,
                           groups.keys, groups.group_ptr, chunks, groups.rows[0], groups.rows[1],
                           0, cs[0], 0, cs[1], scale, mode, kind, n_items, min(n_threads, n_items))
    return caller_result(x, out)
