"""fastpe.torch's functions against fastpe.reference (float64), over dtypes,
memory layouts and the three routes a call can take (eager, the registered
operator, the torch-ops path of other devices forced on the CPU); their
in-place twins; and the bits they share with the NumPy-facing functions."""

import numpy as np
import pytest
from optional import torch_or_skip
from util import assert_same_bits, assert_within

torch = torch_or_skip()

import fastpe  # noqa: E402
import fastpe.torch as ft  # noqa: E402
from fastpe import reference  # noqa: E402
from torch_cases import DTYPES, LAYOUTS, ROUTES, float64_of, on_route, tensor_in_layout, tolerance  # noqa: E402


def _row_magnitude(x):
    """The largest |value| of each vector row: what a rotation's rounding errors scale with."""
    return np.abs(float64_of(x)).max(axis=-1, keepdims=True) if x.numel() else 0.0


def _check(result, x, expected, dtype, what, operand=0.0):
    assert isinstance(result, torch.Tensor) and result is not x, f"{what}: a new tensor"
    assert result.dtype == x.dtype and result.shape == x.shape, f"{what}: {result.dtype} {tuple(result.shape)}"
    assert_within(float64_of(result), expected, tolerance(dtype, expected, operand), what)


def _in_place_agrees(fn, x, out_of_place, what, **kwargs):
    """fn_(x) writes x, returns it, bumps its version and gives the out-of-place result's bits."""
    target = x.clone()
    version = target._version
    assert fn(target, **kwargs) is target, f"{what}: the in-place twin returns its tensor"
    assert target._version > version, f"{what}: the version counter was not bumped"
    assert torch.equal(target, out_of_place), f"{what}: in place and out of place differ"


SINUSOID_CASES = [
    {},
    {"offset": 7, "scale": 3.0},
    {"offset": "per-sequence"},
    {"positions": "explicit", "layout": "concat"},
    {"preset": "fairseq", "positions": "explicit"},
    {"preset": "whisper", "base": None},
    {"inv_freq": "given"},
]


