"""fastpe.torch's decode-step way through: the compiled front door takes CPU
tensors directly (fastpe._frontdoor.rotate_tensors, on the eager route).

Which calls it serves (counted by fastpe._frontdoor.tensor_rotary_calls),
that they match fastpe.reference and give the NumPy-facing function's bits,
in place (version counters bumped) and into new tensors; and that every call
it must not serve (other dtypes, memory that does not hold the values,
misaligned or overlapping memory, inference tensors, gradients, partial
rotation into new tensors) falls through to the general path and gets its
result or its error, having written nothing."""

import numpy as np
import pytest
from optional import torch_or_skip
from util import assert_same_bits, assert_within

torch = torch_or_skip()

import fastpe  # noqa: E402
import fastpe.torch as ft  # noqa: E402
from fastpe import _frontdoor, reference  # noqa: E402
from torch_cases import float64_of, tensor_in_layout, tolerance  # noqa: E402
from fastpe.torch._tensors import always_dispatch  # noqa: E402
from fastpe._validation.torch_tensors import BFLOAT16_BITS  # noqa: E402


class Counted:
    """How much a counter of fastpe._frontdoor's grew inside the block."""

    def __init__(self, counter):
        self.counter = counter

    def __enter__(self):
        self.start = self.counter()
        return self

    def __exit__(self, *exc):
        self.count = self.counter() - self.start


def Served():
    """How many rotations the tensor front door served inside the block."""
    return Counted(_frontdoor.tensor_rotary_calls)


def _numpy_bits(arrays, **kw):
    """fastpe.apply_rotary on NumPy copies (the NumPy-facing function's result)."""
    copies = [a.detach().numpy().copy() for a in arrays]
    return fastpe.apply_rotary(*copies, **kw) if len(copies) > 1 else (fastpe.apply_rotary(copies[0], **kw),)


def _assert_reference(got, arrays, dtype, what, **kw):
    expected = reference.apply_rotary(*[float64_of(a) for a in arrays], **kw)
    expected = expected if isinstance(expected, tuple) else (expected,)
    for g, a, e in zip(got, arrays, expected):
        magnitude = np.abs(float64_of(a)).max(axis=-1, keepdims=True)
        assert_within(float64_of(g), e, tolerance(dtype, e, magnitude), what)


CASES = [
    dict(offset=7),
    dict(offset=4000, layout="interleaved"),
    dict(offset=300, base=500000.0, scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                             "high_freq_factor": 4.0, "original_max_position_embeddings": 64}),
    dict(offset=90, scaling={"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32}),
    dict(offset=3, seq_axis=2, num_threads=1),
]


def _general_bits(arrays, **kw):
    """The registered operator's result (fastpe's general path on views of the tensors)."""
    with always_dispatch():
        return ft.apply_rotary(*arrays, **kw)


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "bfloat16"])
@pytest.mark.parametrize("layout", ["contiguous", "transposed", "sliced", "narrowed"])
@pytest.mark.parametrize("case", range(len(CASES)))
def test_the_decode_call_is_served_with_the_numpy_bits(dtype, layout, case):
    kw = CASES[case]
    q = tensor_in_layout((2, 4, 1 + case, 16), dtype, layout, seed=case)
    k = tensor_in_layout((2, 2, 1 + case, 16), dtype, "contiguous", seed=case + 10)
    what = f"{dtype} {layout} {kw}"
    with Served() as served:
        q_rot, k_rot = ft.apply_rotary(q, k, **kw)
        q_alone = ft.apply_rotary(q, **kw)
    assert served.count == 2, what
    assert q_rot.data_ptr() != q.data_ptr() and q_rot.stride() == torch.empty_like(q).stride(), what
    if dtype in ("float32", "float64"):
        expected = _numpy_bits((q, k), **kw)
        for got, want in zip((q_rot, k_rot), expected):
            assert_same_bits(got.numpy(), want, what)
    for got, want in zip((q_rot, k_rot), _general_bits((q, k), **kw)):
        assert torch.equal(got.view(torch.int16) if dtype == "bfloat16" else got,
                           want.view(torch.int16) if dtype == "bfloat16" else want), f"{what}: the operator's bits"
    assert torch.equal(q_alone, q_rot), what
    _assert_reference((q_rot, k_rot), (q, k), dtype, what, **kw)

    q2, k2 = q.clone(), k.clone()
    versions = q2._version, k2._version
    with Served() as served:
        assert ft.apply_rotary_(q2, k2, **kw) == (q2, k2)
    assert served.count == 1, what
    assert q2._version > versions[0] and k2._version > versions[1], f"{what}: version counters"
    assert torch.equal(q2, q_rot) and torch.equal(k2, k_rot), f"{what}: in place"


