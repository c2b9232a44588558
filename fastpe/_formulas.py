"""The formulas fastpe shares, deliberately, between the implementation and the reference.

Plain Python and NumPy, no argument checks (every value reaching here was
checked by fastpe._validation), nothing compiled:

* allocation: new_array and float_range, the only way an array whose size the
  caller chooses is made (a size that cannot be held raises MemoryError, or
  ValueError when its byte count overflows the index type, naming the shape
  and the bytes asked for);
* the 1-D presets: each model's frequencies and column layout (PRESETS),
  and the grids' frequencies;
* ALiBi's head slopes and T5's relative-position buckets;
* make_positions, fairseq's padding-aware positions;
* the position rules of the rotary family: how positions broadcast over an
  array's axes up to its sequence axis and then over all of its rows, and
  the seq_len the scalings see;
* the RoPE scalings of Hugging Face transformers: each rope type's
  frequencies and attention factor.

Because both sides use these, a kernel-against-reference test cannot see a
mistake in them: each is checked on its own against an independent source.
tests/conformance/test_conformance.py compares the presets and
make_positions with the models' own code (Hugging Face Marian,
M2M100/fairseq, Whisper); tests/presets/test_presets.py checks every preset
against its source's expression written out in the test;
tests/biases/test_biases.py checks the slopes against the ALiBi paper's
get_slopes and BLOOM, and the buckets against T5's integer definition
(tests/conformance/test_conformance_biases.py: against Hugging Face's
_relative_position_bucket); tests/rotary/test_rotary.py checks rotary
positions against positions written out by hand.
tests/rotary/test_rope_scaling.py checks every RoPE scaling rule against the
formulas written out there, tests/conformance/test_conformance_rope_scaling.py
against Hugging Face's ROPE_INIT_FUNCTIONS.

Exact frequencies
-----------------
Every frequency rule here returns the exact frequencies as a DoubleDouble
(fastpe._double_double): ``hi``, the exact value rounded to float64, and
``lo``, the rest, to about 2**-102 relative. Each rule is written once and
gives both: its base powers come from exp_progression, ``exp(k * step)`` with
the step a sum of logarithms of its float64 parameters over an integer,
evaluated with the decimal module and integer arithmetic, and its products,
quotients and sums with float64 values are double-double operations. The
kernels seed their angles from hi + lo (docs/contract.rst, "How the kernels
get there"); everything else reads hi: rope_inv_freq, the plans' float64
frequencies, the reference's rotary frequencies. (The reference writes the
sinusoid presets' frequencies again in NumPy float64, its own less exact
definition.) Where a rule's value is defined in float64 it says so:

* vaswani_frequencies (default layouts, Vaswani, Marian, RoPE default):
  base ** (-2k / dim); tensor2tensor_frequencies (the preset and the n-D
  grids): min * exp(-k ln(max / min) / m), the ratio exact; fairseq and
  whisper: exp(-k ln(base or max_timescale) / (half - 1));
  grid_2d_frequencies: 1 / base ** (k / m);
* an explicit inv_freq (fastpe._validation.Encoding) is exact as given, lo 0;
* RoPE: linear, longrope and proportional divide the exact powers by their
  float64 factors exactly; dynamic's NTK base is the float64 value of
  dynamic_base (HF's expression), its powers exact; llama3's smooth factor
  (and the band, both from the wavelength 2 pi / hi) and yarn's ramp are
  float64 values of HF's expressions, and the blend of w and w / factor
  with them is exact. Attention factors are float64.
"""

import math

import numpy as np

from ._double_double import DoubleDouble, exp_progression

_MAX_BYTES = np.iinfo(np.intp).max


def _size_error(what, shape, dtype, error):
    """The error for an array NumPy could not create: ValueError when its bytes
    overflow the index type, MemoryError when they cannot be had, else `error`."""
    shape = tuple(int(s) for s in shape)
    # NumPy refuses an array whose bytes, counting empty axes as length 1
    # (its strides), exceed the index type, even when it holds no element.
    span = math.prod(max(s, 1) for s in shape) * dtype.itemsize
    if span > _MAX_BYTES:
        return ValueError(f"{what} of shape {shape} and dtype {dtype.name} would span {span} bytes, more than an "
                          f"array can index ({_MAX_BYTES} bytes)")
    if isinstance(error, MemoryError):
        nbytes = math.prod(shape) * dtype.itemsize
        return MemoryError(f"{what} of shape {shape} and dtype {dtype.name} needs {nbytes} bytes "
                           f"({nbytes / 2**30:.3g} GiB), which cannot be allocated")
    return error


