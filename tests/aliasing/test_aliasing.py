"""Aliasing: every array a call reads or writes may be a view of one shared buffer.

The rule (docs/aliasing.rst): the result is what it would be had every input
been read before anything was written; outputs that are the same view are
fine; outputs that partly overlap one another have no defined result and are
refused with a ValueError before anything is written.

The fuzz builds, for every public function that writes (fastpe and
fastpe.reference), every array argument (x, table, positions, offsets,
inv_freq, slopes, key_positions, bias_table, q/k, out) as a view into one
buffer: the same view, views shifted by rows or by columns, row-padded or
column-strided, reversed along rows or columns. Integer arguments are views
of the same bytes as int64. The expectation comes from fastpe.reference run
on independent copies (each argument gets its own copy of the buffer, viewed
the same way), written back through the output views; where the rule says
no result is defined, the call must raise ValueError and leave the buffer
bit-for-bit as it was.

FASTPE_ALIAS_EXAMPLES sets the examples per function and module (the default
keeps the module well under a minute).
"""

import math
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import fastpe
from fastpe import reference

as_strided = np.lib.stride_tricks.as_strided

pytestmark = pytest.mark.filterwarnings("ignore:mypy_extensions.TypedDict is deprecated:DeprecationWarning")

N_EXAMPLES = int(os.environ.get("FASTPE_ALIAS_EXAMPLES", "60"))
FUZZ = settings(max_examples=N_EXAMPLES, deadline=None, database=None,
                suppress_health_check=list(HealthCheck), print_blob=True)
MODULES = [pytest.param(fastpe, id="fastpe"), pytest.param(reference, id="reference")]
# fastpe against the reference on copies: an aliasing fault is an O(1) error
# (a value read after it was overwritten); rounding differences are far below.
RTOL = {np.dtype(np.float16): 2e-3, np.dtype(np.float32): 4e-6, np.dtype(np.float64): 1e-11}


# ---------------------------------------------------------------- views

class Recipe:
    """Where a view sits in the buffer: start, row pitch and column step (in
    elements of its base), and which axes run backwards."""

    def __init__(self, kind, start, pitch, step, flip_rows, flip_cols):
        self.kind, self.start, self.pitch, self.step = kind, start, pitch, step
        self.flip_rows, self.flip_cols = flip_rows, flip_cols

    def __repr__(self):
        return (f"Recipe({self.kind}, start={self.start}, pitch={self.pitch}, step={self.step}, "
                f"flip_rows={self.flip_rows}, flip_cols={self.flip_cols})")


def _rows_cols(shape):
    return math.prod(shape[:-1]), shape[-1]


def _extent(shape, pitch, step):
    rows, cols = _rows_cols(shape)
    return (rows - 1) * pitch + (cols - 1) * step + 1


def view_of(buffer, shape, recipe):
    """The view `recipe` describes, of the float buffer or of its bytes as int64."""
    base = buffer if recipe.kind == "float" else buffer.view(np.int64)
    rows, cols = _rows_cols(shape)
    size = base.itemsize
    v = as_strided(base[recipe.start:], shape=(rows, cols), strides=(recipe.pitch * size, recipe.step * size))
    if recipe.flip_rows:
        v = v[::-1]
    if recipe.flip_cols:
        v = v[:, ::-1]
    v = v.reshape(shape)
    assert np.shares_memory(v, buffer)  # a view, not a copy
    return v


def identical(a, b):
    """The same elements in the same order (the stride of a length-1 axis is never used)."""
    return (a.shape == b.shape and a.__array_interface__["data"][0] == b.__array_interface__["data"][0]
            and all(n == 1 or sa == sb for n, sa, sb in zip(a.shape, a.strides, b.strides)))


class Case:
    """One call: its array arguments (name -> (shape, kind, int value range)),
    the names it writes, and how to make the call."""

    def __init__(self, arrays, targets, call, sources=None):
        self.arrays, self.targets, self.call = arrays, targets, call
        self.sources = sources  # apply_rotary: target name -> the array rotated into it


