"""Model conventions of the 1-D sinusoidal encoding, read from each model's source.

A preset chooses the frequencies, the column layout, the rule for an odd width
and the rule for implicit positions; everything still runs through the same
kernel. Frequencies are computed in float64 with each source's own expression
(exp of a log increment, or a power), so fastpe sits on the float64 values the
source would compute with float64 angles.
"""

import math

import numpy as np

from ._memory import float_range

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


def interleaved_columns(dim):
    return Columns(0, 1, 2, (dim + 1) // 2, dim // 2)


def concat_columns(dim):
    half = dim // 2
    return Columns(0, half, 1, half, half)


def marian_columns(dim):
    sentinel = (dim + 1) // 2
    return Columns(0, sentinel, 1, sentinel, dim // 2)


def vaswani_frequencies(dim, base, n):
    k = float_range(n, "the frequencies")
    return np.float64(base) ** (-(2.0 * k) / dim)


def log_increment_frequencies(n, log_ratio, denominator, factor=1.0):
    """factor * exp(-k * log_ratio / denominator), the tensor2tensor/fairseq/whisper form."""
    k = float_range(n, "the frequencies")
    return factor * np.exp(k * -(log_ratio / denominator))


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
        freq = log_increment_frequencies(half, math.log(max_timescale / min_timescale), max(half - 1, 1),
                                         factor=min_timescale)
        return freq, concat_columns(dim)
    if preset == "fairseq":
        return log_increment_frequencies(half, math.log(base), half - 1), concat_columns(dim)
    if preset == "whisper":
        return log_increment_frequencies(half, math.log(max_timescale), half - 1), concat_columns(dim)
    raise AssertionError(preset)
