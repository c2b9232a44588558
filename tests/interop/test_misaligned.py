"""Arrays at any address: misaligned outputs are written in place, with the
bits of an aligned copy.

Arrays that arrive by pickle protocol 5 (Dask's process workers) or
np.frombuffer at an odd offset sit at any address: float32 at address % 4 == 1,
float64 at % 8 == 4. They used to be refused as outputs ("x is not aligned").
Every writing function now takes them, as output (x in place, out, scores)
and as input (x read with out=, tables, positions, offsets, slopes). The
property: for every dtype, every byte offset 1..7 that misaligns it, and every
writing function, the call on misaligned copies writes the caller's memory
(and nothing around it) with the same bits as the same call on aligned
copies, and that result is the reference's. fastpe._runtime.SCRATCH_BYTES is
drawn small too, so the chunked scratch is exercised.

sincos_2d, sinusoidal_nd and rotary_cos_sin write only new arrays of their
own (no out=), so they have nothing to test here.
"""

import contextlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastpe
from fastpe import _runtime, reference
from util import add_tolerance, assert_same_bits, assert_within, float_dtypes

EXAMPLES = settings(max_examples=120, deadline=None, database=None, suppress_health_check=list(HealthCheck),
                    print_blob=True)
GUARD = 16  # bytes around each misaligned array that must stay as they were
FILL = 0xA5


def test_bfloat16_is_among_thefloat_dtypes():
    pytest.importorskip("ml_dtypes", reason="bfloat16 is ml_dtypes' dtype; the test extra brings it: "
                                            'pip install ".[test]"')
    assert any(d.name == "bfloat16" for d in float_dtypes())


class Placement:
    """Puts each array of a call at `offset` bytes past an aligned address of
    a guarded buffer (0 for the aligned twin); `strided` arrays are every
    other element of their last axis."""

    def __init__(self, offset, strided):
        self.offset, self.strided, self.buffers = offset, strided, []

    def __call__(self, a, *, strided=False):
        a = np.asarray(a)
        step = 2 if strided and self.strided else 1
        shape = a.shape[:-1] + (a.shape[-1] * step,) if a.ndim else a.shape
        nbytes = int(np.prod(shape)) * a.itemsize
        buffer = np.full(nbytes + self.offset + GUARD, FILL, np.uint8)  # NumPy aligns it to 16 bytes at least
        view = buffer[self.offset:self.offset + nbytes].view(a.dtype).reshape(shape)
        if step > 1:
            view = view[..., ::step]
        view[...] = a
        assert view.flags.aligned == (self.offset % a.itemsize == 0) and view.flags.writeable
        self.buffers.append((buffer, nbytes))
        return view

    def check_guards(self):
        """The bytes around each array's span are as they were."""
        for buffer, nbytes in self.buffers:
            assert (buffer[:self.offset] == FILL).all(), "a byte before the array was written"
            assert (buffer[self.offset + nbytes:] == FILL).all(), "a byte after the array was written"


def _values(rng, shape, dtype, magnitude=2.0):
    return rng.uniform(-magnitude, magnitude, shape).astype(dtype)


# Each case: (rng, dtype, place) -> (function name, positional args, keyword args, the arrays written).
def _add_sinusoidal(rng, dtype, place):
    B, T, D = rng.integers(1, 4), rng.integers(1, 10), rng.integers(2, 9) * 2  # fairseq needs D >= 4
    x = place(_values(rng, (B, T, D), dtype), strided=True)
    kind = rng.integers(0, 5)
    kw = {}
    if kind == 1:
        kw["offset"] = place(rng.integers(0, 3000, B).astype(np.int64))
    elif kind == 2:
        kw["positions"] = place(rng.uniform(-50, 2000, (B, T)))
    elif kind == 3:
        kw.update(preset="fairseq", positions=place(fastpe.make_positions(rng.integers(1, 4, (B, T)), 1)))
    elif kind == 4:
        kw.update(preset="tensor2tensor", offset=int(rng.integers(0, 500)), scale=float(np.sqrt(D)))
    if rng.integers(0, 3) == 0:
        out = place(np.zeros((B, T, D), dtype), strided=True)
        return "add_sinusoidal", (x,), {**kw, "out": out}, [out]
    return "add_sinusoidal", (x,), kw, [x]


