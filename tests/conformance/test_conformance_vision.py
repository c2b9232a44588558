"""fastpe's grid and 1-D encodings against the original vision libraries: positional-encodings and timm.

Each library is optional: its tests skip (with the reason) where it is not
installed. Nothing is downloaded. Tested with torch 2.13.0+cpu,
positional-encodings 6.0.3 and timm 1.0.31.

positional-encodings (``positional_encodings.torch_encodings``)
---------------------------------------------------------------
Read from its source (6.0.3). ``PositionalEncoding{1,2,3}D(D)`` on a tensor of
shape ``(B, *grid, D)`` with ``n = len(grid)`` axes:

* every axis gets the same ``c`` interleaved channels (``sin`` at ``2k``,
  ``cos`` at ``2k+1``) with ``w_k = 1 / 10000 ** (2k / c)``, where
  ``c = 2 * ceil(D / (2n))`` -- 1-D: ``ceil(D/2)*2``; 2-D: ``ceil(D/4)*2``;
  3-D: ``ceil(D/6)*2`` (its "+1 if odd" fix-up can never fire);
* the axis blocks are concatenated in axis order (first grid axis first, for
  tokens in row-major order) and the ``n * c >= D`` channels are cut to ``D``.

Through fastpe's public API that is, with ``T_a = fastpe.sinusoidal_table(grid[a], c)``
(interleaved, base 10000: exactly those frequencies, since ``c`` is even)::

    concat([T_0[i0], T_1[i1], ...])[:D]   for the token (i0, i1, ...)

so the 1-D encoding for even ``D`` is ``fastpe.sinusoidal_table(n, D)``
(``preset="vaswani"``), and for ``D % 4 == 0`` the 2-D encoding uses the
frequencies of ``fastpe.sincos_2d(X, Y, D, layout="mae")``, in another column
order (tested as an explicit column permutation).

Its odd-channel rule is not fastpe's "vaswani" rule. For odd ``D`` the 1-D
encoding is computed at the even width ``D + 1`` and its last column (a cos)
dropped: ``w_k = 10000 ** (-2k / (D + 1))``, ``k = 0 .. (D-1)/2``, so the last
column is ``sin(p w_{(D-1)/2})`` -- the same column structure as vaswani's (a
trailing sine) but a different frequency denominator: vaswani's odd rule is
``w_k = 10000 ** (-2k / D)``. Only ``k = 0`` (``w = 1``, columns 0 and 1)
agrees; for ``D = 5`` the library's ``w_1`` is ``10000 ** (-1/3) = 0.0464``
where vaswani's is ``10000 ** (-2/5) = 0.0251``. fastpe reproduces the library
with ``inv_freq = 10000 ** (-2k / (D + 1))`` (``ceil(D/2)`` of them), or as
``sinusoidal_table(n, D + 1)[:, :D]``; ``preset="vaswani"`` does not, and a
test asserts the difference. In 2-D and 3-D the same rounding up (to
``c = 2 * ceil(D / (2n))`` per axis) plus the final cut means that when
``D`` is not a multiple of ``2n`` the last axes lose trailing channels: 2-D
``D = 6`` gives x 4 channels and y 2; 3-D ``D = 8`` gives x 4, y 4 and z
none at all (its encoding does not depend on z; asserted below).

timm (``timm.layers.pos_embed_sincos.build_sincos2d_pos_embed``)
----------------------------------------------------------------
With its defaults (``reverse_coord=False``, ``interleave_sin_cos=False``),
``build_sincos2d_pos_embed([H, W], dim, temperature)`` is
``fastpe.sincos_2d(H, W, dim, base=temperature, layout="timm")``: tokens
row-major (h outer), columns ``[sin h | sin w | cos h | cos w]``,
``w_k = 1 / temperature ** (k / (dim/4))``. Its ``interleave_sin_cos=True``
variant is ``[sin h | cos h | sin w | cos w]``, which is fastpe's "mae" table
with its two halves swapped (also tested). ``reverse_coord=True`` only
swaps the grid's axes (the token order becomes w-major).

timm's ``__init__`` (and ``timm/layers/__init__``) imports torchvision, and
PyPI's torchvision does not load beside this CPU torch build (0.29.1 needs
torch >= 2.14; 0.28.0, pinned to torch 2.13.0, fails with "operator
torchvision::nms does not exist"), so CI installs timm with ``--no-deps``.
This module then loads the installed ``timm/layers/pos_embed_sincos.py``
itself as a submodule of a private package whose ``__path__`` is the
installed ``timm/layers`` folder: its relative imports (``_fx``, ``grid``,
``trace_utils``) are timm's own files, which need only torch (``_fx`` guards
its torchvision import with ``try/except ImportError``). Nothing is stubbed
or copied; the package ``__init__`` files are simply not run.

Tolerances
----------
Both libraries form their angles in float32 (a float32 ``10000 ** e``, its
float32 reciprocal, a float32 product with the float32 position), so their
own error grows with the position ``p``: the frequency is off by <= 1 ulp
(torch's float32 pow) + 1/2 ulp (reciprocal) and the product by 1/2 ulp,
together <= 2 * 2**-23 = 2.4e-7 relative, plus ~1.1e-8 * p from the float32
rounding of the exponent ``e`` (``max_e e * 10000**-e * ln(10000) * 2**-24``);
since ``w_k <= 1`` the angle error, and so the error of sin/cos, is
<= 2.5e-7 * p. The float32 sin/cos of the library and the float32 rounding of
both sides (fastpe's 1.2e-7 contract) stay below a floor of 1e-6:

    float32_library_atol(p) = 1e-6 + 2.5e-7 * |p|       (p: the coordinate the column encodes)

Measured (single-threaded torch, positional-encodings 1-D widths 2..1024 at
p < 20000 and timm dims 4..1024 with temperatures 1e4 and 1e2 at p < 3000),
the libraries' error against the float64 values is at most 1.12e-7 * p, and
1.6e-6 below p = 20 (under the rule's 6e-6 there): a margin of 2.2x on the
slope, while a wrong frequency, column order or axis order is off by 1e-2 to 1.
fastpe's float32 output itself stays within the contract's 1.2e-7 of the
float64 values at any position (test_float32_libraries_drift_fastpe_does_not:
at p ~ 1e5 the libraries are > 1e-3 off, fastpe is not).

torch's multi-threaded float32 cos was seen ~3e-5 off on some elements, so
torch runs on one thread here (fixture below).
"""

