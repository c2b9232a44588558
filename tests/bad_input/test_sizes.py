"""Sizes that cannot be allocated: MemoryError (or ValueError when the byte
count overflows the index type), with the shape and the bytes asked for.

The "too big" sizes here are about 2**50 bytes or more, beyond the 47-bit
user address space of x86-64 Linux (and of the other 64-bit platforms CI
uses), so the allocation fails at once whatever the overcommit policy, and
no page is ever touched.
"""

import re

import numpy as np
import pytest

import fastpe
from fastpe import reference

MODULES = [pytest.param(fastpe, id="fastpe"), pytest.param(reference, id="reference")]


@pytest.fixture(autouse=True, scope="module")
def address_space_is_smaller_than_a_pebibyte():
    try:
        a = np.empty(2**50, dtype=np.uint8)
    except MemoryError:
        return
    del a  # never touched
    pytest.skip("this platform maps a PiB of address space; the 'too big' sizes would not fail")


TOO_BIG = [  # (call, shape in the message)
    ("sinusoidal_table", lambda m: m.sinusoidal_table(4, 10**12), (4, 10**12)),
    ("sinusoidal_table dim", lambda m: m.sinusoidal_table(1, 2**48), (1, 2**48)),
    ("sinusoidal_encode", lambda m: m.sinusoidal_encode(np.zeros(3), 2**48), (3, 2**48)),
    ("rotary_cos_sin", lambda m: m.rotary_cos_sin(4, 2**48), (4, 2**48)),
    ("rotary_cos_sin frequencies", lambda m: m.rotary_cos_sin(0, 2**52), (2**51,)),
    ("sincos_2d", lambda m: m.sincos_2d(2**25, 2**25, 8), (2**50, 8)),
    ("sinusoidal_nd", lambda m: m.sinusoidal_nd((2**25, 2**25), 8), None),
]
OVERFLOW = [
    ("sinusoidal_table", lambda m: m.sinusoidal_table(2**40, 2**40), (2**40, 2**40)),
    ("sinusoidal_encode", lambda m: m.sinusoidal_encode(np.zeros(3), 2**62), (3, 2**62)),
    ("rotary_cos_sin", lambda m: m.rotary_cos_sin(2**40, 2**24), (2**40, 2**24)),  # positions below 2**53
    ("sincos_2d", lambda m: m.sincos_2d(2**40, 2**40, 8), (2**80, 8)),
    ("sinusoidal_nd", lambda m: m.sinusoidal_nd((2**40, 2**40), 8), None),
]


@pytest.mark.parametrize("mod", MODULES)
@pytest.mark.parametrize("name, call, shape", TOO_BIG, ids=[c[0] for c in TOO_BIG])
def test_too_big_for_memory(mod, name, call, shape):
    with pytest.raises(MemoryError) as info:
        call(mod)
    message = str(info.value)
    assert type(info.value) is MemoryError, "NumPy's own error, not fastpe's"
    assert re.search(r"needs \d+ bytes", message), message
    if shape is not None:
        assert str(shape) in message, message


@pytest.mark.parametrize("mod", MODULES)
@pytest.mark.parametrize("name, call, shape", OVERFLOW, ids=[c[0] for c in OVERFLOW])
def test_byte_count_overflows(mod, name, call, shape):
    with pytest.raises(ValueError, match=r"would span \d+ bytes, more than an array can index") as info:
        call(mod)
    if shape is not None:
        assert str(shape) in str(info.value)


@pytest.mark.parametrize("mod", MODULES)
def test_length_above_the_index_type(mod):
    with pytest.raises(ValueError, match=r"shape \(0, 9223372036854775808\) and dtype float32 would span"):
        mod.rotary_cos_sin(0, 2**63)


@pytest.mark.parametrize("mod", MODULES)
def test_sinusoidal_table_huge_dim_reproducer(mod):
    """The issue's reproducer: used to raise TypeError from inside NumPy's _ArrayMemoryError."""
    with pytest.raises(MemoryError, match=r"shape \(4, 1000000000000\) and dtype float32 needs 16000000000000 bytes"
                       if mod is fastpe else r"shape \(4, 1000000000000\)"):
        mod.sinusoidal_table(4, 10**12)


@pytest.mark.parametrize("mod", MODULES)
def test_huge_out_of_size_zero_is_fine(mod):
    """Zero rows of a huge width allocate nothing."""
    assert mod.sinusoidal_table(0, 2**48).shape == (0, 2**48)
