"""fastpe's NumPy-facing functions on plain CPU tensors, in place, once
fastpe.torch is imported: add_sinusoidal, add_table and apply_rotary take
fastpe.torch's eager route (straight from the tensors, no NumPy view) where it
is open to them, and give exactly what their general path gives: the same
bits, the same objects back, version counters bumped. What the NumPy-facing
functions refuse (a tensor that requires grad, whatever the grad mode; an
inference tensor outside inference mode) and what the route does not take (a
tensor offset, out=, a subclass, tensors mixed with arrays) reaches the
general path, with its result or its error and nothing written."""

import numpy as np
import pytest
from optional import torch_or_skip

torch = torch_or_skip()

import fastpe  # noqa: E402
import fastpe.torch  # noqa: E402,F401  (opens the route)
from fastpe import _frontdoor, reference  # noqa: E402
from fastpe.torch._tensors import always_dispatch  # noqa: E402
from torch_cases import DTYPES, float64_of, tensor_in_layout, tolerance  # noqa: E402
from util import assert_within  # noqa: E402

TABLE = torch.randn(600, 24, dtype=torch.float64, generator=torch.Generator().manual_seed(3))


def _bits(t):
    return t.view(torch.int16) if t.dtype.itemsize == 2 else t


def _same_bits(a, b):
    return torch.equal(_bits(a), _bits(b))


def _tensor_calls():
    return _frontdoor.tensor_add_calls() + _frontdoor.tensor_rotary_calls()


# name: (call on a tuple of tensors, how many tensors, the reference's result on float64 copies)
CALLS = {
    "add_sinusoidal": (lambda ts, **kw: fastpe.add_sinusoidal(ts[0], **kw), 1,
                       lambda xs, **kw: (reference.add_sinusoidal(xs[0], **kw),)),
    "add_table": (lambda ts, **kw: fastpe.add_table(ts[0], TABLE, **kw), 1,
                  lambda xs, **kw: (reference.add_table(xs[0], TABLE.numpy(), **kw),)),
    "apply_rotary one array": (lambda ts, **kw: fastpe.apply_rotary(ts[0], **kw), 1,
                               lambda xs, **kw: (reference.apply_rotary(xs[0], **kw),)),
    "apply_rotary q and k": (lambda ts, **kw: fastpe.apply_rotary(*ts, **kw), 2,
                             lambda xs, **kw: reference.apply_rotary(*xs, **kw)),
}


def _tensors(name, dtype, layout, seed=0):
    n = CALLS[name][1]
    return tuple(tensor_in_layout((2, 3, 9, 24), dtype, layout, seed=seed + i) for i in range(n))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", ["contiguous", "transposed", "sliced", "narrowed"])
@pytest.mark.parametrize("name", sorted(CALLS))
def test_served_with_the_general_paths_bits(name, layout, dtype):
    call, _, ref = CALLS[name]
    for offset in (0, 300, np.int64(41)):
        tensors = _tensors(name, dtype, layout)
        general = tuple(t.clone() for t in tensors)
        originals = tuple(float64_of(t) for t in tensors)
        versions = [t._version for t in tensors]
        before = _tensor_calls()
        got = call(tensors, offset=offset)
        assert _tensor_calls() == before + 1, f"{name} {dtype} {layout} offset={offset!r}: not served"
        got = got if isinstance(got, tuple) else (got,)
        assert len(got) == len(tensors) and all(g is t for g, t in zip(got, tensors)), "the tensors themselves"
        assert all(t._version > v for t, v in zip(tensors, versions)), "version counters"
        with always_dispatch():  # the route closed: the general path, through NumPy views
            call(general, offset=offset)
        for g, w in zip(tensors, general):
            assert _same_bits(g, w), f"{name} {dtype} {layout} offset={offset!r}: not the general path's bits"
        want = ref(tuple(o.copy() for o in originals), offset=offset)
        for g, w, o in zip(tensors, want, originals):
            magnitude = np.abs(o).max(axis=-1, keepdims=True)
            assert_within(float64_of(g), w, tolerance(dtype, w, magnitude), f"{name} against the reference")


