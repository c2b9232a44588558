"""2-D and n-D sinusoidal grids (vision and video models).

A grid encoding is the concatenation of 1-D encodings of each token's
coordinates, so it is built from per-axis [sin | cos] blocks computed by the
1-D kernel in float64, placed in the layout's column order, rounded once to
the dtype and kept (read-only) in the bounded cache. The fused adds then run
the learned-table kernel over it: each element of x is read and written once.
Tokens are ordered row-major (the first grid axis outermost).
"""

from __future__ import annotations

import math
import numbers
import operator
from typing import Optional

import numpy as np
import numpy.typing as npt

from . import _api
from ._interop import caller_result
from ._memory import new_array
from ._plan import CACHE
from ._typing import ArrayT, Bool, GridLayout, Int, OptInt, OptReal, Real, Shape, Table
from ._validation import check_count, check_dtype_argument, check_layout, check_real_scalar, encoding_dtype_for, x_and_out

LAYOUTS_2D = ("mae", "timm", "big_vision")


def check_grid_2d(grid_h, grid_w, dim, base, layout, cls_token):
    grid_h = check_count("grid_h", grid_h)
    grid_w = check_count("grid_w", grid_w)
    dim = check_count("dim", dim)
    base = check_real_scalar("base", base, positive=True)
    check_layout(layout, LAYOUTS_2D)
    if dim % 4:
        raise ValueError(f"dim must be a multiple of 4 for a 2-D sin-cos grid (sin and cos of 2 axes), got {dim}")
    if layout == "big_vision" and dim < 8:
        raise ValueError(f"dim must be >= 8 for layout='big_vision' (its frequencies divide by dim/4 - 1), got {dim}")
    if not isinstance(cls_token, (bool, np.bool_)):
        raise TypeError(f"cls_token must be a bool, got {cls_token!r}")
    return grid_h, grid_w, dim, base, bool(cls_token)


def check_grid_nd(shape, dim, min_timescale, max_timescale):
    if isinstance(shape, numbers.Integral) and not isinstance(shape, (bool, np.bool_)):
        shape = (shape,)
    try:
        shape = tuple(operator.index(s) for s in shape)
    except TypeError:
        raise TypeError(f"shape must be a tuple of non-negative ints, got {shape!r}") from None
    if not shape or any(s < 0 for s in shape):
        raise ValueError(f"shape must be a non-empty tuple of non-negative ints, got {shape!r}")
    dim = check_count("dim", dim)
    min_timescale = check_real_scalar("min_timescale", min_timescale, positive=True)
    max_timescale = check_real_scalar("max_timescale", max_timescale, positive=True)
    n_timescales = dim // (2 * len(shape))
    if n_timescales < 2:
        raise ValueError(f"dim must be >= {4 * len(shape)} for a {len(shape)}-D grid: tensor2tensor gives each axis "
                         f"dim // (2 * ndim) >= 2 timescales, got dim={dim}")
    return shape, dim, min_timescale, max_timescale


def _axis_blocks(n, freq):
    """[sin | cos] of positions 0..n-1 at the given frequencies, float64, by the 1-D kernel."""
    return _api.sinusoidal_encode(np.arange(n, dtype=np.float64), 2 * freq.shape[0], layout="concat",
                                  inv_freq=freq, dtype=np.float64)


def _grid_2d_float64(grid_h, grid_w, dim, base, layout, cls_token):
    table = new_array((grid_h * grid_w + cls_token, dim), np.float64, "a 2-D grid table (grid_h*grid_w [+1], dim)")
    table[:cls_token] = 0.0
    q = dim // 4
    exponent = np.arange(q, dtype=np.float64) / (q - 1 if layout == "big_vision" else q)
    freq = 1.0 / np.float64(base) ** exponent
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
    increment = math.log(max_timescale / min_timescale) / (n_timescales - 1)
    freq = min_timescale * np.exp(np.arange(n_timescales, dtype=np.float64) * -increment)
    table = new_array(shape + (dim,), np.float64, "an n-D grid table (*shape, dim)")
    table[...] = 0.0
    for axis, n in enumerate(shape):
        view = [1] * len(shape) + [2 * n_timescales]
        view[axis] = n
        block = _axis_blocks(n, freq).reshape(view)
        table[..., 2 * axis * n_timescales: 2 * (axis + 1) * n_timescales] = block
    return table.reshape(-1, dim)


