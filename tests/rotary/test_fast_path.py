"""apply_rotary's compiled front door and its cache (fastpe/_frontdoor_rotary.pxi).

Every common call (exact ndarrays of native float32/float64, a scalar
integral offset whose positions lie in one block of cos/sin rows, default
layout or interleaved, no positions/out/inv_freq, a cached scaling) must
take it and give the general path's bits, and match the NumPy
reference within the contract; every other call must take the general path
and return or raise exactly what it does there, leaving the arrays as they
were on an error. fastpe._frontdoor.rotary_calls() tells which path ran;
the general path alone is run by switching the front door off in
fastpe._frontdoor.

The cache keeps the scaled frequencies per (width, rotary_dim, base, scaling
contents) and cos/sin rows per block of positions: a scaling changed after a
call must give the new result, and cache_clear / set_cache_limit(0) must not
change any result.
"""

import warnings
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from optional import extra_import
from rope_parameters import longrope_parameters
import util
from util import (
    ALL_KINDS,
    array_variants,
    assert_same_bits,
    assert_unchanged,
    assert_within,
    contract_atol,
    outcome,
    rng_for,
    snapshot,
)

import fastpe
from fastpe import _frontdoor, _kernels, reference

LLAMA3 = {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
          "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}
YARN = {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 4096}
LINEAR = {"rope_type": "linear", "factor": 4.0}
# max_position_embeddings small, so that the offsets below cross it (the frequencies change with seq_len)
DYNAMIC = {"rope_type": "dynamic", "factor": 2.0, "max_position_embeddings": 300}
SCALINGS = {"plain": None, "llama3": LLAMA3, "yarn": YARN, "linear": LINEAR, "dynamic": DYNAMIC}

# Block edges (the cos/sin rows come in blocks of SEED_GRID positions),
# dynamic's max_position_embeddings, a long context, and far positions.
OFFSETS = [0, 1, 255, 256, 299, 300, 1000, 4095, 123457, 2**20 - 1, 2**40 - 1, 2**40 + 255, np.int64(77), -1, -257,
           7.0, np.float32(12.0), np.array(77), np.array(5.0), np.array(300, np.int32), np.array(9, ">i8")]


def general_path_only():
    return util.general_path_only(_frontdoor, "apply_rotary")


def fast_and_general(arrays, **kwargs):
    """(fast-enabled results, general-only results, fast calls taken) on copies of arrays."""
    fast = [a.copy() for a in arrays]
    general = [a.copy() for a in arrays]
    before = _frontdoor.rotary_calls()
    got = fastpe.apply_rotary(*fast, **kwargs)
    taken = _frontdoor.rotary_calls() - before
    got = got if isinstance(got, tuple) else (got,)
    assert all(g is a for g, a in zip(got, fast)), "apply_rotary must return the caller's arrays"
    with general_path_only():
        fastpe.apply_rotary(*general, **kwargs)
    return fast, general, taken


def reference_tolerance(dtype, arrays, max_position):
    """The reference rotates with exact float64 angles: the kernel's angles may
    differ by the contract's float64 bound (times |a| + |b| of a pair, times
    the attention factor, <= 2 here); then each result is rounded once."""
    magnitude = max(float(np.abs(a).max()) for a in arrays)
    eps = float(np.finfo(dtype).eps)
    return 4 * magnitude * contract_atol(np.float64, max_position) + eps * (1 + magnitude)


def check_fast_call(arrays, msg, **kwargs):
    """The call takes the fast path, gives the general path's bits and
    (within the contract's positions) the reference's values."""
    fast, general, taken = fast_and_general(arrays, **kwargs)
    assert taken == 1, f"{msg}: the common call did not take the fast path"
    for f, g in zip(fast, general):
        assert_same_bits(f, g, msg)
    T = arrays[0].shape[-2]
    last = int(kwargs.get("offset", 0)) + T - 1
    if last <= 2**20:
        expected = reference.apply_rotary(*[a.copy() for a in arrays], **kwargs)
        expected = expected if isinstance(expected, tuple) else (expected,)
        tol = reference_tolerance(arrays[0].dtype, arrays, last)
        for f, e in zip(fast, expected):
            assert_within(f, e, tol, f"{msg}: against the reference")
    return fast


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("scaling", sorted(SCALINGS))
@pytest.mark.parametrize("heads", [(32, 8), (7, 3)], ids=["even heads", "odd heads"])
def test_decode_steps_take_the_fast_path_with_the_general_bits(dtype, scaling, heads):
    rng = rng_for("rotary fast", np.dtype(dtype).name, scaling, heads)
    q = rng.standard_normal((1, heads[0], 1, 64)).astype(dtype)
    k = rng.standard_normal((1, heads[1], 1, 64)).astype(dtype)
    for offset in OFFSETS:
        kwargs = {"offset": offset, "scaling": SCALINGS[scaling]}
        if scaling == "dynamic" and offset >= DYNAMIC["max_position_embeddings"]:
            continue  # the general path's (test_dynamic_past_its_max_position_embeddings_is_not_cached)
        check_fast_call([q, k], f"q and k, {scaling}, offset={offset!r}", **kwargs)
        check_fast_call([q], f"q alone, {scaling}, offset={offset!r}", **kwargs)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: np.dtype(d).name)
