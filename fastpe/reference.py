"""Plain NumPy reference implementation of fastpe's public API.

Same signatures and semantics as the compiled functions, written to be
obviously correct rather than fast: angles are float64 products
position * w_k, sin and cos come from NumPy, and the result is rounded to the
output dtype once at the end.

What it shares with the compiled path, deliberately, and nothing else:

* the argument checks (fastpe._validation and its rotary part
  fastpe._validation.rotary), so both reject the same inputs with the same
  messages;
* the reader of Hugging Face's RoPE scalings and the scaled frequencies
  (fastpe._rope, built anew on every call: the implementation keeps them
  in its cache);
* the type aliases of the public signatures (fastpe._typing);
* the formulas of fastpe._formulas (array allocation, make_positions, the
  RoPE scaling rules, the ALiBi slopes and T5 buckets, the rotary position
  rules), which the tests check on their own against independent sources
  (Hugging Face, the models' and the papers' code).

Every encoding, table, grid, rotation and bias is computed here; the preset
frequencies are written out again from each model's source. No
implementation module imports this one (tools/import_graph.py checks it).

Use it to check fastpe, or where the compiled extension is unavailable.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence, Union, overload

import numpy as np
import numpy.typing as npt

from . import _formulas
from ._formulas import DEFAULT_BASE, float_range, new_array
from ._rope import call_frequencies
from ._typing import (
    ArrayT,
    Bool,
    GridLayout,
    Int,
    Layout,
    OptArrayLike,
    OptInt,
    OptReal,
    Preset,
    Real,
    RotaryLayout,
    Scaling,
    Shape,
    Table,
)
from ._validation import (
    NATIVE_FLOATS,
    caller_result,
    caller_results,
    check_grid_2d,
    check_grid_nd,
    Encoding,
    add_request,
    check_count,
    check_dtype_argument,
    check_make_positions,
    check_scale,
    real_array,
    table_offset,
    table_request,
    table_target,
    x_and_out,
)
from ._validation import params
from ._validation.rotary import (
    complete_rotary_request,
    last_position,
    rotary_request,
    rotary_table_arguments,
    rotation_targets,
    row_positions,
)

__all__ = ["sinusoidal_table", "sinusoidal_encode", "add_sinusoidal", "add_table", "frequencies", "make_positions",
           "sincos_2d", "add_sincos_2d", "sinusoidal_nd", "add_sinusoidal_nd", "apply_rotary", "rotary_cos_sin",
           "alibi_slopes", "add_alibi", "relative_position_bucket", "add_relative_bias"]


def frequencies(dim: Int, base: Real = DEFAULT_BASE, layout: str = "interleaved") -> npt.NDArray[np.float64]:
    """The pair frequencies ``w_k = base ** (-2k / dim)`` of the default encoding.

    Parameters
    ----------
    dim : int
        Encoding width.
    base : float, optional
        Frequency base (default 10000).
    layout : {"interleaved", "concat"}, optional
        ``k = 0 .. ceil(dim / 2) - 1`` for ``"interleaved"`` (default),
        ``k = 0 .. dim // 2 - 1`` for ``"concat"``.

    Returns
    -------
    w : ndarray of float64
        The frequencies, as `fastpe.sinusoidal_table`'s ``inv_freq`` takes them.

    Examples
    --------
    >>> import numpy as np
    >>> import fastpe
    >>> fastpe.reference.frequencies(4).tolist()
    [1.0, 0.01]
    >>> w = fastpe.reference.frequencies(6, layout="concat")
    >>> bool(np.array_equal(fastpe.sinusoidal_table(5, 6, layout="concat", inv_freq=w),
    ...                     fastpe.sinusoidal_table(5, 6, layout="concat")))
    True
    """
    n = (dim + 1) // 2 if layout == "interleaved" else dim // 2
    k = float_range(n, "the frequencies")
    return np.float64(base) ** (-(2.0 * k) / dim)


def _preset_frequencies(enc):
    """Each preset's frequencies, written as its source writes them (in float64)."""
    d, half = enc.dim, enc.dim // 2
    k = np.arange(half, dtype=np.float64)
    if enc.preset in ("vaswani", "marian"):
        return frequencies(d, enc.base, "interleaved")
    if enc.preset == "tensor2tensor":  # get_timing_signal_1d: min_timescale * exp(-k * increment)
        increment = math.log(enc.max_timescale / enc.min_timescale) / max(half - 1, 1)
        return enc.min_timescale * np.exp(k * -increment)
    if enc.preset == "fairseq":  # get_embedding: exp(-k * log(base) / (half - 1))
        return np.exp(k * -(math.log(enc.base) / (half - 1)))
    if enc.preset == "whisper":  # sinusoids: exp(-k * log(max_timescale) / (channels // 2 - 1))
        return np.exp(k * -(math.log(enc.max_timescale) / (half - 1)))
    raise AssertionError(enc.preset)