def test_the_module_and_parameters_take_it():
    q, k = torch.randn(1, 4, 1, 32), torch.randn(1, 2, 1, 32)
    module = ft.RotaryEmbedding(32, base=1e6)
    with Served() as served:
        got = module(q, k, offset=1000)
    assert served.count == 1
    for g, want in zip(got, _numpy_bits((q, k), offset=1000, base=1e6)):
        assert_same_bits(g.numpy(), want, "module")
    weight = torch.nn.Parameter(torch.randn(1, 2, 3, 8))
    before = weight.detach().clone()
    with torch.no_grad(), Served() as served:
        ft.apply_rotary_(weight, offset=5)
    assert served.count == 1
    assert_same_bits(weight.detach().numpy(), _numpy_bits((before,), offset=5)[0], "a Parameter under no_grad")


def test_gradients_take_the_operator():
    q = torch.randn(1, 2, 3, 8, dtype=torch.float64, requires_grad=True)
    out = ft.apply_rotary(q, offset=5)
    assert out.grad_fn is not None and "fastpe" in type(out.grad_fn).__name__.lower() + str(out.grad_fn)
    out.sum().backward()
    expected = reference.apply_rotary(np.ones((1, 2, 3, 8)), positions=np.full(3, -1.0) * np.arange(5, 8))
    # the gradient of a rotation is the rotation by the negated angles
    assert_within(q.grad.numpy(), expected, 1e-12, "gradient")


def _misaligned(shape):
    count = int(np.prod(shape))
    buffer = torch.frombuffer(bytearray(4 * count + 1), dtype=torch.float32, offset=1, count=count)
    buffer.copy_(torch.randn(count))
    return buffer.reshape(shape)


def _negated(shape):
    return torch.randn(*shape, dtype=torch.complex64).conj().imag


@pytest.mark.parametrize("kind", ["negated", "misaligned", "expanded", "partial", "overlap"])
def test_what_it_does_not_serve_gets_the_general_paths_result(kind):
    shape, kw = (1, 4, 3, 8), {"offset": 5}
    q, k = torch.randn(shape), None
    if kind == "negated":
        q = _negated(shape)
    elif kind == "misaligned":
        q = _misaligned(shape)
        assert q.data_ptr() % 4
    elif kind == "expanded":
        q = torch.randn(1, 1, 3, 8).expand(shape)
    elif kind == "partial":
        kw["rotary_dim"] = 4
    elif kind == "overlap":
        fused = torch.randn(1, 6, 3, 8)
        q, k = fused[:, :4], fused[:, 2:]
    arrays = (q,) if k is None else (q, k)
    with Served() as served:
        got = ft.apply_rotary(*arrays, **kw)
    assert served.count == 0, kind
    got = got if isinstance(got, tuple) else (got,)
    for g, a in zip(got, arrays):
        assert g.dtype == a.dtype and g.shape == a.shape
    numpy_kw = {**kw, "offset": 5}
    for g, want in zip(got, _numpy_bits([a.resolve_neg() for a in arrays], **numpy_kw)):
        assert_same_bits(g.numpy(), want, kind)
    if kind == "partial":
        assert torch.equal(got[0][..., 4:], q[..., 4:])


SERVED_TENSOR_OFFSETS = [torch.tensor(5), torch.tensor(5, dtype=torch.int32), torch.tensor(5, dtype=torch.uint8),
                         torch.tensor(5.0), torch.tensor(5.0, dtype=torch.float64),
                         torch.tensor(5.0, dtype=torch.float16)]
OTHER_TENSOR_OFFSETS = {
    "bool": lambda: torch.tensor(True),
    "1-d": lambda: torch.tensor([5]),
    "negative bit": lambda: torch.tensor(-5.0)._neg_view(),
    "requires grad": lambda: torch.tensor(5.0, requires_grad=True),
    "not integral": lambda: torch.tensor(2.5),
    "complex": lambda: torch.tensor(5 + 0j),
}


