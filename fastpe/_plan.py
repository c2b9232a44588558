"""Column plans for the sinusoid kernels, built from checked encodings and exact frequencies.

A plan (fastpe._kernels.Plan) says, for each output column, which frequency
it uses and whether it holds a sine, a cosine or a constant zero. Every
layout (interleaved, concat and the model presets) is one plan; the kernels
only ever see plans. The builders here compute; fastpe._frontdoor keeps what
they build (encoding_plan, exact_plan), keyed by what a plan depends on.
"""

from ._double_double import DoubleDouble
from ._formulas import (
    DEFAULT_BASE,
    DEFAULT_LAYOUT,
    concat_columns,
    interleaved_columns,
    preset_layout,
    vaswani_frequencies,
)
from ._kernels import Plan
from ._validation.requests import Encoding


def frequencies_and_columns(encoding):
    """(exact frequencies, a DoubleDouble; Columns) of a checked encoding
    (fastpe._validation.Encoding). An inv_freq is exact as given."""
    if encoding.preset is not None:
        return preset_layout(encoding.preset, encoding.dim, encoding.base, encoding.min_timescale,
                             encoding.max_timescale)
    columns = interleaved_columns(encoding.dim) if encoding.layout == "interleaved" else concat_columns(encoding.dim)
    if encoding.inv_freq is not None:
        return DoubleDouble(encoding.inv_freq), columns
    return vaswani_frequencies(encoding.dim, encoding.base, columns.n_sin), columns


def _plan_of(freq, dim, columns):
    return Plan(freq.hi, freq.lo, dim, sin_col=columns.sin_col, cos_col=columns.cos_col, col_step=columns.col_step,
                n_sin=columns.n_sin, n_cos=columns.n_cos)


def plan_of(encoding):
    """The plan of a checked 1-D encoding."""
    freq, columns = frequencies_and_columns(encoding)
    return _plan_of(freq, encoding.dim, columns)


def default_plan(dim):
    """The plan of the default encoding of width dim (DEFAULT_LAYOUT, base DEFAULT_BASE)."""
    return plan_of(Encoding(dim, DEFAULT_BASE, DEFAULT_LAYOUT, None))


def exact_concat_plan(freq, freq_lo):
    """The plan of the concat layout [sin | cos] of the exact frequencies
    freq + freq_lo (float64 arrays): rotary cos/sin rows, grid axes."""
    dim = 2 * freq.shape[0]
    return _plan_of(DoubleDouble(freq, freq_lo), dim, concat_columns(dim))