def draw_recipes(data, case, dtype):
    """A recipe per array argument, and the buffer length (its bytes view as int64)."""
    shapes = {}
    for name, (shape, kind, _) in case.arrays.items():
        same = [n for n in shapes if case.arrays[n][0] == shape and case.arrays[n][1] == kind]
        if same and data.draw(st.booleans(), label=f"{name} is the same view as an earlier argument"):
            shapes[name] = ("same", data.draw(st.sampled_from(same), label=f"{name} same as"))
            continue
        cols = shape[-1]
        step = data.draw(st.sampled_from([1, 1, 2]), label=f"{name} column step")
        pad = data.draw(st.sampled_from([0, 0, 1, cols]), label=f"{name} row padding")
        flips = data.draw(st.tuples(st.booleans(), st.booleans()), label=f"{name} reversed rows, columns")
        shapes[name] = ((cols - 1) * step + 1 + pad, step, flips)
    floats_per_int = 8 // np.dtype(dtype).itemsize
    extents = {}
    for name, (shape, kind, _) in case.arrays.items():
        if shapes[name][0] != "same":
            pitch, step, _ = shapes[name]
            extents[name] = _extent(shape, pitch, step) * (1 if kind == "float" else floats_per_int)
    spread = data.draw(st.sampled_from([0, 1, 3, 8, 32, sum(extents.values())]), label="buffer slack")
    length = max(extents.values()) + spread + 2
    length += -length % floats_per_int
    recipes = {}
    for name, (shape, kind, _) in case.arrays.items():
        if shapes[name][0] == "same":
            recipes[name] = recipes[shapes[name][1]]
            continue
        pitch, step, (flip_rows, flip_cols) = shapes[name]
        base_len = length if kind == "float" else length * np.dtype(dtype).itemsize // 8
        last = base_len - _extent(shape, pitch, step)
        near = sorted({r.start + d for r in recipes.values() if r.kind == kind
                       for d in (0, 1, -1, r.pitch, -r.pitch) if 0 <= r.start + d <= last})
        options = st.integers(0, last) if not near else st.one_of(st.sampled_from(near), st.integers(0, last))
        start = data.draw(options, label=f"{name} start")
        recipes[name] = Recipe(kind, start, pitch, step, flip_rows, flip_cols)
    return recipes, length


def arguments(buffer, case, recipes):
    return {name: view_of(buffer, case.arrays[name][0], recipes[name]) for name in case.arrays}


def undefined(case, views):
    """Why the rule leaves the result undefined, or None."""
    names = case.targets
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            va, vb = views[a], views[b]
            if np.shares_memory(va, vb) and not identical(va, vb):
                return f"{a} and {b} partly overlap"
            if case.sources and identical(va, vb) and not identical(views[case.sources[a]], views[case.sources[b]]):
                return f"{a} and {b} are the same array receiving different results"
    return None


def check_case(mod, data, case, dtype):
    recipes, length = draw_recipes(data, case, dtype)
    seed = data.draw(st.integers(0, 2**32 - 1), label="seed")
    rng = np.random.default_rng(seed)
    buffer = rng.uniform(-4.0, 4.0, size=length).astype(dtype)
    views = arguments(buffer, case, recipes)
    for name, (shape, kind, value_range) in case.arrays.items():
        if kind == "int":
            views[name][...] = rng.integers(*value_range, size=shape)
    before = buffer.copy()
    context = f"{mod.__name__} {case.call.__name__} {dtype.__name__} recipes={recipes} length={length}"

    # The expectation: the reference on independent copies, laid out the same way.
    copies = {name: view_of(before.copy(), case.arrays[name][0], recipes[name]) for name in case.arrays}
    expected_error = undefined(case, views)
    inputs = [n for n in case.arrays if n not in case.targets or case.sources]
    event("an input overlaps an output" if any(np.shares_memory(views[i], views[t]) and i != t
                                               for i in inputs for t in case.targets)
          else "inputs apart from outputs")
    event(f"outcome: {'refused' if expected_error else 'compared'}")
    reference_error = None
    if expected_error is None:
        try:
            case.call(reference, copies)
        except (ValueError, TypeError, IndexError) as exc:
            reference_error = exc
    if expected_error is not None or reference_error is not None:
        kind = ValueError if expected_error is not None else type(reference_error)
        with pytest.raises(kind):
            case.call(mod, views)
        assert buffer.tobytes() == before.tobytes(), f"{context}: a refused call ({expected_error or reference_error}) wrote"
        return
    expected = before.copy()
    written = np.zeros(length, dtype=bool)
    for name in case.targets:
        view_of(expected, case.arrays[name][0], recipes[name])[...] = copies[name]
        view_of(written, case.arrays[name][0], recipes[name])[...] = True  # outputs are float views
    case.call(mod, views)
    assert buffer[~written].tobytes() == before[~written].tobytes(), f"{context}: wrote outside its outputs"
    got, want = buffer[written].astype(np.float64), expected[written].astype(np.float64)
    if mod is reference:
        assert got.tobytes() == want.tobytes(), f"{context}: max error {np.abs(got - want).max()}"
    else:
        err = np.abs(got - want)
        assert np.all(err <= RTOL[np.dtype(dtype)] * (1 + np.abs(want))), f"{context}: max error {err.max()}"


