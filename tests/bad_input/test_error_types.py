"""One rule for exception types across the public API (docs/errors.rst), table-driven.

TypeError for the wrong type (a bool or float where an int is needed, a string
where a number is needed, a number where a name is needed), ValueError for a
wrong value, IndexError for table rows out of range. Every public function and
every argument is listed below with a valid call; each argument is replaced in
turn by values of the wrong type and of a wrong value. The error must have the
rule's type, name the argument, and leave every array as it was. Scalar
arguments take 0-d arrays and 0-d tensors, as offset does, with the same result
as the Python number.
"""

import inspect

import numpy as np
import pytest
from optional import missing_reason

import fastpe
from fastpe import reference

try:
    import torch
except ImportError:  # the 0-d tensor cases are skipped
    torch = None

# Wrong values of each kind of argument: (value, exception).
INT = [(True, TypeError), (np.bool_(False), TypeError), (2.0, TypeError), (1.5, TypeError), ("3", TypeError),
       (np.float64(2.0), TypeError), (np.array(2.5), TypeError), (None.__class__, TypeError)]
REAL = [(True, TypeError), ("2", TypeError), (b"2", TypeError), (1j, TypeError), (np.array([1.0, 2.0]), TypeError),
        (np.nan, ValueError), (np.inf, ValueError)]
POSITIVE_REAL = REAL + [(0.0, ValueError), (-1.0, ValueError)]
# offset: a number or an array (one per sequence), so an array is not the wrong type
OFFSET = [v for v in REAL if not isinstance(v[0], np.ndarray)] + [(np.array(["1"]), TypeError)]
BOOL = [(1, TypeError), (0, TypeError), ("yes", TypeError), (None, TypeError)]
NAME = [("no-such-name", ValueError), (3, TypeError), (b"half", TypeError)]
DTYPE = [("int32", TypeError), (np.complex64, TypeError), ("no-such-dtype", TypeError), (object, TypeError)]
THREADS = [(0, ValueError), (-1, ValueError), (True, TypeError), (1.0, TypeError), ("2", TypeError)]
COUNT = INT + [(-1, ValueError)]


def masked(shape, dtype=np.float64):
    """A masked array (numpy.ma) of valid values, one entry masked: fastpe does
    not support masked arrays, as any array argument (TypeError)."""
    mask = np.zeros(shape, bool)
    mask.flat[:1] = True
    return np.ma.masked_array(np.zeros(shape, dtype), mask=mask), TypeError


def positions_like(shape):
    """Explicit positions: wrong dtype, non-finite, wrong shape, masked."""
    return [(np.zeros(shape, complex), TypeError), (np.full(shape, "a"), TypeError), (np.full(shape, np.nan), ValueError),
            (np.zeros(tuple(shape) + (3,)), ValueError), (np.full(shape, 2.0**53), ValueError), masked(shape)]


def frequencies_like(shape):
    """inv_freq: wrong dtype, non-finite, masked."""
    return positions_like(shape)[:3] + [masked(shape)]


def written_array(shape, dtype=np.float32):
    """An array written in place (x, out, scores): wrong dtype, non-native byte
    order (an array fastpe writes must be native), read-only, masked, wrong shape."""
    readonly = np.zeros(shape, dtype)
    readonly.flags.writeable = False
    return [(np.zeros(shape, np.int64), TypeError), (np.zeros(shape, ">f4"), TypeError), (readonly, ValueError),
            masked(shape, dtype), (np.zeros(tuple(shape[:-1]) + (shape[-1] + 2,), dtype), ValueError)]


def table_out(shape):
    """A table function's out: written_array's, plus an out whose dtype
    disagrees with an explicit dtype=float32 (ValueError naming both)."""
    return written_array(shape) + [(np.zeros(shape, np.float64), ValueError)]


