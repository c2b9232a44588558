"""Declarations of the parameters whose rules the compiled front doors recognise.

Each rule is declared once, here, and read from here by everything that
applies it: the Python check (each declaration's ``check``), the front
doors' recognition of the common call (fastpe/_frontdoor.pyx reads the
bounds through fastpe/_params.pxd at import) and the error-type tests
(``invalid_values``: values the declaration refuses, with the exception
each raises). A front door recognises a value the check would accept as it
is and hands anything else to the check, so the two cannot disagree.
"""

from .._formulas import DEFAULT_BASE
from .arrays import real_array
from .scalars import POSITION_LIMIT, check_int, check_real_scalar


class Integer:
    """An int argument (any numbers.Integral but bool, or a 0-d integer array)
    >= minimum, even if asked, None where allowed. The messages are written
    with the bound: `expected` (a TypeError's) and `requirement` (a
    ValueError's) may name it as {minimum}."""

    __slots__ = ("name", "minimum", "even", "none_allowed", "expected", "requirement")

    def __init__(self, name, minimum, *, even=False, none_allowed=False, expected="an int", requirement=None):
        self.name, self.minimum, self.even, self.none_allowed = name, minimum, even, none_allowed
        self.expected = expected.format(minimum=minimum)
        self.requirement = (requirement or expected).format(minimum=minimum)

    def check(self, value):
        """value as an int (or None where allowed), or the declared error."""
        if value is None and self.none_allowed:
            return None
        value = check_int(self.name, value, self.expected)
        if value < self.minimum or (self.even and value % 2):
            raise ValueError(f"{self.name} must be {self.requirement}, got {value}")
        return value

    def invalid_values(self):
        """(value, exception) pairs the check refuses: wrong types, and the nearest values out of range."""
        wrong = [(True, TypeError), (float(self.minimum), TypeError), (str(self.minimum), TypeError),
                 (self.minimum - 1, ValueError)]
        if self.even:
            wrong.append((self.minimum + 1, ValueError))
        if not self.none_allowed:
            wrong.append((None, TypeError))
        return wrong


class Real:
    """A finite real argument (any numbers.Real but bool, or a 0-d array),
    > 0 where positive; None means the default where one is declared."""

    __slots__ = ("name", "positive", "default")

    def __init__(self, name, *, positive=False, default=None):
        self.name, self.positive, self.default = name, positive, default

    def check(self, value):
        return check_real_scalar(self.name, self.default if value is None else value, positive=self.positive)

    def invalid_values(self):
        wrong = [(True, TypeError), ("2", TypeError), (float("nan"), ValueError), (float("inf"), ValueError)]
        if self.positive:
            wrong += [(0.0, ValueError), (-1.0, ValueError)]
        return wrong


class Positions:
    """Positions (or offsets): real numbers or arrays of them, finite, of
    magnitude below `limit` (float64 holds every integer below it exactly)."""

    __slots__ = ("name", "limit")

    def __init__(self, name, limit=POSITION_LIMIT):
        self.name, self.limit = name, limit

    def check(self, value):
        """As a float64 array (0-d for a scalar)."""
        return real_array(self.name, value, position=True)

    def invalid_values(self):
        return [(True, TypeError), ("1", TypeError), (float("nan"), ValueError), (float(self.limit), ValueError),
                (-self.limit, ValueError)]


class Arrays:
    """Arrays a function writes, of at least min_ndim dimensions (`shape`
    spells them out in the message)."""

    __slots__ = ("name", "min_ndim", "shape")

    def __init__(self, name, min_ndim, shape):
        self.name, self.min_ndim, self.shape = name, min_ndim, shape

    def check_ndim(self, name, array):
        if array.ndim < self.min_ndim:
            raise ValueError(f"{name} must have at least {self.min_ndim} dimensions {self.shape}, got shape {array.shape}")
        return array


# Every function's team size: None (OpenMP's default) or an int >= 1.
NUM_THREADS = Integer("num_threads", 1, none_allowed=True, expected="None or an int >= {minimum}")
# The channels a rotation rotates: pairs of them.
ROTARY_DIM = Integer("rotary_dim", 2, even=True, requirement="even and >= {minimum} (channel pairs are rotated)")
# The frequency base of the sinusoid and rotary encodings.
BASE = Real("base", positive=True, default=DEFAULT_BASE)
# The position of the first token (add_sinusoidal, apply_rotary).
OFFSET = Positions("offset")
# add_sinusoidal's x: (..., T, D).
X = Arrays("x", 2, "(..., T, D)")
# apply_rotary's arrays: (..., T, ..., D).
ROTATED_ARRAYS = Arrays("arrays", 2, "(..., T, ..., D)")
# The arrays of a rotation by given cos/sin tables (fastpe._rotary_given): (..., D).
GIVEN_COS_SIN_ARRAYS = Arrays("arrays", 1, "(..., D)")