import importlib
import importlib.metadata
import importlib.util
import math
import os
import sys
import types

import numpy as np
import pytest

from optional import conformance_import, no_deps_reason  # noqa: E402

torch = conformance_import("torch")

import fastpe  # noqa: E402
from optional import np32, single_threaded_torch  # noqa: E402,F401 (autouse fixture)
from util import add_tolerance, assert_within, rng_for  # noqa: E402

FLOAT32_ANGLE_FLOOR = 1e-6
FLOAT32_ANGLE_SLOPE = 2.5e-7


def float32_library_atol(p):
    """Elementwise bound for a float32-angle library at coordinates p (see the module docstring)."""
    return FLOAT32_ANGLE_FLOOR + FLOAT32_ANGLE_SLOPE * np.abs(np.asarray(p, dtype=np.float64))


def coordinates(shape):
    """(prod(shape), len(shape)) float64 coordinates of the grid's tokens in row-major order."""
    grids = np.meshgrid(*[np.arange(s, dtype=np.float64) for s in shape], indexing="ij")
    return np.stack(grids, axis=-1).reshape(-1, len(shape))


# --------------------------------------------------------------------------
# positional-encodings


@pytest.fixture(scope="module")
def penc():
    return conformance_import("positional_encodings.torch_encodings")


def penc_width(D, n_axes):
    """positional-encodings' per-axis channel count: D rounded up to a multiple of 2 * n_axes, divided by n_axes."""
    return 2 * math.ceil(D / (2 * n_axes))


