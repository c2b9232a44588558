"""The checked arguments of the sinusoid family, learned tables and grids.

A request object holds a call's arguments as the checks left them (arrays
viewed, scalars converted, inputs that share memory with an output read from
a copy); the public functions and the reference compute from nothing else.
"""

import numbers

import numpy as np

from .._formulas import (
    DEFAULT_LAYOUT,
    DEFAULT_MAX_TIMESCALE,
    DEFAULT_MIN_TIMESCALE,
    FAIRSEQ_PADDING_IDX,
    PRESET_PARAMETERS,
    PRESETS,
    n_frequencies,
)
from . import params
from .aliasing import read_apart
from .arrays import (
    array_of_kind,
    as_float_array,
    broadcastable_to,
    check_out,
    integer_array,
    real_array,
    writable_array,
)
from .scalars import (
    check_bool,
    check_count,
    check_int,
    check_layout,
    check_position_range,
    check_real_scalar,
    check_scale,
)
from .views import refuse_masked

def frequencies_argument(inv_freq, dim, layout, rule=None):
    """An explicit inv_freq: 1-D, finite, one entry per frequency of the layout.
    rule: how the expected count follows from dim, for the message."""
    freq = real_array("inv_freq", inv_freq)
    expected = n_frequencies(dim, layout)
    if freq.ndim != 1 or freq.shape[0] != expected:
        if rule is None:
            rule = ("ceil(dim/2)" if layout == "interleaved" else "dim//2") + f" for layout={layout!r}, dim={dim}"
        raise ValueError(f"inv_freq must be a 1-D array of {expected} frequencies ({rule}), got shape {freq.shape}")
    return np.ascontiguousarray(freq)


class Encoding:
    """The validated description of a 1-D sinusoidal encoding: a preset, or a
    layout with base or inv_freq; plus the position whose encoding is zero
    (padding_idx) and the shift of implicit positions (fairseq)."""

    __slots__ = ("dim", "preset", "layout", "base", "inv_freq", "min_timescale", "max_timescale",
                 "padding_idx")

    def __init__(self, dim, base, layout, inv_freq, preset=None, padding_idx=None,
                 min_timescale=None, max_timescale=None):
        self.dim = dim
        self.preset = preset
        self.inv_freq = None
        self.min_timescale = self.max_timescale = None
        given = {"base": base, "min_timescale": min_timescale, "max_timescale": max_timescale,
                 "padding_idx": padding_idx}
        if preset is None:
            self.layout = check_layout(DEFAULT_LAYOUT if layout is None else layout)
            for name in ("min_timescale", "max_timescale"):
                if given[name] is not None:
                    raise ValueError(f"{name} is a parameter of preset='tensor2tensor' or 'whisper'; "
                                     f"it cannot be used without preset=")
            self.base = params.BASE.check(base)
            if inv_freq is not None:
                self.inv_freq = frequencies_argument(inv_freq, dim, self.layout)
        else:
            self._init_preset(preset, layout, inv_freq, given)
        self.padding_idx = self._padding_idx(padding_idx)

    def _init_preset(self, preset, layout, inv_freq, given):
        if not isinstance(preset, str):
            raise TypeError(f"preset must be one of {', '.join(map(repr, PRESETS))} (a str); got {preset!r}")
        if preset not in PRESETS:
            raise ValueError(f"preset must be one of {', '.join(map(repr, PRESETS))}; got {preset!r}")
        if layout is not None:
            raise ValueError(f"preset={preset!r} cannot be combined with layout={layout!r}: the preset fixes the layout")
        if inv_freq is not None:
            raise ValueError(f"preset={preset!r} cannot be combined with inv_freq: the preset fixes the frequencies")
        allowed = PRESET_PARAMETERS[preset]
        for name in ("base", "min_timescale", "max_timescale"):
            if given[name] is not None and name not in allowed:
                raise ValueError(f"preset={preset!r} does not take {name}= (it takes {', '.join(allowed)})")
        self.layout = None
        self.base = params.BASE.check(given["base"])
        if preset == "tensor2tensor":
            self.min_timescale = check_real_scalar(
                "min_timescale", DEFAULT_MIN_TIMESCALE if given["min_timescale"] is None else given["min_timescale"],
                positive=True)
        if preset in ("tensor2tensor", "whisper"):
            self.max_timescale = check_real_scalar(
                "max_timescale", DEFAULT_MAX_TIMESCALE if given["max_timescale"] is None else given["max_timescale"],
                positive=True)
        if preset in ("fairseq", "whisper") and self.dim // 2 < 2:
            raise ValueError(f"dim must be >= 4 for preset={preset!r} (its frequencies divide by dim//2 - 1), got {self.dim}")
        if preset == "whisper" and self.dim % 2:
            raise ValueError(f"dim must be even for preset='whisper', got {self.dim}")

    def _padding_idx(self, padding_idx):
        if padding_idx is None:
            return FAIRSEQ_PADDING_IDX if self.preset == "fairseq" else None
        return check_int("padding_idx", padding_idx)

    @property
    def zero_position(self):
        """The position whose encoding is all zeros (NaN: none)."""
        return float("nan") if self.padding_idx is None else float(self.padding_idx)

    @property
    def implicit_shift(self):
        """Added to offset + t when positions are implicit: fairseq starts at padding_idx + 1."""
        return self.padding_idx + 1 if self.preset == "fairseq" else 0


