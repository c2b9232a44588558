"""Bad arguments to fastpe.dask raise when the graph is built, with the eager
call's exception type and message, and building a graph runs no kernel."""

import inspect

import numpy as np
import pytest
from optional import extra_import

da = extra_import("dask.array", "test")

from dask_checks import assert_same_error, forbid_kernels  # noqa: E402

import fastpe  # noqa: E402
import fastpe.dask as fpd  # noqa: E402

X = np.zeros((2, 6, 8))
SCORES = np.zeros((2, 3, 4, 5))
Q, K = np.zeros((2, 3, 6, 8)), np.zeros((2, 1, 6, 8))
TABLE = np.zeros((10, 8))
T5 = {"bidirectional": True, "num_buckets": 16, "max_distance": 10}
IDS = np.ones((2, 6), dtype=np.int64)

# (function, positional arrays, keyword arguments, keywords passed as Dask arrays
# to the lazy call, whether the message prints the array's shape).
CASES = {
    "table: x of ints": ("add_table", (X.astype(np.int32), TABLE), {}, (), False),
    "table: x 1-D": ("add_table", (np.zeros(8), TABLE), {}, (), True),
    "table: 1-D table": ("add_table", (X, np.zeros(8)), {}, (), False),
    "table: width": ("add_table", (X, np.zeros((10, 7))), {}, (), False),
    "table: table of ints": ("add_table", (X, TABLE.astype(int)), {}, (), False),
    "table: float offset": ("add_table", (X, TABLE), {"offset": 1.5}, (), False),
    "table: offsets shape": ("add_table", (X, TABLE), {"offset": np.zeros(3, int)}, (), False),
    "table: Dask offsets shape": ("add_table", (X, TABLE), {"offset": np.zeros(3, int)}, ("offset",), False),
    "table: float positions": ("add_table", (X, TABLE), {"positions": np.zeros(6)}, ("positions",), False),
    "table: positions shape": ("add_table", (X, TABLE), {"positions": np.zeros(5, int)}, (), False),
    "table: offset and positions": ("add_table", (X, TABLE), {"offset": 1, "positions": np.zeros(6, int)}, (),
                                    False),
    "table: Dask offset and positions": ("add_table", (X, TABLE), {"offset": np.ones(2, int),
                                                                   "positions": np.zeros(6, int)}, ("offset",), False),
    "table: offset beyond the rows": ("add_table", (X, TABLE), {"offset": np.array([0, 5])}, (), False),
    "table: negative offset": ("add_table", (X, TABLE), {"offset": -1}, (), False),
    "table: position beyond the rows": ("add_table", (X, TABLE), {"positions": np.array([0, 1, 2, 3, 4, 10])}, (),
                                        False),
    "table: scale": ("add_table", (X, TABLE), {"scale": "2"}, (), False),
    "table: threads": ("add_table", (X, TABLE), {"num_threads": 0}, (), False),
    "positions: float ids": ("make_positions", (IDS.astype(float), 1), {}, (), False),
    "positions: 0-d ids": ("make_positions", (np.array(3), 1), {}, (), False),
    "positions: padding_idx": ("make_positions", (IDS, 1.5), {}, (), False),
    "positions: float past": ("make_positions", (IDS, 1), {"past_length": 2.0}, (), False),
    "positions: past shape": ("make_positions", (IDS, 1), {"past_length": np.zeros(3, int)}, ("past_length",), False),
    "2-D: dim": ("add_sincos_2d", (np.zeros((2, 6, 6)), 2, 3), {}, (), False),
    "2-D: tokens": ("add_sincos_2d", (X, 2, 2), {}, (), True),
    "2-D: tokens of a 2-D x": ("add_sincos_2d", (np.zeros((6, 8)), 2, 2), {}, (), True),
    "2-D: layout": ("add_sincos_2d", (X, 2, 3), {"layout": "vit"}, (), False),
    "2-D: cls_token": ("add_sincos_2d", (X, 2, 3), {"cls_token": 1}, (), False),
    "2-D: x 1-D": ("add_sincos_2d", (np.zeros(8), 2, 3), {}, (), True),
    "n-D: empty shape": ("add_sinusoidal_nd", (X, ()), {}, (), False),
    "n-D: dim": ("add_sinusoidal_nd", (X, (2, 3, 1)), {}, (), False),
    "n-D: tokens": ("add_sinusoidal_nd", (X, (5,)), {}, (), True),
    "n-D: timescale": ("add_sinusoidal_nd", (X, (2, 3)), {"min_timescale": 0.0}, (), False),
    "rotary: no arrays": ("apply_rotary", (), {}, (), False),
    "rotary: dtypes": ("apply_rotary", (Q, K.astype(np.float32)), {}, (), False),
    "rotary: ints": ("apply_rotary", (Q.astype(int),), {}, (), False),
    "rotary: 1-D": ("apply_rotary", (np.zeros(8),), {}, (), False),
    "rotary: seq_axis": ("apply_rotary", (Q,), {"seq_axis": -1}, (), False),
    "rotary: lengths": ("apply_rotary", (Q, np.zeros((2, 1, 5, 8))), {}, (), False),
    "rotary: layout": ("apply_rotary", (Q,), {"layout": "gptj"}, (), False),
    "rotary: odd rotary_dim": ("apply_rotary", (Q,), {"rotary_dim": 3}, (), False),
    "rotary: wide rotary_dim": ("apply_rotary", (Q,), {"rotary_dim": 10}, (), False),
    "rotary: widths without rotary_dim": ("apply_rotary", (Q, np.zeros((2, 1, 6, 4))), {}, (), False),
    "rotary: offset and positions": ("apply_rotary", (Q,), {"offset": 2, "positions": np.arange(6)}, (), False),
    "rotary: Dask offset and positions": ("apply_rotary", (Q,), {"offset": np.ones(2), "positions": np.arange(6)},
                                          ("offset",), False),
    "rotary: positions shape": ("apply_rotary", (Q,), {"positions": np.arange(5)}, ("positions",), False),
    "rotary: offsets shape": ("apply_rotary", (Q,), {"offset": np.arange(3)}, (), False),
    "rotary: position limit": ("apply_rotary", (Q,), {"offset": 2.0**53 - 3}, (), False),
    "rotary: inv_freq and scaling": ("apply_rotary", (Q,), {"inv_freq": np.ones(4),
                                                            "scaling": {"rope_type": "linear", "factor": 2.0}}, (),
                                     False),
    "rotary: scaling key": ("apply_rotary", (Q,), {"scaling": {"rope_type": "linear"}}, (), False),
    "rotary: rope type": ("apply_rotary", (Q,), {"scaling": {"rope_type": "ntk"}}, (), False),
    "rotary: threads": ("apply_rotary", (Q,), {"num_threads": 0}, (), False),
    "alibi: 3-D scores": ("add_alibi", (np.zeros((2, 3, 4)),), {}, (), True),
    "alibi: scores of ints": ("add_alibi", (SCORES.astype(int),), {}, (), False),
    "alibi: slopes length": ("add_alibi", (SCORES,), {"slopes": np.ones(2)}, ("slopes",), False),
    "alibi: slopes and max_bias": ("add_alibi", (SCORES,), {"slopes": np.ones(3), "max_bias": 4.0}, (), False),
    "alibi: max_bias": ("add_alibi", (SCORES,), {"max_bias": -1.0}, (), False),
    "alibi: float offset": ("add_alibi", (SCORES,), {"offset": 1.5}, (), False),
    "alibi: Dask float offsets": ("add_alibi", (SCORES,), {"offset": np.zeros(2)}, ("offset",), False),
    "alibi: offsets shape": ("add_alibi", (SCORES,), {"offset": np.zeros(3, int)}, (), False),
    "alibi: offset limit": ("add_alibi", (SCORES,), {"offset": 2**52 - 8}, (), False),
    "alibi: key positions and offset": ("add_alibi", (SCORES,), {"offset": 1, "key_positions": np.arange(5)}, (),
                                        False),
    "alibi: key positions and Dask offset": ("add_alibi", (SCORES,), {"offset": np.ones(2, int),
                                                                      "key_positions": np.arange(5)}, ("offset",),
                                             False),
    "alibi: key positions shape": ("add_alibi", (SCORES,), {"key_positions": np.arange(4)}, ("key_positions",), False),
    "t5: table shape": ("add_relative_bias", (SCORES, np.zeros((16, 2))), T5, (), False),
    "t5: bidirectional": ("add_relative_bias", (SCORES, np.zeros((16, 3))), {**T5, "bidirectional": 1}, (), False),
    "t5: buckets": ("add_relative_bias", (SCORES, np.zeros((2, 3))), {**T5, "num_buckets": 2}, (), False),
    "t5: max_distance": ("add_relative_bias", (SCORES, np.zeros((16, 3))), {**T5, "max_distance": 4}, (), False),
    "t5: offsets shape": ("add_relative_bias", (SCORES, np.zeros((16, 3))), {**T5, "offset": np.zeros(3, int)},
                          ("offset",), False),
    "t5: threads": ("add_relative_bias", (SCORES, np.zeros((16, 3))), {**T5, "num_threads": 0}, (), False),
}


