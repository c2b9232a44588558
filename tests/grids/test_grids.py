"""2-D (mae, timm, big_vision) and n-D (tensor2tensor) grids: kernel vs the
reference, the reference vs per-element formulas written from each source's
description, fused adds over memory layouts, bad input."""

import math

import numpy as np
import pytest
from util import (
    DTYPES,
    add_tolerance,
    array_variants,
    assert_unchanged,
    assert_within,
    contract_atol,
    describe,
    rng_for,
    snapshot,
)

import fastpe
from fastpe import reference

LAYOUTS_2D = ("mae", "timm", "big_vision")
GRIDS = [(1, 1, 8), (3, 5, 8), (5, 3, 12), (4, 7, 64), (14, 14, 768)]


def formula_2d(h, w, dim, layout, base=10000.0, cls_token=False):
    """Per element, with math.*: token h*W + w; q = dim/4 frequencies per block."""
    q = dim // 4
    denom = (q - 1) if layout == "big_vision" else q
    omega = [1.0 / math.pow(base, k / denom) for k in range(q)]
    rows = []
    if cls_token:
        rows.append([0.0] * dim)
    for i in range(h):
        for j in range(w):
            sin_h = [math.sin(i * o) for o in omega]
            cos_h = [math.cos(i * o) for o in omega]
            sin_w = [math.sin(j * o) for o in omega]
            cos_w = [math.cos(j * o) for o in omega]
            if layout == "timm":
                rows.append(sin_h + sin_w + cos_h + cos_w)
            else:  # mae and big_vision: the column index (w, "x") first
                rows.append(sin_w + cos_w + sin_h + cos_h)
    return np.array(rows, dtype=np.float64).reshape(-1, dim)


def formula_nd(shape, dim, lo=1.0, hi=1e4):
    n = dim // (2 * len(shape))
    inv = [lo * math.exp(-k * math.log(hi / lo) / (n - 1)) for k in range(n)]
    out = np.zeros(shape + (dim,))
    for idx in np.ndindex(*shape):
        for axis, p in enumerate(idx):
            c0 = 2 * axis * n
            for k in range(n):
                out[idx + (c0 + k,)] = math.sin(p * inv[k])
                out[idx + (c0 + n + k,)] = math.cos(p * inv[k])
    return out


@pytest.mark.parametrize("layout", LAYOUTS_2D)
@pytest.mark.parametrize("cls_token", [False, True])
def test_reference_2d_against_formula(layout, cls_token):
    for h, w, dim in GRIDS[:4]:
        got = reference.sincos_2d(h, w, dim, layout=layout, cls_token=cls_token, dtype=np.float64)
        expected = formula_2d(h, w, dim, layout, cls_token=cls_token)
        assert_within(got, expected, 1e-13, f"reference {layout} {h}x{w} dim={dim} cls={cls_token}")


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("layout", LAYOUTS_2D)
@pytest.mark.parametrize("cls_token", [False, True])
def test_sincos_2d_matches_reference(dtype, layout, cls_token):
    for h, w, dim in GRIDS:
        got = fastpe.sincos_2d(h, w, dim, layout=layout, cls_token=cls_token, dtype=dtype)
        expected = reference.sincos_2d(h, w, dim, layout=layout, cls_token=cls_token, dtype=np.float64)
        assert got.dtype == dtype and got.shape == (h * w + cls_token, dim)
        assert_within(got, expected, contract_atol(dtype, max(h, w)), f"{layout} {h}x{w} dim={dim}")


def test_sincos_2d_returns_a_private_array():
    a = fastpe.sincos_2d(3, 4, 16)
    assert a.flags.writeable
    a[...] = 7.0
    b = fastpe.sincos_2d(3, 4, 16)
    assert not np.any(b == 7.0), "the cached table was handed out and modified"


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("layout", LAYOUTS_2D)
def test_add_sincos_2d_matches_reference(dtype, layout):
    rng = rng_for("grid2d-add", np.dtype(dtype).name, layout)
    for h, w, dim, cls_token, scale in [(3, 5, 8, False, None), (4, 7, 64, True, 2.5), (14, 14, 96, True, None)]:
        shape = (2, h * w + cls_token, dim)
        for label, x in array_variants(shape, dtype, rng):
            x0 = x.copy()
            expected = reference.add_sincos_2d(x0.copy(), h, w, layout=layout, cls_token=cls_token, scale=scale)
            got = fastpe.add_sincos_2d(x, h, w, layout=layout, cls_token=cls_token, scale=scale)
            assert got is x
            xs = np.abs(x0.astype(np.float64)) * (1.0 if scale is None else scale)
            assert_within(got, expected, add_tolerance(dtype, max(h, w), xs), f"{layout} {label} {describe(x)}")
            if cls_token:
                assert_within(got[:, 0], x0[:, 0].astype(np.float64) * (1.0 if scale is None else scale),
                              add_tolerance(dtype, 0, xs[:, 0]), "the cls row gets no encoding")