X = (2, 6, 8)
Q = (1, 2, 6, 8)
S = (1, 2, 4, 5)
# function: (positional argument names, valid named arguments, {argument: wrong values})
# The valid arguments are made fresh for each call (a callable).
API = {
    "sinusoidal_table": (["n_positions", "dim"], lambda: {"n_positions": 6, "dim": 8, "dtype": np.float32}, {
        "n_positions": COUNT, "dim": COUNT, "offset": REAL, "base": POSITIVE_REAL, "layout": NAME, "dtype": DTYPE,
        "out": table_out((6, 8)), "num_threads": THREADS, "inv_freq": frequencies_like((4,)),
        "preset": NAME, "padding_idx": INT,
    }),
    "sinusoidal_encode": (["positions", "dim"], lambda: {"positions": np.arange(6), "dim": 8, "dtype": np.float32}, {
        "positions": positions_like((6,))[:3] + [(np.array([2**53]), ValueError), masked((6,))], "dim": COUNT,
        "base": POSITIVE_REAL, "layout": NAME, "dtype": DTYPE, "out": table_out((6, 8)), "num_threads": THREADS,
        "inv_freq": frequencies_like((4,)), "preset": NAME, "padding_idx": INT,
    }),
    "add_sinusoidal": (["x"], lambda: {"x": np.ones(X, np.float32)}, {
        "x": written_array(X)[:4], "offset": OFFSET + [(np.zeros(5), ValueError), (2**53, ValueError), masked((2,))],
        "positions": positions_like((2, 6)), "scale": REAL, "base": POSITIVE_REAL, "layout": NAME,
        "out": written_array(X), "num_threads": THREADS, "inv_freq": frequencies_like((4,)), "preset": NAME,
        "padding_idx": INT,
    }),
    "add_table": (["x", "table"], lambda: {"x": np.ones(X, np.float32), "table": np.ones((10, 8), np.float32)}, {
        "x": written_array(X)[:4], "table": [(np.ones((10, 8), complex), TypeError), (np.ones((10, 3)), ValueError),
                                             masked((10, 8))],
        "offset": [(1.5, TypeError), ("1", TypeError), (np.array([0.5]), TypeError), (5, IndexError),
                   (-1, IndexError), (np.zeros(3, int), ValueError), masked((2,), int)],
        "positions": [(np.zeros((2, 6)), TypeError), (np.full((2, 6), 10), IndexError),
                      (np.full((2, 6), -1), IndexError), (np.zeros((3, 6), int), ValueError), masked((2, 6), int)],
        "scale": REAL, "out": written_array(X), "num_threads": THREADS,
    }),
    "sincos_2d": (["grid_h", "grid_w", "dim"], lambda: {"grid_h": 2, "grid_w": 3, "dim": 8}, {
        "grid_h": COUNT, "grid_w": COUNT, "dim": COUNT + [(6, ValueError)], "base": POSITIVE_REAL, "layout": NAME,
        "cls_token": BOOL, "dtype": DTYPE,
    }),
    "add_sincos_2d": (["x", "grid_h", "grid_w"], lambda: {"x": np.ones(X, np.float32), "grid_h": 2, "grid_w": 3}, {
        "x": written_array(X)[:4], "grid_h": COUNT, "grid_w": COUNT, "base": POSITIVE_REAL,
        "layout": NAME, "cls_token": BOOL, "scale": REAL, "out": written_array(X), "num_threads": THREADS,
    }),
    "sinusoidal_nd": (["shape", "dim"], lambda: {"shape": (2, 3), "dim": 8}, {
        "shape": [((2, 1.5), TypeError), ((True, 3), TypeError), ("23", TypeError), ((2, -3), ValueError),
                  ((), ValueError)],
        "dim": COUNT, "min_timescale": POSITIVE_REAL, "max_timescale": POSITIVE_REAL, "dtype": DTYPE,
    }),
    "add_sinusoidal_nd": (["x", "shape"], lambda: {"x": np.ones(X, np.float32), "shape": (2, 3)}, {
        "x": written_array(X)[:4], "shape": [((2, 1.5), TypeError), ((True, 3), TypeError), ((2, 4), ValueError)],
        "min_timescale": POSITIVE_REAL, "max_timescale": POSITIVE_REAL, "scale": REAL, "out": written_array(X),
        "num_threads": THREADS,
    }),
    "apply_rotary": (["arrays"], lambda: {"arrays": np.ones(Q, np.float32)}, {
        "arrays": written_array(Q)[:4], "offset": OFFSET + [(np.zeros(3), ValueError), (2**53, ValueError),
                                                            masked((1,))],
        "positions": positions_like((6,)), "base": POSITIVE_REAL, "layout": NAME,
        "rotary_dim": INT + [(3, ValueError), (10, ValueError), (0, ValueError)],
        "inv_freq": frequencies_like((4,)), "seq_axis": INT + [(-1, ValueError), (7, ValueError)],
        "scaling": [([("rope_type", "linear")], TypeError), ({"rope_type": "nope"}, ValueError),
                    ({"rope_type": "linear", "factor": "2"}, TypeError), ({"seq_len": 4}, ValueError)],
        "out": [(np.zeros(Q, np.float32), ValueError), ([np.zeros(Q, np.int64)], TypeError),
                ([np.zeros((1, 2, 6, 4), np.float32)], ValueError), ([np.zeros(Q, ">f4")], TypeError),
                ([masked(Q, np.float32)[0]], TypeError)],
        "num_threads": THREADS,
    }),
    "rotary_cos_sin": (["n_positions", "rotary_dim"], lambda: {"n_positions": 6, "rotary_dim": 8}, {
        "n_positions": COUNT, "rotary_dim": INT + [(3, ValueError)], "offset": REAL, "base": POSITIVE_REAL,
        "scaling": [(3, TypeError), ({"rope_type": "nope"}, ValueError)], "layout": NAME, "dtype": DTYPE,
    }),
    "rope_inv_freq": (["dim", "base", "scaling"], lambda: {"dim": 8}, {
        "dim": INT + [(7, ValueError), (0, ValueError)], "base": POSITIVE_REAL,
        "scaling": [("linear", TypeError), ({"rope_type": "yarn", "factor": True, "original_max_position_embeddings": 64}, TypeError)],
        "seq_len": COUNT,
    }),
    "alibi_slopes": (["n_heads", "max_bias"], lambda: {"n_heads": 4}, {
        "n_heads": INT + [(0, ValueError)], "max_bias": POSITIVE_REAL,
    }),
    "add_alibi": (["scores"], lambda: {"scores": np.zeros(S, np.float32)}, {
        "scores": written_array(S)[:4], "slopes": [(np.ones(3), ValueError), (np.ones(2, complex), TypeError),
                                                   masked((2,))],
        "max_bias": POSITIVE_REAL, "offset": [(1.5, TypeError), ("1", TypeError), (np.zeros(3, int), ValueError),
                                              masked((1,), int)],
        "key_positions": positions_like((1, 5)), "out": written_array(S), "num_threads": THREADS,
    }),
    "relative_position_bucket": (["relative_position"], lambda: {"relative_position": np.arange(-5, 5)}, {
        "relative_position": [(np.zeros(3, complex), TypeError), (np.array(["a"]), TypeError), masked((3,), int)],
        "bidirectional": BOOL, "num_buckets": INT + [(1, ValueError)], "max_distance": INT + [(0, ValueError)],
    }),
    "add_relative_bias": (["scores", "bias_table"], lambda: {
        "scores": np.zeros(S, np.float32), "bias_table": np.ones((32, 2)), "bidirectional": True, "num_buckets": 32,
        "max_distance": 128}, {
        "scores": written_array(S)[:4], "bias_table": [(np.ones((32, 3)), ValueError), (np.ones((32, 2), complex), TypeError),
                                                       masked((32, 2))],
        "bidirectional": BOOL, "num_buckets": INT + [(1, ValueError)], "max_distance": INT + [(0, ValueError)],
        "offset": [(1.5, TypeError), (np.zeros(3, int), ValueError), masked((1,), int)], "out": written_array(S), "num_threads": THREADS,
    }),
    "make_positions": (["token_ids", "padding_idx"], lambda: {"token_ids": np.array([[5, 6, 1]]), "padding_idx": 1}, {
        "token_ids": [(np.array([[5.0, 1.0]]), TypeError), (np.array(5), ValueError), masked((1, 3), int)],
        "padding_idx": INT, "past_length": [(1.5, TypeError), (np.zeros(3, int), ValueError), masked((1,), int)],
    }),
    "set_cache_limit": (["nbytes"], lambda: {"nbytes": fastpe.cache_info().limit}, {"nbytes": COUNT}),
    "show_config": (["print_out"], lambda: {"print_out": False}, {"print_out": BOOL}),
}
NO_ARGUMENTS = {"cache_info", "cache_clear"}