def test_memory_layouts_take_the_fast_path(dtype):
    """C arrays and strided, transposed, reversed views (any layout without
    internal overlap) of q; k a view of another buffer."""
    rng = rng_for("rotary fast layouts", np.dtype(dtype).name)
    k = rng.standard_normal((2, 8, 3, 6, 16)).astype(dtype)[:, ::2, :, ::-1]
    for label, q in array_variants((2, 4, 3, 6, 16), dtype, rng):
        for offset in (5, 250, 2**33):
            check_fast_call([q, k], f"{label} offset={offset}", offset=offset, scaling=LLAMA3)
            check_fast_call([q], f"{label} offset={offset}", offset=offset, layout="interleaved")


def test_arrays_of_different_ranks_take_the_fast_path():
    """The sequence axis is -2 of each array, whatever its rank."""
    rng = rng_for("rotary fast ranks")
    q = rng.standard_normal((2, 4, 3, 5, 32))
    k = rng.standard_normal((5, 32))
    check_fast_call([q, k], "5-D q, 2-D k", offset=60, scaling=YARN)


def test_the_axis_before_the_channels_spelled_from_the_front_takes_the_fast_path():
    """seq_axis=ndim - 2 names the same axis as the default -2."""
    rng = rng_for("rotary fast seq_axis")
    q = rng.standard_normal((1, 4, 1, 16)).astype(np.float32)
    k = rng.standard_normal((1, 2, 1, 16)).astype(np.float32)
    check_fast_call([q, k], "seq_axis=2 of 4-D arrays", offset=3, seq_axis=2)


def test_prefill_inside_one_block_takes_the_fast_path():
    """T > 1 with every position in one block of cos/sin rows; a call across a
    block edge takes the general path, with the same values."""
    rng = rng_for("rotary fast prefill")
    q = rng.standard_normal((2, 4, 16, 32)).astype(np.float32)
    k = rng.standard_normal((2, 2, 16, 32)).astype(np.float32)
    check_fast_call([q, k], "inside one block", offset=240, scaling=YARN)
    fast, general, taken = fast_and_general([q, k], offset=241, scaling=YARN)
    assert taken == 0
    for f, g in zip(fast, general):
        assert_same_bits(f, g, "across a block edge")


def test_a_partial_rotary_config_and_rotary_dim_take_the_fast_path():
    rng = rng_for("rotary fast partial")
    phi = SimpleNamespace(hidden_size=256, num_attention_heads=4, max_position_embeddings=2048,
                          rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                                           "partial_rotary_factor": 0.5})
    q = rng.standard_normal((1, 4, 1, 64))
    rotated = check_fast_call([q], "phi config", offset=9, scaling=phi)[0]
    assert np.array_equal(rotated[..., 32:], q[..., 32:]), "channels past the rotary width must stay untouched"
    check_fast_call([q], "rotary_dim=16", offset=9, rotary_dim=16, base=500.0)


def test_a_large_batch_runs_on_the_team_size_of_the_general_path():
    """Enough work for a team (resolve_threads): the rows are split between
    threads, with the same bits."""
    rng = rng_for("rotary fast team")
    q = rng.standard_normal((64, 32, 1, 64)).astype(np.float32)
    k = rng.standard_normal((64, 8, 1, 64)).astype(np.float32)
    check_fast_call([q, k], "batch 64", offset=1000, scaling=LLAMA3)
    for num_threads in (1, 2, 3):
        check_fast_call([q, k], f"batch 64, num_threads={num_threads}", offset=1000, num_threads=num_threads)


