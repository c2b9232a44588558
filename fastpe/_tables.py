"""Tables and rows from the kernels, for arguments already checked.

The one way fastpe fills a table of encoding rows (store_table: consecutive
positions; store_encodings: any positions), makes rotary cos/sin rows
(cos_sin_rows) and adds the rows of a table into an array (add_table_rows).
The public functions check their arguments and then call these; so do the
grids, the rotary family and the front doors' blocks of rows, which never go
through a public function. Nothing here checks or caches: plans come from
the caller (fastpe._frontdoor keeps them).
"""

import math

import numpy as np

from . import _kernels
from ._formulas import new_array
from ._runtime import add_source, group_chunks, group_rows, resolve_threads, through_aligned
from ._validation.arrays import NATIVE_FLOATS
from ._validation.torch_tensors import widened
from ._validation.views import is_bfloat16


def _groups(keys, lead_shape, dst, src):
    """group_rows of dst (and src): the kernels' row offsets of each."""
    groups = group_rows(keys, lead_shape, [dst] if src is None else [dst, src])
    return groups, groups.rows[0], (None if src is None else groups.rows[1])


def sinusoid_at_offsets(dst, src, plan, offsets, *, store=False, scale=1.0, zero_position=math.nan,
                        num_threads=None):
    """dst's rows at positions offset + t (t along axis -2; offsets aligned to
    dst.shape[:-2]) stored, added in place (src None) or added from src."""
    groups, dst_rows, src_rows = _groups(offsets, dst.shape[:-2], dst, src)
    _kernels.sinusoid_grid_rows(dst, dst_rows, plan, groups.keys, groups.group_ptr, dst.shape[-2], src=src,
                                src_rows=src_rows, store=store, scale=scale, zero_position=zero_position,
                                n_threads=resolve_threads(num_threads, dst.size))


def sinusoid_at_positions(dst, src, plan, positions, *, store=False, scale=1.0, zero_position=math.nan,
                          num_threads=None):
    """dst's vector rows at arbitrary positions (aligned to dst.shape[:-1])
    stored, added in place (src None) or added from src."""
    groups, dst_rows, src_rows = _groups(positions, dst.shape[:-1], dst, src)
    _kernels.sinusoid_grouped_rows(dst, dst_rows, plan, groups.keys, groups.group_ptr, group_chunks(groups.group_ptr),
                                   src=src, src_rows=src_rows, store=store, scale=scale, zero_position=zero_position,
                                   n_threads=resolve_threads(num_threads, dst.size))


def store_table(table, plan, offset, num_threads, zero_position=math.nan):
    """Fill a table (size > 0) with the rows of positions offset + t by a
    plan; the row of zero_position (NaN: none) is zero."""
    sinusoid_at_offsets(table, None, plan, np.full((), offset), store=True, zero_position=zero_position,
                        num_threads=num_threads)


def store_encodings(table, plan, positions, num_threads, zero_position=math.nan):
    """Fill a table (size > 0) of shape positions.shape + (dim,) with the rows
    of the positions (zero_position as store_table)."""
    sinusoid_at_positions(table, None, plan, positions, store=True, zero_position=zero_position,
                          num_threads=num_threads)


def cos_sin_rows(positions, plan, attention_factor, num_threads=None):
    """Float64 (cos, sin) rows, one per position (1-D), of a concat plan
    [sin | cos] (fastpe._frontdoor.exact_plan of the exact frequencies), by
    the sinusoid kernel (the grid kernel when the positions are
    consecutive), times the attention factor. The two share one row stride.
    The rows do not depend on num_threads (nor on the kernel)."""
    half = plan.n_cols // 2
    n = positions.shape[0]
    enc = new_array((n, 2 * half), np.float64, "the rotary cos/sin rows (positions, rotary_dim)")
    if enc.size:
        if n > 1 and positions[n - 1] - positions[0] == n - 1 and np.all(np.diff(positions) == 1.0):
            store_table(enc, plan, float(positions[0]), num_threads)
        else:
            store_encodings(enc, plan, positions, num_threads)
    if attention_factor != 1.0:
        enc *= attention_factor
    return enc[:, half:], enc[:, :half]


def _same_16_bit_type(a, b):
    """Whether dtypes a and b are one 16-bit type (float16, or bfloat16 in
    any of its NumPy spellings)."""
    return a not in NATIVE_FLOATS and (a == b or (is_bfloat16(a) and is_bfloat16(b)))


def add_table_rows(x, out, table, offset, positions, scale, num_threads):
    """x * scale + table[p] into out (or x itself): add_table once its
    arguments are checked (fastpe._validation.table_request: the table apart
    from the arrays written; offset (per sequence) or positions (per token),
    int64 rows within the table; scale None or a float)."""
    dst = x if out is None else out
    if dst.size == 0:
        return
    scale = 1.0 if scale is None else scale

    def table_rows_for(dst, rows):
        """(the table rows the kernel reads, the table row of its first row)."""
        if table.dtype not in NATIVE_FLOATS and not (scale == 1.0 and _same_16_bit_type(table.dtype, dst.dtype)):
            # A 16-bit table (but x's own type added with scale 1, which the kernel
            # reads as it is: fpe_apply_half_same): the rows this call reads,
            # widened (exactly) to float64, so a float32 x takes the mixed-dtype
            # rule (the sum in float64) too.
            first_row = int(rows.min())
            last_row = int(rows.max()) + (dst.shape[-2] if positions is None else 1)
            return widened(table[first_row:last_row], np.float64), first_row
        if table.strides[1] != table.itemsize:
            return np.ascontiguousarray(table), 0  # the leaf loops read table rows with unit stride
        return table, 0

    def add_at_offsets(dst, src, offsets):
        table_rows, first_row = table_rows_for(dst, offsets)
        groups, dst_rows, src_rows = _groups((offsets - first_row).astype(np.float64), dst.shape[:-2], dst, src)
        _kernels.table_grid_rows(dst, dst_rows, table_rows, groups.keys.astype(np.intp), groups.group_ptr,
                                 dst.shape[-2], src=src, src_rows=src_rows, scale=scale,
                                 n_threads=resolve_threads(num_threads, dst.size))

    def add_at_positions(dst, src, positions):
        table_rows, first_row = table_rows_for(dst, positions)
        groups, dst_rows, src_rows = _groups((positions - first_row).astype(np.float64), dst.shape[:-1], dst, src)
        _kernels.table_grouped_rows(dst, dst_rows, table_rows, groups.keys, groups.group_ptr,
                                    group_chunks(groups.group_ptr), src=src, src_rows=src_rows, scale=scale,
                                    n_threads=resolve_threads(num_threads, dst.size))

    src = add_source(x, dst)
    if positions is None:
        through_aligned(dst, src, add_at_offsets, (offset,), dst.ndim - 2)
    else:
        through_aligned(dst, src, add_at_positions, (positions,), dst.ndim - 1)