# ---------------------------------------------------------------- the functions that write

DTYPES = st.sampled_from([np.float16, np.float32, np.float64])
SCALES = st.sampled_from([None, 0.5])


def _maybe(data, label):
    return data.draw(st.booleans(), label=label)


def _draw_positions(data, arrays, B, T, n_freq):
    """Real offsets (one per sequence) or positions (B, T), or neither; and maybe inv_freq."""
    keys = data.draw(st.sampled_from(["offset", "positions", "none"]), label="offset or positions")
    if keys == "offset":
        arrays["offset"] = ((B, 1), "float", None)
    elif keys == "positions":
        arrays["positions"] = ((B, T), "float", None)
    if _maybe(data, "inv_freq"):
        arrays["inv_freq"] = ((n_freq,), "float", None)


def add_sinusoidal_case(data):
    B, T, D = data.draw(st.integers(1, 2)), data.draw(st.integers(1, 4)), data.draw(st.integers(1, 6))
    arrays = {"x": ((B, T, D), "float", None)}
    kw = {"scale": data.draw(SCALES)}
    _draw_positions(data, arrays, B, T, (D + 1) // 2)
    with_out = _maybe(data, "out")
    if with_out:
        arrays["out"] = ((B, T, D), "float", None)

    def add_sinusoidal(mod, a):
        offset = a["offset"][:, 0] if "offset" in a else 0
        return mod.add_sinusoidal(a["x"], offset=offset, positions=a.get("positions"), inv_freq=a.get("inv_freq"),
                                  out=a.get("out"), **kw)

    return Case(arrays, ["out" if with_out else "x"], add_sinusoidal)


def add_table_case(data):
    B, T, D = data.draw(st.integers(1, 2)), data.draw(st.integers(1, 4)), data.draw(st.integers(1, 6))
    rows = T + data.draw(st.integers(0, 3))
    arrays = {"x": ((B, T, D), "float", None), "table": ((rows, D), "float", None)}
    kw = {"scale": data.draw(SCALES)}
    keys = data.draw(st.sampled_from(["offset", "positions", "none"]), label="offset or positions")
    if keys == "offset":
        arrays["offset"] = ((B, 1), "int", (0, rows - T + 1))
    elif keys == "positions":
        arrays["positions"] = ((B, T), "int", (0, rows))
    with_out = _maybe(data, "out")
    if with_out:
        arrays["out"] = ((B, T, D), "float", None)

    def add_table(mod, a):
        offset = a["offset"][:, 0] if "offset" in a else 0
        return mod.add_table(a["x"], a["table"], offset=offset, positions=a.get("positions"), out=a.get("out"), **kw)

    return Case(arrays, ["out" if with_out else "x"], add_table)


def sinusoidal_table_case(data):
    n, D = data.draw(st.integers(1, 6)), data.draw(st.integers(1, 6))
    arrays = {"out": ((n, D), "float", None)}
    if _maybe(data, "inv_freq"):
        arrays["inv_freq"] = (((D + 1) // 2,), "float", None)

    def sinusoidal_table(mod, a):
        return mod.sinusoidal_table(n, D, offset=1.5, inv_freq=a.get("inv_freq"), out=a["out"])

    return Case(arrays, ["out"], sinusoidal_table)


def sinusoidal_encode_case(data):
    B, T, D = data.draw(st.integers(1, 2)), data.draw(st.integers(1, 4)), data.draw(st.integers(1, 6))
    arrays = {"positions": ((B, T), "float", None), "out": ((B, T, D), "float", None)}
    if _maybe(data, "inv_freq"):
        arrays["inv_freq"] = (((D + 1) // 2,), "float", None)

    def sinusoidal_encode(mod, a):
        return mod.sinusoidal_encode(a["positions"], D, inv_freq=a.get("inv_freq"), out=a["out"])

    return Case(arrays, ["out"], sinusoidal_encode)


def add_sincos_2d_case(data):
    B, gh, gw = data.draw(st.integers(1, 2)), data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3))
    D, layout = data.draw(st.sampled_from([4, 8])), data.draw(st.sampled_from(["mae", "timm"]))
    arrays = {"x": ((B, gh * gw, D), "float", None)}
    with_out = _maybe(data, "out")
    if with_out:
        arrays["out"] = ((B, gh * gw, D), "float", None)
    scale = data.draw(SCALES)

    def add_sincos_2d(mod, a):
        return mod.add_sincos_2d(a["x"], gh, gw, layout=layout, scale=scale, out=a.get("out"))

    return Case(arrays, ["out" if with_out else "x"], add_sincos_2d)


def add_sinusoidal_nd_case(data):
    B, grid = data.draw(st.integers(1, 2)), data.draw(st.tuples(st.integers(1, 3), st.integers(1, 2)))
    D = data.draw(st.sampled_from([8, 10]))
    arrays = {"x": ((B, math.prod(grid), D), "float", None)}
    with_out = _maybe(data, "out")
    if with_out:
        arrays["out"] = ((B, math.prod(grid), D), "float", None)

    def add_sinusoidal_nd(mod, a):
        return mod.add_sinusoidal_nd(a["x"], grid, out=a.get("out"))

    return Case(arrays, ["out" if with_out else "x"], add_sinusoidal_nd)


def apply_rotary_case(data):
    B, T, D = data.draw(st.integers(1, 2)), data.draw(st.integers(1, 4)), data.draw(st.sampled_from([2, 4, 6]))
    n = data.draw(st.integers(1, 3), label="arrays to rotate")
    rotary_dim = data.draw(st.sampled_from(sorted({2, D})), label="rotary_dim")
    layout = data.draw(st.sampled_from(["half", "interleaved"]))
    names = [f"arrays[{i}]" for i in range(n)]
    arrays = {name: ((B, T, D), "float", None) for name in names}
    _draw_positions(data, arrays, B, T, rotary_dim // 2)
    with_out = _maybe(data, "out")
    outs = [f"out[{i}]" for i in range(n)] if with_out else names
    if with_out:
        arrays.update({name: ((B, T, D), "float", None) for name in outs})

    def apply_rotary(mod, a):
        offset = a["offset"][:, 0] if "offset" in a else 0
        return mod.apply_rotary(*[a[name] for name in names], offset=offset, positions=a.get("positions"),
                                inv_freq=a.get("inv_freq"), rotary_dim=rotary_dim, layout=layout,
                                out=[a[name] for name in outs] if with_out else None)

    return Case(arrays, outs, apply_rotary, sources=dict(zip(outs, names)))


def add_alibi_case(data):
    B, H = data.draw(st.integers(1, 2)), data.draw(st.integers(1, 3))
    Tq, Tk = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 4))
    arrays = {"scores": ((B, H, Tq, Tk), "float", None)}
    if _maybe(data, "slopes"):
        arrays["slopes"] = ((H,), "float", None)
    keys = data.draw(st.sampled_from(["offset", "key_positions", "none"]), label="offset or key_positions")
    if keys == "offset":
        arrays["offset"] = ((B,), "int", (0, 5))
    elif keys == "key_positions":
        arrays["key_positions"] = ((B, Tk), "float", None)
    with_out = _maybe(data, "out")
    if with_out:
        arrays["out"] = ((B, H, Tq, Tk), "float", None)

    def add_alibi(mod, a):
        return mod.add_alibi(a["scores"], slopes=a.get("slopes"), offset=a.get("offset", 0),
                             key_positions=a.get("key_positions"), out=a.get("out"))

    return Case(arrays, ["out" if with_out else "scores"], add_alibi)


def add_relative_bias_case(data):
    B, H = data.draw(st.integers(1, 2)), data.draw(st.integers(1, 3))
    Tq, Tk = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 4))
    bidirectional = data.draw(st.booleans())
    arrays = {"scores": ((B, H, Tq, Tk), "float", None), "bias_table": ((8, H), "float", None)}
    if _maybe(data, "offset"):
        arrays["offset"] = ((B,), "int", (0, 5))
    with_out = _maybe(data, "out")
    if with_out:
        arrays["out"] = ((B, H, Tq, Tk), "float", None)

    def add_relative_bias(mod, a):
        return mod.add_relative_bias(a["scores"], a["bias_table"], bidirectional=bidirectional, num_buckets=8,
                                     max_distance=16, offset=a.get("offset", 0), out=a.get("out"))

    return Case(arrays, ["out" if with_out else "scores"], add_relative_bias)