def penc_composed(shape, D):
    """positional-encodings' encoding of a grid through fastpe: per-axis interleaved fastpe tables of width c,
    concatenated in axis order, cut to D channels. Returns ((prod(shape), D) float32, the coordinate each
    element encodes)."""
    c = penc_width(D, len(shape))
    blocks = []
    for axis, n in enumerate(shape):
        view = [1] * len(shape) + [c]
        view[axis] = n
        blocks.append(np.broadcast_to(fastpe.sinusoidal_table(n, c).reshape(view), tuple(shape) + (c,)))
    table = np.concatenate(blocks, axis=-1)[..., :D].reshape(-1, D)
    axis_of_column = (np.arange(D) // c)
    positions = coordinates(shape)[:, axis_of_column]
    return table, positions


def penc_lib(module, shape, D, B=1, dtype=torch.float32):
    out = np32(module(torch.zeros((B,) + tuple(shape) + (D,), dtype=dtype)))
    assert out.shape == (B,) + tuple(shape) + (D,)
    return out.reshape(B, -1, D)


@pytest.mark.parametrize("n,D", [(4096, 2), (4096, 4), (4096, 8), (4096, 64), (2048, 128), (2048, 512),
                                 (1024, 1024)])
def test_penc_1d_even_is_the_vaswani_table(penc, n, D):
    lib = penc_lib(penc.PositionalEncoding1D(D), (n,), D)[0]
    atol = float32_library_atol(np.arange(n))[:, None]
    for kw in ({}, {"preset": "vaswani"}):
        assert_within(fastpe.sinusoidal_table(n, D, **kw), lib, atol, f"PositionalEncoding1D({D}) n={n} {kw}")
    table, positions = penc_composed((n,), D)
    assert_within(table, lib, float32_library_atol(positions), f"PositionalEncoding1D({D}) composed")


@pytest.mark.parametrize("D", [1, 3, 5, 9, 63, 65, 511])
def test_penc_1d_odd_rounds_the_width_up(penc, D):
    """Odd D: the library computes width D + 1 (w_k = 10000 ** (-2k/(D+1))) and drops the last column;
    fastpe reproduces that with inv_freq from the rounded-up width, and preset='vaswani' (denominator D)
    differs from it."""
    n = 2048
    lib = penc_lib(penc.PositionalEncoding1D(D), (n,), D)[0]
    atol = float32_library_atol(np.arange(n))[:, None]
    inv_freq = 10000.0 ** (-2.0 * np.arange((D + 1) // 2) / (D + 1))
    assert_within(fastpe.sinusoidal_table(n, D, inv_freq=inv_freq), lib, atol,
                  f"PositionalEncoding1D({D}) vs inv_freq of width {D + 1}")
    assert_within(fastpe.sinusoidal_table(n, D + 1)[:, :D], lib, atol,
                  f"PositionalEncoding1D({D}) vs sinusoidal_table(n, {D + 1})[:, :{D}]")
    vaswani = fastpe.sinusoidal_table(n, D, preset="vaswani")
    # w_0 = 1 under both rules: columns 0 and 1 agree ...
    assert_within(vaswani[:, :2], lib[:, :2], atol, f"D={D}: columns 0, 1")
    if D >= 3:
        # ... every later frequency differs, 10000 ** (-2k/(D+1)) != 10000 ** (-2k/D): each of those columns
        # leaves the tolerance somewhere, and w_1's by far
        diff = np.abs(vaswani.astype(np.float64) - lib)
        outside = (diff > atol)[:, 2:].any(axis=0)
        assert outside.all(), f"D={D}: vaswani's odd rule matches the library in columns {2 + np.flatnonzero(~outside)}"
        assert diff[:, 2:4].max() > 1e-2, f"D={D}: w_1 differs by only {diff[:, 2:4].max():.3e}"


@pytest.mark.parametrize("D", [8, 9, 64])
def test_penc_1d_summer_is_add_sinusoidal(penc, D):
    """Summer(PositionalEncoding1D(D))(x) = x + PE: add_sinusoidal in place, batch of 3."""
    rng = rng_for("penc-summer-1d", D)
    T = 700
    x = rng.uniform(-3, 3, size=(3, T, D)).astype(np.float32)
    expected = np32(penc.Summer(penc.PositionalEncoding1D(D))(torch.from_numpy(x)))
    kw = {} if D % 2 == 0 else {"inv_freq": 10000.0 ** (-2.0 * np.arange((D + 1) // 2) / (D + 1))}
    got = fastpe.add_sinusoidal(x.copy(), **kw)
    atol = float32_library_atol(np.arange(T))[:, None] + add_tolerance(np.float32, T, np.abs(x))
    assert_within(got, expected, atol, f"Summer(PositionalEncoding1D({D}))")


PENC_2D_CASES = [((3, 5), 4), ((5, 3), 8), ((17, 6), 5), ((6, 17), 6), ((9, 4), 7), ((4, 9), 10),
                 ((64, 33), 64), ((33, 64), 66), ((1, 40), 128), ((40, 1), 130), ((24, 40), 256)]


@pytest.mark.parametrize("shape,D", PENC_2D_CASES, ids=str)
def test_penc_2d_is_per_axis_tables(penc, shape, D):
    lib = penc_lib(penc.PositionalEncoding2D(D), shape, D, B=2)
    table, positions = penc_composed(shape, D)
    for b in range(2):
        assert_within(table, lib[b], float32_library_atol(positions), f"PositionalEncoding2D({D}) {shape} batch {b}")


@pytest.mark.parametrize("shape,D", [((3, 5), 4), ((5, 3), 8), ((64, 33), 64), ((24, 40), 256)], ids=str)
def test_penc_2d_is_a_column_permutation_of_sincos_2d_mae(penc, shape, D):
    """For D % 4 == 0 the library's frequencies are MAE's (1 / 10000 ** (k / (D/4))): its columns
    [sin x_k, cos x_k interleaved | sin y_k, cos y_k interleaved] are sincos_2d(X, Y, D, 'mae')'s
    [sin y | cos y | sin x | cos x] (mae's first half encodes the second axis) reordered."""
    X, Y = shape
    q, c = D // 4, D // 2
    lib = penc_lib(penc.PositionalEncoding2D(D), shape, D)[0]
    perm = np.empty(D, dtype=np.intp)
    k = np.arange(q)
    perm[2 * k], perm[2 * k + 1] = 2 * q + k, 3 * q + k  # x: mae's second half
    perm[c + 2 * k], perm[c + 2 * k + 1] = k, q + k  # y: mae's first half
    got = fastpe.sincos_2d(X, Y, D, layout="mae")[:, perm]
    positions = coordinates(shape)[:, np.arange(D) // c]
    assert_within(got, lib, float32_library_atol(positions), f"PositionalEncoding2D({D}) {shape} vs mae")


PENC_3D_CASES = [((2, 3, 4), 6), ((4, 3, 2), 8), ((3, 5, 2), 12), ((5, 2, 3), 13), ((2, 7, 5), 18),
                 ((8, 6, 4), 64), ((4, 9, 7), 96), ((3, 4, 10), 100)]


@pytest.mark.parametrize("shape,D", PENC_3D_CASES, ids=str)
def test_penc_3d_is_per_axis_tables(penc, shape, D):
    lib = penc_lib(penc.PositionalEncoding3D(D), shape, D, B=2)
    table, positions = penc_composed(shape, D)
    for b in range(2):
        assert_within(table, lib[b], float32_library_atol(positions), f"PositionalEncoding3D({D}) {shape} batch {b}")


def test_penc_3d_width_8_leaves_z_unencoded(penc):
    """3-D with D = 8: c = 2 * ceil(8/6) = 4, so x and y take all 8 channels and z none: the library's
    encoding does not depend on z, nor does the composition."""
    shape, D = (3, 4, 5), 8
    lib = penc_lib(penc.PositionalEncoding3D(D), shape, D)[0].reshape(shape + (D,))
    table, positions = penc_composed(shape, D)
    assert_within(table, lib.reshape(-1, D), float32_library_atol(positions), "PositionalEncoding3D(8)")
    assert np.array_equal(lib, np.broadcast_to(lib[:, :, :1], lib.shape)), "the library's z should be unencoded"
    # ... unlike a width where z gets channels (D = 12: 4 each)
    lib12 = penc_lib(penc.PositionalEncoding3D(12), shape, 12)[0].reshape(shape + (12,))
    assert np.abs(lib12[:, :, 1:] - lib12[:, :, :1]).max() > 0.1


@pytest.mark.parametrize("shape,D", [((6, 9), 16), ((9, 6), 10)], ids=str)
def test_penc_2d_permute_and_summer(penc, shape, D):
    """PositionalEncodingPermute2D is channels-first; Summer(PositionalEncoding2D) = add_table of the composition."""
    X, Y = shape
    table, positions = penc_composed(shape, D)
    atol = float32_library_atol(positions)
    lib = np32(penc.PositionalEncodingPermute2D(D)(torch.zeros(2, D, X, Y)))  # (B, D, X, Y)
    assert_within(table, lib[1].reshape(D, X * Y).T, atol, f"PositionalEncodingPermute2D({D}) {shape}")
    rng = rng_for("penc-summer-2d", shape, D)
    x = rng.uniform(-3, 3, size=(2, X, Y, D)).astype(np.float32)
    expected = np32(penc.Summer(penc.PositionalEncoding2D(D))(torch.from_numpy(x))).reshape(2, X * Y, D)
    got = fastpe.add_table(x.reshape(2, X * Y, D).copy(), table)
    assert_within(got, expected, atol + add_tolerance(np.float32, 0, np.abs(x.reshape(2, X * Y, D))),
                  f"Summer(PositionalEncoding2D({D})) {shape}")


def test_penc_3d_summer_float64_input(penc):
    """A float64 input gets a float64 encoding from float32 angles: the same rule holds; fastpe's float64
    composition is the float64 table."""
    shape, D = (4, 5, 6), 24
    rng = rng_for("penc-summer-3d")
    x = rng.uniform(-3, 3, size=(2,) + shape + (D,))
    expected = np32(penc.Summer(penc.PositionalEncoding3D(D))(torch.from_numpy(x))).reshape(2, -1, D)
    c = penc_width(D, 3)
    blocks = [np.broadcast_to(fastpe.sinusoidal_table(n, c, dtype=np.float64).reshape(
        [n if a == axis else 1 for a in range(3)] + [c]), shape + (c,)) for axis, n in enumerate(shape)]
    table = np.concatenate(blocks, axis=-1)[..., :D].reshape(-1, D)
    got = fastpe.add_table(x.reshape(2, -1, D).copy(), table)
    positions = coordinates(shape)[:, np.arange(D) // c]
    assert got.dtype == np.float64
    assert_within(got, expected, float32_library_atol(positions), "Summer(PositionalEncoding3D) float64")


# --------------------------------------------------------------------------
# timm


def load_timm_pos_embed_sincos():
    """The installed timm/layers/pos_embed_sincos.py, loaded without running timm's __init__ files (they
    import torchvision): as a submodule of a private package whose __path__ is timm's layers folder, so its
    relative imports are timm's own files. Skips if timm is missing or the file cannot be loaded so."""
    spec = importlib.util.find_spec("timm")  # finds, does not import
    if spec is None or not spec.submodule_search_locations:
        pytest.skip(no_deps_reason("timm"))
    layers = os.path.join(list(spec.submodule_search_locations)[0], "layers")
    if not os.path.isfile(os.path.join(layers, "pos_embed_sincos.py")):
        pytest.skip(f"timm {importlib.metadata.version('timm')} has no layers/pos_embed_sincos.py")
    name = "_fastpe_conformance_timm_layers"
    package = types.ModuleType(name)
    package.__path__ = [layers]
    sys.modules[name] = package
    try:
        module = importlib.import_module(f"{name}.pos_embed_sincos")
    except Exception as e:  # a timm whose module needs more than torch (e.g. torchvision) at import
        pytest.skip(f"cannot load timm {importlib.metadata.version('timm')}'s pos_embed_sincos without its "
                    f"package (which imports torchvision): {type(e).__name__}: {e}")
    finally:
        for key in [k for k in sys.modules if k == name or k.startswith(name + ".")]:
            del sys.modules[key]
    return module.build_sincos2d_pos_embed


@pytest.fixture(scope="module")
def timm_sincos2d():
    return load_timm_pos_embed_sincos()


def timm_positions(H, W, dim):
    """The coordinate each element of the timm layout encodes: [h | w | h | w] blocks of dim/4."""
    q = dim // 4
    return coordinates((H, W))[:, np.arange(dim) // q % 2]


TIMM_GRIDS = [(1, 1), (3, 5), (5, 3), (7, 2), (2, 7), (14, 9), (9, 14), (16, 1), (1, 16), (24, 40),
              (40, 24), (64, 3), (3, 64)]


@pytest.mark.parametrize("dim", [4, 8, 64, 768])
@pytest.mark.parametrize("H,W", TIMM_GRIDS, ids=str)
def test_timm_build_sincos2d_pos_embed(timm_sincos2d, H, W, dim):
    lib = np32(timm_sincos2d([H, W], dim))
    got = fastpe.sincos_2d(H, W, dim, layout="timm")
    assert_within(got, lib, float32_library_atol(timm_positions(H, W, dim)), f"timm [{H}, {W}] dim={dim}")


@pytest.mark.parametrize("temperature", [100.0, 10000.0, 1e5])
@pytest.mark.parametrize("H,W,dim", [(12, 20, 32), (20, 12, 1024), (200, 3, 256), (3, 200, 64)])
def test_timm_temperature_and_dtypes(timm_sincos2d, H, W, dim, temperature):
    atol = float32_library_atol(timm_positions(H, W, dim))
    for dtype, tdtype in ((np.float32, torch.float32), (np.float64, torch.float64)):
        lib = np32(timm_sincos2d([H, W], dim, temperature=temperature, dtype=tdtype))
        got = fastpe.sincos_2d(H, W, dim, base=temperature, layout="timm", dtype=dtype)
        assert got.dtype == dtype and lib.dtype == dtype
        assert_within(got, lib, atol, f"timm [{H}, {W}] dim={dim} temperature={temperature} {dtype.__name__}")


@pytest.mark.parametrize("H,W,dim", [(14, 9, 64), (7, 16, 48)])
def test_timm_add(timm_sincos2d, H, W, dim):
    """tokens + pos_embed (timm's use of the table) is add_sincos_2d; with a class token in front that gets
    no encoding, cls_token=True."""
    lib = torch.from_numpy(np32(timm_sincos2d([H, W], dim)))
    rng = rng_for("timm-add", H, W, dim)
    atol_rows = float32_library_atol(timm_positions(H, W, dim))
    x = rng.uniform(-3, 3, size=(3, H * W, dim)).astype(np.float32)
    expected = np32(torch.from_numpy(x) + lib)
    got = fastpe.add_sincos_2d(x.copy(), H, W, layout="timm")
    assert_within(got, expected, atol_rows + add_tolerance(np.float32, 0, np.abs(x)), f"timm add [{H}, {W}]")
    x = rng.uniform(-3, 3, size=(3, H * W + 1, dim)).astype(np.float32)
    expected = np32(torch.from_numpy(x) + torch.cat([torch.zeros(1, dim), lib]))
    got = fastpe.add_sincos_2d(x.copy(), H, W, layout="timm", cls_token=True)
    atol = np.concatenate([np.zeros((1, dim)), atol_rows]) + add_tolerance(np.float32, 0, np.abs(x))
    assert_within(got, expected, atol, f"timm add [{H}, {W}] cls_token")
    assert np.array_equal(got[:, 0], x[:, 0]), "the class token gets nothing added"


@pytest.mark.parametrize("H,W,dim", [(5, 8, 16), (8, 5, 64)])
def test_timm_interleave_sin_cos_is_mae_with_halves_swapped(timm_sincos2d, H, W, dim):
    """interleave_sin_cos=True gives [sin h | cos h | sin w | cos w]; mae is [sin w | cos w | sin h | cos h]."""
    lib = np32(timm_sincos2d([H, W], dim, interleave_sin_cos=True))
    mae = fastpe.sincos_2d(H, W, dim, layout="mae")
    got = np.concatenate([mae[:, dim // 2:], mae[:, : dim // 2]], axis=1)
    positions = coordinates((H, W))[:, np.arange(dim) // (dim // 2)]
    assert_within(got, lib, float32_library_atol(positions), f"timm interleave_sin_cos [{H}, {W}]")
    # and the default layout is not that
    assert np.abs(fastpe.sincos_2d(H, W, dim, layout="timm").astype(np.float64) - lib).max() > 0.1


# --------------------------------------------------------------------------
# Large positions: the float32-angle libraries drift, fastpe does not.


def test_float32_libraries_drift_fastpe_does_not(penc, timm_sincos2d):
    """At coordinates ~ 1e5 both libraries are > 1e-3 off the float64 values of their own formulas (but within
    the rule above); fastpe's float32 output is within the contract's 1.2e-7 of those values."""
    n0, m, D = 100_000, 64, 64
    p = np.arange(n0, n0 + m, dtype=np.float64)
    # positional-encodings 1-D, D = 64: interleaved, w_k = 10000 ** (-2k/64)
    w = 10000.0 ** (-2.0 * np.arange(D // 2) / D)
    exact = np.empty((m, D))
    exact[:, 0::2], exact[:, 1::2] = np.sin(p[:, None] * w), np.cos(p[:, None] * w)
    lib = penc_lib(penc.PositionalEncoding1D(D), (n0 + m,), D)[0][n0:]
    got = fastpe.sinusoidal_table(m, D, offset=n0)
    # timm on a (n0 + m) x 1 grid: [sin h | sin w | cos h | cos w], w = 0, w_k = 1 / 10000 ** (k / 16)
    q = D // 4
    wt = 1.0 / 10000.0 ** (np.arange(q) / q)
    exact_t = np.concatenate([np.sin(p[:, None] * wt), np.zeros((m, q)), np.cos(p[:, None] * wt), np.ones((m, q))], 1)
    lib_t = np32(timm_sincos2d([n0 + m, 1], D))[n0:]
    got_t = fastpe.sincos_2d(n0 + m, 1, D, layout="timm")[n0:]
    for name, lib_, got_, exact_ in (("positional-encodings", lib, got, exact), ("timm", lib_t, got_t, exact_t)):
        fast_err = np.abs(got_.astype(np.float64) - exact_).max()
        lib_err = np.abs(lib_.astype(np.float64) - exact_).max()
        assert fast_err <= 1.2e-7, f"{name}: fastpe is {fast_err:.3e} off the float64 values"
        assert lib_err > 1e-3, f"{name}: the float32 library was expected to drift, error {lib_err:.3e}"
        assert_within(lib_, exact_, float32_library_atol(p)[:, None], f"{name} library vs float64")