@pytest.mark.parametrize("name", fpd.__all__)
def test_lazy_signatures_mirror_the_eager_ones(name):
    """Each lazy function takes its eager function's arguments with the same
    defaults (only out= is left out: the result is a new Dask array), so a
    default changed in one place cannot silently differ in the other."""
    lazy = inspect.signature(getattr(fpd, name)).parameters
    eager = inspect.signature(getattr(fastpe, name)).parameters
    lazy_names = {"x" if argument == "darr" else argument for argument in lazy}  # the array added into
    assert set(eager) - lazy_names <= {"out"}, sorted(set(eager) - lazy_names)
    for argument, parameter in lazy.items():
        if argument in ("darr", "chunks"):  # the array (eager: x) and the output's chunks (lazy only)
            continue
        assert argument in eager, f"{name}: {argument} is not an argument of fastpe.{name}"
        assert parameter.kind == eager[argument].kind, f"{name}: {argument} is {parameter.kind}"
        assert parameter.default == eager[argument].default, (
            f"{name}: {argument}={parameter.default!r}, eager {eager[argument].default!r}")


def lazy_arguments(args, kwargs, dask_kwargs):
    """Arrays as Dask arrays (small chunks), the named keywords too."""
    args = [da.from_array(a, chunks=2) if isinstance(a, np.ndarray) and a.ndim else a for a in args]
    kwargs = {k: da.from_array(v, chunks=2) if k in dask_kwargs else v for k, v in kwargs.items()}
    return args, kwargs