def _call(module, name, named):
    positional, _, _ = API[name]
    args = []
    for p in positional:  # positionally up to the first one left out, by keyword after it
        if p not in named:
            break
        args.append(named.pop(p))
    if name == "apply_rotary":
        args = [args[0]] if not isinstance(args[0], (list, tuple)) else list(args[0])
        if "out" in named and isinstance(named["out"], list) and not named["out"]:
            named.pop("out")
    return getattr(module, name)(*args, **named)


def test_every_public_function_and_argument_is_listed():
    for name in fastpe.__all__:
        func = getattr(fastpe, name)
        if not callable(func) or isinstance(func, type) or name in NO_ARGUMENTS:
            continue
        assert name in API, f"{name} is missing from the table"
        parameters = set(inspect.signature(func).parameters)
        listed = set(API[name][2])
        # arguments whose only wrong values need another argument to be given too
        conditional = {"min_timescale", "max_timescale"} if "preset" in parameters else set()
        assert parameters - conditional == listed, f"{name}: listed {sorted(listed)}, has {sorted(parameters)}"


CASES = [(module, name, arg, i) for name, (_, _, wrong) in API.items() for arg, values in wrong.items()
         for i in range(len(values)) for module in (fastpe, reference) if hasattr(module, name)]


def _arrays(named):
    found = []
    for v in named.values():
        if isinstance(v, np.ndarray):
            found.append(v)
        elif isinstance(v, list):
            found += [a for a in v if isinstance(a, np.ndarray)]
    return found


