"""fastpe.torch on devices other than the CPU: the same operators in torch operations.

fastpe's kernels read CPU memory only. For tensors elsewhere (CUDA, MPS, ...)
each operator

1. checks its arguments with fastpe's own checks, run on stand-ins of the
   tensors' shapes and dtypes (``np.empty`` for the arrays written, which
   the checks never read, so they cost no memory; zeros for the small tables
   they read), with the same errors as on the CPU;
2. takes what it adds or rotates by from fastpe on the CPU, in float64: the
   encoding rows of the call's positions, the cos/sin rows of its
   frequencies and positions, the bias of each relative distance. These are
   kept on the device in fastpe's one cache (keyed by the device, the dtype
   and everything that determines them, counted against its byte limit and
   emptied by ``fastpe.cache_clear``), so one transfer serves every layer of
   a model that shares them;
3. applies them with torch operations, in float64 for float64 tensors and in
   float32 otherwise (16-bit results rounded from float32): within the
   float32 contract (docs/contract.rst), not the kernels' bits.

``torch_ops_everywhere()`` (private) sends CPU tensors this way too, so the
tests run this path on the CPU.
"""

import contextlib

import numpy as np
import torch

from .. import _formulas, _frontdoor
from .._bias import add_alibi, add_relative_bias
from .._frontdoor import CACHE, device_table_key, exact_plan
from .._kernels import pair_columns
from .._rotary import rotation_request
from .._tables import cos_sin_rows
from .._sinusoid import add_sinusoidal
from .._validation import DEFAULT_MAX_BIAS, add_request, alibi_request, relative_request, table_request
from .._validation.cos_sin import cos_sin_request
from .._validation.rotary import prefix_positions
from ._tensors import numpy_dtype, read_view

_state = {"everywhere": False}
_ENCODING_OPTIONS = ("base", "layout", "preset", "padding_idx", "min_timescale", "max_timescale")


@contextlib.contextmanager
def torch_ops_everywhere():
    """Run CPU tensors through this module instead of the kernels (private: for the tests)."""
    before = _state["everywhere"]
    _state["everywhere"] = True
    _frontdoor.close_torch_route(1)
    try:
        yield
    finally:
        _state["everywhere"] = before
        _frontdoor.close_torch_route(-1)


def forced():
    return _state["everywhere"]


def _on_device(key, device, dtype, build):
    """build() (a float64 ndarray) as a tensor of `dtype` on `device`, kept in fastpe's cache under key
    (a tensor's nbytes: its bytes on the device)."""
    return CACHE.get(device_table_key(device, dtype, key),
                     lambda: torch.from_numpy(np.ascontiguousarray(build())).to(device=device, dtype=dtype))


def stand_in(tensor):
    """An array of the tensor's shape and (NumPy) dtype for fastpe's checks of an array it writes:
    allocated, never touched."""
    return np.empty(tuple(tensor.shape), dtype=numpy_dtype(tensor.dtype))


def table_stand_in(tensor, dtype=None):
    """Zeros of a read table's shape (and dtype) for fastpe's checks, which read it (finite values)."""
    return np.zeros(tuple(tensor.shape), dtype=numpy_dtype(tensor.dtype) if dtype is None else dtype)


def _work_dtype(*tensors):
    """float64 if any tensor is float64, else float32 (16-bit values are computed in float32)."""
    return torch.float64 if any(t.dtype == torch.float64 for t in tensors) else torch.float32


def _key(*arrays):
    return tuple((a.shape, a.dtype.str, a.tobytes()) if isinstance(a, np.ndarray) else a for a in arrays)


def _host(value, default=None):
    value = read_view(value)
    return default if value is None else value


