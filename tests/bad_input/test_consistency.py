"""Regression tests for small inconsistencies between the documentation,
fastpe and the reference (messages that misreport the caller's input, defaults
that did not mean what the README says)."""

import numpy as np
import pytest

import fastpe
from fastpe import reference

MODULES = [pytest.param(fastpe, id="fastpe"), pytest.param(reference, id="reference")]


@pytest.mark.parametrize("mod", MODULES)
def test_regression_dtype_none_means_the_default_float32(mod):
    """dtype=None gave float64 (np.dtype(None)); the documented default is float32."""
    assert mod.sinusoidal_table(3, 8, dtype=None).dtype == np.float32
    assert mod.sinusoidal_encode(np.arange(3), 8, dtype=None).dtype == np.float32
    assert mod.sincos_2d(2, 2, 8, dtype=None).dtype == np.float32
    assert mod.sinusoidal_nd((2, 2), 8, dtype=None).dtype == np.float32
    assert all(t.dtype == np.float32 for t in mod.rotary_cos_sin(3, 8, dtype=None))
    np.testing.assert_array_equal(mod.sinusoidal_table(3, 8, dtype=None), mod.sinusoidal_table(3, 8))


@pytest.mark.parametrize("mod", MODULES)
@pytest.mark.parametrize("out_dtype", [np.float32, np.float16, np.float64])
def test_regression_list_x_with_out_takes_outs_dtype(mod, out_dtype):
    """A list x with out= asked for a float64 out. A list has no dtype of its own: it is read as
    out's dtype (as NumPy's ufuncs read a list with out=), so the result is that of the same
    values held in an array of out's dtype."""
    values = [[0.5, 1.25, -2.0, 3.0], [4.0, -0.75, 6.5, 7.0]]
    out = np.full((2, 4), np.nan, out_dtype)
    result = mod.add_sinusoidal(values, out=out)
    assert result is out
    as_array = np.array(values, dtype=out_dtype)
    np.testing.assert_array_equal(out, mod.add_sinusoidal(as_array.copy()))  # the list is that array
    tol = {np.float64: 1e-12, np.float32: 1e-6, np.float16: 1e-2}[out_dtype]
    np.testing.assert_allclose(out, reference.add_sinusoidal(as_array), atol=tol, rtol=0)
    ints = [[1, 2], [3, 4]]  # an integer list too: it is read as out's floats
    out2 = np.zeros((2, 2), out_dtype)
    mod.add_table(ints, np.ones((2, 2), out_dtype), out=out2)
    np.testing.assert_array_equal(out2, np.array(ints, out_dtype) + 1)


def test_an_array_x_keeps_its_dtype_with_out():
    """Only dtype-less input follows out: an array of another dtype is still an error."""
    with pytest.raises(ValueError, match="out must have dtype float64"):
        fastpe.add_sinusoidal(np.zeros((2, 4)), out=np.zeros((2, 4), np.float32))


@pytest.mark.parametrize("mod", MODULES)
def test_regression_positions_shape_reported_as_given(mod):
    """positions of shape (6, 1) were reported as "(6, 1, 1)" (the internal reshape)."""
    q = np.zeros((1, 2, 6, 8), np.float32)
    with pytest.raises(ValueError, match=r"positions of shape \(6, 1\) does not broadcast"):
        mod.apply_rotary(q, positions=np.zeros((6, 1)))
    x = np.zeros((2, 6, 4), np.float32)
    with pytest.raises(ValueError, match=r"positions of shape \(6, 1\) does not broadcast"):
        mod.add_sinusoidal(x, positions=np.zeros((6, 1)))


@pytest.mark.parametrize("mod", MODULES)
def test_regression_rotary_inv_freq_message_names_rotary_dim(mod):
    """apply_rotary's inv_freq error spoke of layout='concat', which apply_rotary does not have."""
    q = np.zeros((1, 2, 6, 8), np.float32)
    with pytest.raises(ValueError, match=r"inv_freq must be a 1-D array of 4 frequencies \(rotary_dim // 2") as info:
        mod.apply_rotary(q, inv_freq=np.ones(3))
    assert "concat" not in str(info.value)


@pytest.mark.parametrize("cls_token", [False, True])
@pytest.mark.parametrize("layout", ["mae", "timm"])
@pytest.mark.parametrize("grid", [(3, 5, 0), (0, 5, 8), (3, 0, 4)])
def test_regression_size_0_grids_agree(grid, layout, cls_token):
    """sincos_2d(3, 5, 0) worked in fastpe but raised ValueError in the reference."""
    got = fastpe.sincos_2d(*grid, layout=layout, cls_token=cls_token)
    want = reference.sincos_2d(*grid, layout=layout, cls_token=cls_token)
    assert got.shape == want.shape == (grid[0] * grid[1] + cls_token, grid[2])
    np.testing.assert_allclose(got, want, atol=1.2e-7, rtol=0)
    x = np.ones((2, grid[0] * grid[1] + cls_token, grid[2]), np.float32)
    y = x.copy()
    fastpe.add_sincos_2d(x, grid[0], grid[1], layout=layout, cls_token=cls_token)
    reference.add_sincos_2d(y, grid[0], grid[1], layout=layout, cls_token=cls_token)
    np.testing.assert_allclose(x, y, atol=2.4e-7, rtol=0)


@pytest.mark.parametrize("mod", MODULES)
def test_list_inputs_with_out_follow_out_in_rotary_and_biases(mod):
    """The same rule for apply_rotary's arrays and the biases' scores: a list is read as out's dtype."""
    q = np.arange(2 * 3 * 4, dtype=np.float32).reshape(1, 2, 3, 4) / 7
    out = np.zeros_like(q)
    mod.apply_rotary(q.tolist(), out=[out])
    np.testing.assert_array_equal(out, mod.apply_rotary(q.copy()))
    scores = np.arange(2 * 3 * 3, dtype=np.float16).reshape(1, 2, 3, 3)
    out16 = np.zeros_like(scores)
    mod.add_alibi(scores.tolist(), out=out16)
    np.testing.assert_array_equal(out16, mod.add_alibi(scores.copy()))
