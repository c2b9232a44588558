"""Byte offsets of the rows the kernels write, for any strided layout.

The kernels see an array as a base pointer plus a list of row offsets in
bytes, so transposed, sliced and negative-stride views are written where they
are. Rows that share a key (an offset or a position) are grouped, so the
kernel computes each encoding row once and applies it to the whole group.
"""

import numpy as np


def _axis_offsets(shape, strides, axes):
    """Byte offset of every index over `axes` (other axes fixed at 0), shaped `shape`."""
    off = np.zeros((1,) * len(shape), dtype=np.intp)
    for axis in axes:
        view = [1] * len(shape)
        view[axis] = shape[axis]
        off = off + (np.arange(shape[axis], dtype=np.intp) * strides[axis]).reshape(view)
    return off


class Groups:
    """Distinct keys, sorted, and the rows each one applies to.

    keys: float64[G]; group_ptr: intp[G+1]; rows[i]: intp[N], the byte
    offsets into arrays[i] of the rows of group g at group_ptr[g]:group_ptr[g+1]."""

    __slots__ = ("keys", "group_ptr", "rows")


def lead_row_offsets(arr, lead_shape):
    """Byte offsets of every row over the leading axes, in C order (flattened).

    Leading axes that are contiguous with each other are merged first, so the
    common cases cost one arange."""
    shape, strides = [], []
    for size, stride in zip(lead_shape, arr.strides):
        if size == 1:
            continue
        if shape and strides[-1] == stride * size:
            shape[-1] *= size
            strides[-1] = stride
        else:
            shape.append(size)
            strides.append(stride)
    if not shape:
        return np.zeros(1, dtype=np.intp)
    if len(shape) == 1:
        return np.arange(shape[0], dtype=np.intp) * strides[0]
    return np.ascontiguousarray(_axis_offsets(shape, strides, range(len(shape))).ravel())


def _single_group(key, lead_shape, arrays):
    """One key for every row (a scalar offset): no sorting needed."""
    g = Groups()
    g.keys = np.array([key], dtype=np.float64)
    g.rows = []
    for i, arr in enumerate(arrays):
        if i and arr is arrays[0]:
            g.rows.append(g.rows[0])
        else:
            g.rows.append(lead_row_offsets(arr, lead_shape))
    g.group_ptr = np.array([0, g.rows[0].shape[0]], dtype=np.intp)
    return g


def group_rows(keys, lead_shape, arrays):
    """Group the rows over the leading axes `lead_shape` of each array by key.

    `keys` is aligned to lead_shape (same ndim, each axis full or 1). Axes where
    keys has size 1 fan the same key out to every index along them."""
    if keys.size == 1:
        return _single_group(keys.reshape(-1)[0], lead_shape, arrays)
    n_lead = len(lead_shape)
    carry = [a for a in range(n_lead) if keys.shape[a] != 1]
    fan = [a for a in range(n_lead) if keys.shape[a] == 1 and lead_shape[a] != 1]
    flat = keys.ravel()
    order = np.argsort(flat, kind="stable")
    sorted_keys = flat[order]
    starts = np.flatnonzero(np.concatenate(([True], sorted_keys[1:] != sorted_keys[:-1])))
    n_fan = 1
    for a in fan:
        n_fan *= lead_shape[a]
    g = Groups()
    g.keys = np.ascontiguousarray(sorted_keys[starts])
    g.group_ptr = np.append(starts, flat.size).astype(np.intp) * n_fan
    g.rows = []
    for arr in arrays:
        carry_off = _axis_offsets(keys.shape, arr.strides, carry).ravel()[order]
        fan_off = _axis_offsets(lead_shape, arr.strides, fan).ravel()
        g.rows.append(np.ascontiguousarray((carry_off[:, None] + fan_off[None, :]).ravel()))
    return g


def balanced_chunks(group_ptr, n_chunks):
    """Split groups into at most n_chunks contiguous runs of about equal row count."""
    n_groups = group_ptr.shape[0] - 1
    n_chunks = max(1, min(n_chunks, n_groups))
    targets = np.linspace(0, group_ptr[-1], n_chunks + 1)
    bounds = np.searchsorted(group_ptr, targets, side="left")
    bounds[0], bounds[-1] = 0, n_groups
    return np.unique(bounds).astype(np.intp)
