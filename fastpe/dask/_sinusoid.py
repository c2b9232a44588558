"""Lazy add_sinusoidal, sinusoidal_table, sinusoidal_encode and make_positions.

A chunk of D (the last axis) still needs frequencies of the full width, so a
block that covers columns [d0, d1) encodes its distinct positions at full
width and keeps those columns: splitting D into k chunks encodes each distinct
position k times (k x the sin/cos work of one chunk over all of D), while the
add itself still touches each element once. Keep D in one chunk when you can.
"""

import dask.array as da
import numpy as np

from .. import _formulas, _sinusoid
from .._validation import (Encoding, check_count, check_dtype_argument, check_make_positions, encoding_dtype_for,
                           real_array, table_offset)
from ._common import (aligned, as_dask, columns, emptied, first, indices, meta, new_like, replaced_offset,
                      stand_in)

def _encoded_columns(positions, dim, cols, dtype, enc):
    """(encodings of the distinct positions, in the block's columns; index of each position among them)."""
    distinct, inverse = np.unique(positions, return_inverse=True)
    rows = _sinusoid.sinusoidal_encode(distinct, dim, dtype=dtype, **enc)
    return np.ascontiguousarray(rows[:, cols]), inverse.reshape(np.shape(positions))


def _add_block(x, t, cols, offset, positions, *, dim, shift, scale, num_threads, enc):
    x, out = new_like(x)
    block_columns = columns(cols, dim)
    if block_columns is None:
        # All of D: the fused kernel, with this block's first token at offset + t0.
        if positions is None:
            _sinusoid.add_sinusoidal(x, offset=offset + first(t), scale=scale, out=out, num_threads=num_threads,
                                     **enc)
        else:
            _sinusoid.add_sinusoidal(x, positions=positions, scale=scale, out=out, num_threads=num_threads, **enc)
        return out
    if positions is None:
        # The eager call's implicit positions, shift (fairseq's padding_idx + 1) included.
        positions = np.asarray(offset, dtype=np.float64)[..., None] + (shift + t)
    table, rows = _encoded_columns(positions, dim, block_columns, encoding_dtype_for(x.dtype),
                                   {**enc, "num_threads": num_threads})
    # add_table then forms x * scale + row as add_sinusoidal does with its encoding.
    _sinusoid.add_table(x, table, positions=rows, scale=scale, out=out, num_threads=num_threads)
    return out


def _encoding_kwargs(base, layout, inv_freq, preset, padding_idx, min_timescale, max_timescale):
    return {"base": base, "layout": layout, "inv_freq": inv_freq, "preset": preset, "padding_idx": padding_idx,
            "min_timescale": min_timescale, "max_timescale": max_timescale}


def add_sinusoidal(darr, *, offset=0, positions=None, scale=None, base=None, layout=None, num_threads=None,
                   inv_freq=None, preset=None, padding_idx=None, min_timescale=None, max_timescale=None):
    """Lazy `fastpe.add_sinusoidal`: ``darr * scale + PE`` as a new Dask array.

    Every block is computed by the eager kernel into a new buffer (input
    blocks are never written). Arguments are checked now, when the graph is
    built; only the values inside Dask `offset` and `positions` wait for the
    compute.

    Parameters
    ----------
    darr : dask.array.Array or array_like
        Shape ``(..., T, D)``; any axis may be chunked (keep D in one chunk:
        each chunk of D encodes at the full width).
    offset : int, float or array_like, optional
        One number, or one per sequence (NumPy or Dask), chunked like `darr`.
    positions : array_like, optional
        Explicit positions (NumPy or Dask) broadcastable to
        ``darr.shape[:-1]``; replaces `offset`.
    scale, base, layout, inv_freq, preset, padding_idx, min_timescale, max_timescale
        As in `fastpe.add_sinusoidal`.
    num_threads : int, optional
        Passed to every block's kernel call. With Dask's threaded scheduler,
        which already runs one block per core, pass 1 (distributed's
        nanny-started workers set ``OMP_NUM_THREADS=1`` themselves).

    Returns
    -------
    result : dask.array.Array
        Same shape, dtype and chunks as `darr`.

    Raises
    ------
    TypeError, ValueError
        As `fastpe.add_sinusoidal`, at graph-building time; a ValueError for
        unknown chunk sizes.

    Notes
    -----
    Results are bit-identical to the eager call's, whatever the chunks: a
    position's encoding row does not depend on the block it falls in.

    Examples
    --------
    >>> import dask.array as da
    >>> import numpy as np
    >>> import fastpe, fastpe.dask
    >>> x = da.ones((4, 64, 32), chunks=(2, 16, 32), dtype=np.float32)
    >>> y = fastpe.dask.add_sinusoidal(x, offset=np.arange(4), scale=2.0)
    >>> y.chunks == x.chunks
    True
    >>> eager = fastpe.add_sinusoidal(np.ones((4, 64, 32), np.float32), offset=np.arange(4), scale=2.0)
    >>> bool(np.allclose(y.compute(scheduler="sync"), eager, atol=1e-6))
    True
    """
    x = as_dask("x", darr)
    enc = _encoding_kwargs(base, layout, inv_freq, preset, padding_idx, min_timescale, max_timescale)
    # The eager checks, on a zero-width stand-in of x (same dtype, same (..., T)) and
    # stand-ins of Dask offsets and positions; the encoding is checked at the real width.
    _sinusoid.add_sinusoidal(emptied(x.shape, x.dtype, -1), offset=replaced_offset(offset, positions is not None),
                             positions=stand_in("positions", positions), scale=scale, num_threads=num_threads)
    shift = Encoding(x.shape[-1], **enc).implicit_shift
    if x.size == 0:
        return x
    ind = tuple(range(x.ndim))
    if positions is not None:
        keys = (None, None, aligned(positions, x.shape[:-1], x.chunks[:-1]), ind[:-1])
    elif np.ndim(offset) == 0 and not isinstance(offset, da.Array):
        keys = (float(offset), None, None, None)
    else:
        keys = (aligned(offset, x.shape[:-2], x.chunks[:-2]), ind[:-2], None, None)
    return da.blockwise(
        _add_block, ind, x, ind, indices(x.chunks[-2]), ind[-2:-1], indices(x.chunks[-1]), ind[-1:], *keys,
        dim=x.shape[-1], shift=shift, scale=scale, num_threads=num_threads, enc=enc,
        dtype=x.dtype, meta=meta(x.ndim, x.dtype), token="fastpe-add-sinusoidal",
    )