@pytest.mark.parametrize("offset", SERVED_TENSOR_OFFSETS, ids=lambda o: str(o.dtype))
def test_a_0d_tensor_offset_is_served_with_the_numbers_bits(offset):
    """A 0-d CPU tensor offset is read on the eager route itself: the bits of the same offset as a number,
    into new tensors and in place."""
    q, k = torch.randn(1, 4, 2, 16), torch.randn(1, 2, 2, 16)
    with Served() as served:
        got = ft.apply_rotary(q, k, offset=offset)
        q2, k2 = ft.apply_rotary_(q.clone(), k.clone(), offset=offset)
    assert served.count == 2
    for g, g2, want in zip(got, (q2, k2), _numpy_bits((q, k), offset=5)):
        assert_same_bits(g.numpy(), want, str(offset))
        assert_same_bits(g2.numpy(), want, f"{offset} in place")


@pytest.mark.parametrize("offset_dtype", [torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize("function", ["apply_rotary", "apply_rotary_", "add_sinusoidal", "add_sinusoidal_"])
def test_a_16_bit_tensor_offset_is_its_value(function, offset_dtype):
    """A 0-d bfloat16 or float16 tensor offset means the number it holds, through fastpe.torch and the
    NumPy-facing functions alike (regression: the front doors, taking 0-d array offsets, read bfloat16's view,
    uint16 bits, as their integer)."""
    x = torch.randn(1, 4, 2, 16)
    offset = torch.tensor(5.0, dtype=offset_dtype)
    got = getattr(ft, function)(x.clone(), offset=offset)
    want = getattr(ft, function)(x.clone(), offset=5)
    assert torch.equal(got, want), function
    numpy_function = getattr(fastpe, function.rstrip("_"))
    assert_same_bits(numpy_function(x.numpy().copy(), offset=offset), want.numpy(), f"NumPy-facing {function}")
    assert_same_bits(numpy_function(x.numpy().copy(), offset=offset.numpy() if offset_dtype == torch.float16
                                    else offset.view(torch.int16).numpy().view(BFLOAT16_BITS)), want.numpy(),
                     f"NumPy-facing {function}, a 0-d view")


@pytest.mark.parametrize("name", sorted(OTHER_TENSOR_OFFSETS))
def test_other_tensor_offsets_get_the_operators_outcome(name):
    """Tensor offsets the eager route does not read get what the registered operator gives them: its
    result or its error, with q and k as they were."""
    q, k = torch.randn(1, 4, 2, 16), torch.randn(1, 2, 2, 16)

    def run(arrays, dispatch):
        try:
            if dispatch:
                with always_dispatch():
                    return ft.apply_rotary_(*arrays, offset=OTHER_TENSOR_OFFSETS[name]())
            return ft.apply_rotary_(*arrays, offset=OTHER_TENSOR_OFFSETS[name]())
        except Exception as error:
            return type(error), str(error)

    eager, dispatched = (q.clone(), k.clone()), (q.clone(), k.clone())
    got, want = run(eager, False), run(dispatched, True)
    if isinstance(want, tuple) and isinstance(want[0], type):
        assert got == want, name
        assert torch.equal(eager[0], q) and torch.equal(eager[1], k), f"{name}: a refused call wrote"
    else:
        for g, w in zip(got, want):
            assert torch.equal(g, w), name


def test_refusals_reach_the_caller_and_write_nothing():
    with torch.inference_mode():
        made_inside = torch.randn(1, 2, 3, 8)
    before = made_inside.clone()
    with pytest.raises(ValueError, match="q is an inference tensor"):
        ft.apply_rotary_(made_inside, offset=5)
    assert torch.equal(made_inside, before)
    with torch.inference_mode(), Served() as served:
        ft.apply_rotary_(made_inside, offset=5)
    assert served.count == 1
    assert_same_bits(made_inside.numpy(), _numpy_bits((before,), offset=5)[0], "in inference mode")

    negated = _negated((1, 2, 3, 8))
    with pytest.raises(TypeError, match="lazily negated"):
        ft.apply_rotary_(negated, offset=5)
    fused = torch.randn(1, 6, 3, 8)
    copy = fused.clone()
    with pytest.raises(ValueError, match="overlap"):
        ft.apply_rotary_(fused[:, :4], fused[:, 2:], offset=5)
    with pytest.raises(ValueError, match="layout must be one of"):
        ft.apply_rotary_(fused, layout="quarter")
    with pytest.raises(ValueError, match="offset"):
        ft.apply_rotary_(fused, offset=float("nan"))
    with pytest.raises(TypeError, match="must be an array of float16, bfloat16, float32 or float64"):
        ft.apply_rotary_(torch.zeros(1, 2, 3, 8, dtype=torch.int32), offset=5)
    with pytest.raises(TypeError, match="q must be a torch.Tensor"):
        ft.apply_rotary(fused.numpy(), offset=5)
    assert torch.equal(fused, copy)


# ------------------------------------------------------------------ rotation by given cos and sin

def ServedCosSin():
    """How many rotations by given tables their front door served inside the block."""
    return Counted(_frontdoor.cos_sin_calls)


def _hf_formula(q, cos, sin, unsqueeze_dim):
    """Hugging Face's q * cos' + rotate_half(q) * sin', in float64 NumPy."""
    q, cos, sin = float64_of(q), float64_of(cos), float64_of(sin)
    half = q.shape[-1] // 2
    cos, sin = np.expand_dims(cos, unsqueeze_dim), np.expand_dims(sin, unsqueeze_dim)
    return q * cos + np.concatenate([-q[..., half:], q[..., :half]], axis=-1) * sin


def _tables(rows, width, dtype, first=0):
    cos, sin = fastpe.rotary_cos_sin(first + rows, width)
    return (torch.from_numpy(cos[first:]).to(getattr(torch, dtype)),
            torch.from_numpy(sin[first:]).to(getattr(torch, dtype)))


COS_SIN_CASES = {
    # label: (q shape, k shape, table shape builder, unsqueeze_dim)
    "(B, T, D) tables, (B, H, T, D)": ((2, 4, 5, 16), (2, 2, 5, 16), lambda c: c.reshape(2, 5, 16), 1),
    "(T, D) tables": ((2, 4, 5, 16), (2, 2, 5, 16), lambda c: c[:5], 0),
    "(B, T, H, D), unsqueeze_dim=2": ((2, 5, 4, 16), (2, 5, 2, 16), lambda c: c.reshape(2, 5, 16), 2),
    "a decode step": ((1, 32, 1, 64), (1, 8, 1, 64), lambda c: c[3:4, :64].reshape(1, 1, 64), 1),
    "negative unsqueeze_dim": ((2, 4, 5, 16), (2, 2, 5, 16), lambda c: c.reshape(2, 5, 16), -3),
    "tables sliced from a longer one": ((1, 4, 5, 16), (1, 2, 5, 16), lambda c: c[::2][None, :5], 1),
}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("layout", ["contiguous", "transposed", "sliced"])
@pytest.mark.parametrize("case", sorted(COS_SIN_CASES))
def test_the_hf_call_is_served_with_the_general_bits(dtype, layout, case):
    q_shape, k_shape, table_of, unsqueeze_dim = COS_SIN_CASES[case]
    q = tensor_in_layout(q_shape, dtype, layout, seed=3)
    k = tensor_in_layout(k_shape, dtype, "contiguous", seed=4)
    cos_all, sin_all = _tables(10, q_shape[-1] if q_shape[-1] != 64 else 64, "float32", first=100)
    cos, sin = table_of(cos_all), table_of(sin_all)
    what = f"{dtype} {layout} {case}"
    with ServedCosSin() as served:
        got = ft.apply_rotary_cos_sin(q, k, cos, sin, unsqueeze_dim=unsqueeze_dim)
    assert served.count == 1, what
    with always_dispatch():  # the operator's implementation: the general path
        general = ft.apply_rotary_cos_sin(q, k, cos, sin, unsqueeze_dim=unsqueeze_dim)
    for g, e, a in zip(got, general, (q, k)):
        assert g.data_ptr() != a.data_ptr()
        assert_same_bits(g.numpy(), e.numpy(), what)
        expected = _hf_formula(a, cos, sin, unsqueeze_dim)
        assert_within(float64_of(g), expected, tolerance(dtype, expected, np.abs(float64_of(a)).max()), what)
    q2, k2 = q.clone(), k.clone()
    versions = q2._version, k2._version
    with ServedCosSin() as served:
        assert ft.apply_rotary_cos_sin_(q2, k2, cos, sin, unsqueeze_dim=unsqueeze_dim) == (q2, k2)
    assert served.count == 1 and q2._version > versions[0] and k2._version > versions[1], what
    assert torch.equal(q2, got[0]) and torch.equal(k2, got[1]), f"{what}: in place"


def test_what_the_hf_front_door_does_not_serve():
    q, k = torch.randn(1, 4, 3, 8), torch.randn(1, 2, 3, 8)
    cos, sin = (t[None] for t in _tables(3, 8, "float32"))  # (1, T, D)
    calls = [
        ("float16", lambda: ft.apply_rotary_cos_sin(q.half(), k.half(), cos, sin)),
        ("cos requires grad", lambda: ft.apply_rotary_cos_sin(q, k, cos.clone().requires_grad_(), sin)),
        ("q and k overlapping", lambda: ft.apply_rotary_cos_sin(q, q[:, 1:], cos, sin)),
        ("float64 tables for float32 q", lambda: ft.apply_rotary_cos_sin(q, k, cos.double(), sin.double())),
    ]
    for label, call in calls:
        with ServedCosSin() as served:
            got = call()
        if label == "float64 tables for float32 q":
            assert served.count == 1, label  # any float32 or float64 tables
        else:
            assert served.count == 0, label
        assert all(isinstance(g, torch.Tensor) for g in got), label
    halves_apart = torch.cat([cos[..., :4], cos[..., :4] * 0.5], dim=-1)
    with_nan = sin.clone()
    with_nan[0, 1, 2] = float("nan")
    with_inf = cos.clone()
    with_inf[0, 2, 1] = with_inf[0, 2, 5] = float("inf")  # both halves: only finiteness refuses it
    refused = [
        (halves_apart, sin, 1, ValueError, "cos must repeat its first half"),
        (cos, with_nan, 1, ValueError, "sin must be finite"),
        (with_inf, sin, 1, ValueError, "cos must be finite"),
        (cos[..., :6], sin[..., :6], 1, ValueError, "do not broadcast"),
        (cos, sin[:, :2], 1, ValueError, "one shape"),
        (cos, sin, 4, ValueError, "unsqueeze_dim=4"),
    ]
    for c, s, dim, error, message in refused:
        before = q.clone()
        with pytest.raises(error, match=message):
            ft.apply_rotary_cos_sin_(q, k, c, s, unsqueeze_dim=dim)
        assert torch.equal(q, before), message


def test_tables_that_are_views_of_the_rotated_tensor():
    """cos a view of q itself (q holding a valid table): the result is as if
    cos, sin and q were all read first, on the front door and on the general path."""
    cos, sin = _tables(5, 8, "float32", first=40)
    q = cos.clone()[None, None]                 # (1, 1, T, D), its values a cos table
    expected = _hf_formula(q, cos, sin, 0)
    for route in ("front door", "general path"):
        target = q.clone()
        with ServedCosSin() as served:
            if route == "front door":
                ft.apply_rotary_cos_sin_(target, None, target[0, 0], sin, unsqueeze_dim=0)
            else:
                with always_dispatch():
                    ft.apply_rotary_cos_sin_(target, None, target[0, 0], sin, unsqueeze_dim=0)
        assert served.count == (route == "front door"), route
        assert_within(float64_of(target), expected, tolerance("float32", expected, 1.0), route)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("offset", [0, 300, torch.tensor(70)], ids=repr)
def test_the_sinusoid_into_a_new_tensor_takes_its_front_door(dtype, offset):
    """fastpe.torch.add_sinusoidal (a new tensor) reaches add_sinusoidal's front door through out=, a 0-d
    tensor offset too, with the in-place call's bits; x is left as it was (regression: both took the
    general path, 4x slower on a decode step)."""
    x = torch.randn(2, 9, 24).to(dtype)
    before_x = x.clone()
    served = _frontdoor.sinusoid_calls()
    with torch.no_grad():
        y = ft.add_sinusoidal(x, offset=offset)
    assert _frontdoor.sinusoid_calls() == served + 1
    assert torch.equal(x, before_x)
    expected = x.clone()
    ft.add_sinusoidal_(expected, offset=offset)
    assert_same_bits(y.view(torch.int16 if dtype.itemsize == 2 else dtype).numpy(),
                     expected.view(torch.int16 if dtype.itemsize == 2 else dtype).numpy(), str(dtype))
    want = reference.add_sinusoidal(float64_of(x), offset=int(offset))
    name = str(dtype).removeprefix("torch.")
    assert_within(float64_of(y), want, tolerance(name, want), f"{name} against the reference")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16], ids=str)