def _column_layout(enc):
    if enc.preset is None:
        return enc.layout
    return {"vaswani": "interleaved", "marian": "marian"}.get(enc.preset, "concat")


def _encode64(positions, enc):
    """float64 encodings of a float64 positions array: shape positions.shape + (dim,)."""
    dim = enc.dim
    pe = new_array(positions.shape + (dim,), np.float64, "the float64 encodings (positions.shape + (dim,))")
    pe[...] = 0.0
    if pe.size == 0:
        return pe  # no frequencies needed (dim may be huge)
    if enc.preset is not None:
        w = _preset_frequencies(enc)
    elif enc.inv_freq is not None:
        w = enc.inv_freq
    else:
        w = frequencies(dim, enc.base, enc.layout)
    angles = positions[..., None] * w
    layout = _column_layout(enc)
    if layout == "interleaved":
        pe[..., 0::2] = np.sin(angles)
        pe[..., 1::2] = np.cos(angles[..., : dim // 2])
    elif layout == "marian":  # sines of the even-index angles, then cosines of the odd-index ones
        sentinel = (dim + 1) // 2
        pe[..., :sentinel] = np.sin(angles)
        pe[..., sentinel:] = np.cos(angles[..., : dim // 2])
    else:
        half = dim // 2
        pe[..., :half] = np.sin(angles)
        pe[..., half : 2 * half] = np.cos(angles)
    if enc.padding_idx is not None:
        pe[positions == enc.padding_idx] = 0.0
    return pe


def make_positions(token_ids: npt.ArrayLike, padding_idx: Int, *,
                   past_length: npt.ArrayLike = 0) -> npt.NDArray[np.int64]:
    """Reference of `fastpe.make_positions`; both use the shared formula (fastpe._formulas).

    ``(cumsum(mask) + past_length) * mask + padding_idx`` along the last axis,
    ``mask = token_ids != padding_idx``, as int64: fairseq's ``make_positions``,
    HF's ``create_position_ids_from_input_ids``.

    Examples
    --------
    >>> import numpy as np
    >>> import fastpe
    >>> ids = np.array([1, 1, 7, 8, 9])                 # left padding, padding_idx = 1
    >>> fastpe.reference.make_positions(ids, 1).tolist()
    [1, 1, 2, 3, 4]
    >>> bool(np.array_equal(fastpe.make_positions(ids, 1), [1, 1, 2, 3, 4]))
    True
    """
    ids, padding_idx, past_length = check_make_positions(token_ids, padding_idx, past_length)
    return _formulas.make_positions(ids, padding_idx, past_length)


def sinusoidal_table(n_positions: Int, dim: Int, *, offset: Real = 0, base: OptReal = None,
                     layout: Optional[Layout] = None, dtype: Optional[npt.DTypeLike] = None, out: Optional[Table] = None,
                     num_threads: OptInt = None, inv_freq: OptArrayLike = None, preset: Optional[Preset] = None,
                     padding_idx: OptInt = None, min_timescale: OptReal = None,
                     max_timescale: OptReal = None) -> Table:
    """NumPy definition of `fastpe.sinusoidal_table` (same signature and checks).

    Angles ``position * w_k`` in float64, ``np.sin`` / ``np.cos``, each preset's
    frequencies written as its source writes them; rounded to the dtype once.

    Examples
    --------
    >>> import numpy as np
    >>> import fastpe
    >>> ref = fastpe.reference.sinusoidal_table(4096, 64, offset=-7, dtype=np.float64)
    >>> got = fastpe.sinusoidal_table(4096, 64, offset=-7, dtype=np.float64)
    >>> bool(np.abs(got - ref).max() < 1e-12)
    True
    """
    n_positions = check_count("n_positions", n_positions)
    dim = check_count("dim", dim)
    offset = table_offset(offset, n_positions)
    enc = Encoding(dim, base, layout, inv_freq, preset, padding_idx, min_timescale, max_timescale)
    params.NUM_THREADS.check(num_threads)
    table = table_target(out, (n_positions, dim), dtype, "n_positions x dim")
    positions = offset + float_range(n_positions, "the positions")
    table[...] = _encode64(positions, enc)
    return caller_result(table, out)


def sinusoidal_encode(positions: npt.ArrayLike, dim: Int, *, base: OptReal = None, layout: Optional[Layout] = None,
                      dtype: Optional[npt.DTypeLike] = None, out: Optional[Table] = None, num_threads: OptInt = None,
                      inv_freq: OptArrayLike = None, preset: Optional[Preset] = None, padding_idx: OptInt = None,
                      min_timescale: OptReal = None, max_timescale: OptReal = None) -> Table:
    """NumPy definition of `fastpe.sinusoidal_encode` (same signature and checks).

    Examples
    --------
    >>> import numpy as np
    >>> import fastpe
    >>> positions = np.array([[0.5, 3.0], [1e5, -2.0]])
    >>> ref = fastpe.reference.sinusoidal_encode(positions, 32, preset="fairseq", dtype=np.float64)
    >>> got = fastpe.sinusoidal_encode(positions, 32, preset="fairseq", dtype=np.float64)
    >>> bool(np.abs(got - ref).max() < 1e-9)
    True
    """
    positions = real_array("positions", positions, position=True)
    dim = check_count("dim", dim)
    enc = Encoding(dim, base, layout, inv_freq, preset, padding_idx, min_timescale, max_timescale)
    params.NUM_THREADS.check(num_threads)
    table = table_target(out, positions.shape + (dim,), dtype, "positions.shape + (dim,)")
    table[...] = _encode64(positions, enc)
    return caller_result(table, out)


def add_sinusoidal(x: ArrayT, *, offset: npt.ArrayLike = 0, positions: OptArrayLike = None, scale: OptReal = None,
                   base: OptReal = None, layout: Optional[Layout] = None, out: Optional[ArrayT] = None,
                   num_threads: OptInt = None, inv_freq: OptArrayLike = None, preset: Optional[Preset] = None,
                   padding_idx: OptInt = None, min_timescale: OptReal = None,
                   max_timescale: OptReal = None) -> ArrayT:
    """NumPy definition of `fastpe.add_sinusoidal` (same signature and checks).

    Builds the encoding of every token in float64, forms ``x * scale + PE`` in
    float64 and rounds it once into `x` (or `out`).

    Examples
    --------
    >>> import numpy as np
    >>> import fastpe
    >>> x = np.random.default_rng(0).standard_normal((4, 128, 64)).astype(np.float32)
    >>> ref = fastpe.reference.add_sinusoidal(x.copy(), offset=np.arange(4), scale=8.0)
    >>> got = fastpe.add_sinusoidal(x, offset=np.arange(4), scale=8.0)
    >>> bool(np.allclose(got, ref, rtol=1e-6, atol=1e-6))
    True
    """
    req = add_request(x, offset, positions, scale, base, layout, inv_freq, out, num_threads,
                      preset, padding_idx, min_timescale, max_timescale)
    T = req.x.shape[-2]
    if req.positions is None:
        # fairseq's implicit positions start at padding_idx + 1.
        start = req.offset + req.encoding.implicit_shift
        positions = start[..., None] + np.arange(T, dtype=np.float64)
    else:
        positions = req.positions
    pe = _encode64(positions, req.encoding)
    values = req.x.astype(np.float64)
    if req.scale is not None:
        values = values * req.scale
    target = req.x if req.out is None else req.out
    target[...] = values + pe
    return caller_result(x, out)


def add_table(x: ArrayT, table: npt.ArrayLike, *, offset: npt.ArrayLike = 0, positions: OptArrayLike = None,
              scale: OptReal = None, out: Optional[ArrayT] = None, num_threads: OptInt = None) -> ArrayT:
    """NumPy definition of `fastpe.add_table` (same signature and checks).

    Gathers ``table[positions]`` and adds it: in the common dtype when `x` and
    `table` share float32 or float64, else in float64, rounded once.

    Examples
    --------
    >>> import numpy as np
    >>> import fastpe
    >>> rng = np.random.default_rng(0)
    >>> x, table = rng.standard_normal((2, 16, 8)), rng.standard_normal((40, 8))
    >>> ref = fastpe.reference.add_table(x.copy(), table, offset=np.array([0, 20]))
    >>> got = fastpe.add_table(x, table, offset=np.array([0, 20]))
    >>> bool(np.array_equal(got, ref))
    True
    """
    req = table_request(x, table, offset, positions, scale, out, num_threads)
    xa = req.x
    if req.positions is None:
        positions = req.offset[..., None] + np.arange(xa.shape[-2])
    else:
        positions = req.positions
    # The kernel's rule: one native dtype adds in it; mixed or 16-bit dtypes in float64.
    same = xa.dtype == req.table.dtype and xa.dtype in NATIVE_FLOATS
    wider = xa.dtype if same else np.dtype(np.float64)
    values = xa.astype(wider)
    if req.scale is not None:
        values = values * wider.type(req.scale)
    target = xa if req.out is None else req.out
    target[...] = values + req.table[positions].astype(wider)
    return caller_result(x, out)


def sincos_2d(grid_h: Int, grid_w: Int, dim: Int, *, base: Real = DEFAULT_BASE, layout: GridLayout = "mae",
              cls_token: Bool = False, dtype: npt.DTypeLike = np.float32) -> Table:
    """NumPy definition of `fastpe.sincos_2d`: each layout written the way its source writes it.

    Examples
    --------
    >>> import numpy as np
    >>> import fastpe
    >>> for layout in ("mae", "timm", "big_vision"):
    ...     ref = fastpe.reference.sincos_2d(7, 5, 64, layout=layout, cls_token=True)
    ...     print(layout, bool(np.allclose(fastpe.sincos_2d(7, 5, 64, layout=layout, cls_token=True), ref)))
    mae True
    timm True
    big_vision True
    """
    grid_h, grid_w, dim, base, cls_token = check_grid_2d(grid_h, grid_w, dim, base, layout, cls_token)
    dtype = check_dtype_argument(dtype)
    result = new_array((grid_h * grid_w + cls_token, dim), dtype, "a 2-D grid table (grid_h*grid_w [+1], dim)")
    q = dim // 4
    if layout == "mae":
        # get_2d_sincos_pos_embed: meshgrid(grid_w, grid_h) puts w first; each half is
        # get_1d_sincos_pos_embed_from_grid(dim // 2, coordinate): omega = 1 / base**(k / (dim/4)).
        gw, gh = np.meshgrid(np.arange(grid_w, dtype=np.float64), np.arange(grid_h, dtype=np.float64))

        def one_axis(pos):
            omega = 1.0 / base ** (np.arange(q, dtype=np.float64) / q)
            angles = np.outer(pos.ravel(), omega)
            return np.concatenate([np.sin(angles), np.cos(angles)], axis=1)

        pe = np.concatenate([one_axis(gw), one_axis(gh)], axis=1)
    elif layout == "timm":
        # build_sincos2d_pos_embed: ij grid (h, w) per token, bands 1 / base**(k / (dim/4)),
        # stack([sin, cos]) over the (axis, band) block: [sin h | sin w | cos h | cos w].
        h, w = np.meshgrid(np.arange(grid_h, dtype=np.float64), np.arange(grid_w, dtype=np.float64), indexing="ij")
        bands = 1.0 / base ** (np.arange(q, dtype=np.float64) / q)
        angles = np.stack([h.ravel(), w.ravel()], axis=1)[..., None] * bands
        pe = np.stack([np.sin(angles), np.cos(angles)], axis=1).reshape(grid_h * grid_w, dim)
    else:
        # big_vision posemb_sincos_2d: y, x = mgrid[:h, :w]; omega = 1 / base**(k / (dim/4 - 1));
        # [sin x | cos x | sin y | cos y].
        y, x = np.mgrid[:grid_h, :grid_w]
        omega = 1.0 / base ** (np.arange(q, dtype=np.float64) / (q - 1))
        ya = np.outer(y.ravel().astype(np.float64), omega)
        xa = np.outer(x.ravel().astype(np.float64), omega)
        pe = np.concatenate([np.sin(xa), np.cos(xa), np.sin(ya), np.cos(ya)], axis=1)
    result[:cls_token] = 0.0
    result[cls_token:] = pe.reshape(grid_h * grid_w, dim)  # explicit: size-0 grids too
    return result


def sinusoidal_nd(shape: Shape, dim: Int, *, min_timescale: Real = 1.0,
                  max_timescale: Real = 1e4, dtype: npt.DTypeLike = np.float32) -> Table:
    """NumPy definition of `fastpe.sinusoidal_nd` (tensor2tensor's ``add_timing_signal_nd``).

    Each axis gets ``dim // (2 ndim)`` timescales and the ``[sin | cos]`` of its
    coordinate in its own slice of channels; leftover channels are zero.

    Examples
    --------
    >>> import numpy as np
    >>> import fastpe
    >>> ref = fastpe.reference.sinusoidal_nd((4, 6, 6), 100)
    >>> bool(np.allclose(fastpe.sinusoidal_nd((4, 6, 6), 100), ref))
    True
    """
    shape, dim, lo, hi = check_grid_nd(shape, dim, min_timescale, max_timescale)
    dtype = check_dtype_argument(dtype)
    result = new_array(shape + (dim,), dtype, "an n-D grid table (*shape, dim)")
    n = dim // (2 * len(shape))
    inv_timescales = lo * np.exp(np.arange(n, dtype=np.float64) * -(math.log(hi / lo) / (n - 1)))
    signal = np.zeros(shape + (dim,), dtype=np.float64)
    for axis, length in enumerate(shape):
        scaled = np.arange(length, dtype=np.float64)[:, None] * inv_timescales
        block = np.concatenate([np.sin(scaled), np.cos(scaled)], axis=1)
        index = [None] * len(shape)
        index[axis] = slice(None)
        signal[..., 2 * axis * n: 2 * (axis + 1) * n] += block[tuple(index)]
    result[...] = signal
    return result


def _add_grid(x, out, table64, scale):
    """x * scale + table64 in float64, rounded once into out (or x): validated arrays."""
    values = x.astype(np.float64)
    if scale is not None:
        values = values * scale
    target = x if out is None else out
    target[...] = values + table64


def add_sincos_2d(x: ArrayT, grid_h: Int, grid_w: Int, *, base: Real = DEFAULT_BASE, layout: GridLayout = "mae",
                  cls_token: Bool = False, scale: OptReal = None, out: Optional[ArrayT] = None,
                  num_threads: OptInt = None) -> ArrayT:
    """NumPy definition of `fastpe.add_sincos_2d` (same signature and checks).

    Examples
    --------
    >>> import numpy as np
    >>> import fastpe
    >>> x = np.random.default_rng(0).standard_normal((2, 17, 32))
    >>> ref = fastpe.reference.add_sincos_2d(x.copy(), 4, 4, cls_token=True, scale=2.0)
    >>> got = fastpe.add_sincos_2d(x, 4, 4, cls_token=True, scale=2.0)
    >>> bool(np.allclose(got, ref, rtol=0, atol=1e-12))
    True
    """
    xa, out_view = x_and_out(x, out)
    grid_h, grid_w, dim, base, cls_token = check_grid_2d(grid_h, grid_w, xa.shape[-1], base, layout, cls_token)
    scale = check_scale(scale)
    params.NUM_THREADS.check(num_threads)
    tokens = grid_h * grid_w + cls_token
    if xa.shape[-2] != tokens:
        raise ValueError(f"x must have {tokens} tokens on axis -2, got shape {xa.shape}")
    table = sincos_2d(grid_h, grid_w, dim, base=base, layout=layout, cls_token=cls_token, dtype=np.float64)
    _add_grid(xa, out_view, table, scale)
    return caller_result(x, out)


def add_sinusoidal_nd(x: ArrayT, shape: Shape, *, min_timescale: Real = 1.0,
                      max_timescale: Real = 1e4, scale: OptReal = None, out: Optional[ArrayT] = None,
                      num_threads: OptInt = None) -> ArrayT:
    """NumPy definition of `fastpe.add_sinusoidal_nd` (same signature and checks).

    Examples
    --------
    >>> import numpy as np
    >>> import fastpe
    >>> x = np.random.default_rng(0).standard_normal((1, 24, 16))
    >>> ref = fastpe.reference.add_sinusoidal_nd(x.copy(), (2, 3, 4))
    >>> bool(np.allclose(fastpe.add_sinusoidal_nd(x, (2, 3, 4)), ref, rtol=0, atol=1e-12))
    True
    """
    xa, out_view = x_and_out(x, out)
    shape, dim, lo, hi = check_grid_nd(shape, xa.shape[-1], min_timescale, max_timescale)
    scale = check_scale(scale)
    params.NUM_THREADS.check(num_threads)
    if xa.shape[-2] != math.prod(shape):
        raise ValueError(f"x must have prod(shape) = {math.prod(shape)} tokens on axis -2, got shape {xa.shape}")
    table = sinusoidal_nd(shape, dim, min_timescale=lo, max_timescale=hi, dtype=np.float64).reshape(-1, dim)
    _add_grid(xa, out_view, table, scale)
    return caller_result(x, out)


# One array gives that array back (or out[0]), several give a tuple.
@overload
def apply_rotary(array: ArrayT, /, *, offset: npt.ArrayLike = ..., positions: OptArrayLike = ...,
                 base: OptReal = ..., layout: RotaryLayout = ..., rotary_dim: OptInt = ...,
                 inv_freq: OptArrayLike = ..., scaling: Scaling = ..., seq_axis: Int = ...,
                 out: Optional[Sequence[ArrayT]] = ..., num_threads: OptInt = ...) -> ArrayT:
 ...
@overload
def apply_rotary(first: ArrayT, second: ArrayT, /, *arrays: ArrayT, offset: npt.ArrayLike = ...,
                 positions: OptArrayLike = ..., base: OptReal = ..., layout: RotaryLayout = ...,
                 rotary_dim: OptInt = ..., inv_freq: OptArrayLike = ..., scaling: Scaling = ...,
                 seq_axis: Int = ..., out: Optional[Sequence[ArrayT]] = ...,
                 num_threads: OptInt = ...) -> tuple[ArrayT, ...]:
 ...
def apply_rotary(*arrays: ArrayT, offset: npt.ArrayLike = 0, positions: OptArrayLike = None,
                 base: OptReal = DEFAULT_BASE, layout: RotaryLayout = "half", rotary_dim: OptInt = None,
                 inv_freq: OptArrayLike = None, scaling: Scaling = None, seq_axis: Int = -2,
                 out: Optional[Sequence[ArrayT]] = None,
                 num_threads: OptInt = None) -> Union[ArrayT, tuple[ArrayT, ...]]:
    """NumPy definition of `fastpe.apply_rotary`: RoPE as HF writes it.

    ``x * cos + rotate(x) * sin`` on the first `rotary_dim` channels, angles
    ``position * w_k`` in float64, rounded once to the arrays' dtype. Same
    signature and checks as `fastpe.apply_rotary`.

    Examples
    --------
    >>> import numpy as np
    >>> import fastpe
    >>> rng = np.random.default_rng(0)
    >>> q, k = rng.standard_normal((2, 4, 32, 16)), rng.standard_normal((2, 2, 32, 16))
    >>> scaling = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
    ...            "high_freq_factor": 4.0, "original_max_position_embeddings": 8}
    >>> ref_q, ref_k = fastpe.reference.apply_rotary(q.copy(), k.copy(), offset=np.array([3, 9]), scaling=scaling)
    >>> got_q, got_k = fastpe.apply_rotary(q, k, offset=np.array([3, 9]), scaling=scaling)
    >>> bool(np.allclose(got_q, ref_q, rtol=0, atol=1e-12) and np.allclose(got_k, ref_k, rtol=0, atol=1e-12))
    True
    """
    req = rotary_request(arrays, offset, positions, base, layout, rotary_dim, seq_axis, out, num_threads)
    complete_rotary_request(req, call_frequencies(req.width, req.rotary_dim, req.base, scaling, inv_freq,
                                                  _formulas.rope_seq_len(last_position(req))), out)
    r, h = req.rotary_dim, req.rotary_dim // 2
    rotated = []
    for i, a in enumerate(req.arrays):
        angles = row_positions(req, i)[..., None] * req.freq
        cos = np.cos(angles) * req.attention_factor
        sin = np.sin(angles) * req.attention_factor
        x = a.astype(np.float64)
        if req.layout == "half":      # rotate_half: pair (k, k + r/2)
            x1, x2 = x[..., :h], x[..., h:r]
        else:                         # GPT-J / Meta: pair (2k, 2k + 1)
            x1, x2 = x[..., 0:r:2], x[..., 1:r:2]
        y = x.copy()
        rotated1 = x1 * cos - x2 * sin
        rotated2 = x2 * cos + x1 * sin
        if req.layout == "half":
            y[..., :h], y[..., h:r] = rotated1, rotated2
        else:
            y[..., 0:r:2], y[..., 1:r:2] = rotated1, rotated2
        rotated.append(y)
    # Every array is read before anything is written (they may share memory).
    for target, y in zip(rotation_targets(req), rotated):
        target[...] = y
    return caller_results(arrays, out)


def rotary_cos_sin(n_positions: Int, rotary_dim: Int, *, offset: Real = 0, base: Real = DEFAULT_BASE,
                   scaling: Scaling = None, layout: RotaryLayout = "half",
                   dtype: npt.DTypeLike = np.float32) -> tuple[Table, Table]:
    """NumPy definition of `fastpe.rotary_cos_sin` (same signature and checks).

    Examples
    --------
    >>> import numpy as np
    >>> import fastpe
    >>> ref_cos, ref_sin = fastpe.reference.rotary_cos_sin(64, 32, offset=100, layout="interleaved")
    >>> cos, sin = fastpe.rotary_cos_sin(64, 32, offset=100, layout="interleaved")
    >>> bool(np.allclose(cos, ref_cos, atol=1e-6) and np.allclose(sin, ref_sin, atol=1e-6))
    True
    """
    n_positions, rotary_dim, offset, base, layout, dtype = rotary_table_arguments(
        n_positions, rotary_dim, offset, base, layout, dtype)
    tables = [new_array((n_positions, rotary_dim), dtype, f"the {name} table of rotary_cos_sin")
              for name in ("cos", "sin")]
    scaled = call_frequencies(None, rotary_dim, base, scaling, None, _formulas.rope_seq_len(offset + n_positions - 1))
    freq, factor = scaled.freq, scaled.attention_factor  # float64 only
    angles = (offset + np.arange(n_positions, dtype=np.float64))[:, None] * freq
    cos, sin = np.cos(angles) * factor, np.sin(angles) * factor
    if layout == "half":
        cos, sin = np.concatenate([cos, cos], axis=1), np.concatenate([sin, sin], axis=1)
    else:
        cos, sin = np.repeat(cos, 2, axis=1), np.repeat(sin, 2, axis=1)
    tables[0][...], tables[1][...] = cos, sin
    return tables[0], tables[1]


from ._reference_bias import add_alibi, add_relative_bias, alibi_slopes, relative_position_bucket  # noqa: E402
