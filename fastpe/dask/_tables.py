"""Lazy add_table (learned position tables) and the 2-D / n-D sin-cos grids.

A grid is a table too: its blocks add rows of the grid's table, which each
worker builds once and keeps in fastpe's cache (nothing of it travels in the
graph), by the kernel the eager grid functions use.
"""

import functools

import dask.array as da
import numpy as np

from .. import _grids, _sinusoid
from .._formulas import DEFAULT_BASE
from .._validation import as_float_array, check_grid_2d, check_grid_nd, encoding_dtype_for, integer_array, table_request
from ._common import (aligned, as_dask, columns, emptied, first, indices, meta, new_like, replaced_offset,
                      stand_in)


def _table_block(x, table_rows, t, offset, positions, *, scale, num_threads):
    x, out = new_like(x)
    (table,) = table_rows  # the table's column block, all its rows in one chunk
    if positions is None:
        # This block's first token reads row offset + t0.
        start = np.asarray(offset).astype(np.int64) + first(t)
        _sinusoid.add_table(x, table, offset=start, scale=scale, out=out, num_threads=num_threads)
    else:
        _sinusoid.add_table(x, table, positions=positions, scale=scale, out=out, num_threads=num_threads)
    return out


def _rows_in_table(x, n_rows, offset, positions):
    """The eager check that every row read lies in the table, for NumPy offsets
    or positions: only their extremes matter, so it runs on those alone, with x
    and the table reduced to one column (nothing of x's size is built)."""
    table = np.broadcast_to(np.zeros((), np.float32), (n_rows, 1))
    if positions is None:
        values, small_x = integer_array("offset", offset), np.zeros((2, x.shape[-2], 1), np.float32)
    else:
        values, small_x = integer_array("positions", positions), np.zeros((2, 1), np.float32)
    if values.size:
        extremes = np.array([values.min(), values.max()], values.dtype)
        if positions is None:
            table_request(small_x, table, extremes, None, None, None, None)
        else:
            table_request(small_x, table, 0, extremes, None, None, None)


def add_table(darr, table, *, offset=0, positions=None, scale=None, num_threads=None):
    """Lazy `fastpe.add_table`: ``darr * scale + table[p]`` as a new Dask array.

    Parameters
    ----------
    darr : dask.array.Array or array_like
        Shape ``(..., T, D)``; any axis may be chunked.
    table : dask.array.Array or array_like
        The ``(n_rows, D)`` learned table (NumPy or Dask). Every block reads
        the rows of the table in its own columns, so the table is cut into
        the columns of `darr` and held whole along the rows.
    offset : int or array_like of int, optional
        Row of the first token: one number, or one per sequence (NumPy or
        Dask), broadcastable to ``darr.shape[:-2]``.
    positions : array_like of int, optional
        Rows (NumPy or Dask, e.g. `fastpe.dask.make_positions`),
        broadcastable to ``darr.shape[:-1]``; replaces `offset`.
    scale, num_threads
        As in `fastpe.add_table`.

    Returns
    -------
    result : dask.array.Array
        Same shape, dtype and chunks as `darr`.

    Raises
    ------
    IndexError
        A NumPy offset or position outside the table, when the graph is
        built; rows of Dask offsets or positions are checked by each block.
    TypeError, ValueError
        As `fastpe.add_table`, when the graph is built.

    Examples
    --------
    >>> import dask.array as da
    >>> import numpy as np
    >>> import fastpe, fastpe.dask
    >>> table = np.random.default_rng(0).standard_normal((1026, 64)).astype(np.float32)   # BART: rows 2..
    >>> x = da.ones((4, 512, 64), chunks=(2, 128, 64), dtype=np.float32)
    >>> y = fastpe.dask.add_table(x, table, offset=2)
    >>> eager = fastpe.add_table(np.ones((4, 512, 64), np.float32), table, offset=2)
    >>> bool(np.array_equal(y.compute(), eager))
    True
    """
    x = as_dask("x", darr)
    table_seen = stand_in("table", table)
    # The eager checks on zero-size stand-ins: x with no columns (its dtype and
    # sequences, offset, positions, scale, threads), then x with no tokens
    # against the table (its dtype, shape and width).
    _sinusoid.add_table(emptied(x.shape, x.dtype, -1), np.empty((0, 0)),
                        offset=replaced_offset(offset, positions is not None),
                        positions=stand_in("positions", positions), scale=scale, num_threads=num_threads)
    _sinusoid.add_table(np.empty((0, x.shape[-1]), x.dtype), table_seen)
    if isinstance(table, da.Array):
        known = table
    else:
        known = as_float_array("table", table)
    values = positions if positions is not None else offset
    if x.size and not isinstance(values, da.Array):
        _rows_in_table(x, known.shape[0], offset, positions)
    if x.size == 0:
        return x
    ind = tuple(range(x.ndim))
    row_axis = x.ndim  # an index of the table alone: its rows, held in one chunk
    table_blocks = da.asarray(known).rechunk(((known.shape[0],), x.chunks[-1]))
    if positions is not None:
        keys = (None, None, aligned(positions, x.shape[:-1], x.chunks[:-1]), ind[:-1])
    elif np.ndim(offset) == 0 and not isinstance(offset, da.Array):
        keys = (int(integer_array("offset", offset)), None, None, None)
    else:
        keys = (aligned(offset, x.shape[:-2], x.chunks[:-2]), ind[:-2], None, None)
    return da.blockwise(
        _table_block, ind, x, ind, table_blocks, (row_axis, ind[-1]), indices(x.chunks[-2]), ind[-2:-1], *keys,
        scale=scale, num_threads=num_threads,
        dtype=x.dtype, meta=meta(x.ndim, x.dtype), token="fastpe-add-table",
    )