# ------------------------------------------------------------ the general path's outcomes

def check_same_outcome(make_arrays, expected_fast_calls, make_outs=None, **kwargs):
    """apply_rotary(*make_arrays(), **kwargs), with out=make_outs(arrays) when
    make_outs is given, with and without the fast path: the fast-call count
    expected, the same result or the same error, the same bits in every
    array and out, every array and out untouched by an error, and a served
    out= call returning the caller's outs."""
    fast, general = make_arrays(), make_arrays()
    fast_out = general_out = None
    outs_given = make_outs is not None
    if outs_given:
        fast_out, general_out = make_outs(fast), make_outs(general)
    snaps = snapshot(*fast, *[o for o in (fast_out if outs_given else ()) if isinstance(o, np.ndarray)])
    before = _frontdoor.rotary_calls()
    got = outcome(lambda: fastpe.apply_rotary(*fast, out=fast_out, **kwargs))
    taken = _frontdoor.rotary_calls() - before
    with general_path_only():
        expected = outcome(lambda: fastpe.apply_rotary(*general, out=general_out, **kwargs))
    msg = f"{[getattr(a, 'dtype', type(a)) for a in fast]} {kwargs!r}"
    if outs_given:
        msg += f" out={[(getattr(o, 'dtype', None), getattr(o, 'shape', None)) for o in fast_out]}"
    assert taken == expected_fast_calls, f"{msg}: fast calls {taken}"
    assert got[0] == expected[0], f"{msg}: {got} vs {expected}"
    if got[0] == "error":
        assert got[1:] == expected[1:], msg
        assert_unchanged(snaps, f"{msg}: a refused call")
        return
    if outs_given:
        returned = got[1] if isinstance(got[1], tuple) else (got[1],)
        assert all(r is o for r, o in zip(returned, fast_out)) and len(returned) == len(fast_out), msg
    for f, g in zip([*fast, *(fast_out if outs_given else ())], [*general, *(general_out if outs_given else ())]):
        assert_same_bits(np.asarray(f), np.asarray(g), msg)


def _pair():
    rng = rng_for("rotary uncommon")
    return [rng.standard_normal((1, 4, 1, 16)).astype(np.float32),
            rng.standard_normal((1, 2, 1, 16)).astype(np.float32)]


def _read_only():
    q, k = _pair()
    k.flags.writeable = False
    return [q, k]


def _overlapping():
    buf = _pair()[0]
    return [buf, buf[:, 1:3]]


def _same_array_twice():
    q = _pair()[0]
    return [q, q]


def _interleaved_views_of_one_buffer():
    buf = np.concatenate([_pair()[0]] * 2, axis=1)
    return [buf[:, 0::2], buf[:, 1::2]]


UNCOMMON_ARRAYS = {
    "read-only": _read_only,
    "overlapping": _overlapping,
    "same array twice": _same_array_twice,
    "interleaved views of one buffer": _interleaved_views_of_one_buffer,
    "int": lambda: [np.zeros((1, 4, 1, 16), np.int32)],
    "big-endian float16": lambda: [a.astype(">f2") for a in _pair()],
    "mixed dtypes": lambda: [_pair()[0], _pair()[1].astype(np.float64)],
    "big-endian": lambda: [a.astype(">f4") for a in _pair()],
    "different lengths": lambda: [_pair()[0], np.zeros((1, 2, 3, 16), np.float32)],
    "different widths": lambda: [_pair()[0], np.zeros((1, 2, 1, 8), np.float32)],
    "1-d": lambda: [np.zeros(16, np.float32)],
    "empty": lambda: [np.zeros((1, 0, 1, 16), np.float32)],
    "internal overlap": lambda: [np.lib.stride_tricks.as_strided(np.zeros(64, np.float32), (2, 1, 16), (0, 64, 4),
                                                                 writeable=True)],
    "list": lambda: [_pair()[0].tolist()],
    "none": lambda: [],
}


def test_views_of_one_buffer_apart_take_the_fast_path():
    """q and k side by side in one buffer (a fused projection): their memory
    bounds are apart."""
    def views():
        buf = np.concatenate(_pair(), axis=1)
        return [buf[:, :4], buf[:, 4:]]

    check_same_outcome(views, 1, offset=3)