def add_sinusoidal_into(out, x, offset, positions, inv_freq, options):
    offset, positions, inv_freq = _host(offset, 0), _host(positions), _host(inv_freq)
    get = options.get
    req = add_request(stand_in(x), offset, positions, get("scale"), get("base"), get("layout"), inv_freq, None,
                      get("num_threads"), get("preset"), get("padding_idx"), get("min_timescale"),
                      get("max_timescale"))
    encoding = {name: get(name) for name in _ENCODING_OPTIONS}
    T, D = x.shape[-2], x.shape[-1]
    if req.positions is not None:
        keys, build = req.positions, lambda: add_sinusoidal(np.zeros(req.positions.shape + (D,)),
                                                            positions=req.positions, inv_freq=inv_freq, **encoding)
    else:
        keys, build = req.offset, lambda: add_sinusoidal(np.zeros(req.offset.shape + (T, D)), offset=req.offset,
                                                         inv_freq=inv_freq, **encoding)
    work = _work_dtype(x)
    rows = _on_device(("sinusoid", repr(sorted(encoding.items())), T, D) + _key(keys, inv_freq), x.device, work,
                      build)
    scaled = x.to(work) if req.scale is None else x.to(work) * req.scale
    out.copy_(scaled + rows)


def table_rows(x_like, table_like, offset, positions, scale=None, num_threads=None):
    """(the table row each vector row of x reads, int64 of shape x.shape[:-1]; the checked scale), by
    add_table's checks on stand-ins of x and the table."""
    req = table_request(x_like, table_like, _host(offset, 0), _host(positions), scale, None, num_threads)
    if req.positions is not None:
        rows = req.positions
    else:
        rows = req.offset[..., None] + np.arange(x_like.shape[-2])  # token t of a sequence reads row offset + t
    return np.broadcast_to(rows, x_like.shape[:-1]).copy(), req.scale  # a writable copy: torch takes it


def add_table_into(out, x, table, offset, positions, options):
    rows, scale = table_rows(stand_in(x), table_stand_in(table), offset, positions, options.get("scale"),
                             options.get("num_threads"))
    work = _work_dtype(x, table)
    gathered = table.detach().to(work)[torch.from_numpy(rows).to(table.device)]
    scaled = x.to(work) if scale is None else x.to(work) * scale
    out.copy_(scaled + gathered.to(x.device))


def _pair_slices(layout, rotary_dim):
    """The channel slices of the first and second members of every rotated pair."""
    first, second, step = pair_columns(layout, rotary_dim)
    half = rotary_dim // 2
    return slice(first, first + step * (half - 1) + 1, step), slice(second, second + step * (half - 1) + 1, step)