CASES = [add_sinusoidal_case, add_table_case, sinusoidal_table_case, sinusoidal_encode_case, add_sincos_2d_case,
         add_sinusoidal_nd_case, apply_rotary_case, add_alibi_case, add_relative_bias_case]


@pytest.mark.parametrize("mod", MODULES)
@pytest.mark.parametrize("make_case", CASES, ids=lambda f: f.__name__.removesuffix("_case"))
@FUZZ
@given(data=st.data(), dtype=DTYPES)
def test_aliasing_fuzz(make_case, mod, data, dtype):
    check_case(mod, data, make_case(data), dtype)


def test_every_writing_function_is_fuzzed():
    """Each public function with an out= (or that writes its first argument) has a case above."""
    import inspect

    writers = {name for name in fastpe.__all__ if callable(getattr(fastpe, name, None))
               and ("out" in inspect.signature(getattr(fastpe, name)).parameters)}
    fuzzed = {f.__name__.removesuffix("_case") for f in CASES}
    assert writers <= fuzzed, f"not fuzzed: {sorted(writers - fuzzed)}"
    assert fuzzed <= set(reference.__all__)


# ---------------------------------------------------------------- named reproducers

@pytest.mark.parametrize("mod", MODULES)
def test_add_table_x_a_slice_of_its_table(mod):
    """x = table[1:7] added to rows 0..5 of the same table: every row read as it was."""
    table = np.arange(40, dtype=np.float32).reshape(10, 4)
    expected = table[1:7].copy() + table[0:6].copy()
    before = table.copy()
    result = mod.add_table(table[1:7], table)
    assert np.array_equal(result, expected)
    assert np.array_equal(table[1:7], expected)
    assert np.array_equal(table[[0, 7, 8, 9]], before[[0, 7, 8, 9]])