@pytest.mark.parametrize("module,name,arg,i", CASES, ids=[f"{m.__name__}-{n}-{a}-{i}" for m, n, a, i in CASES])
def test_wrong_argument_raises_the_rules_type(module, name, arg, i):
    _, valid, wrong = API[name]
    value, expected = wrong[arg][i]
    named = valid()
    named[arg] = value
    before = [a.copy() for a in _arrays(named)]
    with pytest.raises(Exception) as info:
        _call(module, name, dict(named))
    assert type(info.value) is expected, f"{name}({arg}={value!r}) raised {info.type.__name__}: {info.value}"
    assert arg.rstrip("s") in str(info.value) or arg in str(info.value), \
        f"{name}({arg}={value!r}): the message does not name {arg}: {info.value}"
    for a, b in zip(_arrays(named), before):
        assert a.tobytes() == b.tobytes(), f"{name}({arg}={value!r}) wrote before raising"


# Scalars as 0-d arrays and 0-d tensors: (function, argument, value)
SCALARS = [
    ("add_sinusoidal", "scale", 2.0), ("add_sinusoidal", "offset", 3), ("add_sinusoidal", "base", 500.0),
    ("add_sinusoidal", "num_threads", 1), ("add_table", "scale", 0.5), ("add_sincos_2d", "scale", 2.0),
    ("add_sinusoidal_nd", "scale", 2.0), ("sinusoidal_table", "n_positions", 5), ("sinusoidal_table", "dim", 6),
    ("sinusoidal_table", "offset", 2.5), ("sincos_2d", "grid_h", 3), ("sincos_2d", "cls_token", True),
    ("sinusoidal_nd", "dim", 12), ("apply_rotary", "rotary_dim", 4), ("apply_rotary", "seq_axis", -2),
    ("apply_rotary", "base", 100.0), ("rotary_cos_sin", "n_positions", 4), ("rotary_cos_sin", "offset", 7.0),
    ("rope_inv_freq", "dim", 16), ("rope_inv_freq", "seq_len", 4), ("alibi_slopes", "n_heads", 6),
    ("alibi_slopes", "max_bias", 4.0), ("add_alibi", "max_bias", 4.0), ("add_alibi", "offset", 2),
    ("relative_position_bucket", "num_buckets", 16), ("relative_position_bucket", "bidirectional", False),
    ("add_relative_bias", "max_distance", 64), ("make_positions", "padding_idx", 0),
]


def _as_0d(value, kind):
    if kind == "numpy":
        return np.array(value)
    if torch is None:
        pytest.skip(missing_reason("torch"))
    return torch.tensor(value)


def _result(module, name, named):
    out = _call(module, name, named)
    return [np.asarray(o) for o in out] if isinstance(out, tuple) else np.asarray(out)