@pytest.mark.parametrize("case", list(CASES))
def test_bad_arguments_raise_when_the_graph_is_built(case):
    name, args, kwargs, dask_kwargs, shape_shown = CASES[case]
    lazy_args, lazy_kwargs = lazy_arguments(args, kwargs, dask_kwargs)
    eager_kwargs = dict(kwargs)
    if name == "make_positions" or not args:
        eager_args = args
    else:
        eager_args = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
    assert_same_error(lambda: getattr(fpd, name)(*lazy_args, **lazy_kwargs),
                      lambda: getattr(fastpe, name)(*eager_args, **eager_kwargs), case, shape_shown=shape_shown)


def test_unknown_chunk_sizes():
    x = da.from_array(X, chunks=1)
    unknown = x[x[:, 0, 0] >= 0]
    for call in (lambda: fpd.add_table(unknown, TABLE), lambda: fpd.apply_rotary(unknown),
                 lambda: fpd.add_table(x, da.from_array(TABLE)[da.from_array(TABLE)[:, 0] >= 0]),
                 lambda: fpd.add_alibi(da.from_array(SCORES), offset=unknown[:, 0, 0].astype(int)),
                 lambda: fpd.make_positions(da.from_array(IDS)[da.from_array(IDS)[:, 0] > 0], 1)):
        with pytest.raises(ValueError, match="unknown chunk sizes"):
            call()


def test_building_a_graph_computes_nothing(monkeypatch):
    """Every argument is checked, nothing is computed. (A grid's table is the
    exception: the eager checks build it into the cache, so it is built here first.)"""
    fastpe.add_sincos_2d(np.zeros((0, 6, 8), np.float32), 2, 3)
    fastpe.add_sinusoidal_nd(np.zeros((0, 6, 8), np.float32), (2, 3))
    x = da.from_array(X.astype(np.float32), chunks=(1, 4, 3))
    pos = fpd.make_positions(da.from_array(IDS, chunks=(1, 4)), 1)
    scaling = {"rope_type": "dynamic", "factor": 2.0, "max_position_embeddings": 4}
    builds = [
        lambda: fpd.add_table(x, TABLE, offset=np.array([0, 4]), scale=2.0),
        lambda: fpd.add_table(x, da.from_array(TABLE), positions=pos),
        lambda: fpd.add_sincos_2d(x, 2, 3),
        lambda: fpd.add_sinusoidal_nd(x, (2, 3)),
        lambda: fpd.apply_rotary(da.from_array(Q, chunks=2), da.from_array(K, chunks=2), offset=np.array([1, 2]),
                                 scaling=scaling),
        lambda: fpd.apply_rotary(da.from_array(Q, chunks=2), positions=pos, scaling=scaling),
        lambda: fpd.add_alibi(da.from_array(SCORES, chunks=2), offset=np.array([3, 4])),
        lambda: fpd.add_relative_bias(da.from_array(SCORES, chunks=2), np.zeros((16, 3)), **T5),
    ]
    forbid_kernels(monkeypatch)
    with pytest.raises(AssertionError, match="a kernel ran"):
        fastpe.add_alibi(np.zeros((1, 1, 2, 2)))  # the patch holds
    lazies = [build() for build in builds]
    monkeypatch.undo()
    for lazy in lazies:
        for one in (lazy if isinstance(lazy, tuple) else (lazy,)):
            assert isinstance(one, da.Array)
            assert one.compute().shape == one.shape
