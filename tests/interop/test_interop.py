"""Arrays of other libraries, written in place without a copy.

Every in-place function accepts a CPU array exposing DLPack (a PyTorch
tensor) or the NumPy array interface, writes through a view of its memory
and returns the caller's own object. Values are checked against the NumPy
reference run on a float64 copy of the same data; the torch tests skip
where torch is not installed (CI installs the CPU build).
"""

import numpy as np
import pytest

import fastpe
from fastpe import reference
from optional import conformance_import, extra_import
from processes import run_python
from util import add_tolerance, assert_within

# float64 results: the contract's bound for positions up to 2**20, with room
# for x * scale (|x| <= ~5) rounded once.
F64_TOL = 1e-9


@pytest.fixture(scope="module")
def torch():
    return conformance_import("torch")


class DLPackOnly:
    """A minimal non-NumPy array: DLPack export of memory it owns, nothing else."""

    def __init__(self, a):
        self._a = a

    def __dlpack__(self, **kwargs):
        return self._a.__dlpack__(**kwargs)

    def __dlpack_device__(self):
        return self._a.__dlpack_device__()


class InterfaceOnly:
    """A minimal non-NumPy array exposing only __array_interface__."""

    def __init__(self, a):
        self._a = a
        self.__array_interface__ = a.__array_interface__


def _float64_copy(t):
    return t.detach().double().numpy().copy()


# ------------------------------------------------------- every in-place function

def _cases(torch):
    """(name, build tensors, call fastpe or reference with them); the first tensor is the one written."""
    g = torch.Generator().manual_seed(7)

    def rand(*shape):
        return torch.randn(*shape, generator=g, dtype=torch.float64)

    return [
        ("add_sinusoidal", lambda: [rand(3, 40, 16)], lambda m, x: m.add_sinusoidal(x, offset=5, scale=2.0)),
        ("add_sinusoidal-positions", lambda: [rand(2, 9, 10)],
         lambda m, x: m.add_sinusoidal(x, positions=np.arange(18).reshape(2, 9) * 3)),
        ("add_table", lambda: [rand(2, 6, 8), rand(20, 8)], lambda m, x, t: m.add_table(x, t, offset=3)),
        ("add_sincos_2d", lambda: [rand(2, 12, 8)], lambda m, x: m.add_sincos_2d(x, 3, 4)),
        ("add_sinusoidal_nd", lambda: [rand(2, 12, 8)], lambda m, x: m.add_sinusoidal_nd(x, (3, 4))),
        ("apply_rotary", lambda: [rand(1, 2, 10, 8)], lambda m, q: m.apply_rotary(q, offset=4)),
        ("add_alibi", lambda: [rand(2, 4, 5, 7)], lambda m, s: m.add_alibi(s, offset=[0, 2])),
        ("add_relative_bias", lambda: [rand(1, 3, 5, 6), rand(8, 3)],
         lambda m, s, b: m.add_relative_bias(s, b, bidirectional=True, num_buckets=8, max_distance=16)),
    ]


@pytest.mark.parametrize("index", range(8))
def test_tensor_written_in_place_and_returned(torch, index):
    name, build, call = _cases(torch)[index]
    tensors = build()
    target = tensors[0]
    address = target.data_ptr()
    expected = call(reference, *[_float64_copy(t) for t in tensors])
    result = call(fastpe, *tensors)
    assert result is target, f"{name}: must return the caller's tensor"
    assert target.data_ptr() == address, f"{name}: the tensor's storage moved"
    assert_within(target.numpy(), expected, F64_TOL, name)


def test_two_tensors_rotated_in_place(torch):
    q = torch.randn(1, 2, 6, 8, dtype=torch.float64)
    k = torch.randn(1, 2, 6, 8, dtype=torch.float64)
    expected = reference.apply_rotary(q.numpy().copy(), k.numpy().copy(), offset=9)
    rq, rk = fastpe.apply_rotary(q, k, offset=9)
    assert rq is q and rk is k
    assert_within(q.numpy(), expected[0], F64_TOL, "q")
    assert_within(k.numpy(), expected[1], F64_TOL, "k")


def test_tables_into_a_tensor_out(torch):
    out = torch.empty(30, 12, dtype=torch.float64)
    assert fastpe.sinusoidal_table(30, 12, offset=100, out=out) is out
    assert_within(out.numpy(), reference.sinusoidal_table(30, 12, offset=100, dtype=np.float64), F64_TOL, "table")
    enc_out = torch.empty(4, 5, 6, dtype=torch.float64)
    positions = torch.arange(20).reshape(4, 5) * 7
    assert fastpe.sinusoidal_encode(positions, 6, out=enc_out) is enc_out
    assert_within(enc_out.numpy(), reference.sinusoidal_encode(positions.numpy(), 6, dtype=np.float64),
                  F64_TOL, "encode")


def test_tables_are_numpy_and_wrap_without_a_copy(torch):
    table = fastpe.sinusoidal_table(16, 8)
    assert isinstance(table, np.ndarray)
    wrapped = torch.from_numpy(table)  # the README's recipe
    assert wrapped.data_ptr() == table.__array_interface__["data"][0]