def _qk(seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((1, 4, 16, 32)).astype(np.float32),
            rng.standard_normal((1, 4, 16, 32)).astype(np.float32))


@pytest.mark.parametrize("mod", MODULES)
def test_apply_rotary_out_swapped(mod):
    """out=[k, q]: k receives q's rotation, q receives k's, each from the arrays as they were."""
    q, k = _qk()
    want_q, want_k = reference.apply_rotary(q.copy(), k.copy(), offset=3)
    result = mod.apply_rotary(q, k, offset=3, out=[k, q])
    assert result[0] is k and result[1] is q
    tol = 4e-6 * (1 + np.abs(want_q))
    assert np.all(np.abs(k - want_q) <= tol) and np.all(np.abs(q - want_k) <= 4e-6 * (1 + np.abs(want_k)))


@pytest.mark.parametrize("mod", MODULES)
@pytest.mark.parametrize("shift", ["row", "column"])
def test_apply_rotary_partly_overlapping_arrays_refused(mod, shift):
    """k a shifted view of q, both rotated in place: no defined result, refused before writing."""
    buffer = np.random.default_rng(1).standard_normal((1, 4, 17, 33)).astype(np.float32)
    if shift == "row":
        q, k = buffer[:, :, :16, :32], buffer[:, :, 1:, :32]
    else:
        q, k = buffer[:, :, :16, :32], buffer[:, :, :16, 1:]
    before = buffer.tobytes()
    with pytest.raises(ValueError, match=r"arrays\[0\] and arrays\[1\] overlap"):
        mod.apply_rotary(q, k, offset=3)
    assert buffer.tobytes() == before