def _cached(key, build, dtype):
    def make():
        table64 = build()
        table = table64 if dtype == table64.dtype else _copy(table64, dtype)
        table.flags.writeable = False
        return table

    return CACHE.get(key + (np.dtype(dtype).str,), make)


def _copy(table, dtype):
    """A new writeable copy of a grid table in `dtype` (what the caller asked for is kept apart from the cache)."""
    copy = new_array(table.shape, dtype, "a grid table")
    copy[...] = table
    return copy


def grid_2d_table(grid_h, grid_w, dim, base, layout, cls_token, dtype):
    """The (grid_h*grid_w [+1], dim) table, read-only and cached."""
    return _cached(("grid2d", grid_h, grid_w, dim, base, layout, cls_token),
                   lambda: _grid_2d_float64(grid_h, grid_w, dim, base, layout, cls_token), dtype)


def grid_nd_table(shape, dim, min_timescale, max_timescale, dtype):
    """The (prod(shape), dim) table, read-only and cached."""
    return _cached(("gridnd", shape, dim, min_timescale, max_timescale),
                   lambda: _grid_nd_float64(shape, dim, min_timescale, max_timescale), dtype)


def sincos_2d(grid_h: Int, grid_w: Int, dim: Int, *, base: Real = 10000.0, layout: GridLayout = "mae",
              cls_token: Bool = False, dtype: npt.DTypeLike = np.float32) -> Table:
    """2-D sin-cos encoding of a grid_h x grid_w grid: shape (grid_h*grid_w [+1], dim)."""
    grid_h, grid_w, dim, base, cls_token = check_grid_2d(grid_h, grid_w, dim, base, layout, cls_token)
    dtype = check_dtype_argument(dtype)
    return _copy(grid_2d_table(grid_h, grid_w, dim, base, layout, cls_token, dtype), dtype)


def add_sincos_2d(x: ArrayT, grid_h: Int, grid_w: Int, *, base: Real = 10000.0, layout: GridLayout = "mae",
                  cls_token: Bool = False, scale: OptReal = None, out: Optional[ArrayT] = None,
                  num_threads: OptInt = None) -> ArrayT:
    """x * scale + sincos_2d(...) into x (..., grid_h*grid_w [+1], dim), in place (or out)."""
    xa, out_view = x_and_out(x, out)
    grid_h, grid_w, dim, base, cls_token = check_grid_2d(grid_h, grid_w, xa.shape[-1], base, layout, cls_token)
    tokens = grid_h * grid_w + cls_token
    if xa.shape[-2] != tokens:
        raise ValueError(f"x must have {tokens} tokens on axis -2 (grid_h * grid_w{' + 1 cls' if cls_token else ''}), "
                         f"got shape {xa.shape}")
    table = grid_2d_table(grid_h, grid_w, dim, base, layout, cls_token, encoding_dtype_for(xa.dtype))
    # The NumPy views, not the caller's objects: a tensor is exported once.
    _api.add_table(xa, table, scale=scale, out=out_view, num_threads=num_threads)
    return caller_result(x, out)


def sinusoidal_nd(shape: Shape, dim: Int, *, min_timescale: Real = 1.0,
                  max_timescale: Real = 1e4, dtype: npt.DTypeLike = np.float32) -> Table:
    """tensor2tensor's add_timing_signal_nd encoding: shape (*shape, dim)."""
    shape, dim, lo, hi = check_grid_nd(shape, dim, min_timescale, max_timescale)
    dtype = check_dtype_argument(dtype)
    return _copy(grid_nd_table(shape, dim, lo, hi, dtype), dtype).reshape(shape + (dim,))


def add_sinusoidal_nd(x: ArrayT, shape: Shape, *, min_timescale: Real = 1.0,
                      max_timescale: Real = 1e4, scale: OptReal = None, out: Optional[ArrayT] = None,
                      num_threads: OptInt = None) -> ArrayT:
    """x * scale + sinusoidal_nd(shape, D) into x (..., prod(shape), D), in place (or out)."""
    xa, out_view = x_and_out(x, out)
    shape, dim, lo, hi = check_grid_nd(shape, xa.shape[-1], min_timescale, max_timescale)
    tokens = math.prod(shape)
    if xa.shape[-2] != tokens:
        raise ValueError(f"x must have prod(shape) = {tokens} tokens on axis -2, got shape {xa.shape}")
    _api.add_table(xa, grid_nd_table(shape, dim, lo, hi, encoding_dtype_for(xa.dtype)), scale=scale, out=out_view,
                   num_threads=num_threads)
    return caller_result(x, out)