@pytest.mark.parametrize("view", ["transposed", "strided", "narrowed"])
def test_non_contiguous_tensor_views(torch, view):
    base = torch.randn(6, 20, 16, dtype=torch.float64)
    t = {"transposed": base.transpose(0, 1)[:, :4],            # (20, 4, 16): batch axis outermost stride
         "strided": base[::2, ::3],                            # every other sequence, every third token
         "narrowed": base[:, 2:18, 1:15]}[view]
    untouched = base.clone()
    expected = reference.add_sinusoidal(t.numpy().copy(), offset=11)
    assert fastpe.add_sinusoidal(t, offset=11) is t
    assert_within(t.numpy(), expected, F64_TOL, view)
    outside = torch.ones_like(base, dtype=torch.bool)
    outside[{"transposed": (slice(0, 4), slice(None), slice(None)),
             "strided": (slice(None, None, 2), slice(None, None, 3), slice(None)),
             "narrowed": (slice(None), slice(2, 18), slice(1, 15))}[view]] = False
    assert torch.equal(base[outside], untouched[outside]), f"{view}: elements outside the view changed"


def _ulp_tolerance(expected, finfo):
    """One unit in the last place of the 16-bit type at each expected value."""
    mag = np.maximum(np.abs(expected), float(finfo.smallest_normal))
    return 2.0 ** (np.floor(np.log2(mag)) - finfo.nmant)


@pytest.mark.parametrize("dtype_name", ["float32", "float16", "bfloat16"])
def test_tensor_dtypes(torch, dtype_name):
    if dtype_name == "bfloat16":
        ml_dtypes = extra_import("ml_dtypes", "test")
        finfo, np_dtype = ml_dtypes.finfo(ml_dtypes.bfloat16), ml_dtypes.bfloat16
    else:
        finfo, np_dtype = np.finfo(dtype_name), np.dtype(dtype_name)
    t = torch.randn(2, 30, 24).to(getattr(torch, dtype_name))
    before = t.clone()
    expected = reference.add_sinusoidal(before.float().numpy().astype(np_dtype), offset=1000)
    assert fastpe.add_sinusoidal(t, offset=1000) is t
    got = t.float().numpy().astype(np.float64)
    want = np.asarray(expected).astype(np.float64)
    if dtype_name == "float32":
        tol = add_tolerance(np.float32, 1000 + 29, np.abs(before.double().numpy()))
    else:
        tol = _ulp_tolerance(want, finfo)
    assert_within(got, want, tol, dtype_name)


def test_out_may_mix_tensors_and_ndarrays(torch):
    x = torch.randn(2, 5, 6, dtype=torch.float64)
    x_before = x.clone()
    out = np.empty((2, 5, 6))
    assert fastpe.add_sinusoidal(x, out=out) is out
    assert torch.equal(x, x_before), "x changed although out= was given"
    out_t = torch.empty(2, 5, 6, dtype=torch.float64)
    assert fastpe.add_sinusoidal(x.numpy(), out=out_t) is out_t
    expected = reference.add_sinusoidal(x_before.numpy().copy())
    assert_within(out, expected, F64_TOL, "ndarray out")
    assert_within(out_t.numpy(), expected, F64_TOL, "tensor out")


# ----------------------------------------------------------------- rejections

def _rejected(call, exc, words, *tensors):
    before = [t.detach().clone() for t in tensors]
    with pytest.raises(exc) as info:
        call()
    message = str(info.value)
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"
    for t, b in zip(tensors, before):
        assert torch_equal_bits(t, b), "a rejected call changed a tensor"


def torch_equal_bits(a, b):
    return a.detach().numpy().tobytes() == b.numpy().tobytes()


def test_requires_grad_is_refused(torch):
    x = torch.randn(2, 4, 8, requires_grad=True)
    _rejected(lambda: fastpe.add_sinusoidal(x), ValueError, ["x", "requires grad", "fastpe.torch"], x)
    with pytest.raises(ValueError) as info:
        fastpe.add_sinusoidal(x)
    assert "detach" not in str(info.value)  # detaching would hide the write from autograd
    y = torch.randn(2, 4, 8)
    emb = torch.nn.Embedding(10, 8).weight  # a learned table requires grad
    _rejected(lambda: fastpe.add_table(y, emb), ValueError, ["table", "requires grad"], y, emb)
    out = torch.empty(2, 4, 8, requires_grad=True)
    _rejected(lambda: fastpe.add_sinusoidal(y, out=out), ValueError, ["out", "requires grad"], y, out)
    # A table that is only read may be detached: nothing of it is written.
    assert fastpe.add_table(y, emb.detach()) is y


def test_non_cpu_devices_are_refused(torch):
    meta = torch.empty(2, 4, 8, device="meta")
    with pytest.raises(ValueError, match="x is not in CPU memory"):
        fastpe.add_sinusoidal(meta)

    class OnGPU(DLPackOnly):
        def __dlpack_device__(self):
            return (2, 1)  # kDLCUDA, device 1

    a = np.zeros((2, 3))
    with pytest.raises(ValueError, match="x lives on cuda:1; fastpe computes on the CPU"):
        fastpe.add_sinusoidal(OnGPU(a))
    assert not a.any()