def _sinusoid_kwargs(case, x):
    kw = dict(case)
    if kw.get("offset") == "per-sequence":
        kw["offset"] = torch.arange(x.shape[0]) * 11 + 3
    if kw.get("positions") == "explicit":
        kw["positions"] = (torch.arange(x.shape[-2]) * 5 + 1).flip(0)  # includes fairseq's padding row 1
    if kw.get("inv_freq") == "given":
        kw["inv_freq"] = torch.linspace(1.0, 1e-3, x.shape[-1] // 2, dtype=torch.float64)
    return kw


def _numpy(kwargs):
    return {k: (v.numpy() if isinstance(v, torch.Tensor) else v) for k, v in kwargs.items()}


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", range(len(SINUSOID_CASES)))
def test_add_sinusoidal(dtype, layout, route, case):
    x = tensor_in_layout((3, 9, 16), dtype, layout, seed=case)
    kw = _sinusoid_kwargs(SINUSOID_CASES[case], x)
    if x.shape[0] == 0 and kw.get("offset") is not None and not isinstance(kw["offset"], int):
        kw["offset"] = kw["offset"][:0]
    before = x.clone()
    with on_route(route):
        y = ft.add_sinusoidal(x, **kw)
    what = f"add_sinusoidal {dtype} {layout} {route} {SINUSOID_CASES[case]}"
    expected = reference.add_sinusoidal(float64_of(x), **_numpy(kw))
    _check(y, x, expected, dtype, what, operand=float64_of(x) * kw.get("scale", 1.0))
    assert torch.equal(x, before), f"{what}: the input changed"
    with on_route(route):
        _in_place_agrees(ft.add_sinusoidal_, x, y, what, **kw)


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("table_dtype", ["float32", "float64", "bfloat16"])
@pytest.mark.parametrize("rows", ["offset", "per-sequence", "positions"])
def test_add_table(dtype, table_dtype, route, rows):
    x = tensor_in_layout((2, 5, 8), dtype, "sliced", seed=1)
    table = tensor_in_layout((40, 8), table_dtype, "contiguous", seed=2)
    kw = {"offset": 3, "per-sequence": torch.tensor([0, 30]), "positions": torch.tensor([[4, 0, 39, 4, 2]])}[rows]
    kw = {"positions": kw} if rows == "positions" else {"offset": kw, "scale": 0.5}
    with on_route(route):
        y = ft.add_table(x, table, **kw)
    what = f"add_table x {dtype} table {table_dtype} {route} {rows}"
    expected = reference.add_table(float64_of(x), float64_of(table), **_numpy(kw))
    _check(y, x, expected, dtype, what, operand=float64_of(x))
    with on_route(route):
        _in_place_agrees(ft.add_table_, x, y, what, table=table, **kw)


ROTARY_CASES = [
    {},
    {"offset": 1000, "layout": "interleaved"},
    {"offset": "per-sequence", "rotary_dim": 8},
    {"positions": "BT", "scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                    "high_freq_factor": 4.0, "original_max_position_embeddings": 64}},
    {"offset": 90, "scaling": {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32}},
    {"offset": 70, "scaling": {"rope_type": "dynamic", "factor": 2.0, "max_position_embeddings": 32}},
    {"positions": "T", "seq_axis": -3},
    {"inv_freq": "given", "base": None},
]


def _rotary_kwargs(case, q):
    kw = dict(case)
    seq_axis = kw.get("seq_axis", -2)
    T = q.shape[seq_axis]
    if kw.get("offset") == "per-sequence":
        kw["offset"] = torch.arange(q.shape[0]) * 100 + 5
    if kw.get("positions") == "BT":
        kw["positions"] = torch.arange(q.shape[0] * T).reshape(q.shape[0], T) * 13 % 500
    elif kw.get("positions") == "T":
        kw["positions"] = torch.arange(T).flip(0) * 3
    if kw.get("inv_freq") == "given":
        kw["inv_freq"] = torch.linspace(0.9, 1e-4, q.shape[-1] // 2, dtype=torch.float64)
    return kw


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", range(len(ROTARY_CASES)))
def test_apply_rotary(dtype, layout, route, case):
    q = tensor_in_layout((2, 4, 6, 16), dtype, layout, seed=case)
    kw = _rotary_kwargs(ROTARY_CASES[case], q)
    k_shape = (2, 4, 2, 16) if kw.get("seq_axis") == -3 else (2, 2, 6, 16)  # fewer key heads
    k = tensor_in_layout(k_shape, dtype, "contiguous", seed=case + 50)[: q.shape[0]]
    if q.shape[0] == 0 and isinstance(kw.get("offset"), torch.Tensor):
        kw["offset"] = kw["offset"][:0]
    if q.shape[0] == 0 and kw.get("positions") is not None and kw["positions"].ndim == 2:
        kw["positions"] = kw["positions"][:0]
    what = f"apply_rotary {dtype} {layout} {route} {ROTARY_CASES[case]}"
    with on_route(route):
        q_rot, k_rot = ft.apply_rotary(q, k, **kw)
        q_alone = ft.apply_rotary(q, **kw)
    expected_q, expected_k = reference.apply_rotary(float64_of(q), float64_of(k), **_numpy(kw))
    _check(q_rot, q, expected_q, dtype, what, operand=_row_magnitude(q))
    _check(k_rot, k, expected_k, dtype, what + " (k)", operand=_row_magnitude(k))
    assert torch.equal(q_alone, q_rot), f"{what}: q alone"
    q2, k2 = q.clone(), k.clone()
    versions = q2._version, k2._version
    with on_route(route):
        assert ft.apply_rotary_(q2, k2, **kw) == (q2, k2)
    assert q2._version > versions[0] and k2._version > versions[1], f"{what}: version counters"
    assert torch.equal(q2, q_rot) and torch.equal(k2, k_rot), f"{what}: in place"


def _hf_formula(q, cos, sin, unsqueeze_dim):
    """Hugging Face's apply_rotary_pos_emb in float64 NumPy: q * cos' + rotate_half(q) * sin'."""
    half = q.shape[-1] // 2
    cos, sin = np.expand_dims(cos, unsqueeze_dim), np.expand_dims(sin, unsqueeze_dim)
    return q * cos + np.concatenate([-q[..., half:], q[..., :half]], axis=-1) * sin


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("unsqueeze_dim,table_shape", [(1, "BTD"), (2, "BTD"), (1, "1TD"), (-3, "BTD")])
def test_apply_rotary_cos_sin(dtype, route, unsqueeze_dim, table_shape):
    B, H, T, D = 2, 4, 5, 12
    heads_axis = {1: 1, 2: 2, -3: 1}[unsqueeze_dim]
    shape = (B, H, T, D) if heads_axis == 1 else (B, T, H, D)
    q = tensor_in_layout(shape, dtype, "narrowed", seed=3)
    k = tensor_in_layout(shape[:heads_axis] + (1,) + shape[heads_axis + 1:], dtype, "contiguous", seed=4)
    positions = np.arange(B * T).reshape(B, T) * 37 % 1000
    if table_shape == "1TD":
        positions = positions[:1]
    angles = positions[..., None] * np.concatenate([np.geomspace(1, 1e-3, D // 2)] * 2)
    cos, sin = (torch.from_numpy(f(angles)).to(getattr(torch, dtype)) for f in (np.cos, np.sin))
    with on_route(route):
        q_rot, k_rot = ft.apply_rotary_cos_sin(q, k, cos, sin, unsqueeze_dim=unsqueeze_dim)
    what = f"apply_rotary_cos_sin {dtype} {route} unsqueeze_dim={unsqueeze_dim} cos {table_shape}"
    for got, a in ((q_rot, q), (k_rot, k)):
        _check(got, a, _hf_formula(float64_of(a), float64_of(cos), float64_of(sin), unsqueeze_dim), dtype, what,
               operand=_row_magnitude(a))
    with on_route(route):
        assert torch.equal(ft.apply_rotary_cos_sin(q, None, cos, sin, unsqueeze_dim=unsqueeze_dim), q_rot)
        q2, k2 = q.clone(), k.clone()
        assert ft.apply_rotary_cos_sin_(q2, k2, cos, sin, unsqueeze_dim=unsqueeze_dim) == (q2, k2)
    assert torch.equal(q2, q_rot) and torch.equal(k2, k_rot), f"{what}: in place"


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", ["default", "offset per batch", "slopes", "key positions"])
def test_add_alibi(dtype, route, case):
    scores = tensor_in_layout((2, 4, 3, 7), dtype, "transposed", seed=5)
    kw = {"default": {}, "offset per batch": {"offset": torch.tensor([4, 1000])},
          "slopes": {"slopes": torch.tensor([0.5, 0.25, 0.125, 1.0], dtype=torch.float64), "offset": 2},
          "key positions": {"key_positions": torch.tensor([[0.0, 1, 2, 3, 0, 0, 0], [0, 0, 1, 2, 3, 4, 5]])}}[case]
    with on_route(route):
        y = ft.add_alibi(scores, **kw)
    expected = reference.add_alibi(float64_of(scores), **_numpy(kw))
    what = f"add_alibi {dtype} {route} {case}"
    _check(y, scores, expected, dtype, what, operand=float64_of(scores))
    with on_route(route):
        _in_place_agrees(ft.add_alibi_, scores, y, what, **kw)


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bidirectional", [True, False])
def test_add_relative_bias(dtype, route, bidirectional):
    scores = tensor_in_layout((2, 3, 4, 9), dtype, "sliced", seed=6)
    table = tensor_in_layout((16, 3), "float32", "contiguous", seed=7)
    kw = {"bidirectional": bidirectional, "num_buckets": 16, "max_distance": 40, "offset": torch.tensor([0, 60])}
    with on_route(route):
        y = ft.add_relative_bias(scores, table, **kw)
    expected = reference.add_relative_bias(float64_of(scores), float64_of(table), **_numpy(kw))
    what = f"add_relative_bias {dtype} {route} bidirectional={bidirectional}"
    _check(y, scores, expected, dtype, what, operand=float64_of(scores))
    with on_route(route):
        _in_place_agrees(ft.add_relative_bias_, scores, y, what, bias_table=table, **kw)


# ------------------------------------------------------------------ the same bits as the NumPy-facing functions

def test_the_kernel_routes_give_the_numpy_facing_bits():
    """On the CPU both routes run fastpe's kernels on views of the tensors: the NumPy-facing functions' bits."""
    x = tensor_in_layout((2, 33, 24), "float32", "contiguous", seed=8)
    q, k = tensor_in_layout((1, 4, 33, 24), "float32", "contiguous", seed=9), tensor_in_layout(
        (1, 2, 33, 24), "float32", "contiguous", seed=10)
    scaling = {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 16}
    for route in ("eager", "operator"):
        with on_route(route):
            assert_same_bits(ft.add_sinusoidal(x, offset=5, scale=2.0).numpy(),
                             fastpe.add_sinusoidal(x.numpy().copy(), offset=5, scale=2.0), route)
            rotated = ft.apply_rotary(q, k, offset=77, scaling=scaling)
            expected = fastpe.apply_rotary(q.numpy().copy(), k.numpy().copy(), offset=77, scaling=scaling)
            for got, want in zip(rotated, expected):
                assert_same_bits(got.numpy(), want, route)


def test_bfloat16_gives_the_ml_dtypes_bits():
    """bfloat16 tensors take BFLOAT16_BITS views: the kernels' bits of the ml_dtypes route
    (tests/torch/test_torch_bfloat16.py checks the same without ml_dtypes)."""
    ml_dtypes = pytest.importorskip("ml_dtypes", reason="the ml_dtypes route is the comparison: pip install ml_dtypes")
    x = tensor_in_layout((2, 9, 16), "bfloat16", "contiguous", seed=11)
    as_ml = x.view(torch.int16).numpy().copy().view(ml_dtypes.bfloat16)
    assert_same_bits(ft.add_sinusoidal(x, offset=3).view(torch.int16).numpy(),
                     fastpe.add_sinusoidal(as_ml, offset=3).view(np.int16), "add_sinusoidal bfloat16")
    q = tensor_in_layout((1, 2, 9, 16), "bfloat16", "contiguous", seed=12)
    q_ml = q.view(torch.int16).numpy().copy().view(ml_dtypes.bfloat16)
    assert_same_bits(ft.apply_rotary(q, offset=300).view(torch.int16).numpy(),
                     fastpe.apply_rotary(q_ml, offset=300).view(np.int16), "apply_rotary bfloat16")
    table = ft.sinusoidal_table(64, 32, dtype=torch.bfloat16)
    assert_same_bits(table.view(torch.int16).numpy(),
                     fastpe.sinusoidal_table(64, 32, dtype="bfloat16").view(np.int16), "sinusoidal_table bfloat16")


@pytest.mark.parametrize("dtype", DTYPES)
def test_tables(dtype):
    dt = getattr(torch, dtype)
    table = ft.sinusoidal_table(50, 24, offset=3, preset="fairseq", dtype=dt)
    expected = reference.sinusoidal_table(50, 24, offset=3, preset="fairseq", dtype=np.float64)
    assert table.dtype == dt and table.shape == (50, 24)
    assert_within(float64_of(table), expected, tolerance(dtype, expected), f"sinusoidal_table {dtype}")
    scaling = {"rope_type": "linear", "factor": 2.0}
    cos, sin = ft.rotary_cos_sin(40, 16, offset=10, scaling=scaling, dtype=dt)
    for got, want in zip((cos, sin), reference.rotary_cos_sin(40, 16, offset=10, scaling=scaling, dtype=np.float64)):
        assert got.dtype == dt
        assert_within(float64_of(got), want, tolerance(dtype, want), f"rotary_cos_sin {dtype}")
    assert ft.sinusoidal_table(4, 8).dtype == torch.get_default_dtype()


def test_make_positions():
    ids = torch.tensor([[5, 6, 1, 7], [1, 1, 8, 9]])
    for route in ("eager", "operator"):
        with on_route(route):
            got = ft.make_positions(ids, padding_idx=1, past_length=torch.tensor([3, 0]))
        assert got.dtype == torch.int64
        assert got.tolist() == reference.make_positions(ids.numpy(), 1, past_length=np.array([3, 0])).tolist()


def test_q_and_k_views_of_one_fused_projection():
    """q and k read from one qkv tensor (views sharing memory) are rotated as if read apart."""
    qkv = tensor_in_layout((2, 7, 3, 4, 8), "float32", "contiguous", seed=13)
    q, k = qkv[:, :, 0].transpose(1, 2), qkv[:, :, 1].transpose(1, 2)
    expected = reference.apply_rotary(float64_of(q), float64_of(k), offset=9)
    for route in ROUTES:
        with on_route(route):
            got = ft.apply_rotary(q, k, offset=9)
        for g, e, a in zip(got, expected, (q, k)):
            _check(g, a, e, "float32", f"fused qkv {route}", operand=_row_magnitude(a))
    q2, k2 = q.clone(), k.clone()
    ft.apply_rotary_(q, k, offset=9)  # in place, into the fused tensor itself
    assert torch.equal(q, ft.apply_rotary(q2, offset=9)) and torch.equal(k, ft.apply_rotary(k2, offset=9))


def test_num_threads_does_not_change_the_bits():
    x = tensor_in_layout((8, 512, 64), "float32", "contiguous", seed=14)
    assert torch.equal(ft.add_sinusoidal(x, num_threads=1), ft.add_sinusoidal(x, num_threads=2))
    q = tensor_in_layout((4, 8, 256, 64), "float32", "contiguous", seed=15)
    assert torch.equal(ft.apply_rotary(q, num_threads=1), ft.apply_rotary(q, num_threads=2))


# ------------------------------------------------------------------ refusals

@pytest.mark.parametrize("route", ROUTES)
def test_refused_calls_write_nothing(route):
    x, q = tensor_in_layout((2, 4, 8), "float32", "contiguous"), tensor_in_layout((1, 2, 4, 8), "float32", "sliced")
    before = x.clone(), q.clone()
    with on_route(route):
        with pytest.raises(ValueError, match="preset='whisper' does not take base="):
            ft.add_sinusoidal_(x, preset="whisper", base=3.0)
        with pytest.raises(ValueError, match="rotary_dim=10 exceeds"):
            ft.apply_rotary_(q, rotary_dim=10)
        with pytest.raises(TypeError, match="scale must be a real number"):
            ft.add_sinusoidal_(x, scale="2")
    assert torch.equal(x, before[0]) and torch.equal(q, before[1])


def test_what_fastpe_torch_refuses_itself():
    with pytest.raises(TypeError, match="x must be a torch.Tensor.*fastpe.add_sinusoidal takes NumPy arrays"):
        ft.add_sinusoidal(np.zeros((2, 3)))
    with pytest.raises(TypeError, match="must be an array of float16, bfloat16, float32 or float64"):
        ft.add_sinusoidal(torch.zeros(2, 3, dtype=torch.int32))
    with pytest.raises(TypeError, match="scale got a object"):
        with on_route("operator"):
            ft.add_sinusoidal(torch.zeros(2, 3), scale=object())
    with torch.inference_mode():
        made_inside = torch.zeros(2, 3, 4)
    with pytest.raises(ValueError, match="x is an inference tensor"):
        ft.add_sinusoidal_(made_inside)
    with torch.inference_mode():
        assert ft.add_sinusoidal_(made_inside) is made_inside
    assert ft.add_sinusoidal(made_inside).shape == (2, 3, 4)  # reading one is fine
