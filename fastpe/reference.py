"""Plain NumPy reference implementation of fastpe's public API.

Same signatures and semantics as the compiled functions, written to be
obviously correct rather than fast: angles are float64 products
position * w_k, sin and cos come from NumPy, and the result is rounded to the
output dtype once at the end. It shares only the argument checks with the
compiled path (so both reject the same inputs with the same messages);
every number is computed here.

Use it to check fastpe, or where the compiled extension is unavailable.
"""

import numpy as np

from ._validation import Encoding, add_request, check_count, check_dtype_argument, check_num_threads, check_out, check_real_scalar, real_array

__all__ = ["sinusoidal_table", "sinusoidal_encode", "add_sinusoidal", "frequencies"]


def frequencies(dim, base=10000.0, layout="interleaved"):
    """w_k = base ** (-2k / dim) for k = 0 .. ceil(dim/2)-1 (interleaved) or dim//2-1 (concat)."""
    n = (dim + 1) // 2 if layout == "interleaved" else dim // 2
    k = np.arange(n, dtype=np.float64)
    return np.float64(base) ** (-(2.0 * k) / dim)


def _encode64(positions, enc):
    """float64 encodings of a float64 positions array: shape positions.shape + (dim,)."""
    dim = enc.dim
    w = frequencies(dim, enc.base, enc.layout) if enc.inv_freq is None else enc.inv_freq
    angles = positions[..., None] * w
    pe = np.zeros(positions.shape + (dim,), dtype=np.float64)
    if enc.layout == "interleaved":
        pe[..., 0::2] = np.sin(angles)
        pe[..., 1::2] = np.cos(angles[..., : dim // 2])
    else:
        half = dim // 2
        pe[..., :half] = np.sin(angles)
        pe[..., half : 2 * half] = np.cos(angles)
    return pe


def _store(result, dtype, out):
    if out is None:
        return result.astype(dtype)
    out[...] = result
    return out


def sinusoidal_table(n_positions, dim, *, offset=0, base=10000.0, layout="interleaved",
                     dtype=np.float32, out=None, num_threads=None, inv_freq=None):
    n_positions = check_count("n_positions", n_positions)
    dim = check_count("dim", dim)
    offset = check_real_scalar("offset", offset)
    enc = Encoding(dim, base, layout, inv_freq)
    check_num_threads(num_threads)
    dtype = check_dtype_argument(dtype)
    if out is not None:
        out = check_out(out, (n_positions, dim))
    positions = offset + np.arange(n_positions, dtype=np.float64)
    return _store(_encode64(positions, enc), dtype, out)


def sinusoidal_encode(positions, dim, *, base=10000.0, layout="interleaved",
                      dtype=np.float32, out=None, num_threads=None, inv_freq=None):
    positions = real_array("positions", positions)
    dim = check_count("dim", dim)
    enc = Encoding(dim, base, layout, inv_freq)
    check_num_threads(num_threads)
    dtype = check_dtype_argument(dtype)
    if out is not None:
        out = check_out(out, positions.shape + (dim,))
    return _store(_encode64(positions, enc), dtype, out)


def add_sinusoidal(x, *, offset=0, positions=None, scale=None, base=10000.0, layout="interleaved",
                   out=None, num_threads=None, inv_freq=None):
    req = add_request(x, offset, positions, scale, base, layout, inv_freq, out, num_threads)
    x = req.x
    T = x.shape[-2]
    if req.positions is None:
        positions = req.offset[..., None] + np.arange(T, dtype=np.float64)
    else:
        positions = req.positions
    pe = _encode64(positions, req.encoding)
    values = x.astype(np.float64)
    if req.scale is not None:
        values = values * req.scale
    result = values + pe
    target = x if req.out is None else req.out
    target[...] = result
    return target