@pytest.mark.parametrize("name", sorted(UNCOMMON_ARRAYS))
def test_every_other_array_takes_the_general_path(name):
    check_same_outcome(UNCOMMON_ARRAYS[name], 0, offset=3)


UNCOMMON_ARGUMENTS = [
    {"offset": True},
    {"offset": np.bool_(True)},
    {"offset": float("nan")},
    {"offset": float("inf")},
    {"offset": 2.5},
    {"offset": 2**53},
    {"offset": -(2**53)},
    {"offset": "3"},
    {"offset": np.array([3])},
    {"offset": np.array(True)},
    {"offset": np.array(2.5)},
    {"offset": np.array(2**53)},
    {"offset": np.array(3, np.longdouble)},
    {"positions": np.arange(1)},
    {"positions": np.arange(1), "offset": 2},
    {"num_threads": 0},
    {"num_threads": True},
    {"num_threads": 2.0},
    {"inv_freq": np.ones(8)},
    {"inv_freq": np.ones(8), "scaling": LINEAR},
    {"layout": "bad"},
    {"layout": "concat"},
    {"base": -1.0},
    {"base": float("nan")},
    {"base": True},
    {"base": np.float64(500.0)},
    {"rotary_dim": 3},
    {"rotary_dim": 32},
    {"rotary_dim": 8.0},
    {"seq_axis": -3},
    {"seq_axis": 1},
    {"scaling": {"rope_type": "nope"}},
    {"scaling": {"rope_type": "linear"}},
    {"scaling": {"rope_type": "linear", "factor": True}},
    {"scaling": {"rope_type": "linear", "factor": 2.0, "unused": 1}},
    {"scaling": "linear"},
    {"scaling": SimpleNamespace(rope_parameters=5)},
    {"scaling": {"rope_type": "linear", "factor": 2.0, "seq_len": 3}},
]


@pytest.mark.parametrize("kwargs", UNCOMMON_ARGUMENTS, ids=repr)
def test_every_other_argument_takes_the_general_path(kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # compared below: the general path warns on every call
        check_same_outcome(_pair, 0, **kwargs)


def _fresh_outs(arrays):
    return [np.full_like(a, np.nan) for a in arrays]


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: np.dtype(d).name)
def test_out_arrays_apart_take_the_fast_path(dtype):
    """out= a list or tuple of arrays of the inputs' shapes and dtype, in any
    layout, sharing memory with no other array of the call: one pass from
    each input into its out; the inputs are left as they were."""
    rng = rng_for("rotary fast out", np.dtype(dtype).name)
    shape = (2, 4, 3, 16)
    q = rng.standard_normal(shape).astype(dtype)
    k = rng.standard_normal((2, 2, 3, 16)).astype(dtype)
    for label, target in array_variants(shape, dtype, rng):
        def outs(arrays, target=target):
            return [target, np.zeros(arrays[1].shape, dtype)]

        for kwargs in ({"offset": 9}, {"offset": 4000, "scaling": LLAMA3}, {"offset": 70, "layout": "interleaved"}):
            check_same_outcome(lambda: [q.copy(), k.copy()], 1, make_outs=outs, **kwargs)
            want = reference.apply_rotary(q.copy(), k.copy(), **kwargs)
            for got, expected in zip(fastpe.apply_rotary(q, k, out=outs([q, k]), **kwargs), want):
                assert_within(got, expected, reference_tolerance(dtype, [q, k], 4010), f"{label} {kwargs}")
    check_same_outcome(_pair, 1, make_outs=lambda arrays: tuple(_fresh_outs(arrays)), offset=3)
    check_same_outcome(lambda: _pair()[:1], 1, make_outs=_fresh_outs, offset=3)