def test_add_table_takes_its_front_door(dtype):
    """fastpe.torch.add_table (a new tensor) and add_table_ reach add_table's front door through the
    tensors' views, a 0-d tensor offset and a Parameter table under no_grad too, with the NumPy-facing
    call's bits (the general path's: tests/tables/test_table_fast_path.py)."""
    x = torch.randn(2, 3, 16).to(dtype)
    table = torch.nn.Parameter(torch.randn(10, 16))
    before_x = x.clone()
    calls = _frontdoor.table_calls()
    with torch.no_grad():
        y = ft.add_table(x, table, offset=torch.tensor(4))
        z = ft.add_table_(x.clone(), table, offset=4)
    assert _frontdoor.table_calls() == calls + 2
    assert torch.equal(x, before_x)
    bits = torch.int16 if dtype.itemsize == 2 else dtype
    assert torch.equal(y.view(bits), z.view(bits))
    if dtype in (torch.float32, torch.float64):
        expected = fastpe.add_table(x.numpy().copy(), table.detach().numpy(), offset=4)
        assert_same_bits(y.numpy(), expected, str(dtype))
    name = str(dtype).removeprefix("torch.")
    want = reference.add_table(float64_of(x), float64_of(table.detach()), offset=4)
    assert_within(float64_of(y), want, tolerance(name, want), f"{name} against the reference")


