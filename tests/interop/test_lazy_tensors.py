"""Torch tensors whose memory does not hold their values are refused.

A lazily conjugated or negated tensor keeps its values' conjugate or
negation in memory and applies the bit when torch reads it; a ZeroTensor has
no memory at all. fastpe sees memory through DLPack, which ignores the
negative bit, so such a tensor, written or only read, would give wrong
numbers without an error. Every argument refuses them with a TypeError
naming the way to materialise them, before anything is written.
"""

import numpy as np
import pytest
from optional import conformance_import

import fastpe
from fastpe import reference

torch = conformance_import("torch")

MODULES = [pytest.param(fastpe, id="fastpe"), pytest.param(reference, id="reference")]


def negated_view(shape):
    """A real tensor with the negative bit: the imaginary part of a conjugate view."""
    z = torch.complex(torch.zeros(shape), torch.ones(shape))
    t = z.conj().imag
    assert t.is_neg()
    return t


def test_dlpack_ignores_the_negative_bit():
    """Why fastpe must refuse: DLPack hands over the memory, not the values."""
    t = negated_view((3,))
    assert float(t[0]) == -1.0
    assert np.from_dlpack(t)[0] == 1.0


@pytest.mark.parametrize("mod", MODULES)
def test_add_sinusoidal_negated_imag_refused(mod):
    """The issue's reproducer: add_sinusoidal(z.conj().imag) used to compute x - PE."""
    z = torch.complex(torch.zeros(1, 4, 4), torch.zeros(1, 4, 4))
    im = z.conj().imag
    with pytest.raises(TypeError, match=r"x is a lazily negated tensor.*x\.resolve_neg\(\)"):
        mod.add_sinusoidal(im)
    assert torch.equal(im, torch.zeros(1, 4, 4))


@pytest.mark.parametrize("mod", MODULES)
def test_negated_inputs_that_are_only_read_refused(mod):
    x = np.zeros((1, 3, 4), dtype=np.float32)
    calls = {
        "positions": lambda: mod.add_sinusoidal(x, positions=negated_view((3,))),
        "offset": lambda: mod.add_sinusoidal(x, offset=negated_view((1,))),
        "table": lambda: mod.add_table(x, negated_view((5, 4))),
        "x": lambda: mod.add_sinusoidal(negated_view((1, 3, 4)), out=x),
        "out": lambda: mod.add_sinusoidal(x, out=negated_view((1, 3, 4))),
        "inv_freq": lambda: mod.apply_rotary(x, inv_freq=negated_view((2,))),
        "slopes": lambda: mod.add_alibi(np.zeros((1, 2, 3, 3)), slopes=negated_view((2,))),
        "bias_table": lambda: mod.add_relative_bias(np.zeros((1, 2, 3, 3)), negated_view((8, 2)), bidirectional=True,
                                                    num_buckets=8, max_distance=16),
    }
    for name, call in calls.items():
        with pytest.raises(TypeError, match=rf"{name} is a lazily negated tensor.*resolve_neg\(\)"):
            call()
        assert not x.any(), name


@pytest.mark.parametrize("mod", MODULES)
def test_conjugate_bit_refused_naming_resolve_conj(mod):
    z = torch.complex(torch.ones(1, 2, 2, 2), torch.ones(1, 2, 2, 2)).conj()
    with pytest.raises(TypeError, match=r"scores is a lazily conjugated tensor.*resolve_conj\(\)"):
        mod.add_alibi(z)


@pytest.mark.parametrize("mod", MODULES)
def test_zero_tensor_refused(mod):
    """A ZeroTensor's data pointer is no buffer of zeros (DLPack exports whatever lies there)."""
    zero = torch._efficientzerotensor(1, 3, 4)
    assert zero._is_zerotensor()
    with pytest.raises(TypeError, match=r"x is a ZeroTensor.*zeros_like"):
        mod.add_sinusoidal(zero)
    x = np.zeros((1, 3, 4))
    with pytest.raises(TypeError, match=r"positions is a ZeroTensor"):
        mod.add_sinusoidal(x, positions=torch._efficientzerotensor(3))
    assert not x.any()


@pytest.mark.parametrize("mod", MODULES)
def test_zero_tensor_refused_by_the_rotary_front_door(mod):
    """Regression: the compiled front door tells a ZeroTensor by its null data pointer (it no longer asks
    _is_zerotensor()); the call falls to the general path, which refuses it by name."""
    q, zero = torch.zeros(1, 2, 3, 8), torch._efficientzerotensor(1, 2, 3, 8)
    for arrays in ((zero,), (q, zero), (zero, q)):
        with pytest.raises(TypeError, match=r"arrays\[\d\] is a ZeroTensor"):
            mod.apply_rotary(*arrays, offset=3)
        assert not q.any()


def test_resolved_tensors_accepted():
    """The way out the messages name works, and writes through the resolved tensor."""
    t = negated_view((1, 3, 4)).resolve_neg()
    assert not t.is_neg()
    want = reference.add_sinusoidal(t.numpy().copy())
    fastpe.add_sinusoidal(t)
    assert np.allclose(t.numpy(), want, rtol=0, atol=4e-6)