OUT_ON_THE_GENERAL_PATH = {
    "partial rotation (the other channels are copied)": (lambda arrays: _fresh_outs(arrays), {"rotary_dim": 8}),
    "out is the input (in place)": (lambda arrays: list(arrays), {}),
    "out overlapping the other input": (lambda arrays: [arrays[1][:, :2].copy(), arrays[0][:, :2]], {}),
    "two outs sharing memory": (lambda arrays: [np.zeros((1, 4, 1, 16), np.float32)] * 2, {}),
    "read-only out": (lambda arrays: [np.lib.stride_tricks.as_strided(a.copy(), writeable=False) for a in arrays],
                      {}),
    "another dtype": (lambda arrays: [a.astype(np.float64) for a in arrays], {}),
    "another shape": (lambda arrays: [np.zeros((1, 4, 2, 16), np.float32), np.zeros((1, 2, 1, 16), np.float32)],
                      {}),
    "one out too few": (lambda arrays: _fresh_outs(arrays)[:1], {}),
    "an ndarray, not a sequence": (lambda arrays: np.zeros((2, 1, 4, 1, 16), np.float32), {}),
}


def test_the_other_bfloat16_dtype_takes_the_general_path():
    """ml_dtypes' bfloat16 and fastpe.torch's bfloat16 bits are two dtypes: an out or a second array of the
    other one is refused, as the general path refuses it (regression: the front door took them)."""
    from fastpe._validation.torch_tensors import BFLOAT16_BITS
    bfloat16 = extra_import("ml_dtypes", "test").bfloat16

    def arrays():
        return [(a.view(np.uint32) >> 16).astype(np.uint16).view(bfloat16) for a in _pair()]

    check_same_outcome(arrays, 0, make_outs=lambda given: [np.zeros(a.shape, np.uint16).view(BFLOAT16_BITS)
                                                           for a in given], offset=3)
    check_same_outcome(lambda: [arrays()[0], arrays()[1].view(np.uint16).view(BFLOAT16_BITS)], 0, offset=3)


@pytest.mark.parametrize("name", sorted(OUT_ON_THE_GENERAL_PATH))
def test_every_other_out_takes_the_general_path(name):
    make_outs, kwargs = OUT_ON_THE_GENERAL_PATH[name]
    check_same_outcome(_pair, 0, make_outs=make_outs, offset=3, **kwargs)


@pytest.mark.parametrize("kind", ["float16", "bfloat16 bits", "bfloat16"])
def test_16_bit_arrays_take_the_fast_path(kind):
    """float16 and bfloat16 arrays (ml_dtypes' or fastpe.torch's bits), rotated in float64 and rounded once:
    the general path's bits, in place and with out=."""
    from fastpe._validation.torch_tensors import BFLOAT16_BITS

    def arrays():
        pair = [a * 7 for a in _pair()]
        if kind == "float16":
            return [a.astype(np.float16) for a in pair]
        bits = [(a.view(np.uint32) >> 16).astype(np.uint16) for a in pair]
        if kind == "bfloat16 bits":
            return [b.view(BFLOAT16_BITS) for b in bits]
        return [b.view(extra_import("ml_dtypes", "test").bfloat16) for b in bits]

    for offset in (0, 3, 255, 4000, 2**20 + 5):
        check_same_outcome(arrays, 1, offset=offset)
        check_same_outcome(arrays, 1, offset=offset, scaling=LLAMA3, layout="interleaved")
        check_same_outcome(arrays, 1, make_outs=lambda given: [np.zeros_like(a) for a in given], offset=offset)


def test_tensors_take_the_front_door_through_their_views():
    """CPU tensors rotated in place by the NumPy-facing function: their views take the front door, with the
    general path's bits, the caller's tensors returned and their version counters bumped; tensors the general
    path refuses are refused the same way."""
    torch = pytest.importorskip("torch", reason="tensors: pip install torch")

    def tensors():
        return [torch.from_numpy(a) for a in _pair()]

    check_same_outcome(tensors, 1, offset=3)
    q, k = tensors()
    versions = q._version, k._version
    got = fastpe.apply_rotary(q, k, offset=3)
    assert got[0] is q and got[1] is k and q._version > versions[0] and k._version > versions[1]
    check_same_outcome(lambda: [t.requires_grad_() for t in tensors()], 0, offset=3)
    check_same_outcome(lambda: [tensors()[0], _pair()[1]], 1, offset=3)


def test_unused_keys_warn_on_every_call():
    """A scaling with keys its type does not use warns each time (the fast
    path leaves such calls to the general path, which warns)."""
    scaling = {"rope_type": "linear", "factor": 2.0, "whatever": 1}
    for _ in range(3):
        with pytest.warns(UserWarning, match="'whatever'"):
            fastpe.apply_rotary(*_pair(), offset=4, scaling=scaling)