def new_array(shape, dtype, what):
    """np.empty(shape, dtype), or MemoryError/ValueError naming `what`, the shape and the bytes."""
    try:
        return np.empty(shape, dtype=dtype)
    except (MemoryError, OverflowError, ValueError) as exc:
        error = _size_error(what, shape, np.dtype(dtype), exc)
    raise error


def float_range(n, what):
    """np.arange(n) in float64 (frequency and position indices), with new_array's errors."""
    try:
        return np.arange(n, dtype=np.float64)
    except (MemoryError, OverflowError, ValueError) as exc:
        error = _size_error(what, (n,), np.dtype(np.float64), exc)
    raise error


# ------------------------------------------------------------------ 1-D presets

PRESETS = {
    "vaswani": "interleaved sin/cos, w_k = base**(-2k/d); odd d ends with a sine column "
               "(PyTorch tutorial, HF DistilBERT, keras-hub SinePositionEncoding)",
    "marian": "HF Marian: sines of the even-index angles in the first ceil(d/2) columns, "
              "cosines of the odd-index angles after them, w_k = base**(-2k/d)",
    "tensor2tensor": "[sin | cos], w_k = min_timescale * exp(-k ln(max/min) / max(d//2 - 1, 1)); "
                     "odd d leaves the last column zero (get_timing_signal_1d)",
    "fairseq": "[sin | cos], w_k = exp(-k ln(base) / (d//2 - 1)); odd d leaves the last column zero; "
               "positions start at padding_idx + 1 and pad tokens get no encoding "
               "(also HF M2M100, Speech2Text, NLLB)",
    "whisper": "[sin | cos], w_k = exp(-k ln(max_timescale) / (d//2 - 1)); d must be even (OpenAI Whisper)",
}

# Frequency parameters each preset accepts besides dim (None = not given).
# padding_idx is not among them: with any preset (or none) it names the
# position whose encoding is zero; fairseq alone defaults it (to 1) and
# shifts implicit positions past it.
PRESET_PARAMETERS = {
    "vaswani": ("base",),
    "marian": ("base",),
    "tensor2tensor": ("min_timescale", "max_timescale"),
    "fairseq": ("base",),
    "whisper": ("max_timescale",),
}

DEFAULT_BASE = 10000.0
LAYOUTS = ("interleaved", "concat")
DEFAULT_LAYOUT = LAYOUTS[0]
DEFAULT_MIN_TIMESCALE = 1.0
DEFAULT_MAX_TIMESCALE = 1e4
FAIRSEQ_PADDING_IDX = 1


class Columns:
    """Where frequency k's sine and cosine go: sin_col + k*col_step and
    cos_col + k*col_step, for k < n_sin and k < n_cos."""

    __slots__ = ("sin_col", "cos_col", "col_step", "n_sin", "n_cos")

    def __init__(self, sin_col, cos_col, col_step, n_sin, n_cos):
        self.sin_col, self.cos_col, self.col_step = sin_col, cos_col, col_step
        self.n_sin, self.n_cos = n_sin, n_cos

    def key(self):
        return (self.sin_col, self.cos_col, self.col_step, self.n_sin, self.n_cos)


def n_frequencies(dim, layout):
    """How many pair frequencies a layout of width dim uses."""
    return (dim + 1) // 2 if layout == "interleaved" else dim // 2


