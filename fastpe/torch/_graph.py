"""Rotary embedding inside torch.compile's and torch.export's graphs, as torch operations.

A registered operator is opaque to inductor: a call out of the compiled code
(tens of microseconds of dispatch) around fastpe's own pass, where inductor
would fuse Hugging Face's formula with the operations around it. So while a
graph is traced, a rotation by integer positions with frequencies that do
not depend on them (every scaling but ``dynamic`` and ``longrope``) is
written out in torch operations instead:

1. the cos/sin rows of the call's positions, from tables fastpe computes
   once per set of frequencies (fastpe._tables.cos_sin_rows: float64 angles, exact):
   a position is split into base-256 digits, ``p = sum_i d_i 256**i``
   (the top digit signed), and the rows of the digits' positions
   ``d_i 256**i`` are multiplied as unit complex numbers (the angle-addition
   rule) in float64; the product is within a few float64 roundings of the
   exact rows for every position below 2**53 in magnitude, where fastpe's
   positions are defined;
2. the rotation of each pair by those rows, in the arithmetic of the torch-ops
   path (fastpe.torch._device): float64 for float64 tensors, float32
   otherwise, 16-bit results rounded from float32.

The result is within the float32 contract of the kernels' (docs/torch.rst),
not their bits, and autograd differentiates the arithmetic (the transposed
rotation). Whatever cannot be written so (float positions, ``inv_freq``,
``dynamic`` and ``longrope``, symbolic shapes, a call fastpe refuses) takes
the registered operator, which checks and rotates when the graph runs.

The checks run while tracing, on stand-ins of the arrays' shapes
(``rotary_request``, fastpe's own checks); the positions' values are data of
the graph, checked in it against fastpe's position limit
(``torch._assert_async``: a RuntimeError with fastpe's message).
"""

import functools

import numpy as np
import torch

from .._formulas import offset_positions, rope_seq_len
from .._frontdoor import CACHE, digit_rows_key, encoding_plan, exact_plan
from .._kernels import pair_columns
from .._rope import scaled_frequencies
from .._tables import cos_sin_rows as exact_cos_sin_rows
from .._validation.cos_sin import cos_sin_request, repeat_halves_message
from .._validation.requests import add_request, table_request, table_rows_message
from .._validation.rotary import complete_rotary_request, last_position, prefix_positions, rotary_request
from .._validation.scalars import POSITION_LIMIT, position_limit_error
from . import _ops
from ._device import stand_in, table_stand_in
from ._options import decode, encode
from ._tensors import numpy_dtype

_DIGIT_BITS = 8
_DIGITS = 7  # 6 unsigned digits and a signed top one: every |p| < 2**53 (top digit in [-32, 31])
_RADIX = 1 << _DIGIT_BITS
_TOP_SHIFT = _DIGIT_BITS * (_DIGITS - 1)
_PLANS = 64  # traced calls whose plans are kept (a plan holds no tensor)
_INTEGER_DTYPES = (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8)


class _Plan:
    """What a traced rotation needs, checked by fastpe on stand-ins of the call."""

    def __init__(self, freq, attention_factor, rotary_dim, layout, prefix_shapes, offset_shapes, t_shapes, T):
        self.freq = freq  # ScaledFrequencies
        self.attention_factor = attention_factor
        self.rotary_dim = rotary_dim
        self.layout = layout
        self.prefix_shapes = prefix_shapes  # the shape of each array's positions (fastpe.prefix_positions)
        self.offset_shapes = offset_shapes  # how an offset tensor is laid over them (None: positions given)
        self.t_shapes = t_shapes
        self.T = T