@pytest.mark.parametrize("kind", ["numpy", "torch"])
@pytest.mark.parametrize("name,arg,value", SCALARS, ids=[f"{n}-{a}" for n, a, _ in SCALARS])
def test_scalars_take_0d_arrays_and_tensors(name, arg, value, kind):
    _, valid, _ = API[name]
    plain = valid()
    plain[arg] = value
    wrapped = valid()
    wrapped[arg] = _as_0d(value, kind)
    for module in (fastpe, reference) if hasattr(reference, name) else (fastpe,):
        expected, got = _result(module, name, dict(plain)), _result(module, name, dict(wrapped))
        for e, g in zip(expected if isinstance(expected, list) else [expected], got if isinstance(got, list) else [got]):
            np.testing.assert_array_equal(g, e)


def test_regression_scale_as_0d_array_and_tensor():
    """scale=np.array(2.0) and scale=torch.tensor(2.0) raised TypeError while offset took arrays."""
    x = np.ones(X, np.float32)
    expected = fastpe.add_sinusoidal(x.copy(), scale=2.0)
    np.testing.assert_array_equal(fastpe.add_sinusoidal(x.copy(), scale=np.array(2.0)), expected)
    if torch is not None:
        np.testing.assert_array_equal(fastpe.add_sinusoidal(x.copy(), scale=torch.tensor(2.0)), expected)


# Byte order: every array fastpe only reads is taken in any byte order (read
# through a native copy); an array it writes must be native (TypeError, in
# written_array above). (function, argument): a valid call that reads it.
_RNG = np.random.default_rng(7)
_XF = _RNG.standard_normal(X).astype(np.float32)
_QF = _RNG.standard_normal(Q).astype(np.float32)
_SF = _RNG.standard_normal(S).astype(np.float32)
_FREQ = np.array([1.0, 0.1, 0.01, 0.001])
READ_ARRAYS = {
    ("sinusoidal_table", "inv_freq"): lambda: {"n_positions": 6, "dim": 8, "inv_freq": _FREQ},
    ("sinusoidal_encode", "positions"): lambda: {"positions": np.arange(6) * 1.5, "dim": 8},
    ("sinusoidal_encode", "inv_freq"): lambda: {"positions": np.arange(6) * 1.5, "dim": 8, "inv_freq": _FREQ},
    ("add_sinusoidal", "x"): lambda: {"x": _XF, "out": np.zeros(X, np.float32)},
    ("add_sinusoidal", "offset"): lambda: {"x": _XF.copy(), "offset": np.array([3, 700])},
    ("add_sinusoidal", "positions"): lambda: {"x": _XF.copy(), "positions": np.arange(12.0).reshape(2, 6) * 1.5},
    ("add_sinusoidal", "inv_freq"): lambda: {"x": _XF.copy(), "inv_freq": _FREQ},
    ("add_table", "x"): lambda: {"x": _XF, "table": np.ones((10, 8)), "out": np.zeros(X, np.float32)},
    ("add_table", "table"): lambda: {"x": _XF.copy(), "table": np.arange(80.0).reshape(10, 8)},
    ("add_table", "offset"): lambda: {"x": _XF.copy(), "table": np.ones((10, 8)), "offset": np.array([1, 4])},
    ("add_table", "positions"): lambda: {"x": _XF.copy(), "table": np.arange(80.0).reshape(10, 8),
                                         "positions": np.arange(12).reshape(2, 6) % 10},
    ("add_sincos_2d", "x"): lambda: {"x": _XF, "grid_h": 2, "grid_w": 3, "out": np.zeros(X, np.float32)},
    ("add_sinusoidal_nd", "x"): lambda: {"x": _XF, "shape": (2, 3), "out": np.zeros(X, np.float32)},
    ("apply_rotary", "arrays"): lambda: {"arrays": _QF, "out": [np.zeros(Q, np.float32)]},
    ("apply_rotary", "offset"): lambda: {"arrays": _QF.copy(), "offset": np.array([9])},
    ("apply_rotary", "positions"): lambda: {"arrays": _QF.copy(), "positions": np.arange(6) * 2.5},
    ("apply_rotary", "inv_freq"): lambda: {"arrays": _QF.copy(), "inv_freq": _FREQ},
    ("add_alibi", "scores"): lambda: {"scores": _SF, "out": np.zeros(S, np.float32)},
    ("add_alibi", "slopes"): lambda: {"scores": _SF.copy(), "slopes": np.array([0.5, 0.25])},
    ("add_alibi", "offset"): lambda: {"scores": _SF.copy(), "offset": np.array([3])},
    ("add_alibi", "key_positions"): lambda: {"scores": _SF.copy(), "key_positions": np.arange(5.0)[None]},
    ("add_relative_bias", "scores"): lambda: {"scores": _SF, "bias_table": np.ones((32, 2)), "bidirectional": True,
                                              "num_buckets": 32, "max_distance": 128, "out": np.zeros(S, np.float32)},
    ("add_relative_bias", "bias_table"): lambda: {"scores": _SF.copy(), "bias_table": np.arange(64.0).reshape(32, 2),
                                                  "bidirectional": True, "num_buckets": 32, "max_distance": 128},
    ("add_relative_bias", "offset"): lambda: {"scores": _SF.copy(), "bias_table": np.arange(64.0).reshape(32, 2),
                                              "bidirectional": True, "num_buckets": 32, "max_distance": 128,
                                              "offset": np.array([5])},
    ("relative_position_bucket", "relative_position"): lambda: {"relative_position": np.arange(-50, 50)},
    ("make_positions", "token_ids"): lambda: {"token_ids": np.array([[5, 6, 1]]), "padding_idx": 1},
    ("make_positions", "past_length"): lambda: {"token_ids": np.array([[5, 6, 1]]), "padding_idx": 1,
                                                "past_length": np.array([4])},
}
BYTE_ORDER_CASES = [(module, name, arg) for name, arg in READ_ARRAYS for module in (fastpe, reference)
                    if hasattr(module, name)]