def _encode_block(positions, cols, *, dim, out_dtype, kwargs):
    block_columns = columns(cols, dim)
    if block_columns is None:
        return _sinusoid.sinusoidal_encode(positions, dim, dtype=out_dtype, **kwargs)
    table, rows = _encoded_columns(positions, dim, block_columns, out_dtype, kwargs)
    return table[rows]


def sinusoidal_encode(positions, dim, *, chunks=None, base=None, layout=None, dtype=None, num_threads=None,
                      inv_freq=None, preset=None, padding_idx=None, min_timescale=None, max_timescale=None):
    """Lazy `fastpe.sinusoidal_encode`: encodings of `positions` as a Dask array.

    Parameters
    ----------
    positions : dask.array.Array or array_like
        Real positions, any shape.
    dim : int
        Width of each encoding.
    chunks : optional
        None (default) keeps the chunks of `positions` and puts `dim` in one
        chunk; otherwise any Dask chunk specification of the whole output.
    base, layout, dtype, num_threads, inv_freq, preset, padding_idx, min_timescale, max_timescale
        As in `fastpe.sinusoidal_encode`.

    Returns
    -------
    encodings : dask.array.Array
        Shape ``positions.shape + (dim,)``.

    Raises
    ------
    TypeError, ValueError
        As `fastpe.sinusoidal_encode`, at graph-building time (NumPy
        positions are checked now, Dask ones when computed).

    Examples
    --------
    >>> import dask.array as da
    >>> import numpy as np
    >>> import fastpe, fastpe.dask
    >>> enc = fastpe.dask.sinusoidal_encode(da.arange(100, chunks=25) * 3, 16)
    >>> enc.shape, enc.chunks[0]
    ((100, 16), (25, 25, 25, 25))
    >>> expected = fastpe.sinusoidal_encode(np.arange(100) * 3, 16)
    >>> bool(np.allclose(enc.compute(scheduler="sync"), expected, atol=1e-6))
    True
    """
    kwargs = {"num_threads": num_threads,
              **_encoding_kwargs(base, layout, inv_freq, preset, padding_idx, min_timescale, max_timescale)}
    seen = stand_in("positions", positions)
    if not isinstance(positions, da.Array):
        real_array("positions", seen, position=True)  # NumPy positions: their values are checked now
    # Everything else (dim, dtype, the encoding, num_threads) by the eager call on zero positions.
    _sinusoid.sinusoidal_encode(np.zeros(0, np.asarray(seen).dtype), dim, dtype=dtype, **kwargs)
    dtype = check_dtype_argument(dtype)  # None: float32, as the eager function without out=
    pos = da.asarray(positions)
    shape = pos.shape + (dim,)
    if chunks is None:
        chunks = pos.chunks + ((dim,),)
    else:
        chunks = da.core.normalize_chunks(chunks, shape, dtype=dtype)
        pos = pos.rechunk(chunks[:-1])
    ind = tuple(range(len(shape)))
    return da.blockwise(
        _encode_block, ind, pos, ind[:-1], indices(chunks[-1]), ind[-1:],
        dim=dim, out_dtype=dtype, kwargs=kwargs, dtype=dtype, meta=meta(len(shape), dtype),
        token="fastpe-sinusoidal-encode",
    )


def _table_block(rows, cols, *, offset, dim, out_dtype, kwargs):
    block_columns = columns(cols, dim)
    table = _sinusoid.sinusoidal_table(rows.shape[0], dim, offset=offset + rows[0], dtype=out_dtype, **kwargs)
    return table if block_columns is None else np.ascontiguousarray(table[:, block_columns])