class AddRequest:
    """Validated arguments of add_sinusoidal.

    `keys` holds either per-sequence offsets (aligned to x.shape[:-2]) or
    explicit positions (aligned to x.shape[:-1]), as float64."""

    __slots__ = ("x", "out", "encoding", "offset", "positions", "scale", "num_threads")


def x_and_out(x, out):
    """The array a fused add reads (x) and the one it writes (out, or x itself)."""
    if out is None:
        x = writable_array("x", x, hint="; pass out= to write the result into another array")
    else:
        x = as_float_array("x", x, like=writable_array("out", out).dtype)
    params.X.check_ndim("x", x)
    if out is not None:
        out = check_out(out, x.shape, x.dtype)
    return x, out


def add_request(x, offset, positions, scale, base, layout, inv_freq, out, num_threads,
                preset=None, padding_idx=None, min_timescale=None, max_timescale=None):
    req = AddRequest()
    x, out = x_and_out(x, out)
    req.x, req.out = x, out
    req.encoding = Encoding(x.shape[-1], base, layout, inv_freq, preset, padding_idx, min_timescale, max_timescale)
    req.scale = check_scale(scale)
    req.num_threads = params.NUM_THREADS.check(num_threads)
    off = params.OFFSET.check(offset)
    if positions is not None:
        if (off != 0).any():
            raise ValueError("offset cannot be combined with positions: positions already give every token's position")
        pos = real_array("positions", positions, position=True)
        req.positions = broadcastable_to("positions", pos, x.shape[:-1], "x.shape[:-1]")
        req.offset = None
    else:
        req.offset = broadcastable_to("offset", off, x.shape[:-2], "x.shape[:-2] (one offset per sequence)")
        req.positions = None
        if req.offset.size and x.shape[-2]:
            shift = req.encoding.implicit_shift
            check_position_range("offset + T - 1", float(req.offset.min()) + shift,
                                 float(req.offset.max()) + (shift + x.shape[-2] - 1))
    written = (x if out is None else out,)
    req.offset, req.positions = read_apart(req.offset, written), read_apart(req.positions, written)
    req.encoding.inv_freq = read_apart(req.encoding.inv_freq, written)
    return req


def table_offset(offset, n_positions):
    """sinusoidal_table's offset: its rows hold positions offset .. offset + n_positions - 1."""
    offset = check_real_scalar("offset", offset)
    check_position_range("offset", offset, offset)
    if n_positions:
        check_position_range("offset + n_positions - 1", offset, offset + (n_positions - 1))
    return offset


