"""Positions of magnitude 2**53 and above are refused.

float64 holds every integer exactly only below 2**53; there p + 1 == p, so
fastpe and the reference disagreed by up to 2 without a word. Every function
that turns positions into float64 (fastpe and the reference alike, through
the shared checks) raises a ValueError naming the argument and the limit
before anything is written.
"""

import numpy as np
import pytest
from optional import extra_import

import fastpe
from fastpe import reference

LIMIT = 2**53
MODULES = [pytest.param(fastpe, id="fastpe"), pytest.param(reference, id="reference")]


def _refused(call, name, *arrays):
    before = [a.copy() for a in arrays]
    with pytest.raises(ValueError, match=r"2\*\*53") as info:
        call()
    assert name in str(info.value)
    for a, b in zip(arrays, before):
        assert np.array_equal(a, b), "a refused call wrote into an array"
    return str(info.value)


@pytest.mark.parametrize("mod", MODULES)
def test_regression_offset_at_2_53_refused(mod):
    x = np.ones((2, 6, 8), np.float32)
    for offset in (LIMIT, -LIMIT, 2.0**60, np.array([0, LIMIT]), np.array([0.0, -(2.0**54)])):
        _refused(lambda: mod.add_sinusoidal(x, offset=offset), "offset", x)
        _refused(lambda: mod.apply_rotary(x, offset=offset), "offset", x)


@pytest.mark.parametrize("mod", MODULES)
def test_regression_last_position_offset_plus_T_minus_1(mod):
    x = np.ones((2, 6, 8), np.float32)
    # offset + T - 1 == 2**53: the offset alone is fine, the last token is not
    _refused(lambda: mod.add_sinusoidal(x, offset=LIMIT - 5), "offset + T - 1", x)
    _refused(lambda: mod.apply_rotary(x, offset=LIMIT - 5), "offset + T - 1", x)
    _refused(lambda: mod.sinusoidal_table(6, 8, offset=LIMIT - 5), "offset + n_positions - 1")
    _refused(lambda: mod.rotary_cos_sin(6, 8, offset=LIMIT - 5), "offset + n_positions - 1")
    # one below the limit is accepted (the positions are exact integers)
    mod.add_sinusoidal(x, offset=LIMIT - 6)
    mod.apply_rotary(x, offset=-(LIMIT - 1))
    assert mod.sinusoidal_table(6, 8, offset=LIMIT - 6).shape == (6, 8)


@pytest.mark.parametrize("mod", MODULES)
def test_regression_fairseq_shift_counts_toward_the_limit(mod):
    """fairseq's implicit positions start at padding_idx + 1 + offset."""
    x = np.ones((1, 4, 8), np.float32)
    _refused(lambda: mod.add_sinusoidal(x, offset=LIMIT - 5, preset="fairseq"), "offset + T - 1", x)
    mod.add_sinusoidal(x, offset=LIMIT - 7, preset="fairseq")


@pytest.mark.parametrize("mod", MODULES)
@pytest.mark.parametrize("positions", [np.array([0, LIMIT], np.int64), np.array([0.0, -(2.0**53)]),
                                       np.array([1, 2**64 - 1], np.uint64), np.array([1e300])],
                         ids=["int64", "float64", "uint64", "1e300"])
def test_regression_explicit_positions_refused(mod, positions):
    x = np.ones((3, positions.shape[0], 8), np.float32)
    _refused(lambda: mod.add_sinusoidal(x, positions=positions), "positions", x)
    _refused(lambda: mod.apply_rotary(x, positions=positions), "positions", x)
    _refused(lambda: mod.sinusoidal_encode(positions, 8), "positions")
    scores = np.ones((1, 2, 3, positions.shape[0]), np.float32)
    _refused(lambda: mod.add_alibi(scores, key_positions=positions), "key_positions", scores)


def test_regression_uint64_position_reported_as_itself():
    """A uint64 position of 2**64-1 was reported as -1 (wrapped to int64)."""
    x = np.ones((1, 2, 8), np.float32)
    positions = np.array([0, 2**64 - 1], np.uint64)
    message = _refused(lambda: fastpe.add_sinusoidal(x, positions=positions), "positions", x)
    assert str(2**64 - 1) in message
    table = np.ones((4, 8), np.float32)
    for mod in (fastpe, reference):
        with pytest.raises(IndexError, match=str(2**64 - 1)):
            mod.add_table(x, table, positions=positions)
        with pytest.raises(IndexError, match=str(2**64 - 1)):
            mod.add_table(x, table, offset=np.array([2**64 - 1], np.uint64))
    assert np.all(x == 1)


def test_positions_below_the_limit_agree_with_the_reference():
    """Integers just below 2**53 are exact: fastpe and the reference see the same positions."""
    positions = np.array([LIMIT - 1, LIMIT - 2, -(LIMIT - 1)], np.int64)
    got = fastpe.sinusoidal_encode(positions, 2, inv_freq=np.array([2.0**-52]), layout="concat", dtype=np.float64)
    # w = 2**-52: the angle p * w is exact in float64, so both sides compute sin/cos of the same angle
    angles = positions.astype(np.float64) * 2.0**-52
    assert np.allclose(got, np.stack([np.sin(angles), np.cos(angles)], axis=1), atol=1e-12, rtol=0)
    ref = reference.sinusoidal_encode(positions, 2, inv_freq=np.array([2.0**-52]), layout="concat",
                                      dtype=np.float64)
    assert np.allclose(got, ref, atol=1e-12, rtol=0)


def test_dask_graphs_refuse_the_limit_when_built():
    extra_import("dask.array", "test")
    import fastpe.dask

    with pytest.raises(ValueError, match=r"offset \+ n_positions - 1.*2\*\*53"):
        fastpe.dask.sinusoidal_table(6, 8, offset=LIMIT - 5)
    assert fastpe.dask.sinusoidal_table(6, 8, offset=LIMIT - 6, dtype=None).dtype == np.float32