def interleaved_columns(dim):
    return Columns(0, 1, 2, (dim + 1) // 2, dim // 2)


def concat_columns(dim):
    half = dim // 2
    return Columns(0, half, 1, half, half)


def marian_columns(dim):
    sentinel = (dim + 1) // 2
    return Columns(0, sentinel, 1, sentinel, dim // 2)


def _exact_powers(n, log_terms, denominator, what="the frequencies"):
    """exp_progression, once n float64 values are known to fit (else new_array's
    MemoryError or ValueError, naming `what`)."""
    new_array((n,), np.float64, what)
    return exp_progression(n, log_terms, denominator)


def vaswani_frequencies(dim, base, n, what="the frequencies"):
    """base ** (-2k / dim) for k < n; `what` names the array in a MemoryError."""
    return _exact_powers(n, [(-2, base)], dim, what)


def tensor2tensor_frequencies(n, min_timescale, max_timescale, denominator):
    """tensor2tensor's timescales (get_timing_signal_1d, add_timing_signal_nd),
    k < n: min_timescale * exp(-k ln(max_timescale / min_timescale) / denominator)."""
    return _exact_powers(n, [(-1, max_timescale), (1, min_timescale)], denominator).times(min_timescale)


def grid_2d_frequencies(q, base, denominator):
    """The 2-D sin-cos grids' frequencies, k < q: 1 / base ** (k / denominator)
    (MAE and timm: denominator q; big_vision: q - 1)."""
    return _exact_powers(q, [(-1, base)], denominator)


def preset_layout(preset, dim, base, min_timescale, max_timescale):
    """(frequencies, Columns) of a preset at width dim; parameters already validated."""
    half = dim // 2
    if preset == "vaswani":
        columns = interleaved_columns(dim)
        return vaswani_frequencies(dim, base, columns.n_sin), columns
    if preset == "marian":
        columns = marian_columns(dim)
        return vaswani_frequencies(dim, base, columns.n_sin), columns
    if preset == "tensor2tensor":
        return tensor2tensor_frequencies(half, min_timescale, max_timescale, max(half - 1, 1)), concat_columns(dim)
    if preset == "fairseq":  # exp(-k ln(base) / (half - 1))
        return _exact_powers(half, [(-1, base)], half - 1), concat_columns(dim)
    if preset == "whisper":  # exp(-k ln(max_timescale) / (half - 1))
        return _exact_powers(half, [(-1, max_timescale)], half - 1), concat_columns(dim)
    raise AssertionError(preset)


# ------------------------------------------------------------------ ALiBi slopes and T5 buckets

def alibi_slopes(n_heads, max_bias):
    """ALiBi's head slopes (checked n_heads >= 1 and max_bias > 0), as the
    paper's ``get_slopes``: for the largest power of two m <= n_heads, heads
    h < m get ``2 ** (-max_bias * (h + 1) / m)`` and the others every other
    slope of 2m heads, ``2 ** (-max_bias * (2 (h - m) + 1) / (2m))``."""
    m = 1 << (n_heads.bit_length() - 1)
    h = np.arange(n_heads, dtype=np.float64)
    first = h < m
    exponent = np.where(first, -max_bias * (h + 1) / m, -max_bias * (2 * (h - m) + 1) / (2 * m))
    return np.exp2(exponent)


def head_slopes(slopes, n_heads, max_bias):
    """The slopes of an ALiBi call: the checked explicit ones, or (None) the
    default ones of n_heads heads (none for 0 heads)."""
    if slopes is not None:
        return slopes
    return alibi_slopes(n_heads, max_bias) if n_heads else np.zeros(0)


def _exact_log_bins(u, max_exact, max_distance, n_log):
    """floor(log(u / max_exact) / log(max_distance / max_exact) * n_log), exactly,
    for integers max_exact <= u < max_distance (int64 array).

    float64 settles every value but those within rounding of an integer; those
    are decided in integers: floor(...) >= k  <=>  u**n >= max_distance**k * max_exact**(n - k)."""
    v = np.log(u / max_exact) / math.log(max_distance / max_exact) * n_log
    k = np.floor(v).astype(np.int64)
    r = np.rint(v)
    near = np.abs(v - r) <= 1e-9 * np.maximum(1.0, np.abs(v))
    for idx in np.flatnonzero(near):
        uu, kk = int(u[idx]), int(r[idx])
        g = math.gcd(kk, n_log) or n_log
        ok = uu ** (n_log // g) >= max_distance ** (kk // g) * max_exact ** ((n_log - kk) // g)
        k[idx] = kk if ok else kk - 1
    return k


def bucket_of(relative_position, bidirectional, num_buckets, max_distance):
    """The bucket of every relative distance in an int64 array (checked settings)."""
    rp = np.asarray(relative_position, dtype=np.int64)
    buckets = np.zeros(rp.shape, dtype=np.int64)
    n = num_buckets
    if bidirectional:
        n //= 2
        buckets += (rp > 0) * n
        dist = np.abs(rp)
    else:
        dist = -np.minimum(rp, 0)
    max_exact = n // 2
    small = dist < max_exact
    far = dist >= max_distance
    mid = ~small & ~far
    buckets += np.where(small, dist, n - 1)
    if mid.any():
        u, inverse = np.unique(dist[mid], return_inverse=True)
        k = _exact_log_bins(u, max_exact, max_distance, n - max_exact)
        buckets[mid] += np.minimum(max_exact + k, n - 1)[inverse] - (n - 1)
    return buckets


# ------------------------------------------------------------------ positions

def make_positions(ids, padding_idx, past_length):
    """fairseq's make_positions (checked int ids, int padding_idx, int64
    past_length aligned to ids): ``(cumsum(mask) + past_length) * mask +
    padding_idx`` along the last axis, ``mask = ids != padding_idx``."""
    mask = (ids != padding_idx).astype(np.int64)
    return (np.cumsum(mask, axis=-1) + past_length) * mask + padding_idx


def rotary_positions_shaped(positions, n_prefix):
    """Rotary positions laid out for an array's n_prefix axes up to and
    including its sequence axis: a (B, T) array (HF's position_ids) pairs
    with the first and the sequence axis, whatever lies between them;
    anything else broadcasts from the right."""
    if positions.ndim == 2 and n_prefix > 2:
        return positions.reshape((positions.shape[0],) + (1,) * (n_prefix - 2) + (positions.shape[1],))
    return positions


def offset_positions(offset, T, seq_axis):
    """Positions offset + t over an array's axes up to its sequence axis:
    offset is one number, or one per sequence along the first axis."""
    n_prefix = seq_axis + 1
    off = offset.reshape((-1,) + (1,) * (n_prefix - 1)) if offset.ndim else offset
    return off + np.arange(T, dtype=np.float64).reshape((1,) * seq_axis + (T,))


def to_rows(values, shape, seq_axis):
    """Values over an array's axes up to its sequence axis, broadcast to all
    of its vector rows (shape[:-1])."""
    values = values.reshape(values.shape + (1,) * (len(shape) - 1 - values.ndim))
    return np.broadcast_to(values, shape[:-1])


def rope_seq_len(max_position):
    """HF's seq_len for dynamic and longrope scaling: the largest position + 1."""
    return max(int(np.floor(max_position)) + 1, 0)


# ------------------------------------------------------------------ RoPE scalings

# The rules of Hugging Face's ROPE_INIT_FUNCTIONS (transformers 5.x), on keys
# fastpe._rope.scalings has read and checked (its module docstring lists
# HF's conventions and quirks kept here). Each rule returns (inv_freq,
# attention_factor) for a rotary width rdim, inv_freq a DoubleDouble: the
# exact frequencies (see "Exact frequencies" above).

def _rope_default(rdim, base):
    """w_k = base ** (-2k / rdim), k < rdim // 2 (fastpe's Vaswani expression)."""
    return vaswani_frequencies(rdim, base, rdim // 2)


def _rope_linear(v, rdim, base, seq_len):
    return _rope_default(rdim, base).divided(v["factor"]), 1.0


def dynamic_base(base, factor, max_position_embeddings, rdim, seq_len):
    """The base of rope_type='dynamic' (NTK-aware) at seq_len, clamped below by max_position_embeddings."""
    mpe = max_position_embeddings
    seq = mpe if seq_len is None else max(seq_len, mpe)
    return base * ((factor * seq / mpe) - (factor - 1)) ** (rdim / (rdim - 2))


def _rope_dynamic(v, rdim, base, seq_len):
    return _rope_default(rdim, dynamic_base(base, v["factor"], v["max_position_embeddings"], rdim, seq_len)), 1.0


def _get_mscale(scale, mscale=1.0):
    if scale <= 1:
        return 1.0
    return 0.1 * mscale * math.log(scale) + 1.0


def _rope_yarn(v, rdim, base, seq_len):
    factor, orig = v["factor"], v["original_max_position_embeddings"]
    attention_factor, mscale, mscale_all_dim = v["attention_factor"], v["mscale"], v["mscale_all_dim"]
    if attention_factor is None:
        if mscale and mscale_all_dim:
            attention_factor = float(_get_mscale(factor, mscale) / _get_mscale(factor, mscale_all_dim))
        else:
            attention_factor = _get_mscale(factor)

    def correction_dim(num_rotations):
        return (rdim * math.log(orig / (num_rotations * 2 * math.pi))) / (2 * math.log(base))

    low, high = correction_dim(v["beta_fast"]), correction_dim(v["beta_slow"])
    if v["truncate"]:
        low, high = math.floor(low), math.ceil(high)
    low, high = max(low, 0), min(high, rdim - 1)
    if low == high:
        high += 0.001  # HF: prevent singularity
    ramp = np.clip((np.arange(rdim // 2, dtype=np.float64) - low) / (high - low), 0.0, 1.0)

    extrapolation = _rope_default(rdim, base)
    interpolation = extrapolation.divided(factor)
    extrapolation_factor = 1.0 - ramp
    # interpolation * (1 - extrapolation_factor) + extrapolation * extrapolation_factor
    inv_freq = interpolation.times(1.0 - extrapolation_factor).plus(extrapolation.times(extrapolation_factor))
    return inv_freq, float(attention_factor)


def _rope_longrope(v, rdim, base, seq_len):
    factor, orig, attention_factor = v["factor"], v["original_max_position_embeddings"], v["attention_factor"]
    if attention_factor is None:
        attention_factor = 1.0 if factor <= 1.0 else math.sqrt(1 + math.log(factor) / math.log(orig))
    ext = v["long_factor"] if (seq_len and seq_len > orig) else v["short_factor"]
    return _rope_default(rdim, base).divided(np.asarray(ext, dtype=np.float64)), float(attention_factor)


def _rope_llama3(v, rdim, base, seq_len):
    factor, low_freq_factor, high_freq_factor = v["factor"], v["low_freq_factor"], v["high_freq_factor"]
    old_context_len = v["original_max_position_embeddings"]
    inv_freq = _rope_default(rdim, base)
    low_freq_wavelen = old_context_len / low_freq_factor
    high_freq_wavelen = old_context_len / high_freq_factor
    wavelen = 2 * math.pi / inv_freq.hi
    # wavelen < high_freq_wavelen: unchanged; wavelen > low_freq_wavelen: divided by factor
    inv_freq_llama = DoubleDouble.where(wavelen > low_freq_wavelen, inv_freq.divided(factor), inv_freq)
    # in between: interpolate with a smooth factor, (1 - smooth) * inv_freq_llama / factor + smooth * inv_freq_llama
    smooth = (old_context_len / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor)
    smoothed = inv_freq_llama.times(1 - smooth).divided(factor).plus(inv_freq_llama.times(smooth))
    is_medium = ~(wavelen < high_freq_wavelen) & ~(wavelen > low_freq_wavelen)
    return DoubleDouble.where(is_medium, smoothed, inv_freq_llama), 1.0


def _rope_proportional(v, head_dim, base, seq_len):
    prf = v["partial_rotary_factor"]
    angles = int((1.0 if prf is None else prf) * head_dim // 2)
    # base ** (-2k / head_dim) for the first `angles` pairs, 0 for the others
    inv_freq = vaswani_frequencies(head_dim, base, angles).padded(head_dim // 2)
    return inv_freq.divided(v["factor"]), 1.0


ROPE_RULES = {"default": lambda v, rdim, base, seq_len: (_rope_default(rdim, base), 1.0), "linear": _rope_linear,
              "dynamic": _rope_dynamic, "yarn": _rope_yarn, "longrope": _rope_longrope, "llama3": _rope_llama3,
              "proportional": _rope_proportional}


def rope_rule(rope_type, rdim, base, values, seq_len):
    """(inv_freq, attention_factor) of a rope type, from its checked keys `values`."""
    return ROPE_RULES[rope_type](values, rdim, base, seq_len)