def ServedAdds():
    """How many add_sinusoidal and add_table calls the eager route served inside the block."""
    return Counted(_frontdoor.tensor_add_calls)


ADDS = {
    "add_sinusoidal": (lambda x, **kw: ft.add_sinusoidal(x, **kw), lambda x, **kw: ft.add_sinusoidal_(x, **kw)),
    "add_table": (lambda x, **kw: ft.add_table(x, TABLE, **kw), lambda x, **kw: ft.add_table_(x, TABLE, **kw)),
}
TABLE = torch.randn(600, 24, dtype=torch.float64)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("layout", ["contiguous", "transposed", "sliced", "narrowed"])
@pytest.mark.parametrize("function", sorted(ADDS))
def test_the_adds_are_served_on_the_eager_route_with_the_operators_bits(function, layout, dtype):
    """add_sinusoidal and add_table on a CPU tensor, with a number or a 0-d tensor offset and a scale: served by their
    front doors straight from the tensor (no NumPy view), into a new tensor (x left as it was) or in place
    (version counter bumped), with the registered operator's bits."""
    new, in_place = ADDS[function]
    name = str(dtype).removeprefix("torch.")
    x = tensor_in_layout((2, 3, 9, 24), name, layout, seed=7)
    bits = torch.int16 if dtype.itemsize == 2 else dtype
    for offset, scale in ((0, None), (300, None), (torch.tensor(41), None), (7, 4.898979485566356)):
        what = f"{function} {name} {layout} offset={offset!r} scale={scale}"
        before = x.clone()
        with ServedAdds() as served:
            y = new(x, offset=offset, scale=scale)
            z = x.clone()
            version = z._version
            assert in_place(z, offset=offset, scale=scale) is z
        assert served.count == 2, what
        assert torch.equal(x.view(bits), before.view(bits)), f"{what}: x written"
        assert z._version > version, f"{what}: version counter"
        with always_dispatch():
            want = new(x, offset=offset, scale=scale)
        assert torch.equal(y.view(bits), want.view(bits)) and torch.equal(z.view(bits), want.view(bits)), what


