"""What every lazy function of fastpe.dask shares: the stand-ins the eager
checks run on when the graph is built, and the alignment of offsets,
positions and tables to the chunks of the array they go with."""

import math

import dask.array as da
import numpy as np


def known_shape(name, arr):
    if any(isinstance(n, float) and math.isnan(n) for n in arr.shape):
        raise ValueError(f"{name} has unknown chunk sizes (shape {arr.shape}); call {name}.compute_chunk_sizes() first")


def stand_in(name, value):
    """What the eager checks see of an argument they only read: NumPy values as
    they are, a Dask array as read-only zeros of its shape and dtype (its
    values wait for the compute)."""
    if isinstance(value, da.Array):
        known_shape(name, value)
        return np.broadcast_to(np.zeros((), value.dtype), value.shape)
    return value


def emptied(shape, dtype, axis):
    """A writable zero-size stand-in of an array the eager call would write:
    `shape` with axis `axis` set to 0, so the call checks everything and then
    has nothing to compute. Without that axis (too few dimensions, which every
    eager function refuses before it reads anything) the last one is emptied,
    and a 0-d array stays 0-d (one element, refused as well)."""
    shape = list(shape)
    if shape:
        shape[axis if -len(shape) <= axis < len(shape) else -1] = 0
    return np.empty(tuple(shape), dtype)


def as_dask(name, arr):
    arr = da.asarray(arr)
    known_shape(name, arr)
    return arr


def aligned(arr, shape, chunks):
    """arr (already checked to broadcast to shape) broadcast to shape and cut into chunks."""
    arr = da.asarray(arr)
    lead = len(shape) - arr.ndim
    own = tuple((1,) if n == 1 else c for n, c in zip(arr.shape, chunks[lead:]))
    return da.broadcast_to(arr.rechunk(own), shape, chunks=chunks)


def indices(chunks):
    """0 .. n-1 cut like one axis of the output: each block learns which rows or columns it covers."""
    return da.arange(sum(chunks), chunks=(chunks,))


def meta(ndim, dtype):
    # Given to blockwise so that it never calls a block function to guess the output type.
    return np.empty((0,) * ndim, dtype=dtype)


def columns(cols, dim):
    """The slice of the full width a block covers, or None when it covers all of it."""
    if cols.shape[0] == dim:
        return None
    return slice(int(cols[0]), int(cols[-1]) + 1)


def first(index_block):
    """The first index a block covers (0 for an empty block, which computes nothing)."""
    return int(index_block[0]) if index_block.shape[0] else 0


def new_like(block):
    """The buffer a block's result is written into: input blocks may be shared
    by other tasks (and views of the caller's arrays), so they are never written."""
    block = np.asarray(block)
    return block, np.empty(block.shape, block.dtype)


def replaced_offset(offset, replaced):
    """The stand-in of an offset: a Dask offset given together with what replaces
    it (positions, key positions) stands in as ones, which the eager call
    refuses as it refuses any non-zero offset there."""
    if replaced and isinstance(offset, da.Array):
        known_shape("offset", offset)
        return np.broadcast_to(np.ones((), offset.dtype), offset.shape)
    return stand_in("offset", offset)