def check_make_positions(token_ids, padding_idx, past_length):
    """Arguments of make_positions: integer ids (>= 1 dim), int padding_idx,
    int past_length or integer array broadcastable to token_ids.shape[:-1]."""
    ids = array_of_kind("token_ids", token_ids, "iu", "integers")
    if ids.ndim < 1:
        raise ValueError(f"token_ids must have at least 1 dimension (..., T), got shape {ids.shape}")
    padding_idx = check_int("padding_idx", padding_idx)
    refuse_masked("past_length", past_length)
    past = np.asarray(past_length)
    if past.dtype.kind not in "iu":
        raise TypeError(f"past_length must be an int or an integer array, got {past_length!r}")
    past = broadcastable_to("past_length", past, ids.shape[:-1], "token_ids.shape[:-1] (one per sequence)")
    return ids, padding_idx, past.astype(np.int64)[..., None]


class TableRequest:
    """Validated arguments of add_table."""

    __slots__ = ("x", "out", "table", "offset", "positions", "scale", "num_threads")


def table_rows_message(T, n_rows):
    """What add_table's rows must satisfy, for its error (the general path's, and a compiled graph's)."""
    return f"positions offset + t (t < {T}) must lie in [0, {n_rows}) (the table's rows)"


def table_request(x, table, offset, positions, scale, out, num_threads):
    req = TableRequest()
    req.x, req.out = x_and_out(x, out)
    x = req.x
    table = as_float_array("table", table)
    if table.ndim != 2 or table.shape[1] != x.shape[-1]:
        raise ValueError(f"table must have shape (n_rows, {x.shape[-1]}) to match x's last axis, got {table.shape}")
    req.table = table
    req.scale = check_scale(scale)
    req.num_threads = params.NUM_THREADS.check(num_threads)
    off = integer_array("offset", offset)
    n_rows, T = table.shape[0], x.shape[-2]
    if positions is not None:
        if (off != 0).any():
            raise ValueError("offset cannot be combined with positions: positions already give every token's row")
        pos = broadcastable_to("positions", integer_array("positions", positions), x.shape[:-1], "x.shape[:-1]")
        if x.size and pos.size and (pos.min() < 0 or pos.max() >= n_rows):
            raise IndexError(f"positions must lie in [0, {n_rows}) (the table's rows); got values from "
                             f"{pos.min()} to {pos.max()}")
        req.positions, req.offset = pos.astype(np.int64, copy=False), None
    else:
        off = broadcastable_to("offset", off, x.shape[:-2], "x.shape[:-2] (one offset per sequence)")
        if x.size and off.size and (off.min() < 0 or int(off.max()) + T - 1 >= n_rows):
            raise IndexError(f"{table_rows_message(T, n_rows)}; offset ranges from {off.min()} to {off.max()}")
        req.positions, req.offset = None, off.astype(np.int64, copy=False)
    # The kernel reads table rows while it writes x (or out): a table in the
    # same memory is read from a copy (e.g. x a slice of the table).
    written = (x if req.out is None else req.out,)
    req.table = read_apart(table, written)
    req.offset, req.positions = read_apart(req.offset, written), read_apart(req.positions, written)
    return req


# ------------------------------------------------------------------ grids

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
    return grid_h, grid_w, dim, base, check_bool("cls_token", cls_token)


def check_grid_nd(shape, dim, min_timescale, max_timescale):
    if isinstance(shape, (numbers.Number, np.ndarray)) and np.ndim(shape) == 0:
        shape = (shape,)
    try:
        shape = tuple(shape)
    except TypeError:
        raise TypeError(f"shape must be a tuple of non-negative ints, got {shape!r}") from None
    shape = tuple(check_int("shape", s, "a tuple of non-negative ints") for s in shape)
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