def _add_table(rng, dtype, place):
    B, T, D, n_rows = rng.integers(1, 4), rng.integers(1, 10), rng.integers(1, 17), 40
    x = place(_values(rng, (B, T, D), dtype), strided=True)
    table = place(_values(rng, (n_rows, D), dtype if rng.integers(0, 2) else np.float64))
    if rng.integers(0, 2):
        kw = {"positions": place(rng.integers(0, n_rows, (B, T)).astype(np.int64))}
    else:
        kw = {"offset": place(rng.integers(0, n_rows - T + 1, B).astype(np.int64)), "scale": 0.5}
    if rng.integers(0, 3) == 0:
        out = place(np.zeros((B, T, D), dtype))
        return "add_table", (x, table), {**kw, "out": out}, [out]
    return "add_table", (x, table), kw, [x]


def _add_sincos_2d(rng, dtype, place):
    gh, gw, cls = rng.integers(1, 4), rng.integers(1, 5), bool(rng.integers(0, 2))
    x = place(_values(rng, (rng.integers(1, 3), gh * gw + cls, 4 * rng.integers(1, 5)), dtype), strided=True)
    return "add_sincos_2d", (x, gh, gw), {"cls_token": cls}, [x]


def _add_sinusoidal_nd(rng, dtype, place):
    shape = tuple(int(n) for n in rng.integers(1, 4, 2))
    x = place(_values(rng, (2, shape[0] * shape[1], 8 + 2 * rng.integers(0, 4)), dtype))
    return "add_sinusoidal_nd", (x, shape), {"scale": 2.0}, [x]


def _apply_rotary(rng, dtype, place):
    B, T, D = rng.integers(1, 3), rng.integers(1, 9), 2 * rng.integers(1, 9)
    seq_axis = int(rng.choice([-2, -3]))
    shape_of = (lambda h: (B, h, T, D)) if seq_axis == -2 else (lambda h: (B, T, h, D))
    q = place(_values(rng, shape_of(rng.integers(1, 4)), dtype), strided=True)
    k = place(_values(rng, shape_of(1), dtype))
    kw = {"seq_axis": seq_axis}
    if rng.integers(0, 2):
        kw["positions"] = place(rng.integers(0, 5000, (B, T)).astype(np.int64))
    else:
        kw["offset"] = int(rng.integers(0, 5000))
    if D >= 4 and rng.integers(0, 2):
        kw["rotary_dim"] = D // 2 if (D // 2) % 2 == 0 else D - 2
    if rng.integers(0, 3) == 0:
        outs = [place(np.zeros(q.shape, dtype)), place(np.zeros(k.shape, dtype))]
        return "apply_rotary", (q, k), {**kw, "out": outs}, outs
    return "apply_rotary", (q, k), kw, [q, k]


def _add_alibi(rng, dtype, place):
    B, H, Tq, Tk = rng.integers(1, 4), rng.integers(1, 5), rng.integers(1, 7), rng.integers(1, 9)
    scores = place(_values(rng, (B, H, Tq, Tk), dtype), strided=True)
    kw = {}
    if rng.integers(0, 2):
        kw["key_positions"] = place(rng.integers(0, 100, (B, Tk)).astype(np.float64))
    else:
        kw["offset"] = place(rng.integers(0, 100, B).astype(np.int64))
    if rng.integers(0, 2):
        kw["slopes"] = place(rng.uniform(0, 1, H))
    return "add_alibi", (scores,), kw, [scores]


