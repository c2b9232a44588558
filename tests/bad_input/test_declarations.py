"""The parameter declarations (fastpe._validation.params) drive the checks.

Every value a declaration lists as invalid is refused, with the declared
exception type and a message naming the parameter, by each function that
takes the parameter, in fastpe and in fastpe.reference alike; the written
array is left as it was, and the compiled front doors never serve such a
call (they recognise only what the declaration accepts as it is).
"""

import numpy as np
import pytest

import fastpe
from fastpe import _frontdoor, reference
from fastpe._validation import params


def _x():
    return np.arange(2 * 6 * 8, dtype=np.float64).reshape(2, 6, 8) / 7


def _q():
    return np.arange(1 * 2 * 6 * 8, dtype=np.float32).reshape(1, 2, 6, 8) / 7


# declaration -> [(what, call(module, value) returning the array it writes or None)]
CALLS = {
    params.NUM_THREADS: [
        ("add_sinusoidal", lambda m, v, a: m.add_sinusoidal(a, num_threads=v), _x),
        ("apply_rotary", lambda m, v, a: m.apply_rotary(a, num_threads=v), _q),
    ],
    params.ROTARY_DIM: [
        ("rotary_cos_sin", lambda m, v, a: m.rotary_cos_sin(6, v), _q),
    ],
    params.BASE: [
        ("apply_rotary", lambda m, v, a: m.apply_rotary(a, base=v), _q),
    ],
    params.OFFSET: [
        ("add_sinusoidal", lambda m, v, a: m.add_sinusoidal(a, offset=v), _x),
        ("apply_rotary", lambda m, v, a: m.apply_rotary(a, offset=v), _q),
    ],
}

CASES = [(declaration.name, what, call, make, value, error)
         for declaration, calls in CALLS.items() for what, call, make in calls
         for value, error in declaration.invalid_values()]


@pytest.mark.parametrize("module", [fastpe, reference], ids=["fastpe", "reference"])
@pytest.mark.parametrize("name, what, call, make, value, error", CASES,
                         ids=[f"{c[1]}-{c[0]}={c[4]!r}" for c in CASES])
def test_every_declared_invalid_value_is_refused(module, name, what, call, make, value, error):
    array = make()
    before = array.copy()
    served = (_frontdoor.sinusoid_calls(), _frontdoor.rotary_calls())
    with pytest.raises(error, match=name):
        call(module, value, array)
    assert np.array_equal(array, before), f"{what}: the rejected call wrote"
    assert (_frontdoor.sinusoid_calls(), _frontdoor.rotary_calls()) == served, f"{what}: a front door served it"


def test_every_declaration_is_exercised():
    declared = {value for value in vars(params).values()
                if hasattr(value, "invalid_values") and not isinstance(value, type)}
    assert declared == set(CALLS)