@pytest.mark.parametrize("function", sorted(ADDS))
def test_what_the_eager_adds_leave_to_the_other_ways(function):
    """Gradients (the operator), inference tensors written outside inference mode (refused, nothing
    written), a subclass, other devices' fakes and non-tensors (the Python checks): never the route."""
    new, in_place = ADDS[function]
    x = torch.randn(1, 4, 24, requires_grad=True)
    with ServedAdds() as served:
        y = new(x, offset=3)
    assert served.count == 0 and y.grad_fn is not None
    with torch.inference_mode():
        frozen = torch.randn(1, 4, 24)
    before = frozen.clone()
    with ServedAdds() as served, pytest.raises(ValueError, match="inference tensor"):
        in_place(frozen, offset=3)
    assert served.count == 0 and torch.equal(frozen, before)
    with torch.inference_mode(), ServedAdds() as served:
        in_place(frozen, offset=3)
    assert served.count == 1
    with ServedAdds() as served, pytest.raises(TypeError, match="must be a torch.Tensor"):
        new(np.zeros((1, 4, 24), np.float32), offset=3)
    assert served.count == 0

    class Sub(torch.Tensor):
        pass

    sub = torch.randn(1, 4, 24).as_subclass(Sub)
    with ServedAdds() as served:
        got = new(sub, offset=3)
    assert served.count == 0
    assert torch.equal(torch.Tensor(got), torch.Tensor(new(torch.Tensor(sub).clone(), offset=3)))