def _add_relative_bias(rng, dtype, place):
    B, H, Tq, Tk = rng.integers(1, 4), rng.integers(1, 5), rng.integers(1, 7), rng.integers(1, 9)
    scores = place(_values(rng, (B, H, Tq, Tk), dtype))
    table = place(_values(rng, (32, H), np.float64))
    kw = {"bidirectional": bool(rng.integers(0, 2)), "num_buckets": 32, "max_distance": 64,
          "offset": place(rng.integers(0, 100, B).astype(np.int64))}
    if rng.integers(0, 3) == 0:
        out = place(np.zeros((B, H, Tq, Tk), dtype))
        return "add_relative_bias", (scores, table), {**kw, "out": out}, [out]
    return "add_relative_bias", (scores, table), kw, [scores]


def _sinusoidal_table(rng, dtype, place):
    n, dim = rng.integers(1, 40), rng.integers(1, 17)
    out = place(np.zeros((n, dim), dtype), strided=True)
    kw = {"offset": float(rng.uniform(-100, 100)), "out": out}
    if rng.integers(0, 2):
        kw["inv_freq"] = place(rng.uniform(0.001, 1.0, (dim + 1) // 2))
    return "sinusoidal_table", (n, dim), kw, [out]


def _sinusoidal_encode(rng, dtype, place):
    shape, dim = tuple(int(n) for n in rng.integers(1, 6, rng.integers(1, 3))), rng.integers(1, 17)
    positions = place(rng.uniform(-1000, 1000, shape))
    out = place(np.zeros(shape + (dim,), dtype))
    return "sinusoidal_encode", (positions, dim), {"layout": "concat", "out": out}, [out]


CASES = [_add_sinusoidal, _add_table, _add_sincos_2d, _add_sinusoidal_nd, _apply_rotary, _add_alibi,
         _add_relative_bias, _sinusoidal_table, _sinusoidal_encode]


def test_every_writing_function_is_covered():
    covered = {case.__name__.lstrip("_") for case in CASES}
    writers = {name for name in fastpe.__all__ if name.startswith(("add_", "apply_"))}
    with_out = {"sinusoidal_table", "sinusoidal_encode"}
    assert writers | with_out == covered


@contextlib.contextmanager
def _scratch_bytes(nbytes):
    saved = _runtime.SCRATCH_BYTES
    _runtime.SCRATCH_BYTES = nbytes
    try:
        yield
    finally:
        _runtime.SCRATCH_BYTES = saved


def _tolerance(dtype, expected):
    """fastpe against the reference, both on aligned arrays: a few roundings of
    the dtype at the result's magnitude (the families' own tests hold them to
    their tighter bounds), plus the float64 encodings' error at these positions."""
    eps = 2.0 ** -7 if dtype.name == "bfloat16" else float(np.finfo(dtype).eps)  # NumPy < 2: no finfo(bfloat16)
    return 4 * eps * (1.0 + np.abs(expected.astype(np.float64))) + 1e-9


@EXAMPLES
@given(data=st.data())
def test_misaligned_arrays_give_the_aligned_bits(data):
    dtype = data.draw(st.sampled_from(float_dtypes()), label="dtype")
    offset = data.draw(st.sampled_from([o for o in range(1, 8) if o % dtype.itemsize]), label="byte offset")
    case = data.draw(st.sampled_from(CASES), label="case")
    seed = data.draw(st.integers(0, 2**32 - 1), label="seed")
    strided = data.draw(st.booleans(), label="strided")
    scratch = data.draw(st.sampled_from([32, 4096, _runtime.SCRATCH_BYTES]), label="scratch bytes")

    aligned = Placement(0, strided)
    name, args, kwargs, expected = case(np.random.default_rng(seed), dtype, aligned)
    getattr(fastpe, name)(*args, **kwargs)
    misplaced = Placement(offset, strided)
    name, args, kwargs, written = case(np.random.default_rng(seed), dtype, misplaced)
    assert not any(w.flags.aligned for w in written)
    with _scratch_bytes(scratch):
        result = getattr(fastpe, name)(*args, **kwargs)
    returned = list(result) if isinstance(result, tuple) else [result]
    assert all(r is w for r, w in zip(returned, written)), "the caller's own arrays are returned"
    for got, want in zip(written, expected):
        assert_same_bits(got, want, f"{name}: misaligned by {offset} bytes vs aligned")
    misplaced.check_guards()

    reference_place = Placement(0, False)
    name, args, kwargs, target = case(np.random.default_rng(seed), dtype, reference_place)
    getattr(reference, name)(*args, **kwargs)
    for got, ref in zip(expected, target):
        assert_within(got, ref, _tolerance(dtype, ref), f"{name}: fastpe vs the reference")


@pytest.mark.parametrize("dtype,offset", [(np.float32, 1), (np.float64, 4), (np.float16, 1)])
def test_regression_frombuffer_at_an_odd_offset_is_written_in_place(dtype, offset):
    """np.frombuffer(..., offset=1) gives a misaligned writeable array: it was
    refused ("x is not aligned"); it is written in place."""
    raw = bytearray(4 * 16 * np.dtype(dtype).itemsize + offset)
    x = np.frombuffer(raw, dtype=dtype, count=4 * 16, offset=offset).reshape(4, 16)
    assert not x.flags.aligned and x.flags.writeable
    assert fastpe.add_sinusoidal(x, offset=3) is x
    expected = reference.sinusoidal_table(4, 16, offset=3, dtype=np.float64)
    assert_within(np.frombuffer(raw, dtype=dtype, count=64, offset=offset).reshape(4, 16), expected,
                  add_tolerance(dtype, 7, 0.0), "the bytes of the caller's buffer")


def test_regression_pickle_protocol_5_buffers_are_written_in_place():
    """An array unpickled from out-of-band buffers (how Dask's process workers
    receive blocks) sits where the buffer does: at an odd offset, it is
    misaligned, and is written in place."""
    import pickle

    x = np.zeros((2, 8, 16), np.float32)
    buffers = []
    payload = pickle.dumps(x, protocol=5, buffer_callback=buffers.append)
    raw = bytearray(x.nbytes + 1)
    raw[1:] = buffers[0].raw()
    y = pickle.loads(payload, buffers=[memoryview(raw)[1:]])
    assert not y.flags.aligned and y.flags.writeable
    assert fastpe.add_sinusoidal(y) is y
    assert_within(y, np.broadcast_to(reference.sinusoidal_table(8, 16), y.shape), add_tolerance(np.float32, 8, 0.0),
                  "unpickled y")
    assert np.shares_memory(y, np.frombuffer(raw, np.uint8))


@settings(max_examples=200, deadline=None, database=None)
@given(shape=st.lists(st.integers(0, 6), min_size=1, max_size=4), data=st.data())
def test_scratch_chunks_cover_every_element_once(shape, data):
    """The chunks of a misaligned output: slices of its leading axes that
    cover each element exactly once, each within SCRATCH_BYTES or one index
    of the innermost leading axis (the whole array without leading axes)."""
    n_lead = data.draw(st.integers(0, len(shape)))
    itemsize = data.draw(st.sampled_from([2, 4, 8]))
    limit = data.draw(st.sampled_from([1, 16, 64, 1 << 20]))
    seen = np.zeros(shape, np.int64)
    with _scratch_bytes(limit):
        for index in _runtime._chunks(tuple(shape), n_lead, itemsize):
            assert len(index) <= n_lead
            part = seen[index]
            part += 1
            one_index = all(s.stop - s.start == 1 for s in index) and len(index) == n_lead
            assert part.size * itemsize <= limit or one_index or n_lead == 0, (index, part.shape)
    assert (seen == 1).all()