@pytest.mark.parametrize("name", sorted(CALLS))
def test_what_the_numpy_facing_functions_refuse_reaches_the_general_path(name):
    call = CALLS[name][0]
    for grad_mode in (True, False):
        tensors = tuple(t.requires_grad_() for t in _tensors(name, "float32", "contiguous"))
        before = [t.detach().clone() for t in tensors]
        calls = _tensor_calls()
        with torch.set_grad_enabled(grad_mode), pytest.raises(ValueError, match="requires grad"):
            call(tensors, offset=3)
        assert _tensor_calls() == calls
        assert all(torch.equal(t.detach(), b) for t, b in zip(tensors, before)), "written before the error"
    with torch.inference_mode():
        frozen = _tensors(name, "float32", "contiguous")
    before = [t.clone() for t in frozen]
    calls = _tensor_calls()
    with pytest.raises(ValueError, match="inference tensor"):
        call(frozen, offset=3)
    assert _tensor_calls() == calls and all(torch.equal(t, b) for t, b in zip(frozen, before))
    with torch.inference_mode():
        call(frozen, offset=3)
    assert _tensor_calls() == calls + 1, "inside inference mode an inference tensor is served"


class Sub(torch.Tensor):
    pass


NOT_TAKEN = [(name, kind) for name in sorted(CALLS) for kind in ("tensor offset", "out", "subclass", "mixed")
             if kind != "mixed" or CALLS[name][1] > 1]


@pytest.mark.parametrize("name, kind", NOT_TAKEN)
def test_what_the_route_does_not_take_gets_the_general_paths_result(name, kind):
    call = CALLS[name][0]
    tensors = _tensors(name, "float32", "contiguous", seed=5)
    kw = {"offset": 7}
    args = tensors
    if kind == "tensor offset":
        kw["offset"] = torch.tensor(7)
    elif kind == "out":
        kw["out"] = tuple(torch.empty_like(t) for t in tensors) if name.startswith("apply") else \
            torch.empty_like(tensors[0])
    elif kind == "subclass":
        args = tuple(t.clone().as_subclass(Sub) for t in tensors)
    else:
        args = (tensors[0].clone(), tensors[1].clone().numpy())
    general_args = tuple(a.clone() if isinstance(a, torch.Tensor) else a.copy() for a in args)
    general_kw = dict(kw)
    if kind == "out":
        general_kw["out"] = tuple(o.clone() for o in kw["out"]) if isinstance(kw["out"], tuple) else kw["out"].clone()
    calls = _tensor_calls()
    got = call(args, **kw)
    assert _tensor_calls() == calls, f"{kind}: served by the route"
    with always_dispatch():
        want = call(general_args, **general_kw)
    got = got if isinstance(got, tuple) else (got,)
    want = want if isinstance(want, tuple) else (want,)
    for g, w in zip(got, want):
        assert np.array_equal(np.asarray(torch.as_tensor(g)), np.asarray(torch.as_tensor(w))), kind


def _aliased(kind):
    """Tensors that are views of one buffer: a table that holds rows of x, or q and k overlapping."""
    buf = torch.randn(2 * 9 * 24 + 40 * 24, dtype=torch.float64, generator=torch.Generator().manual_seed(11))
    if kind == "table rows of x":
        x = buf[: 2 * 9 * 24].view(2, 9, 24)
        return (x, buf.view(-1, 24)), lambda ts, **kw: fastpe.add_table(ts[0], ts[1], **kw)
    q = buf[: 2 * 9 * 24].view(1, 2, 9, 24)
    k = buf[24: 24 + 2 * 9 * 24].view(1, 2, 9, 24)  # one row later: q and k overlap
    return (q, k), lambda ts, **kw: fastpe.apply_rotary(*ts, **kw)


@pytest.mark.parametrize("kind", ["table rows of x", "q and k overlapping"])
def test_views_of_one_buffer_get_the_general_paths_outcome(kind):
    """Inputs that share memory with what is written are the general path's to settle: the same values
    (a table read as it was before the call) or the same error, whatever the route."""
    tensors, call = _aliased(kind)
    general, general_call = _aliased(kind)
    calls = _tensor_calls()
    try:
        call(tensors, offset=3)
        error = None
    except ValueError as e:
        error = str(e)
    assert _tensor_calls() == calls, f"{kind}: served by the route"
    with always_dispatch():
        if error is None:
            general_call(general, offset=3)
        else:
            with pytest.raises(ValueError) as raised:
                general_call(general, offset=3)
            assert str(raised.value) == error
    base, general_base = tensors[0]._base, general[0]._base
    assert torch.equal(base, general_base), f"{kind}: not the general path's values"