def _swapped(a):
    """a in the other byte order (the same values)."""
    return a.astype(a.dtype.newbyteorder("S"))


@pytest.mark.parametrize("module,name,arg", BYTE_ORDER_CASES,
                         ids=[f"{m.__name__}-{n}-{a}" for m, n, a in BYTE_ORDER_CASES])
def test_regression_read_only_arrays_take_any_byte_order(module, name, arg):
    """A big-endian learned table, or x read with out=, was refused while
    big-endian positions and offsets were taken: every array fastpe only
    reads is taken in any byte order, with the native call's bits."""
    native = READ_ARRAYS[name, arg]()
    expected = _result(module, name, dict(native))
    call = READ_ARRAYS[name, arg]()
    given = _swapped(call[arg])
    call[arg], before = given, given.copy()
    assert not given.dtype.isnative
    got = _result(module, name, call)
    for e, g in zip(expected if isinstance(expected, list) else [expected], got if isinstance(got, list) else [got]):
        assert e.dtype == g.dtype and e.tobytes() == g.tobytes()
    assert given.tobytes() == before.tobytes(), "a read-only argument was written"


def test_every_read_only_array_argument_is_in_the_byte_order_table():
    """Every argument fastpe reads as an array (not a written x, out or scores) is listed.
    An array argument is one the API table gives a masked array (every one has)."""
    written = {"out", "x", "scores", "arrays"}
    with_out = {name for name, arg in READ_ARRAYS if arg in written}
    for name, (_, _, wrong) in API.items():
        for arg, values in wrong.items():
            takes_array = any(isinstance(v, np.ma.MaskedArray) for v, _ in values)
            if takes_array and arg not in written:
                assert (name, arg) in READ_ARRAYS, f"{name}({arg}=...) is missing from READ_ARRAYS"
            if arg in written and arg != "out" and "out" in wrong:
                assert name in with_out, f"{name}: x (read with out=) is missing from READ_ARRAYS"


@pytest.mark.parametrize("module", [fastpe, reference], ids=["fastpe", "reference"])
def test_regression_masked_x_is_refused(module):
    """np.ma.masked_array as x: the masked entries were written and the mask
    ignored. A masked array is a TypeError saying so, with nothing written."""
    x = np.ma.masked_array(np.zeros((2, 4, 8), np.float32), mask=np.zeros((2, 4, 8), bool))
    x.mask[0, 0, 0] = True
    with pytest.raises(TypeError, match="x is a masked array .* fastpe does not support masked arrays"):
        module.add_sinusoidal(x)
    assert not x.data.any()