@pytest.mark.parametrize("mod", MODULES)
def test_apply_rotary_same_out_for_two_arrays_refused(mod):
    q, k = _qk()
    out = np.zeros_like(q)
    with pytest.raises(ValueError, match=r"out\[0\] and out\[1\] are the same array"):
        mod.apply_rotary(q, k, out=[out, out])
    assert not out.any()


@pytest.mark.parametrize("mod", MODULES)
def test_apply_rotary_same_array_twice_rotated_once(mod):
    """apply_rotary(q, q): both results are q's rotation, read before anything was written."""
    q, _ = _qk()
    want = reference.apply_rotary(q.copy(), offset=5)
    mod.apply_rotary(q, q, offset=5)
    assert np.all(np.abs(q - want) <= 4e-6 * (1 + np.abs(want)))


@pytest.mark.parametrize("mod", MODULES)
def test_apply_rotary_fused_qkv_columns(mod):
    """q and k as column blocks (or interleaved columns) of one projection: disjoint, so accepted."""
    rng = np.random.default_rng(2)
    fused = rng.standard_normal((2, 8, 3, 16)).astype(np.float64)
    for q, k in ((fused[:, :, 0], fused[:, :, 1]), (fused[..., 0::2], fused[..., 1::2])):
        want = reference.apply_rotary(q.copy(), k.copy(), offset=2)
        v_before = fused[:, :, 2].copy()
        mod.apply_rotary(q, k, offset=2)
        for got, w in zip((q, k), want):
            assert np.all(np.abs(got - w) <= 1e-12 * (1 + np.abs(w)))
        if q.shape[-1] == 16:
            assert np.array_equal(fused[:, :, 2], v_before)


@pytest.mark.parametrize("mod", MODULES)
def test_add_sinusoidal_positions_inside_x(mod):
    """positions read from a column of x itself, x written in place."""
    x = np.random.default_rng(3).uniform(0, 8, (2, 5, 6))
    want = reference.add_sinusoidal(x.copy(), positions=x[..., 0].copy())
    mod.add_sinusoidal(x, positions=x[..., 0])
    assert np.all(np.abs(x - want) <= 1e-11 * (1 + np.abs(want)))


@pytest.mark.parametrize("mod", MODULES)
def test_add_alibi_slopes_inside_scores(mod):
    scores = np.random.default_rng(4).standard_normal((1, 3, 4, 5))
    slopes = scores[0, 0, 0, :3]
    want = reference.add_alibi(scores.copy(), slopes=slopes.copy())
    mod.add_alibi(scores, slopes=slopes)
    assert np.all(np.abs(scores - want) <= 1e-12 * (1 + np.abs(want)))



def test_regression_overlap_solver_giving_up_counts_as_overlap(monkeypatch):
    """Where NumPy's exact overlap solver gives up, the arrays count as
    overlapping (an input is then read from a copy). Its exception is
    np.exceptions.TooHardError from NumPy 1.25 and np.TooHardError before:
    on NumPy 1.23 and 1.24 this path raised AttributeError."""
    buffer = np.zeros(4096)
    a = as_strided(buffer, (8, 8), (38 * 8, 43 * 8))
    b = as_strided(buffer[8:], (8, 8), (57 * 8, 38 * 8))
    assert np.may_share_memory(a, b) and not np.shares_memory(a, b)  # really apart, but bounds overlap
    monkeypatch.setattr(fastpe._validation.aliasing, "_OVERLAP_MAX_WORK", 1)
    assert fastpe._validation.aliasing.shares_memory(a, b)
