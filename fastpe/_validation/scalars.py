"""Checks of scalar arguments: ints, bools, reals, names, and the position limit.

A scalar argument also takes a 0-d array or tensor (np.array(2.0),
torch.tensor(2.0)), as its NumPy scalar (scalar_of). bool is the wrong type
for every int argument and float for every int one, whatever their values
(TypeError); a value of the right type out of range is a ValueError.
"""

import numbers
import operator

import numpy as np

from .. import _kernels
from .._formulas import LAYOUTS
from .torch_tensors import widened
from .views import is_bfloat16, ndarray_view


def is_integer(value):
    """value is a Python or NumPy integer; bool is not (it is the wrong type for every int argument)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def check_int(name, value, expected="an int"):
    """A Python or NumPy integer, or a 0-d integer array or tensor, as an int.
    bool and float are the wrong type (TypeError), whatever their value."""
    value = scalar_of(name, value)
    if not is_integer(value):
        raise TypeError(f"{name} must be {expected}, got {value!r}")
    return operator.index(value)


def check_bool(name, value):
    """True or False (Python or NumPy bool, or a 0-d bool array or tensor); 0 and 1 are the wrong type."""
    value = scalar_of(name, value)
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def check_count(name, value, minimum=0):
    """An integer >= minimum (n_positions, dim, n_heads)."""
    value = check_int(name, value, f"an integer >= {minimum}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def to_float(name, value):
    try:
        return float(value)
    except OverflowError:
        raise ValueError(f"{name} must be finite and fit in a float64, got an integer with {value.bit_length()} bits") from None


def scalar_of(name, value):
    """A 0-d array or tensor (np.array(2.0), torch.tensor(2.0)) as its NumPy scalar;
    anything else as it is. Scalar arguments take them as offset does."""
    if isinstance(value, (numbers.Number, str, bytes)) or value is None:
        return value
    if not (hasattr(value, "__array_interface__") or hasattr(value, "__dlpack__") or hasattr(value, "__array__")):
        return value
    arr = ndarray_view(name, value)
    if arr is None:
        try:
            arr = np.asarray(value)
        except (TypeError, ValueError):
            return value
    if arr.ndim != 0:
        raise TypeError(f"{name} must be a number (or a 0-d array), got an array of shape {arr.shape}")
    if is_bfloat16(arr.dtype):
        arr = widened(arr, np.float32)
    return arr[()]


def check_real_scalar(name, value, *, positive=False):
    value = scalar_of(name, value)
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    value = to_float(name, value)
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if positive and value <= 0:
        raise ValueError(f"{name} must be > 0, got {value}")
    return value


def check_layout(layout, layouts=LAYOUTS):
    """One of the layout names a function knows (1-D, rotary or 2-D grid layouts)."""
    if not isinstance(layout, str):
        raise TypeError(f"layout must be one of {', '.join(map(repr, layouts))} (a str); got {layout!r}")
    if layout not in layouts:
        raise ValueError(f"layout must be one of {', '.join(map(repr, layouts))}; got {layout!r}")
    return layout


# float64 holds every integer of magnitude below 2**53 exactly; beyond it
# neighbouring positions round to the same value and angles silently go wrong.
# The kernels' own bound (_modes.h), written once.
POSITION_LIMIT = _kernels.EXACT_INTEGERS
# How messages write it (2**53).
_LIMIT_TEXT = f"2**{POSITION_LIMIT.bit_length() - 1}"


def position_limit_error(name, value):
    return ValueError(f"{name} must lie in (-{_LIMIT_TEXT}, {_LIMIT_TEXT}), where float64 holds every integer position "
                      f"exactly; got {value}")


def check_position_range(name, lowest, highest):
    """The positions a call forms (e.g. offset .. offset + T - 1) stay below POSITION_LIMIT in magnitude.
    lowest/highest are exact Python numbers or float64 values formed by ONE rounded
    addition (rounding is monotonic, so a float64 sum that reaches the limit means the
    exact one does too; two additions could round below it again)."""
    for value in (lowest, highest):
        if abs(value) >= POSITION_LIMIT:
            raise position_limit_error(name, value)


def check_scale(scale):
    return None if scale is None else check_real_scalar("scale", scale)