def sinusoidal_table(n_positions, dim, *, offset=0, chunks=None, base=None, layout=None, dtype=None,
                     num_threads=None, inv_freq=None, preset=None, padding_idx=None, min_timescale=None,
                     max_timescale=None):
    """Lazy `fastpe.sinusoidal_table`: row ``t`` encodes position ``offset + t``.

    Parameters
    ----------
    n_positions, dim : int
        The table's shape.
    offset : int or float, optional
        Position of the first row.
    chunks : optional
        None (default) chunks the rows automatically and keeps `dim` in one
        chunk; otherwise any Dask chunk specification of
        ``(n_positions, dim)``.
    base, layout, dtype, num_threads, inv_freq, preset, padding_idx, min_timescale, max_timescale
        As in `fastpe.sinusoidal_table`.

    Returns
    -------
    table : dask.array.Array
        Shape ``(n_positions, dim)``.

    Raises
    ------
    TypeError, ValueError
        As `fastpe.sinusoidal_table`, at graph-building time.

    Examples
    --------
    >>> import numpy as np
    >>> import fastpe, fastpe.dask
    >>> table = fastpe.dask.sinusoidal_table(100_000, 512, chunks=(8192, 512))
    >>> table.numblocks
    (13, 1)
    >>> block = table[8190:8194].compute(scheduler="sync")      # across a chunk boundary
    >>> bool(np.allclose(block, fastpe.sinusoidal_table(4, 512, offset=8190), atol=1e-6))
    True
    """
    kwargs = {"num_threads": num_threads,
              **_encoding_kwargs(base, layout, inv_freq, preset, padding_idx, min_timescale, max_timescale)}
    n_positions = check_count("n_positions", n_positions)
    _sinusoid.sinusoidal_table(0, dim, offset=offset, dtype=dtype, **kwargs)
    table_offset(offset, n_positions)  # the last row's position too
    dtype = check_dtype_argument(dtype)
    shape = (n_positions, dim)
    chunks = da.core.normalize_chunks(("auto", -1) if chunks is None else chunks, shape, dtype=dtype)
    if 0 in shape:
        return da.empty(shape, chunks=chunks, dtype=dtype)
    return da.blockwise(
        _table_block, (0, 1), indices(chunks[0]), (0,), indices(chunks[1]), (1,),
        offset=float(offset), dim=dim, out_dtype=dtype, kwargs=kwargs, dtype=dtype, meta=meta(2, dtype),
        token="fastpe-sinusoidal-table",
    )


def make_positions(token_ids, padding_idx, *, past_length=0):
    """Lazy `fastpe.make_positions`: padding-aware positions of Dask token ids.

    ``(cumsum(mask) + past_length) * mask + padding_idx`` along the last
    axis, ``mask = token_ids != padding_idx`` (fairseq's and M2M100's
    positions; Hugging Face's ``create_position_ids_from_input_ids``). The
    cumulative count runs across the chunks of the last axis (Dask's
    ``cumsum``), so a chunk's positions count the real tokens of every chunk
    before it: the result is the eager one for any chunking, left or right
    padding and `past_length`.

    Parameters
    ----------
    token_ids : dask.array.Array or array_like of int
        Token ids ``(..., T)``; any axis may be chunked.
    padding_idx : int
        The id of the padding token (also the position pads get).
    past_length : int or array_like of int, optional
        Tokens already seen: one number, or one per sequence (NumPy or Dask).

    Returns
    -------
    positions : dask.array.Array of int64
        Same shape and chunks as `token_ids`; pass it as ``positions=`` to
        `fastpe.dask.add_sinusoidal` (``preset="fairseq"``) or
        `fastpe.dask.add_table`.

    Raises
    ------
    TypeError, ValueError
        As `fastpe.make_positions`, when the graph is built.

    Examples
    --------
    >>> import dask.array as da
    >>> import numpy as np
    >>> import fastpe, fastpe.dask
    >>> ids = np.array([[1, 1, 5, 6, 7, 8], [5, 6, 7, 8, 9, 1]])      # left and right padding, padding_idx 1
    >>> lazy = fastpe.dask.make_positions(da.from_array(ids, chunks=(1, 4)), padding_idx=1)
    >>> lazy.compute().tolist()                                       # the second chunk counts on from the first
    [[1, 1, 2, 3, 4, 5], [2, 3, 4, 5, 6, 1]]
    >>> bool(np.array_equal(lazy.compute(), fastpe.make_positions(ids, padding_idx=1)))
    True
    """
    ids = as_dask("token_ids", token_ids)
    # The eager checks, on a stand-in with no tokens (the same sequences) and
    # stand-ins of Dask past lengths; NumPy past lengths come back checked.
    _, padding_idx, past = check_make_positions(emptied(ids.shape, ids.dtype, -1), padding_idx,
                                                stand_in("past_length", past_length))
    if isinstance(past_length, da.Array):
        past = aligned(past_length, ids.shape[:-1], ids.chunks[:-1]).astype(np.int64)[..., None]
    # The eager formula itself: NumPy's cumsum on a Dask array is Dask's, which
    # carries each chunk's running count into the next.
    return _formulas.make_positions(ids, padding_idx, past)
