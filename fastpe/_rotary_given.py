"""Rotation by given cos and sin tables: Hugging Face's apply_rotary_pos_emb, in one pass.

``q * cos' + rotate_half(q) * sin'`` (cos' the table unsqueezed and
broadcast, see fastpe._validation.cos_sin) is the rotation of channel pairs
``(k, k + D/2)`` by the angle whose cosine and sine are the table's entries,
which the rotate kernel applies in float64 and rounds once. It serves
fastpe.torch.apply_rotary_cos_sin (Hugging Face models hand their attention
cos and sin, not positions); it is not part of the NumPy-facing API.
"""

import math

import numpy as np

from . import _frontdoor, _kernels, _runtime
from ._rotary import _cached, _row_offsets, _rotation_sources
from ._validation import caller_results, same_view
from ._validation.cos_sin import cos_sin_request


def _table_rows(shape, table_shape):
    """The table row (of a table of `table_shape`, broadcast) of each vector row of an array of `shape`, C order."""
    def build():
        rows = np.arange(math.prod(table_shape[:-1]), dtype=np.intp).reshape(table_shape[:-1])
        return np.broadcast_to(rows, shape[:-1])

    return _cached(_frontdoor.cos_sin_given_rows_key(shape[:-1], table_shape[:-1]), build)


def rotate_by_cos_sin(arrays, cos, sin, unsqueeze_dim, out=None, transpose=False):
    """Rotate each array (in place, or into out[i]) by the given tables; the
    caller's arrays (or outs), one alone or a tuple. transpose: by (cos, -sin),
    the transpose of the rotation (its gradient)."""
    req, cos_u, sin_u = cos_sin_request(arrays, cos, sin, unsqueeze_dim, out)
    cos_rows, sin_rows = cos_u.reshape(-1, cos_u.shape[-1]), sin_u.reshape(-1, sin_u.shape[-1])
    half = cos_rows.shape[1] // 2
    # One float64 table, so that cos and sin share the row stride the kernel reads them with.
    table = np.empty((cos_rows.shape[0], 2 * half))
    table[:, :half] = cos_rows[:, :half]
    table[:, half:] = sin_rows[:, :half]
    if transpose:
        np.negative(table[:, half:], out=table[:, half:])
    results = req.outs if req.outs is not None else req.arrays
    n_threads = _runtime.resolve_threads(None, sum(a.size for a in req.arrays))
    for i, src in enumerate(_rotation_sources(req)):
        if src is None:
            continue
        dst = results[i]
        if same_view(src, dst):
            src = None
        dst_rows = _row_offsets(dst, 0, 0)  # block 0: C order (every row's result is its own)
        src_rows = None if src is None else _row_offsets(src, 0, 0)
        _kernels.rotate_vector_rows(dst, dst_rows, _table_rows(dst.shape, cos_u.shape), table[:, :half],
                                    table[:, half:], "half", half, src=src, src_rows=src_rows, n_threads=n_threads)
    return caller_results(arrays, out)