# ------------------------------------------------------------ the cache

@pytest.fixture
def fresh_cache():
    fastpe.cache_clear()
    yield
    fastpe.cache_clear()


def _rotated(scaling, offset, **kwargs):
    q = rng_for("rotary cache").standard_normal((1, 4, 1, 32))
    return fastpe.apply_rotary(q.copy(), offset=offset, scaling=scaling, **kwargs), \
        reference.apply_rotary(q.copy(), offset=offset, scaling=scaling, **kwargs)


def _check_matches_reference(scaling, offset, msg):
    got, expected = _rotated(scaling, offset)
    assert_within(got, expected, reference_tolerance(np.float64, [expected], offset), msg)
    return got


def test_a_scaling_dict_changed_after_a_call_gives_the_new_result(fresh_cache):
    scaling = dict(LLAMA3)
    first = _check_matches_reference(scaling, 100, "llama3")
    scaling["factor"] = 16.0
    second = _check_matches_reference(scaling, 100, "llama3, factor changed")
    assert not np.array_equal(first, second)
    scaling["rope_type"] = "linear"
    del scaling["low_freq_factor"], scaling["high_freq_factor"], scaling["original_max_position_embeddings"]
    _check_matches_reference(scaling, 100, "changed to linear")


def test_a_nested_value_changed_after_a_call_gives_the_new_result(fresh_cache):
    """longrope's factor lists, changed in place."""
    scaling = longrope_parameters(16, 0, max_position_embeddings=4096)
    first = _check_matches_reference(scaling, 2000, "longrope")
    scaling["long_factor"][3] *= 2
    second = _check_matches_reference(scaling, 2000, "longrope, long_factor[3] changed")
    assert not np.array_equal(first, second)


def test_a_config_changed_after_a_call_gives_the_new_result(fresh_cache):
    config = SimpleNamespace(hidden_size=128, num_attention_heads=4, max_position_embeddings=300,
                             rope_parameters={"rope_type": "dynamic", "factor": 2.0})
    first = _check_matches_reference(config, 1000, "dynamic config")
    config.max_position_embeddings = 600
    second = _check_matches_reference(config, 1000, "dynamic config, max_position_embeddings changed")
    assert not np.array_equal(first, second)
    config.rope_parameters["factor"] = 3.0
    third = _check_matches_reference(config, 1000, "dynamic config, factor changed")
    assert not np.array_equal(second, third)


def test_seq_len_dependent_scalings_follow_the_positions(fresh_cache):
    """dynamic and longrope frequencies depend on the call's length: cached
    ones must follow it on both sides of their thresholds."""
    longrope = longrope_parameters(16, 1, max_position_embeddings=4096)
    for scaling, offsets in ((DYNAMIC, [10, 299, 300, 301, 10, 5000, 299]),
                             (longrope, [10, 1023, 1024, 10, 3000, 1022])):
        for offset in offsets:
            _check_matches_reference(scaling, offset, f"{scaling['rope_type']} offset={offset}")


def test_dynamic_past_its_max_position_embeddings_is_not_cached(fresh_cache):
    """Its frequencies change with every length: no entry (or block of rows)
    per decode step; the general path computes them."""
    def rotary_entries():
        return {key for key in _frontdoor.CACHE.keys() if key[0] in ("rotary-frequencies", "rotary-cos-sin")}

    q = _pair()[0]
    check_fast_call([q], "dynamic below max_position_embeddings", offset=100, scaling=DYNAMIC)
    _check_matches_reference(DYNAMIC, 100, "dynamic below max_position_embeddings")
    entries = rotary_entries()
    for offset in range(400, 405):
        fast, general, taken = fast_and_general([q], offset=offset, scaling=DYNAMIC)
        assert taken == 0
        assert_same_bits(fast[0], general[0], f"dynamic offset={offset}")
        _check_matches_reference(DYNAMIC, offset, f"dynamic offset={offset}")
    assert rotary_entries() == entries