def rotary_into(outs, arrays, offset, positions, inv_freq, options, transpose=False):
    get = options.get
    req = rotation_request([stand_in(a) for a in arrays], _host(offset, 0), _host(positions), get("base"),
                           get("layout", "half"), get("rotary_dim"), _host(inv_freq), get("scaling"),
                           get("seq_axis", -2), None, get("num_threads"))
    firsts, seconds = _pair_slices(req.layout, req.rotary_dim)
    work = _work_dtype(*arrays)
    new = []
    for i, a in enumerate(arrays):
        at = prefix_positions(req, i)  # positions over the axes up to the sequence axis (size 1 where they broadcast)
        shape = at.shape + (1,) * (a.ndim - 1 - at.ndim) + (req.rotary_dim // 2,)

        def build(which, at=at):
            return cos_sin_rows(np.ascontiguousarray(at, dtype=np.float64).ravel(), exact_plan(req.freq, req.freq_lo),
                                req.attention_factor)[which]

        key = ("rotary", req.attention_factor) + _key(req.freq, req.freq_lo, at)
        cos = _on_device(key + ("cos",), a.device, work, lambda: build(0)).reshape(shape)
        sin = _on_device(key + ("sin",), a.device, work, lambda: build(1)).reshape(shape)
        if transpose:
            sin = -sin
        x1, x2 = a[..., firsts].to(work), a[..., seconds].to(work)
        new.append((x1 * cos - x2 * sin, x2 * cos + x1 * sin))
    for a, o, (n1, n2) in zip(arrays, outs, new):  # every input read before any output is written
        if o is not a:
            o.copy_(a)
        o[..., firsts] = n1.to(o.dtype)
        o[..., seconds] = n2.to(o.dtype)


def cos_sin_into(outs, arrays, cos, sin, unsqueeze_dim, transpose=False):
    cos_sin_request([stand_in(a) for a in arrays], _host(cos), _host(sin), unsqueeze_dim, None)
    work = _work_dtype(*arrays)
    cos_u, sin_u = cos.unsqueeze(unsqueeze_dim).to(work), sin.unsqueeze(unsqueeze_dim).to(work)
    if transpose:
        sin_u = -sin_u
    half = cos.shape[-1] // 2
    new = []
    for a in arrays:
        x = a.to(work)
        new.append(x * cos_u + torch.cat((-x[..., half:], x[..., :half]), dim=-1) * sin_u)  # HF's rotate_half
    for o, n in zip(outs, new):
        o.copy_(n)


def _by_distance(scores, off, lookup):
    """scores' bias from per-offset lookups of every distance: lookup(u) gives
    (H, Tq + Tk - 1) float64 biases of query 0 at position u + Tq - 1, i.e.
    column Tq - 1 - i + j holds the bias of query i and key j at offset u."""
    B, H, Tq, Tk = scores.shape
    distinct, which = np.unique(off, return_inverse=True)
    work = _work_dtype(scores)
    luts = _on_device(("bias", lookup.key, Tq, Tk) + _key(distinct), scores.device, work,
                      lambda: np.stack([lookup(int(u)) for u in distinct]))
    column = (torch.arange(Tk, device=scores.device)[None, :] - torch.arange(Tq, device=scores.device)[:, None]
              + (Tq - 1))
    return luts[:, :, column][torch.from_numpy(which.reshape(-1)).to(scores.device)]


class _Lookup:
    """A per-offset lookup for _by_distance, with the key of what it depends on."""

    def __init__(self, key, function):
        self.key, self.function = key, function

    def __call__(self, u):
        return self.function(u)


def alibi_into(out, scores, slopes, offset, key_positions, options):
    _, _, slopes, max_bias, off, kp, _ = alibi_request(stand_in(scores), _host(slopes),
                                                       options.get("max_bias", DEFAULT_MAX_BIAS), _host(offset, 0),
                                                       _host(key_positions), None, options.get("num_threads"))
    B, H, Tq, Tk = scores.shape
    slopes = _formulas.head_slopes(slopes, H, max_bias)
    work = _work_dtype(scores)
    if out.numel() == 0:
        return
    if kp is not None:
        bias = _on_device(("alibi-keys",) + _key(slopes, kp), scores.device, work,
                          lambda: add_alibi(np.zeros((kp.shape[0], H, 1, Tk)), slopes=slopes, key_positions=kp))
    else:
        bias = _by_distance(scores, off, _Lookup(("alibi",) + _key(slopes), lambda u: add_alibi(
            np.zeros((1, H, 1, Tq + Tk - 1)), slopes=slopes, offset=u + Tq - 1)[0, :, 0]))
    out.copy_(scores.to(work) + bias)


def relative_bias_into(out, scores, bias_table, offset, options):
    _, _, table, settings, off, _ = relative_request(stand_in(scores), _host(bias_table),
                                                     options.get("bidirectional"), options.get("num_buckets"),
                                                     options.get("max_distance"), _host(offset, 0), None,
                                                     options.get("num_threads"))
    if out.numel() == 0:
        return
    B, H, Tq, Tk = scores.shape
    names = ("bidirectional", "num_buckets", "max_distance")
    bias = _by_distance(scores, off, _Lookup(("t5",) + settings + _key(table), lambda u: add_relative_bias(
        np.zeros((1, H, 1, Tq + Tk - 1)), table, offset=u + Tq - 1, **dict(zip(names, settings)))[0, :, 0]))
    out.copy_(scores.to(_work_dtype(scores)) + bias)