def test_unsupported_tensor_dtype_names_the_argument(torch):
    ints = torch.arange(12).reshape(1, 3, 4)
    _rejected(lambda: fastpe.add_sinusoidal(ints), TypeError, ["x", "int64"], ints)
    scores = torch.zeros(1, 1, 2, 2, dtype=torch.complex64)
    with pytest.raises(TypeError, match="scores"):
        fastpe.add_alibi(scores)


def test_bfloat16_tensor_without_ml_dtypes_is_a_clear_type_error(torch):
    code = (
        "import sys; sys.modules['ml_dtypes'] = None\n"  # makes `import ml_dtypes` fail
        "import torch, fastpe\n"
        "t = torch.zeros(2, 3, 4, dtype=torch.bfloat16)\n"
        "try:\n"
        "    fastpe.add_sinusoidal(t)\n"
        "except TypeError as exc:\n"
        "    print('TypeError:', exc)\n"
        "print('unchanged' if not t.any() else 'written')\n"
    )
    proc = run_python(code)
    assert proc.returncode == 0, proc.stderr
    assert "TypeError: x is a bfloat16 tensor" in proc.stdout and "ml_dtypes" in proc.stdout, proc.stdout
    assert "unchanged" in proc.stdout


# --------------------------------------------- any DLPack / array-interface array

# NumPy before 2.2 imports every DLPack array read-only (torch tensors are then
# viewed through torch's own NumPy view, other DLPack arrays are refused,
# saying why), and NumPy before 2.1 cannot export a read-only array.
NUMPY_DLPACK_READ_ONLY = np.lib.NumpyVersion(np.__version__) < "2.2.0"


def _dlpack_exports_read_only():
    readonly = np.zeros(1)
    readonly.flags.writeable = False
    try:
        readonly.__dlpack__(max_version=(1, 0))  # the read-only flag is DLPack 1.0's
    except (BufferError, TypeError):
        return False
    return True


@pytest.mark.parametrize("wrapper", [DLPackOnly, InterfaceOnly])
def test_protocol_arrays_written_in_place(wrapper):
    data = np.random.default_rng(3).standard_normal((2, 7, 10))
    expected = reference.add_sinusoidal(data.copy(), offset=2)
    obj = wrapper(data)
    if wrapper is DLPackOnly and NUMPY_DLPACK_READ_ONLY:
        before = data.copy()
        with pytest.raises(ValueError, match=r"x is read-only \(NumPy .* imports every DLPack array read-only"):
            fastpe.add_sinusoidal(obj, offset=2)
        assert np.array_equal(data, before)
        return
    assert fastpe.add_sinusoidal(obj, offset=2) is obj
    assert_within(data, expected, F64_TOL, wrapper.__name__)


@pytest.mark.parametrize("wrapper", [DLPackOnly, InterfaceOnly])
def test_read_only_protocol_arrays_are_refused(wrapper):
    data = np.zeros((2, 3, 4))
    data.flags.writeable = False
    if wrapper is DLPackOnly and not _dlpack_exports_read_only():
        with pytest.raises(TypeError, match="x cannot be viewed as a NumPy array through DLPack"):
            fastpe.add_sinusoidal(wrapper(data))  # NumPy, the producer, refuses to export it
    else:
        with pytest.raises(ValueError, match="x is read-only"):
            fastpe.add_sinusoidal(wrapper(data))
    assert not data.any()


def test_objects_without_a_zero_copy_protocol_are_refused_in_place():
    with pytest.raises(TypeError, match="x must be a numpy.ndarray, or a CPU array exposing __dlpack__"):
        fastpe.add_sinusoidal([[0.0, 1.0], [2.0, 3.0]])


def test_a_read_only_input_may_be_any_array_like():
    # With out= given, x is only read: a list is converted, nothing is written into it.
    x = [[[0.0, 1.0, 2.0, 3.0]] * 3]
    out = np.empty((1, 3, 4))
    assert fastpe.add_sinusoidal(x, out=out) is out
    assert_within(out, reference.add_sinusoidal(np.array(x)), F64_TOL, "list x")


# ------------------------------------------------------------ in a DataLoader

def _collate_with_positions(batch):
    import torch

    x = torch.stack(batch)                 # (B, T, D), a fresh tensor: safe to write
    return fastpe.add_sinusoidal(x, scale=2.0)


@pytest.mark.parametrize("num_workers", [0, 2])
def test_collate_fn_adds_encodings_in_place(torch, num_workers):
    data = [torch.full((12, 8), float(i), dtype=torch.float64) for i in range(6)]
    loader = torch.utils.data.DataLoader(data, batch_size=3, collate_fn=_collate_with_positions,
                                         num_workers=num_workers)
    batches = list(loader)
    assert len(batches) == 2
    for b, batch in enumerate(batches):
        x = np.stack([d.numpy() for d in data[3 * b: 3 * b + 3]])
        assert_within(batch.numpy(), reference.add_sinusoidal(x, scale=2.0), F64_TOL, f"batch {b}")