@functools.lru_cache(maxsize=_PLANS)
def _plan(arrays, offset, positions, options_text):
    """The plan of a described call, or None where the operator must serve it
    (fastpe refuses it, or its frequencies depend on the positions)."""
    if offset[0] == "tensor" and offset[2] not in _INTEGER_DTYPES or positions and positions[1] not in _INTEGER_DTYPES:
        return None  # offsets and positions of other dtypes: the operator's
    options = decode(options_text)
    stand_ins = [np.empty(shape, dtype=numpy_dtype(dtype)) for shape, dtype in arrays]
    offset_stand_in = 0 if offset[0] == "number" else np.zeros(offset[1], dtype=np.int64)
    positions_stand_in = np.zeros(positions[0], dtype=np.int64) if positions else None
    get = options.get
    try:
        req = rotary_request(stand_ins, offset_stand_in, positions_stand_in, get("base"), get("layout", "half"),
                             get("rotary_dim"), get("seq_axis", -2), None, get("num_threads"))
        # not through fastpe's cache, and the unused-keys warning not emitted: a plan that would warn is the operator's
        freq = scaled_frequencies(req.width, req.rotary_dim, req.base, get("scaling"), None,
                                  rope_seq_len(last_position(req)))
        req = complete_rotary_request(req, freq, None)
    except (TypeError, ValueError, IndexError, MemoryError, Warning):
        return None  # the operator raises it when the graph runs, as eagerly
    if freq.warning is not None or freq.seq_dependence is not None:
        return None  # warned on every call / frequencies of the call's positions: the operator's
    prefix_shapes = tuple(prefix_positions(req, i).shape for i in range(len(stand_ins)))
    offset_shapes = t_shapes = None
    if not positions:
        # offset_positions(o, T) = offset_positions(o, 1) + offset_positions(0, T): the offset's
        # layout and the sequence index's, each by fastpe's own rule
        offset_shapes = tuple(np.shape(offset_positions(req.offset, 1, ax)) for ax in req.seq_axes)
        t_shapes = tuple(np.shape(offset_positions(np.zeros(()), req.T, ax)) for ax in req.seq_axes)
    return _Plan(freq, req.attention_factor, req.rotary_dim, req.layout, prefix_shapes, offset_shapes, t_shapes,
                 req.T)


def _plan_fields(arrays, offset, positions, options_text):
    """The plan's fields (Python values), or None."""
    plan = _plan(arrays, offset, positions, options_text)
    if plan is None:
        return None
    return (plan.rotary_dim, pair_columns(plan.layout, plan.rotary_dim), plan.attention_factor, plan.prefix_shapes,
            plan.offset_shapes, plan.t_shapes, plan.T)


class _DigitRows:
    """A cache entry: the digit rows' cos and sin, and their bytes."""

    def __init__(self, cos, sin):
        self.cos, self.sin, self.nbytes = cos, sin, cos.nbytes + sin.nbytes


def _digit_rows(freq_bytes, n_pairs):
    """(cos, sin) float64 of shape (_DIGITS * 256, n_pairs): row i * 256 + j holds the
    rows of position j * 256**i (the top digit's j read as signed), by fastpe's
    fastpe._tables.cos_sin_rows; rows of top digits no position below 2**53 has are NaN.
    Kept in fastpe's cache."""
    def build():
        return _DigitRows(*_build_digit_rows(freq_bytes, n_pairs))

    rows = CACHE.get(digit_rows_key(freq_bytes, n_pairs), build)
    return rows.cos, rows.sin


