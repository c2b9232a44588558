"""Rotation by given cos and sin tables: Hugging Face's apply_rotary_pos_emb, in one pass.

``q * cos' + rotate_half(q) * sin'`` (cos' the table unsqueezed and
broadcast, see fastpe._validation.cos_sin) is the rotation of channel pairs
``(k, k + D/2)`` by the angle whose cosine and sine are the table's entries,
which the rotate kernel applies in float64 and rounds once. It serves
fastpe.torch.apply_rotary_cos_sin (Hugging Face models hand their attention
cos and sin, not positions); it is not part of the NumPy-facing API.
"""

import numpy as np

from . import _kernels, _runtime
from ._rotary import _rotation_sources
from ._validation import caller_results, same_view
from ._validation.cos_sin import cos_sin_request


def rotate_by_cos_sin(arrays, cos, sin, unsqueeze_dim, out=None, transpose=False):
    """Rotate each array (in place, or into out[i]) by the given tables; the
    caller's arrays (or outs), one alone or a tuple. transpose: by (cos, -sin),
    the transpose of the rotation (its gradient)."""
    req, cos_rows, sin_rows, index = cos_sin_request(arrays, cos, sin, unsqueeze_dim, out)
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
        dst_rows = _runtime.lead_row_offsets(dst, dst.shape[:-1])
        src_rows = None if src is None else _runtime.lead_row_offsets(src, src.shape[:-1])
        _runtime.call_add(_kernels.rotate_rows_inplace, _kernels.rotate_rows_to, _runtime.vector_layout,
                          dst, src, (dst_rows, src_rows), index[i], table[:, :half], table[:, half:], half,
                          0, half, 1, min(n_threads, dst_rows.shape[0]))
    return caller_results(arrays, out)
