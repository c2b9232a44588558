"""2-D and n-D sinusoidal grids (vision and video models).

A grid encoding is the concatenation of 1-D encodings of each token's
coordinates, so it is built from per-axis [sin | cos] blocks computed by the
1-D kernel in float64, placed in the layout's column order, rounded once to
the dtype and kept (read-only) in the bounded cache. The fused adds then run
the learned-table kernel over it (fastpe._tables.add_table_rows, after the
grid's own checks): each element of x is read and written once.
Tokens are ordered row-major (the first grid axis outermost).
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np
import numpy.typing as npt

from . import _frontdoor, _tables
from ._formulas import DEFAULT_BASE, grid_2d_frequencies, new_array, tensor2tensor_frequencies
from ._typing import ArrayT, Bool, GridLayout, Int, OptInt, OptReal, Real, Shape, Table
from ._validation import (
    caller_result,
    check_dtype_argument,
    check_grid_2d,
    check_grid_nd,
    check_scale,
    encoding_dtype_for,
    x_and_out,
)
from ._validation import params

def _first_rows(x):
    """Every sequence of tokens reads the grid's table from its first row (the
    offsets add_table_rows takes, aligned to x.shape[:-2])."""
    return np.zeros((1,) * (x.ndim - 2), dtype=np.int64)


def _axis_blocks(n, freq):
    """[sin | cos] of positions 0..n-1 at the given exact frequencies (a
    DoubleDouble), float64, by the 1-D kernel."""
    blocks = new_array((n, 2 * freq.hi.shape[0]), np.float64, "the encodings of a grid axis")
    if blocks.size:
        _tables.store_table(blocks, _frontdoor.exact_plan(freq.hi, freq.lo), 0.0, None)
    return blocks


def _grid_2d_float64(grid_h, grid_w, dim, base, layout, cls_token):
    table = new_array((grid_h * grid_w + cls_token, dim), np.float64, "a 2-D grid table (grid_h*grid_w [+1], dim)")
    table[:cls_token] = 0.0
    q = dim // 4
    freq = grid_2d_frequencies(q, base, q - 1 if layout == "big_vision" else q)
    # Token h*W + w: (h, w) axes of the grid, then [sin | cos] of each coordinate.
    grid = table[cls_token:].reshape(grid_h, grid_w, dim)
    eh = _axis_blocks(grid_h, freq)[:, None, :]
    ew = _axis_blocks(grid_w, freq)[None, :, :]
    if layout == "timm":  # [sin h | sin w | cos h | cos w]
        grid[..., :q], grid[..., q:2 * q] = eh[..., :q], ew[..., :q]
        grid[..., 2 * q:3 * q], grid[..., 3 * q:] = eh[..., q:], ew[..., q:]
    else:  # mae and big_vision: [sin w | cos w | sin h | cos h]
        grid[..., :2 * q], grid[..., 2 * q:] = ew, eh
    return table


def _grid_nd_float64(shape, dim, min_timescale, max_timescale):
    n_timescales = dim // (2 * len(shape))
    freq = tensor2tensor_frequencies(n_timescales, min_timescale, max_timescale, n_timescales - 1)
    table = new_array(shape + (dim,), np.float64, "an n-D grid table (*shape, dim)")
    table[...] = 0.0
    for axis, n in enumerate(shape):
        view = [1] * len(shape) + [2 * n_timescales]
        view[axis] = n
        block = _axis_blocks(n, freq).reshape(view)
        table[..., 2 * axis * n_timescales: 2 * (axis + 1) * n_timescales] = block
    return table.reshape(-1, dim)


def _cached(key, build, dtype):
    """The table of `key` (a key of fastpe._frontdoor's), built in float64 and kept, read-only, in `dtype`."""
    def make():
        table64 = build()
        table = table64 if dtype == table64.dtype else _copy(table64, dtype)
        table.flags.writeable = False
        return table

    return _frontdoor.cached(key, make)


def _copy(table, dtype):
    """A new writeable copy of a grid table in `dtype` (what the caller asked for is kept apart from the cache)."""
    copy = new_array(table.shape, dtype, "a grid table")
    copy[...] = table
    return copy


def grid_2d_table(grid_h, grid_w, dim, base, layout, cls_token, dtype):
    """The (grid_h*grid_w [+1], dim) table, read-only and cached."""
    return _cached(_frontdoor.grid_2d_key(grid_h, grid_w, dim, base, layout, cls_token, dtype),
                   lambda: _grid_2d_float64(grid_h, grid_w, dim, base, layout, cls_token), dtype)


def grid_nd_table(shape, dim, min_timescale, max_timescale, dtype):
    """The (prod(shape), dim) table, read-only and cached."""
    return _cached(_frontdoor.grid_nd_key(shape, dim, min_timescale, max_timescale, dtype),
                   lambda: _grid_nd_float64(shape, dim, min_timescale, max_timescale), dtype)


def sincos_2d(grid_h: Int, grid_w: Int, dim: Int, *, base: Real = DEFAULT_BASE, layout: GridLayout = "mae",
              cls_token: Bool = False, dtype: npt.DTypeLike = np.float32) -> Table:
    """The 2-D sin-cos encoding of a ``grid_h x grid_w`` grid of patches (ViT, MAE).

    Tokens are ordered row-major (row ``h`` outer, column ``w`` inner); each
    token's encoding is the concatenation of 1-D encodings of its two
    coordinates, in the column order of `layout`. With ``q = dim / 4``:

    ============== ===================================== ==========================
    layout         columns                               ``w_k``
    ============== ===================================== ==========================
    ``mae``        ``[sin w | cos w | sin h | cos h]``   ``1 / base ** (k / q)``
    ``timm``       ``[sin h | sin w | cos h | cos w]``   ``1 / base ** (k / q)``
    ``big_vision`` ``[sin w | cos w | sin h | cos h]``   ``1 / base ** (k / (q - 1))``
    ============== ===================================== ==========================

    Parameters
    ----------
    grid_h, grid_w : int
        Grid rows and columns (>= 0).
    dim : int
        Encoding width: a multiple of 4 (and >= 8 for ``"big_vision"``).
    base : float, optional
        Frequency base (default 10000).
    layout : {"mae", "timm", "big_vision"}, optional
        Whose column order and frequencies: MAE's ``get_2d_sincos_pos_embed``
        (default), timm's ``build_sincos2d_pos_embed``, big_vision's
        ``posemb_sincos_2d``.
    cls_token : bool, optional
        Prepend one zero row (for a class token), as MAE does.
    dtype : dtype, optional
        Result dtype (default float32).

    Returns
    -------
    table : ndarray
        Shape ``(grid_h * grid_w + cls_token, dim)``, a new array.

    Raises
    ------
    TypeError
        Non-integer sizes, a non-bool `cls_token`, an unsupported dtype.
    ValueError
        A `dim` that is not a multiple of 4 (or < 8 for ``"big_vision"``),
        an unknown `layout`, ``base <= 0``.

    See Also
    --------
    add_sincos_2d : the same encoding added into tokens in place.
    fastpe.reference.sincos_2d : each layout written the way its source writes it.

    Examples
    --------
    >>> import numpy as np
    >>> import fastpe
    >>> fastpe.sincos_2d(14, 14, 768, cls_token=True).shape
    (197, 768)
    >>> pe = fastpe.sincos_2d(2, 3, 8, dtype=np.float64)     # q = 2, w_k = 1 / 10000 ** (k / 2)
    >>> w, h = 2, 1                                         # token h * 3 + w
    >>> expected = [np.sin(w), np.sin(w / 100), np.cos(w), np.cos(w / 100),
    ...             np.sin(h), np.sin(h / 100), np.cos(h), np.cos(h / 100)]
    >>> bool(np.allclose(pe[h * 3 + w], expected))
    True
    """
    grid_h, grid_w, dim, base, cls_token = check_grid_2d(grid_h, grid_w, dim, base, layout, cls_token)
    dtype = check_dtype_argument(dtype)
    return _copy(grid_2d_table(grid_h, grid_w, dim, base, layout, cls_token, dtype), dtype)


def add_sincos_2d(x: ArrayT, grid_h: Int, grid_w: Int, *, base: Real = DEFAULT_BASE, layout: GridLayout = "mae",
                  cls_token: Bool = False, scale: OptReal = None, out: Optional[ArrayT] = None,
                  num_threads: OptInt = None) -> ArrayT:
    """Add the 2-D sin-cos encoding into patch tokens in place: ``x * scale + sincos_2d(...)``.

    Parameters
    ----------
    x : array
        Float array (or tensor) of shape ``(..., grid_h * grid_w + cls_token,
        dim)``, written in place unless `out` is given.
    grid_h, grid_w : int
        The grid; tokens are ordered row-major.
    base, layout, cls_token
        As in `sincos_2d`; ``dim`` is ``x.shape[-1]``.
    scale : float, optional
        Multiplies `x` before the encoding is added.
    out : array, optional
        Where to write the result (same shape and dtype as `x`).
    num_threads : int, optional
        OpenMP threads for this call; None uses OpenMP's default.

    Returns
    -------
    result : array
        `x` (or `out`): the caller's own object.

    Raises
    ------
    TypeError, ValueError
        As `sincos_2d` and `add_sinusoidal`; a ValueError when ``x.shape[-2]``
        is not the grid's token count.

    See Also
    --------
    sincos_2d : the table this adds.
    fastpe.reference.add_sincos_2d : the NumPy definition.

    Notes
    -----
    The grid's table is built in float64, rounded once to `x`'s dtype (kept
    in float64 for 16-bit `x`), cached, and added by the `add_table` kernel.

    Examples
    --------
    >>> import numpy as np
    >>> import fastpe
    >>> tokens = np.zeros((2, 196, 64), dtype=np.float32)
    >>> _ = fastpe.add_sincos_2d(tokens, 14, 14, layout="timm")
    >>> bool(np.allclose(tokens[1], fastpe.sincos_2d(14, 14, 64, layout="timm")))
    True
    """
    xa, out_view = x_and_out(x, out)
    grid_h, grid_w, dim, base, cls_token = check_grid_2d(grid_h, grid_w, xa.shape[-1], base, layout, cls_token)
    tokens = grid_h * grid_w + cls_token
    if xa.shape[-2] != tokens:
        raise ValueError(f"x must have {tokens} tokens on axis -2 (grid_h * grid_w{' + 1 cls' if cls_token else ''}), "
                         f"got shape {xa.shape}")
    scale, num_threads = check_scale(scale), params.NUM_THREADS.check(num_threads)
    table = grid_2d_table(grid_h, grid_w, dim, base, layout, cls_token, encoding_dtype_for(xa.dtype))
    _tables.add_table_rows(xa, out_view, table, _first_rows(xa), None, scale, num_threads)
    return caller_result(x, out)


def sinusoidal_nd(shape: Shape, dim: Int, *, min_timescale: Real = 1.0,
                  max_timescale: Real = 1e4, dtype: npt.DTypeLike = np.float32) -> Table:
    """The n-D sinusoidal encoding of tensor2tensor's ``add_timing_signal_nd``.

    Each of the ``n = len(shape)`` axes gets ``dim // (2n)`` timescales,
    ``w_k = min_timescale * exp(-k ln(max_timescale / min_timescale) /
    (timescales - 1))``, and its ``[sin | cos]`` block of its coordinate sits
    in channels ``[2a * ts, 2(a + 1) * ts)`` for axis ``a``; leftover
    channels are zero.

    Parameters
    ----------
    shape : int or tuple of int
        The grid (e.g. ``(frames, h, w)`` for video); any number of axes.
    dim : int
        Encoding width; at least ``4 * len(shape)``.
    min_timescale, max_timescale : float, optional
        Timescale range (defaults 1 and 1e4), both > 0.
    dtype : dtype, optional
        Result dtype (default float32).

    Returns
    -------
    table : ndarray
        Shape ``(*shape, dim)``, a new array.

    Raises
    ------
    TypeError
        A `shape` that is not ints, an unsupported dtype.
    ValueError
        An empty or negative `shape`, a `dim` too small for 2 timescales per
        axis, non-positive timescales.

    See Also
    --------
    add_sinusoidal_nd : the same encoding added into tokens in place.
    fastpe.reference.sinusoidal_nd : the NumPy definition.

    Examples
    --------
    >>> import numpy as np
    >>> import fastpe
    >>> fastpe.sinusoidal_nd((8, 14, 14), 1024).shape
    (8, 14, 14, 1024)
    >>> pe = fastpe.sinusoidal_nd((3, 5), 10, dtype=np.float64)   # 2 timescales per axis, 2 channels left
    >>> w = np.array([1.0, 1e-4])
    >>> expected = np.concatenate([np.sin(2 * w), np.cos(2 * w), np.sin(4 * w), np.cos(4 * w), [0, 0]])
    >>> bool(np.allclose(pe[2, 4], expected))
    True
    """
    shape, dim, lo, hi = check_grid_nd(shape, dim, min_timescale, max_timescale)
    dtype = check_dtype_argument(dtype)
    return _copy(grid_nd_table(shape, dim, lo, hi, dtype), dtype).reshape(shape + (dim,))


def add_sinusoidal_nd(x: ArrayT, shape: Shape, *, min_timescale: Real = 1.0,
                      max_timescale: Real = 1e4, scale: OptReal = None, out: Optional[ArrayT] = None,
                      num_threads: OptInt = None) -> ArrayT:
    """Add the n-D encoding into tokens in place: ``x * scale + sinusoidal_nd(shape, D)``.

    Parameters
    ----------
    x : array
        Float array (or tensor) of shape ``(..., prod(shape), D)``, tokens in
        row-major order of `shape`; written in place unless `out` is given.
    shape : int or tuple of int
        The grid.
    min_timescale, max_timescale : float, optional
        As in `sinusoidal_nd`.
    scale : float, optional
        Multiplies `x` before the encoding is added.
    out : array, optional
        Where to write the result (same shape and dtype as `x`).
    num_threads : int, optional
        OpenMP threads for this call; None uses OpenMP's default.

    Returns
    -------
    result : array
        `x` (or `out`): the caller's own object.

    Raises
    ------
    TypeError, ValueError
        As `sinusoidal_nd` and `add_sinusoidal`; a ValueError when
        ``x.shape[-2] != prod(shape)``.

    See Also
    --------
    sinusoidal_nd : the table this adds.
    fastpe.reference.add_sinusoidal_nd : the NumPy definition.

    Examples
    --------
    >>> import numpy as np
    >>> import fastpe
    >>> tokens = np.ones((1, 2 * 3 * 4, 32))
    >>> _ = fastpe.add_sinusoidal_nd(tokens, (2, 3, 4), scale=0.5)
    >>> expected = 0.5 + fastpe.sinusoidal_nd((2, 3, 4), 32, dtype=np.float64).reshape(24, 32)
    >>> bool(np.allclose(tokens[0], expected))
    True
    """
    xa, out_view = x_and_out(x, out)
    shape, dim, lo, hi = check_grid_nd(shape, xa.shape[-1], min_timescale, max_timescale)
    tokens = math.prod(shape)
    if xa.shape[-2] != tokens:
        raise ValueError(f"x must have prod(shape) = {tokens} tokens on axis -2, got shape {xa.shape}")
    scale, num_threads = check_scale(scale), params.NUM_THREADS.check(num_threads)
    _tables.add_table_rows(xa, out_view, grid_nd_table(shape, dim, lo, hi, encoding_dtype_for(xa.dtype)),
                           _first_rows(xa), None, scale, num_threads)
    return caller_result(x, out)