def _grid_block(x, t, cols, *, table_of, scale, num_threads):
    x, out = new_like(x)
    table = table_of()  # the grid's table, from this process's cache
    block_columns = columns(cols, table.shape[1])
    if block_columns is not None:
        table = table[:, block_columns]
    # Token t0 of the block is row t0 of the grid's table, as in the eager add.
    _sinusoid.add_table(x, table, offset=first(t), scale=scale, out=out, num_threads=num_threads)
    return out


def _lead_emptied(x):
    """A zero-size stand-in of a grid's x: the grid checks read only its last two
    axes, so a leading axis is emptied (one of length 0 is added to a 2-D x)."""
    if x.ndim == 2:
        return np.empty((0,) + x.shape, x.dtype)
    return emptied(x.shape, x.dtype, 0 if x.ndim > 2 else -1)


def _add_grid(x, table_of, scale, num_threads, token):
    if x.size == 0:
        return x
    ind = tuple(range(x.ndim))
    return da.blockwise(
        _grid_block, ind, x, ind, indices(x.chunks[-2]), ind[-2:-1], indices(x.chunks[-1]), ind[-1:],
        table_of=table_of, scale=scale, num_threads=num_threads,
        dtype=x.dtype, meta=meta(x.ndim, x.dtype), token=token,
    )


def add_sincos_2d(darr, grid_h, grid_w, *, base=DEFAULT_BASE, layout="mae", cls_token=False, scale=None,
                  num_threads=None):
    """Lazy `fastpe.add_sincos_2d`: ``darr * scale + sincos_2d(...)`` as a new Dask array.

    Parameters
    ----------
    darr : dask.array.Array or array_like
        Shape ``(..., grid_h * grid_w + cls_token, dim)``, tokens row-major;
        any axis may be chunked, the tokens and the channels too.
    grid_h, grid_w, base, layout, cls_token, scale, num_threads
        As in `fastpe.add_sincos_2d`.

    Returns
    -------
    result : dask.array.Array
        Same shape, dtype and chunks as `darr`.

    Raises
    ------
    TypeError, ValueError
        As `fastpe.add_sincos_2d`, when the graph is built.

    Notes
    -----
    The grid's table is built (and cached) once when the graph is built, by
    the eager checks, and once in each worker process that computes a block.

    Examples
    --------
    >>> import dask.array as da
    >>> import numpy as np
    >>> import fastpe, fastpe.dask
    >>> patches = da.zeros((16, 197, 768), chunks=(4, 64, 768), dtype=np.float32)   # ViT-B/16 with a class token
    >>> y = fastpe.dask.add_sincos_2d(patches, 14, 14, cls_token=True)
    >>> bool(np.array_equal(y[0].compute(), fastpe.sincos_2d(14, 14, 768, cls_token=True)))
    True
    """
    x = as_dask("x", darr)
    _grids.add_sincos_2d(_lead_emptied(x), grid_h, grid_w, base=base, layout=layout, cls_token=cls_token,
                         scale=scale, num_threads=num_threads)
    grid_h, grid_w, dim, base, cls_token = check_grid_2d(grid_h, grid_w, x.shape[-1], base, layout, cls_token)
    table_of = functools.partial(_grids.grid_2d_table, grid_h, grid_w, dim, base, layout, cls_token,
                                 encoding_dtype_for(x.dtype))
    return _add_grid(x, table_of, scale, num_threads, "fastpe-add-sincos-2d")


def add_sinusoidal_nd(darr, shape, *, min_timescale=1.0, max_timescale=1e4, scale=None, num_threads=None):
    """Lazy `fastpe.add_sinusoidal_nd`: ``darr * scale + sinusoidal_nd(shape, D)`` as a new Dask array.

    Parameters
    ----------
    darr : dask.array.Array or array_like
        Shape ``(..., prod(shape), D)``, tokens in row-major order of
        `shape`; any axis may be chunked.
    shape, min_timescale, max_timescale, scale, num_threads
        As in `fastpe.add_sinusoidal_nd`.

    Returns
    -------
    result : dask.array.Array
        Same shape, dtype and chunks as `darr`.

    Raises
    ------
    TypeError, ValueError
        As `fastpe.add_sinusoidal_nd`, when the graph is built.

    Examples
    --------
    >>> import dask.array as da
    >>> import numpy as np
    >>> import fastpe, fastpe.dask
    >>> video = da.ones((2, 8 * 14 * 14, 256), chunks=(1, 392, 128))     # (frames, h, w) grid
    >>> y = fastpe.dask.add_sinusoidal_nd(video, (8, 14, 14), scale=0.5)
    >>> eager = fastpe.add_sinusoidal_nd(np.ones((2, 8 * 14 * 14, 256)), (8, 14, 14), scale=0.5)
    >>> bool(np.array_equal(y.compute(), eager))
    True
    """
    x = as_dask("x", darr)
    _grids.add_sinusoidal_nd(_lead_emptied(x), shape, min_timescale=min_timescale, max_timescale=max_timescale,
                             scale=scale, num_threads=num_threads)
    shape, dim, lo, hi = check_grid_nd(shape, x.shape[-1], min_timescale, max_timescale)
    table_of = functools.partial(_grids.grid_nd_table, shape, dim, lo, hi, encoding_dtype_for(x.dtype))
    return _add_grid(x, table_of, scale, num_threads, "fastpe-add-sinusoidal-nd")