def test_the_cache_counts_frequencies_and_cos_sin_rows(fresh_cache):
    q = np.ones((1, 4, 1, 64), np.float32)
    fastpe.apply_rotary(q, offset=3, scaling=LLAMA3)
    info = fastpe.cache_info()
    rows_bytes = 2 * _kernels.SEED_GRID * 32 * 8
    assert info.entries >= 2 and info.nbytes >= rows_bytes, info
    entries = info.entries
    fastpe.apply_rotary(q, offset=4, scaling=dict(LLAMA3))  # equal contents, same block: nothing new
    assert fastpe.cache_info().entries == entries
    assert fastpe.cache_info().hits > info.hits
    fastpe.apply_rotary(q, offset=3 + _kernels.SEED_GRID, scaling=LLAMA3)  # the next block
    assert fastpe.cache_info().entries > entries


@pytest.mark.parametrize("scaling", sorted(SCALINGS))
def test_cache_clear_and_limit_0_give_the_same_bits(fresh_cache, scaling):
    q = rng_for("rotary cache limit", scaling).standard_normal((1, 8, 1, 64)).astype(np.float32)
    kwargs = {"offset": 200, "scaling": SCALINGS[scaling]}
    expected = check_fast_call([q], "cached", **kwargs)[0]
    fastpe.cache_clear()
    assert_same_bits(check_fast_call([q], "after cache_clear", **kwargs)[0], expected, "after cache_clear")
    fastpe.set_cache_limit(0)
    for _ in range(2):
        assert_same_bits(check_fast_call([q], "limit 0", **kwargs)[0], expected, "with the cache off")
    assert fastpe.cache_info().entries == 0


def test_scaling_keys_tell_values_of_different_types_apart():
    """True == 1 == 1.0 in Python, but a scaling with factor=True is an error
    while factor=1 and factor=1.0 are not: their keys must differ, so that a
    cached valid scaling never answers for an invalid one."""
    key = _frontdoor.scaling_key
    keys = [key({"rope_type": "linear", "factor": value}) for value in (True, 1, 1.0, np.float64(1.0))]
    assert len(set(keys)) == 4
    assert key({"a": [1.0, 2.0]}) != key({"a": (1.0, 2.0)})
    assert key({"a": [1.0], "b": 2.0}) != key({"a": [1.0, "b", 2.0]})  # the same items, nested otherwise
    assert key({"a": {"b": 1.0}}) != key({"a": {"b": 1.0, "c": None}})
    assert key({"a": np.ones(2)}) != key({"a": np.ones(2, np.float32)})
    assert key({"a": object()}) is None  # not frozen: not cached
    assert key(None) == key(None) and key(dict(LLAMA3)) == key(dict(LLAMA3))


def test_a_scaling_rejected_after_a_cached_valid_one(fresh_cache):
    q = _pair()[0]
    fastpe.apply_rotary(q.copy(), offset=2, scaling={"rope_type": "linear", "factor": 1})
    with pytest.raises(TypeError, match="factor"):
        fastpe.apply_rotary(q.copy(), offset=2, scaling={"rope_type": "linear", "factor": True})


@settings(max_examples=60, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(
    lead=st.lists(st.integers(1, 3), min_size=0, max_size=2),
    T=st.integers(1, 6),
    half=st.integers(1, 40),
    dtype=st.sampled_from([np.float32, np.float64]),
    kind=st.sampled_from(ALL_KINDS),
    offset=st.one_of(st.integers(-(2**40), 2**40), st.integers(-600, 600)),
    scaling=st.sampled_from(["plain", "llama3", "yarn", "linear"]),
    layout=st.sampled_from(["half", "interleaved"]),
    with_k=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_property_fast_and_general_paths_give_the_same_bits(lead, T, half, dtype, kind, offset, scaling, layout,
                                                           with_k, seed):
    shape = tuple(lead) + (T, 2 * half)
    rng = np.random.default_rng(seed)
    variants = dict(array_variants(shape, dtype, rng, kinds=(kind,)))
    q = variants.get(kind, rng.standard_normal(shape).astype(dtype))
    arrays = [q, rng.standard_normal(shape).astype(dtype)] if with_k else [q]
    kwargs = {"offset": offset, "scaling": SCALINGS[scaling], "layout": layout}
    fast, general, taken = fast_and_general(arrays, **kwargs)
    in_one_block = offset // _kernels.SEED_GRID == (offset + T - 1) // _kernels.SEED_GRID
    assert taken == in_one_block
    for f, g in zip(fast, general):
        assert_same_bits(f, g, f"shape={shape} {kind} {kwargs}")