@pytest.mark.parametrize("shape,dim", [((5,), 8), ((3, 4), 16), ((2, 3, 4), 24), ((2, 3, 4), 26), ((1, 2, 1, 3), 32)])
def test_nd_reference_and_kernel(shape, dim):
    expected = formula_nd(shape, dim)
    ref = reference.sinusoidal_nd(shape, dim, dtype=np.float64)
    assert_within(ref, expected, 1e-13, f"reference nd {shape} {dim}")
    for dtype in DTYPES:
        got = fastpe.sinusoidal_nd(shape, dim, dtype=dtype)
        assert got.shape == shape + (dim,)
        assert_within(got, expected, contract_atol(dtype, max(shape)), f"nd {shape} {dim} {np.dtype(dtype).name}")
    n = dim // (2 * len(shape))
    assert not np.any(fastpe.sinusoidal_nd(shape, dim)[..., 2 * len(shape) * n:]), "leftover channels must be 0"


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_add_sinusoidal_nd_matches_reference(dtype):
    rng = rng_for("gridnd-add", np.dtype(dtype).name)
    for shape, dim, scale in [((4, 5), 16, None), ((2, 3, 4), 24, 0.5)]:
        xshape = (3, math.prod(shape), dim)
        for label, x in array_variants(xshape, dtype, rng):
            x0 = x.copy()
            expected = reference.add_sinusoidal_nd(x0.copy(), shape, scale=scale)
            got = fastpe.add_sinusoidal_nd(x, shape, scale=scale)
            xs = np.abs(x0.astype(np.float64)) * (1.0 if scale is None else scale)
            assert_within(got, expected, add_tolerance(dtype, max(shape), xs), f"nd add {shape} {label}")


def test_out_leaves_x_alone():
    rng = rng_for("grid-out")
    x = rng.standard_normal((2, 12, 16))
    x0 = x.copy()
    out = np.empty_like(x)
    got = fastpe.add_sincos_2d(x, 3, 4, out=out)
    assert got is out and np.array_equal(x, x0)
    assert_within(out, reference.add_sincos_2d(x0, 3, 4), add_tolerance(np.float64, 4, np.abs(x0)), "out=")


BAD_GRID_CALLS = [
    ("dim-not-multiple-of-4", ValueError, "dim", lambda m, x: m.sincos_2d(3, 3, 10)),
    ("big-vision-dim-4", ValueError, "dim", lambda m, x: m.sincos_2d(3, 3, 4, layout="big_vision")),
    ("unknown-layout", ValueError, "layout", lambda m, x: m.sincos_2d(3, 3, 8, layout="vit")),
    ("negative-grid", ValueError, "grid_h", lambda m, x: m.sincos_2d(-1, 3, 8)),
    ("cls-not-bool", TypeError, "cls_token", lambda m, x: m.sincos_2d(3, 3, 8, cls_token=1)),
    ("longdouble", TypeError, "dtype", lambda m, x: m.sincos_2d(3, 3, 8, dtype=np.longdouble)),
    ("add-token-count", ValueError, "tokens", lambda m, x: m.add_sincos_2d(x, 3, 3)),
    ("add-dim", ValueError, "dim", lambda m, x: m.add_sincos_2d(x[..., :6], 3, 4)),
    ("add-scale-inf", ValueError, "scale", lambda m, x: m.add_sincos_2d(x, 3, 4, scale=float("inf"))),
    ("nd-too-narrow", ValueError, "dim", lambda m, x: m.sinusoidal_nd((2, 3), 7)),
    ("nd-empty-shape", ValueError, "shape", lambda m, x: m.sinusoidal_nd((), 8)),
    ("nd-bad-shape", TypeError, "shape", lambda m, x: m.sinusoidal_nd((2.5, 3), 16)),
    ("nd-add-tokens", ValueError, "prod", lambda m, x: m.add_sinusoidal_nd(x, (5, 3))),
    ("nd-timescale", ValueError, "min_timescale", lambda m, x: m.sinusoidal_nd((3,), 8, min_timescale=0)),
]


@pytest.mark.parametrize("impl", [fastpe, reference], ids=["fastpe", "reference"])
@pytest.mark.parametrize("case", BAD_GRID_CALLS, ids=[c[0] for c in BAD_GRID_CALLS])
def test_bad_grid_input(impl, case):
    _, exc, name, call = case
    x = rng_for("grid-bad", case[0]).standard_normal((2, 12, 8))
    snaps = snapshot(x)
    with pytest.raises(exc, match=name):
        call(impl, x)
    assert_unchanged(snaps, f"{impl.__name__} {case[0]}")