def _build_digit_rows(freq_bytes, n_pairs):
    freq = np.frombuffer(freq_bytes[:8 * n_pairs])
    freq_lo = np.frombuffer(freq_bytes[8 * n_pairs:])
    digit = np.arange(_RADIX, dtype=np.float64)
    signed = np.where(digit < _RADIX // 2, digit, digit - _RADIX)
    limit = POSITION_LIMIT >> _TOP_SHIFT  # 32: top digits in [-32, 31] hold every |p| < 2**53
    places = [digit * float(_RADIX ** i) for i in range(_DIGITS - 1)]
    top = np.where(np.abs(signed) < limit, signed, 0.0) * float(1 << _TOP_SHIFT)
    rows = exact_cos_sin_rows(np.concatenate(places + [top]), exact_plan(freq, freq_lo), 1.0)
    cos, sin = (np.ascontiguousarray(t) for t in rows)
    top_rows = slice((_DIGITS - 1) * _RADIX, _DIGITS * _RADIX)
    # -32 * 2**48 = -2**53 itself is refused: its digit's rows are those of -31 * 2**48 times those of -2**48
    lowest = top_rows.start + _RADIX - limit
    minus_31, minus_1 = lowest + 1, top_rows.start + _RADIX - 1
    cos[lowest] = cos[minus_31] * cos[minus_1] - sin[minus_31] * sin[minus_1]
    sin[lowest] = sin[minus_31] * cos[minus_1] + cos[minus_31] * sin[minus_1]
    unused = np.abs(signed) > limit
    cos[top_rows][unused] = np.nan
    sin[top_rows][unused] = np.nan
    return cos, sin


@torch.compiler.assume_constant_result
def _digit_tables(arrays, offset, positions, options_text, device):
    """The plan's digit rows as float64 tensors on `device`: constants of the graph; None
    where there is no plan (the registered operator serves the call)."""
    plan = _plan(arrays, offset, positions, options_text)
    if plan is None:
        return None
    freq = plan.freq
    cos, sin = _digit_rows(freq.freq_bytes, freq.freq.shape[0])
    return torch.from_numpy(cos).to(device), torch.from_numpy(sin).to(device)


def _describe(arrays, offset, positions, encoded):
    """The call's description (constants), or None where the operator must serve it: float tensors
    of static shapes (a symbolic size is no int to ``__class__``, though ``type()`` and
    ``isinstance`` say int; fastpe's checks take numbers), an offset that is a number or a tensor of
    at most one axis, positions a tensor (their dtypes are _plan's to check). One function, and
    few globals: Dynamo guards each function and global it reads."""
    tensor, sizes = torch.Tensor, []
    for a in arrays:
        if not isinstance(a, tensor) or not a.is_floating_point():
            return None
        sizes.extend(a.shape)
    if isinstance(offset, bool):
        return None
    if isinstance(offset, (int, torch.SymInt)):
        offset_desc = ("number",)
    elif isinstance(offset, tensor) and offset.ndim <= 1:
        offset_desc = ("tensor", tuple(offset.shape), offset.dtype)
        sizes.extend(offset.shape)
    else:
        return None
    if positions is None:
        positions_desc = ()
    elif isinstance(positions, tensor):
        positions_desc = (tuple(positions.shape), positions.dtype)
        sizes.extend(positions.shape)
    else:
        return None
    for size in sizes:
        if size.__class__ is not int:
            return None
    return tuple((tuple(a.shape), a.dtype) for a in arrays), offset_desc, positions_desc, encoded


@torch.compiler.assume_constant_result
def _limit_message(name):
    """fastpe's message for a position beyond its limit (the value is not known to the graph)."""
    return str(position_limit_error(name, "a value beyond it (checked in the compiled code)"))


def _checked_positions(positions, name):
    """Integer positions as int64, asserted in the graph to lie within fastpe's limit."""
    positions = positions.to(torch.int64)
    within = (positions > -POSITION_LIMIT) & (positions < POSITION_LIMIT)
    torch._assert_async(within.all(), _limit_message(name))
    return positions


def cos_sin_rows(positions, cos_digits, sin_digits, attention_factor):
    """float64 (cos, sin) of shape positions.shape + (n_pairs,): the digit rows multiplied (module docstring)."""
    places = torch.arange(_DIGITS, device=positions.device)
    digits = (positions.unsqueeze(-1) >> (places * _DIGIT_BITS)) & (_RADIX - 1)
    index = digits + places * _RADIX
    cos, sin = cos_digits[index[..., 0]], sin_digits[index[..., 0]]
    for i in range(1, _DIGITS):
        c, s = cos_digits[index[..., i]], sin_digits[index[..., i]]
        cos, sin = cos * c - sin * s, sin * c + cos * s
    if attention_factor != 1.0:
        cos, sin = cos * attention_factor, sin * attention_factor
    return cos, sin


def work_dtype(*tensors):
    """float64 if any tensor is float64, else float32 (16-bit values are computed in float32)."""
    return torch.float64 if any(t.dtype == torch.float64 for t in tensors) else torch.float32


def rotated_by_rows(a, cos, sin, pairs, rotary_dim):
    """A new tensor: a's pairs rotated by (cos, sin) (broadcastable to a's pairs, work dtype), the
    channels beyond rotary_dim passed through. pairs: fastpe._rotary.pair_columns' (first, second, step).

    The rotary channels are viewed with the pair's two members on an axis of
    size 2 (``(2, half)`` for "half", ``(half, 2)`` for "interleaved"), and
    both members come from one expression, ``x * cos + flip(x) * (-sin, sin)``:
    a single pointwise node that inductor fuses with what reads the result
    (a concatenation of the two halves is a kernel of its own on the CPU).
    The products and sums are those of ``x1 cos - x2 sin``, ``x2 cos + x1 sin``."""
    step = pairs[2]  # the pairs' first members start at channel 0 in both layouts
    half = rotary_dim // 2
    pair_axis = -2 if step == 1 else -1
    sizes = (2, half) if step == 1 else (half, 2)
    x = a[..., :rotary_dim].unflatten(-1, sizes).to(cos.dtype)
    cos, sin = cos.unsqueeze(pair_axis), sin.unsqueeze(pair_axis)
    signed_sin = torch.cat((-sin, sin), dim=pair_axis)
    turned = (x * cos + x.flip(pair_axis) * signed_sin).to(a.dtype).flatten(-2)
    if rotary_dim < a.shape[-1]:
        return torch.cat((turned, a[..., rotary_dim:]), dim=-1)
    return turned


def rotated(arrays, offset, positions, encoded):
    """New tensors, the arrays rotated in torch operations (see the module docstring); None where the
    call needs the registered operator.

    Dynamo traces this function and what it calls, and guards every function
    and global it reads on every call of the compiled code (a tenth of a
    microsecond or more each): so it traces only the call's description and
    the constant tables, and hands the arithmetic to ``_rotation``, which
    Dynamo puts in the graph as one call (``allow_in_graph``) and AOTAutograd
    traces into the operations inductor fuses."""
    description = _describe(arrays, offset, positions, encoded)
    tables = None if description is None else _digit_tables(*description, arrays[0].device)
    if tables is None:
        return None
    return _rotation(arrays, offset, positions, tables[0], tables[1], encoded)


@torch._dynamo.allow_in_graph
def _rotation(arrays, offset, positions, cos_digits, sin_digits, encoded):
    """The rotation of a described call (``rotated``) in torch operations, by the digit rows' product."""
    rotary_dim, pairs, factor, prefix_shapes, offset_shapes, t_shapes, T = _plan_fields(
        *_describe(arrays, offset, positions, encoded))
    device = arrays[0].device
    work = work_dtype(*arrays)
    rows = {}
    results = []
    for i, a in enumerate(arrays):
        if positions is not None:
            at = positions.reshape(prefix_shapes[i])  # fastpe's layout of them: size-1 axes inserted
            name = "positions"
        else:
            start = offset.reshape(offset_shapes[i]) if isinstance(offset, torch.Tensor) else offset
            at = start + torch.arange(T, device=device).reshape(t_shapes[i])
            name = "offset + T - 1"
        key = (prefix_shapes[i], offset_shapes and offset_shapes[i])
        if key not in rows:
            cos, sin = cos_sin_rows(_checked_positions(at, name), cos_digits, sin_digits, factor)
            rows[key] = cos.to(work), sin.to(work)
        cos, sin = rows[key]
        shape = prefix_shapes[i] + (1,) * (a.ndim - 1 - len(prefix_shapes[i])) + (rotary_dim // 2,)
        results.append(rotated_by_rows(a, cos.reshape(shape), sin.reshape(shape), pairs, rotary_dim))
    return results


# ------------------------------------------------------------------ rotation by given cos and sin

@torch._dynamo.allow_in_graph
def rotated_by_cos_sin(arrays, cos, sin, unsqueeze_dim):
    """fastpe.torch.apply_rotary_cos_sin while a graph is traced: new tensors.

    Hugging Face's ``a * cos' + rotate_half(a) * sin'`` written, as
    ``rotated_by_rows`` writes a rotation, as one pointwise expression over
    the pairs ``(k, k + D/2)`` that inductor fuses with its neighbours, in
    float64: each product of float32 values is exact there and the sum is
    rounded once, so float32 results are the kernels' bits (other dtypes:
    within the float32 contract). fastpe's checks run on stand-ins of the
    shapes while tracing; that each table repeats its first half in its
    second (a fact of its values) is checked in the graph
    (``torch._assert_async``: a RuntimeError with fastpe's message). Symbolic
    shapes, and calls fastpe refuses, take the registered operator, which
    checks when the graph runs. Dynamo puts this function in its graph as one
    call (``allow_in_graph``): it guards nothing inside."""
    shapes = [tuple(t.shape) for t in (*arrays, cos, sin)]
    try:
        if not all(size.__class__ is int for shape in shapes for size in shape):
            raise TypeError("symbolic shapes")
        cos_sin_request([stand_in(a) for a in arrays], np.zeros(shapes[-2]), np.zeros(shapes[-1]), unsqueeze_dim,
                        None)
    except (TypeError, ValueError, IndexError):
        return _ops.apply_rotary_cos_sin(list(arrays), cos, sin, unsqueeze_dim, False)
    half = cos.shape[-1] // 2
    for table, name in ((cos, "cos"), (sin, "sin")):
        torch._assert_async((table[..., :half] == table[..., half:]).all(),
                            repeat_halves_message(name, half) + " (checked in the compiled code)")
    pairs = (2, half)
    cos_u = cos.unsqueeze(unsqueeze_dim).unflatten(-1, pairs).to(torch.float64)
    sin_u = sin.unsqueeze(unsqueeze_dim).unflatten(-1, pairs).to(torch.float64)
    signed_sin = sin_u * torch.tensor([[-1.0], [1.0]], dtype=torch.float64, device=cos.device)  # rotate_half's sign
    results = []
    for a in arrays:
        x = a.unflatten(-1, pairs).to(torch.float64)
        results.append((x * cos_u + x.flip(-2) * signed_sin).to(a.dtype).flatten(-2))
    return results


# ------------------------------------------------------------------ learned tables

# x and table dtypes whose sum torch forms as the kernels do: one rounding of the exact sum (in x's dtype
# when both agree, else in float64, which holds the sum of a float32 and a float64 exactly rounded once,
# and then once to float32). A 16-bit x is left to the operator: torch rounds float64 to 16 bits through
# float32, twice.
_TABLE_SUM_DTYPES = (torch.float32, torch.float64)


@torch._dynamo.allow_in_graph
def table_added(x, table, offset):
    """fastpe.torch.add_table (no positions, no scale) while a graph is traced: a new tensor.

    ``x + table[offset + t]`` in torch operations, which inductor fuses with
    its neighbours, where the registered operator is a call out of the
    compiled code: float32 and float64 x and table, the sum formed as the
    kernels form it (the same bits), autograd's gradients (the scatter-add
    of grad into the rows read). fastpe's checks run on stand-ins while
    tracing; that the rows lie in the table (a fact of the offset's values)
    is checked in the graph (``torch._assert_async``: a RuntimeError with
    fastpe's message). Other dtypes, symbolic shapes and calls fastpe refuses
    take the registered operator, which checks when the graph runs."""
    offset_is_tensor = isinstance(offset, torch.Tensor)
    try:
        if x.dtype not in _TABLE_SUM_DTYPES or table.dtype not in _TABLE_SUM_DTYPES:
            raise TypeError("dtypes")
        if not all(size.__class__ is int for size in (*x.shape, *table.shape, *(offset.shape if offset_is_tensor
                                                                              else ()))):
            raise TypeError("symbolic shapes")
        if offset_is_tensor and (offset.dtype not in _INTEGER_DTYPES or offset.device != x.device):
            raise TypeError("offset")
        # the offset's values are the graph's: zeros stand in for a tensor (their range is checked below)
        table_request(stand_in(x), table_stand_in(table),
                      np.zeros(tuple(offset.shape), np.int64) if offset_is_tensor else offset, None, None, None, None)
    except (TypeError, ValueError, IndexError):
        return _ops.add_table(x, table, offset if offset_is_tensor else torch.tensor(offset, device=x.device), None,
                              encode(scale=None, num_threads=None))
    T, n_rows = x.shape[-2], table.shape[0]
    rows_at = torch.arange(T, device=x.device)
    if offset_is_tensor:
        rows_at = offset.to(torch.int64).unsqueeze(-1) + rows_at
        torch._assert_async(((rows_at >= 0) & (rows_at < n_rows)).all(),
                            table_rows_message(T, n_rows) + " (checked in the compiled code)")
    else:
        rows_at = rows_at + offset
    rows = table[rows_at]  # (..., T, D): the offset's axes, broadcast against x's leading ones
    if x.dtype == table.dtype:
        return x + rows
    return (x.to(torch.float64) + rows.to(torch.float64)).to(x.dtype)


# ------------------------------------------------------------------ the sinusoidal add

def sinusoid_added(x, offset, scale, base, layout):
    """fastpe.torch.add_sinusoidal (integer offsets, no positions, inv_freq or
    preset) while a graph is traced: a new tensor; None where the call needs
    the registered operator.

    ``x * scale + PE`` in torch operations, which inductor fuses with its
    neighbours, where the registered operator is a call out of the compiled
    code. The encoding's rows come from the digit rows as the traced
    rotation's cos/sin rows do (the module docstring: within a few float64
    roundings of the exact rows), laid out in the encoding's columns and
    rounded once to x's dtype (16-bit x: float32, then x's dtype); so within
    the float32 contract of the kernels' results (the same bits wherever
    that rounding is not a near-tie, and with no scale), not their bits.
    Dynamo traces this function's description (constants) and puts
    ``_sinusoid`` in its graph as one call; the checks are fastpe's own, on
    stand-ins, while tracing."""
    description = _describe_sinusoid(x, offset, scale, base, layout)
    tables = None if description is None else _sinusoid_digit_tables(*description, x.device)
    if tables is None:
        return None
    return _sinusoid(x, offset, scale, tables[0], tables[1], *description)


def _describe_sinusoid(x, offset, scale, base, layout):
    """The call's description (constants), or None where the operator must serve it (as _describe)."""
    tensor = torch.Tensor
    if not isinstance(x, tensor) or not x.is_floating_point():
        return None
    sizes = list(x.shape)
    if isinstance(offset, bool):
        return None
    if isinstance(offset, (int, torch.SymInt)):
        offset_desc = ("number",)
    elif isinstance(offset, tensor) and offset.dtype in _INTEGER_DTYPES:
        offset_desc = ("tensor", tuple(offset.shape))
        sizes.extend(offset.shape)
    else:
        return None
    if not (scale is None or scale.__class__ is float or scale.__class__ is int):
        return None
    for size in sizes:
        if size.__class__ is not int:
            return None
    return tuple(x.shape), x.dtype, offset_desc, scale, base, layout


# Most sine/cosine pairs a traced add_sinusoidal forms (positions x frequencies); more take the operator.
# The digit rows' product costs more per pair than the kernels' cached rows: in compiled steps
# ``add_sinusoidal(x, offset=t) * 0.5`` of width 768 (2 threads, medians of 15 rounds), the traced form
# took 0.50x the operator's time at T = 1 (384 pairs), 0.68x at T = 16 (6144) and 1.14x at T = 64 (24576).
_TRACED_SINUSOID_PAIRS = 1 << 13


@functools.lru_cache(maxsize=_PLANS)
def _sinusoid_plan(shape, dtype, offset_desc, scale, base, layout):
    """(the encoding's plan, the shape the offset takes over x's leading axes), or None where fastpe refuses
    the call (the operator raises it when the graph runs) or the operator costs less (more pairs than
    _TRACED_SINUSOID_PAIRS)."""
    offset_stand_in = 0 if offset_desc[0] == "number" else np.zeros(offset_desc[1], dtype=np.int64)
    try:
        req = add_request(np.empty(shape, dtype=numpy_dtype(dtype)), offset_stand_in, None, scale, base, layout,
                          None, None, None)
        plan = encoding_plan(req.encoding)
    except (TypeError, ValueError, IndexError, MemoryError):
        return None
    offset_shape = tuple(np.shape(req.offset))
    if int(np.prod(offset_shape)) * shape[-2] * plan.freq.shape[0] > _TRACED_SINUSOID_PAIRS:
        return None
    return plan, offset_shape


@torch.compiler.assume_constant_result
def _sinusoid_digit_tables(shape, dtype, offset_desc, scale, base, layout, device):
    """The plan's digit rows as float64 tensors on `device` (constants of the graph), or None."""
    planned = _sinusoid_plan(shape, dtype, offset_desc, scale, base, layout)
    if planned is None:
        return None
    plan = planned[0]
    n = plan.freq.shape[0]
    cos, sin = _digit_rows(plan.freq.tobytes() + plan.freq_lo.tobytes(), n)
    return torch.from_numpy(cos).to(device), torch.from_numpy(sin).to(device)


@torch._dynamo.allow_in_graph
def _sinusoid(x, offset, scale, cos_digits, sin_digits, shape, dtype, offset_desc, _scale, base, layout):
    """``x * scale + PE`` of a described call (``sinusoid_added``) in torch operations."""
    plan, offset_shape = _sinusoid_plan(shape, dtype, offset_desc, _scale, base, layout)
    T, D = shape[-2], shape[-1]
    at = torch.arange(T, device=x.device)
    at = (offset.reshape(offset_shape).unsqueeze(-1) + at) if isinstance(offset, torch.Tensor) else at + offset
    cos, sin = cos_sin_rows(_checked_positions(at, "offset + T - 1"), cos_digits, sin_digits, 1.0)
    work = torch.float64 if x.dtype == torch.float64 else torch.float32
    pe = torch.zeros(at.shape + (D,), dtype=torch.float64, device=x.device)
    step = plan.col_step
    pe[..., plan.sin_col:plan.sin_col + step * plan.n_sin:step] = sin[..., :plan.n_sin]
    pe[..., plan.cos_col:plan.cos_col + step * plan.n_cos:step] = cos[..., :plan.n_cos]
    pe = pe.to(x.dtype if x.dtype in (torch.float32, torch.float64) else work).to(work)
    y = x.to(work) if scale is None else x.to(work) * scale
    return (y + pe).to(x.dtype)
