"""Model presets (preset=), padding_idx, min/max_timescale and make_positions.

Three layers of checks, so that a mistake shared by the kernels and the
reference is caught too:

* the NumPy reference against independent elementwise formulas written here
  with the math module, each following its source's own expression (Marian's
  ``pos / np.power(10000, 2 * (j // 2) / dim)``, tensor2tensor's
  ``min_timescale * exp(-k * log_timescale_increment)``, fairseq's
  ``get_embedding``, Whisper's ``sinusoids``);
* the compiled kernels against the reference for every preset, odd and even
  widths, both dtypes, tables, encodings and every form of the fused add;
* the fairseq conventions (padding rows, implicit positions starting at
  padding_idx + 1), every argument rule, and make_positions against a plain
  loop.
"""

import math

import numpy as np
import pytest

import fastpe
from fastpe import reference
from util import (
    DTYPES,
    ALL_KINDS,
    add_tolerance,
    array_variants,
    assert_unchanged,
    assert_within,
    check_add_against_reference,
    contract_atol,
    out_variants,
    rng_for,
    snapshot,
)

PRESET_NAMES = ("vaswani", "marian", "tensor2tensor", "fairseq", "whisper")
DIMS = (4, 5, 8, 9, 64, 65, 1023, 1024)


def dims_allowed(preset, dims=DIMS):
    """The widths a preset accepts: whisper needs an even width, fairseq and whisper d // 2 >= 2."""
    out = []
    for d in dims:
        if preset in ("fairseq", "whisper") and d // 2 < 2:
            continue
        if preset == "whisper" and d % 2:
            continue
        out.append(d)
    return out


PRESET_DIM_CASES = [(p, d) for p in PRESET_NAMES for d in dims_allowed(p)]


def case_id(case):
    return "-".join(map(str, case))


# --------------------------------------------------------------------------
# Independent formulas, one element at a time, following each source.


def vaswani_row(p, dim, base=10000.0):
    """HF DistilBERT / XLM create_sinusoidal_embeddings:
    position_enc[j] = pos / np.power(10000, 2 * (j // 2) / dim); sin on even j, cos on odd j."""
    row = []
    for j in range(dim):
        angle = p / math.pow(base, 2 * (j // 2) / dim)
        row.append(math.sin(angle) if j % 2 == 0 else math.cos(angle))
    return row


def marian_row(p, dim, base=10000.0):
    """HF MarianSinusoidalPositionalEmbedding.create_weight:
    out[:, :sentinel] = sin(position_enc[:, 0::2]); out[:, sentinel:] = cos(position_enc[:, 1::2]),
    sentinel = ceil(dim / 2)."""
    angles = [p / math.pow(base, 2 * (j // 2) / dim) for j in range(dim)]
    sines = [math.sin(a) for a in angles[0::2]]
    cosines = [math.cos(a) for a in angles[1::2]]
    return sines + cosines


def tensor2tensor_row(p, dim, min_timescale=1.0, max_timescale=1e4):
    """tensor2tensor common_attention.get_timing_signal_1d:
    log_timescale_increment = log(max/min) / max(num_timescales - 1, 1);
    inv_timescales = min_timescale * exp(k * -log_timescale_increment);
    signal = [sin | cos], padded with one zero column when channels is odd."""
    num_timescales = dim // 2
    increment = math.log(float(max_timescale) / float(min_timescale)) / max(num_timescales - 1, 1)
    inv = [min_timescale * math.exp(k * -increment) for k in range(num_timescales)]
    row = [math.sin(p * w) for w in inv] + [math.cos(p * w) for w in inv]
    return row + [0.0] * (dim % 2)


def fairseq_row(p, dim, padding_idx=1, base=10000.0):
    """fairseq SinusoidalPositionalEmbedding.get_embedding (= HF M2M100 / Speech2Text):
    emb = log(10000) / (half_dim - 1); emb = exp(arange(half_dim) * -emb);
    [sin | cos], a zero column for odd dim, row padding_idx zeroed."""
    half = dim // 2
    emb = math.log(base) / (half - 1)
    inv = [math.exp(k * -emb) for k in range(half)]
    if padding_idx is not None and p == padding_idx:
        return [0.0] * dim
    row = [math.sin(p * w) for w in inv] + [math.cos(p * w) for w in inv]
    return row + [0.0] * (dim % 2)


def whisper_row(p, dim, max_timescale=10000.0):
    """OpenAI Whisper / HF sinusoids: log_timescale_increment = log(max_timescale) / (channels // 2 - 1);
    inv_timescales = exp(-log_timescale_increment * arange(channels // 2)); [sin | cos]."""
    increment = math.log(max_timescale) / (dim // 2 - 1)
    inv = [math.exp(-increment * k) for k in range(dim // 2)]
    return [math.sin(p * w) for w in inv] + [math.cos(p * w) for w in inv]


def independent_row(preset, p, dim, params):
    """The row of one position for fastpe's keyword arguments `params`."""
    params = dict(params)
    if preset == "vaswani":
        return vaswani_row(p, dim, params.get("base", 10000.0))
    if preset == "marian":
        return marian_row(p, dim, params.get("base", 10000.0))
    if preset == "tensor2tensor":
        return tensor2tensor_row(p, dim, params.get("min_timescale", 1.0), params.get("max_timescale", 1e4))
    if preset == "fairseq":
        return fairseq_row(p, dim, params.get("padding_idx", 1), params.get("base", 10000.0))
    if preset == "whisper":
        return whisper_row(p, dim, params.get("max_timescale", 1e4))
    raise AssertionError(preset)


def independent_table(preset, positions, dim, params=()):
    positions = np.asarray(positions, dtype=np.float64)
    rows = [independent_row(preset, float(p), dim, params) for p in positions.ravel()]
    return np.array(rows, dtype=np.float64).reshape(positions.shape + (dim,))


# Positions for the formula checks: integers, fractions and negatives up to
# |p| ~ 1100. The independent formulas evaluate w_k with other (equally valid)
# float64 expressions; the angles then differ by a few ulp, 1.1e-13 each at
# |p| ~ 1000, well inside the contract's 1e-12 for |p| <= 4096.
FORMULA_POSITIONS = np.concatenate([np.arange(0, 40), [1.0, 1.5, -0.25, -1.0, -7.0, 63.75, 255.0, 256.0,
                                                       257.5, 511.0, 1000.0, 1023.0, 1100.5, -1024.0]])

FORMULA_PARAMS = {
    "vaswani": [{}, {"base": 100.0}, {"base": 1e5}],
    "marian": [{}, {"base": 500.0}],
    "tensor2tensor": [{}, {"min_timescale": 2.0, "max_timescale": 500.0}, {"max_timescale": 1e6},
                      {"min_timescale": 0.5}],
    "fairseq": [{}, {"padding_idx": 0}, {"padding_idx": 5}, {"base": 1000.0}, {"padding_idx": -1}],
    "whisper": [{}, {"max_timescale": 1000.0}, {"max_timescale": 3.0}],
}
FORMULA_DIMS = (1, 2, 3, 4, 5, 6, 8, 9, 64, 65, 129)
FORMULA_CASES = [
    (p, d, i) for p in PRESET_NAMES for d in dims_allowed(p, FORMULA_DIMS) for i in range(len(FORMULA_PARAMS[p]))
]


@pytest.mark.parametrize("impl", ["reference", "fastpe"])
@pytest.mark.parametrize("case", FORMULA_CASES, ids=case_id)
def test_encode_matches_independent_formula(case, impl):
    preset, dim, i = case
    params = FORMULA_PARAMS[preset][i]
    mod = reference if impl == "reference" else fastpe
    expected = independent_table(preset, FORMULA_POSITIONS, dim, params)
    pmax = float(np.abs(FORMULA_POSITIONS).max())
    for dtype in DTYPES:
        got = mod.sinusoidal_encode(FORMULA_POSITIONS, dim, preset=preset, dtype=dtype, **params)
        assert got.dtype == dtype and got.shape == expected.shape
        assert_within(got, expected, contract_atol(dtype, pmax), f"{impl} encode preset={preset} dim={dim} {params}")


@pytest.mark.parametrize("impl", ["reference", "fastpe"])
@pytest.mark.parametrize("case", FORMULA_CASES, ids=case_id)
def test_table_matches_independent_formula(case, impl):
    """Row t of sinusoidal_table encodes position offset + t, for every preset (fairseq included:
    its table is get_embedding's weight table, so row t is position offset + t, not shifted)."""
    preset, dim, i = case
    params = FORMULA_PARAMS[preset][i]
    mod = reference if impl == "reference" else fastpe
    for offset in (0, -3, 700.5):
        n = 12
        expected = independent_table(preset, offset + np.arange(n), dim, params)
        got = mod.sinusoidal_table(n, dim, offset=offset, preset=preset, dtype=np.float64, **params)
        assert_within(got, expected, contract_atol(np.float64, abs(offset) + n),
                      f"{impl} table preset={preset} dim={dim} offset={offset} {params}")


@pytest.mark.parametrize("impl", ["reference", "fastpe"])
@pytest.mark.parametrize("preset", PRESET_NAMES)
def test_add_matches_independent_formula(preset, impl):
    """add_sinusoidal = x + independent encoding (fairseq: implicit positions padding_idx + 1 + offset + t)."""
    mod = reference if impl == "reference" else fastpe
    rng = rng_for("add-formula", preset, impl)
    dim, T = 10, 9
    offsets = np.array([0, 3, 250])
    x = rng.uniform(-2, 2, size=(3, T, dim))
    shift = 2 if preset == "fairseq" else 0
    expected = x + np.stack([independent_table(preset, off + shift + np.arange(T), dim) for off in offsets])
    got = mod.add_sinusoidal(x.copy(), offset=offsets, preset=preset)
    assert_within(got, expected, add_tolerance(np.float64, 300, np.abs(x)), f"{impl} add preset={preset}")


def test_known_values():
    """A few entries by hand, so the independent formulas are pinned too."""
    t = fastpe.sinusoidal_table(3, 4, preset="vaswani", dtype=np.float64)
    assert t[1].tolist() == pytest.approx([math.sin(1), math.cos(1), math.sin(0.01), math.cos(0.01)], abs=1e-15)
    t = fastpe.sinusoidal_table(3, 5, preset="marian", dtype=np.float64)
    # sentinel = 3: sin(w0), sin(w1), sin(w2), cos(w0), cos(w1); w_k = 10000**(-2k/5)
    w = [10000 ** (-2 * k / 5) for k in range(3)]
    assert t[2].tolist() == pytest.approx([math.sin(2 * w[0]), math.sin(2 * w[1]), math.sin(2 * w[2]),
                                           math.cos(2 * w[0]), math.cos(2 * w[1])], abs=1e-15)
    t = fastpe.sinusoidal_table(3, 5, preset="fairseq", dtype=np.float64)
    assert t[1].tolist() == [0.0] * 5  # the padding row
    assert t[2].tolist() == pytest.approx([math.sin(2), math.sin(2e-4), math.cos(2), math.cos(2e-4), 0.0], abs=1e-15)
    t = fastpe.sinusoidal_table(2, 4, preset="whisper", dtype=np.float64)
    assert t[1].tolist() == pytest.approx([math.sin(1), math.sin(1e-4), math.cos(1), math.cos(1e-4)], abs=1e-15)
    t = fastpe.sinusoidal_table(2, 5, preset="tensor2tensor", min_timescale=2.0, dtype=np.float64)
    # inv_timescales = 2 * exp(-k log(5000)) = [2, 2/5000]
    assert t[1].tolist() == pytest.approx([math.sin(2), math.sin(4e-4), math.cos(2), math.cos(4e-4), 0.0], abs=1e-15)


def test_presets_keys():
    assert set(fastpe.PRESETS) == set(PRESET_NAMES)
    for name, text in fastpe.PRESETS.items():
        assert isinstance(text, str) and text.strip(), name


def test_defaults_none_mean_interleaved_and_10000():
    """layout=None and base=None are the defaults: interleaved with base 10000 (= preset 'vaswani')."""
    pos = np.array([0, 1, 2.5, 77, 1000])
    expected = independent_table("vaswani", pos, 9)
    for mod in (fastpe, reference):
        for kw in ({}, {"layout": None}, {"base": None}, {"layout": None, "base": None},
                   {"preset": "vaswani"}, {"preset": "vaswani", "base": None}, {"preset": None}):
            got = mod.sinusoidal_encode(pos, 9, dtype=np.float64, **kw)
            assert_within(got, expected, 1e-12, f"{mod.__name__} {kw}")
    expected = independent_table("fairseq", pos, 8)
    for mod in (fastpe, reference):
        got = mod.sinusoidal_encode(pos, 8, dtype=np.float64, preset="fairseq", base=None, padding_idx=None)
        assert_within(got, expected, 1e-12, f"{mod.__name__} fairseq base=None")


# --------------------------------------------------------------------------
# Kernels against the reference: every preset x width x dtype x operation.


def _tokens(rng, B, T, padding_idx):
    """Token ids with right padding in sequence 0, left padding in 1, pads in the middle of 2."""
    ids = rng.integers(padding_idx + 1, padding_idx + 50, size=(B, T))
    ids[0, T - T // 3:] = padding_idx
    if B > 1:
        ids[1, : T // 4] = padding_idx
    if B > 2:
        ids[2, T // 2 : T // 2 + 5] = padding_idx
    return ids


def _positions_with_pads(rng, B, T, padding_idx=1):
    ids = _tokens(rng, B, T, padding_idx)
    return fastpe.reference.make_positions(ids, padding_idx, past_length=np.arange(B) * 37)


OPS = ("table", "table-out", "encode", "encode-out", "add-offset", "add-seq-offsets", "add-positions", "add-scale",
       "add-out")


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("case", PRESET_DIM_CASES, ids=case_id)
def test_kernel_vs_reference(case, dtype, op):
    preset, dim = case
    rng = rng_for("kernel-vs-ref", preset, dim, np.dtype(dtype).name, op)
    B, T = 3, 300  # 300 > 256 positions: more than one reseed block; d >= 64 crosses the threading threshold
    msg = f"preset={preset} dim={dim} dtype={np.dtype(dtype).name} op={op}"
    if op in ("table", "table-out"):
        n, offset = 600, -5
        expected = reference.sinusoidal_table(n, dim, offset=offset, preset=preset, dtype=dtype)
        if op == "table":
            got = fastpe.sinusoidal_table(n, dim, offset=offset, preset=preset, dtype=dtype)
        else:
            out = rng.uniform(-1e3, 1e3, size=(n, dim)).astype(dtype)
            got = fastpe.sinusoidal_table(n, dim, offset=offset, preset=preset, out=out)
            assert got is out
        assert got.dtype == dtype
        assert_within(got, expected, contract_atol(dtype, n + 5), msg)
        return
    if op in ("encode", "encode-out"):
        pos = np.concatenate([_positions_with_pads(rng, B, T).ravel(), rng.uniform(-50, 3000, size=200),
                              [0, 1, 2, -1]]).reshape(2, -1)
        expected = reference.sinusoidal_encode(pos, dim, preset=preset, dtype=dtype)
        if op == "encode":
            got = fastpe.sinusoidal_encode(pos, dim, preset=preset, dtype=dtype)
        else:  # garbage in out must be overwritten, the padding rows (fairseq) included
            out = rng.uniform(-1e3, 1e3, size=pos.shape + (dim,)).astype(dtype)
            got = fastpe.sinusoidal_encode(pos, dim, preset=preset, out=out)
            assert got is out
        assert got.dtype == dtype and got.shape == pos.shape + (dim,)
        assert_within(got, expected, contract_atol(dtype, 3000), msg)
        return
    x = rng.uniform(-3, 3, size=(B, T, dim)).astype(dtype)
    if op == "add-offset":
        check_add_against_reference(x, msg, offset=17, preset=preset)
    elif op == "add-seq-offsets":
        check_add_against_reference(x, msg, offset=np.array([0, 5, 1000]), preset=preset)
    elif op == "add-positions":
        check_add_against_reference(x, msg, positions=_positions_with_pads(rng, B, T), preset=preset)
        # one row of positions (left padding) shared by the whole batch
        shared = _positions_with_pads(rng, 2, T)[1]
        check_add_against_reference(x, msg + " (shared positions)", positions=shared, preset=preset)
    elif op == "add-scale":
        check_add_against_reference(x, msg, offset=np.array([3, 0, 40]), scale=math.sqrt(dim), preset=preset)
        x = rng.uniform(-3, 3, size=(B, T, dim)).astype(dtype)
        check_add_against_reference(x, msg + " (positions)", positions=_positions_with_pads(rng, B, T),
                                    scale=math.sqrt(dim), preset=preset)
    elif op == "add-out":
        for label, out in out_variants(x.shape, dtype, rng):
            check_add_against_reference(x, f"{msg} {label}", out=out,
                                        positions=_positions_with_pads(rng, B, T), preset=preset)
        out = rng.uniform(-1e3, 1e3, size=x.shape).astype(dtype)
        check_add_against_reference(x, f"{msg} offsets", out=out, offset=np.array([2, 0, 9]), scale=0.5,
                                    preset=preset)
    else:
        raise AssertionError(op)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("case", [(p, d) for p in PRESET_NAMES for d in dims_allowed(p, (9, 64))], ids=case_id)
def test_kernel_vs_reference_memory_layouts(case, dtype):
    """Strided, transposed and reversed x (a reversed D axis reverses the preset's column order in memory)."""
    preset, dim = case
    rng = rng_for("layouts", preset, dim, np.dtype(dtype).name)
    shape = (3, 20, dim)
    pos = _positions_with_pads(rng, 3, 20)
    for label, x in array_variants(shape, dtype, rng, kinds=ALL_KINDS):
        check_add_against_reference(x, f"preset={preset} {label} positions", positions=pos, preset=preset,
                                    scale=1.5)
        check_add_against_reference(x, f"preset={preset} {label} offsets", offset=np.array([4, 0, 2]),
                                    preset=preset)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("preset", PRESET_NAMES)
def test_kernel_vs_reference_parameters(preset, dtype):
    """Non-default base / min_timescale / max_timescale / padding_idx reach the kernels."""
    rng = rng_for("params", preset, np.dtype(dtype).name)
    for params in FORMULA_PARAMS[preset]:
        dim = 64
        msg = f"preset={preset} {params}"
        expected = reference.sinusoidal_table(300, dim, offset=-3, preset=preset, dtype=dtype, **params)
        got = fastpe.sinusoidal_table(300, dim, offset=-3, preset=preset, dtype=dtype, **params)
        assert_within(got, expected, contract_atol(dtype, 300), msg)
        x = rng.uniform(-3, 3, size=(2, 40, dim)).astype(dtype)
        check_add_against_reference(x, msg, offset=np.array([-8, 11]), preset=preset, **params)


def test_kernel_vs_reference_large_positions():
    """Positions up to 2**20 (the contract's range) with every preset, float32 and float64."""
    pos = np.array([2**20, -(2**20), 2**19 + 0.5, 123456.0, 99999.0, 1.0])
    for preset in PRESET_NAMES:
        for dtype in DTYPES:
            expected = reference.sinusoidal_encode(pos, 64, preset=preset, dtype=np.float64)
            got = fastpe.sinusoidal_encode(pos, 64, preset=preset, dtype=dtype)
            assert_within(got, expected, contract_atol(dtype, 2**20), f"preset={preset} dtype={np.dtype(dtype)}")
            got = fastpe.sinusoidal_table(300, 64, offset=2**20 - 300, preset=preset, dtype=dtype)
            expected = independent_table(preset, 2**20 - 300 + np.arange(300), 64)
            assert_within(got, expected, contract_atol(dtype, 2**20), f"table preset={preset} dtype={np.dtype(dtype)}")


# --------------------------------------------------------------------------
# fairseq / padding_idx semantics


@pytest.mark.parametrize("impl", ["reference", "fastpe"])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("dim", (4, 5, 64, 65))
def test_fairseq_table_padding_row_is_zero(dim, dtype, impl):
    mod = reference if impl == "reference" else fastpe
    for padding_idx, offset, zero_row in ((None, 0, 1), (1, 0, 1), (0, 0, 0), (5, 0, 5), (1, -6, 7), (1, 2, None),
                                          (3, 0.5, None)):
        kw = {} if padding_idx is None else {"padding_idx": padding_idx}
        t = mod.sinusoidal_table(300, dim, offset=offset, preset="fairseq", dtype=dtype, **kw)
        rows_zero = [r for r in range(300) if not t[r].any()]
        assert rows_zero == ([] if zero_row is None else [zero_row]), (padding_idx, offset, rows_zero)
        pad = 1 if padding_idx is None else padding_idx
        expected = independent_table("fairseq", offset + np.arange(300), dim, {"padding_idx": pad})
        assert_within(t, expected, contract_atol(dtype, 300), f"padding_idx={padding_idx} offset={offset}")


@pytest.mark.parametrize("impl", ["reference", "fastpe"])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_fairseq_encode_padding_positions_are_zero(dtype, impl):
    mod = reference if impl == "reference" else fastpe
    rng = rng_for("encode-pad", np.dtype(dtype).name, impl)
    for padding_idx in (1, 0, 7):
        pos = _positions_with_pads(rng, 4, 70, padding_idx)
        pe = mod.sinusoidal_encode(pos, 64, preset="fairseq", padding_idx=padding_idx, dtype=dtype)
        is_pad = pos == padding_idx
        assert is_pad.any() and (~is_pad).any()
        assert (pe[is_pad] == 0).all(), f"padding_idx={padding_idx}: pad rows are not zero"
        assert (np.abs(pe[~is_pad]).max(axis=-1) > 0.1).all()
        expected = independent_table("fairseq", pos, 64, {"padding_idx": padding_idx})
        assert_within(pe, expected, contract_atol(dtype, 300), f"padding_idx={padding_idx}")
    # default padding_idx is 1
    pe = mod.sinusoidal_encode(np.array([0, 1, 2, 1.0]), 8, preset="fairseq", dtype=dtype)
    assert (pe[[1, 3]] == 0).all() and pe[0].any() and pe[2].any()


def _assert_pad_tokens(result, x, is_pad, scale, msg):
    """Pad tokens get nothing added: exactly x without scale; x*scale (rounded in x's dtype) with one."""
    x64 = x.astype(np.float64)
    if scale is None:
        assert result[is_pad].tobytes() == x[is_pad].tobytes(), f"{msg}: pad tokens changed"
    else:
        eps = float(np.finfo(x.dtype).eps)
        xs = x64[is_pad] * scale
        assert_within(result[is_pad], xs, 2 * eps * np.abs(xs), f"{msg}: pad tokens are not scale*x")


@pytest.mark.parametrize("impl", ["reference", "fastpe"])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("dim", (5, 64, 1024))
def test_fairseq_add_leaves_pad_tokens(dim, dtype, impl):
    mod = reference if impl == "reference" else fastpe
    rng = rng_for("add-pad", dim, np.dtype(dtype).name, impl)
    B, T = 3, 120
    for padding_idx in (1, 0):
        pos = _positions_with_pads(rng, B, T, padding_idx)
        is_pad = pos == padding_idx
        expected_pe = independent_table("fairseq", pos, dim, {"padding_idx": padding_idx})
        for scale in (None, 3.0, math.sqrt(dim)):
            for use_out in (False, True):
                x = rng.uniform(-3, 3, size=(B, T, dim)).astype(dtype)
                x0 = x.copy()
                msg = f"padding_idx={padding_idx} scale={scale} out={use_out}"
                if use_out:
                    out = np.full_like(x, 777.0)
                    res = mod.add_sinusoidal(x, positions=pos, scale=scale, preset="fairseq",
                                             padding_idx=padding_idx, out=out)
                    assert res is out and x.tobytes() == x0.tobytes()
                else:
                    res = mod.add_sinusoidal(x, positions=pos, scale=scale, preset="fairseq", padding_idx=padding_idx)
                    assert res is x
                _assert_pad_tokens(res, x0, is_pad, scale, msg)
                xs = x0.astype(np.float64) * (1.0 if scale is None else scale)
                assert_within(res, xs + expected_pe, add_tolerance(dtype, 300, np.abs(xs)), msg)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_fairseq_add_out_overlapping_x(dtype):
    """out a view that overlaps x partially (shifted by one token): pad tokens still get x's old values."""
    rng = rng_for("overlap", np.dtype(dtype).name)
    buf = rng.uniform(-3, 3, size=(2, 41, 16)).astype(dtype)
    x, out = buf[:, :40], buf[:, 1:]
    x0 = x.copy()
    pos = _positions_with_pads(rng, 2, 40)
    expected = x0.astype(np.float64) + independent_table("fairseq", pos, 16)
    res = fastpe.add_sinusoidal(x, positions=pos, preset="fairseq", out=out)
    assert res is out
    _assert_pad_tokens(out, x0, pos == 1, None, "overlapping out")
    assert_within(out, expected, add_tolerance(dtype, 200, np.abs(x0)), "overlapping out")


@pytest.mark.parametrize("impl", ["reference", "fastpe"])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_fairseq_implicit_positions(dtype, impl):
    """Without positions, token t of a sequence with offset o sits at padding_idx + 1 + o + t."""
    mod = reference if impl == "reference" else fastpe
    rng = rng_for("implicit", np.dtype(dtype).name, impl)
    dim, T = 65, 280
    for padding_idx in (None, 1, 0, 4):
        pad = 1 if padding_idx is None else padding_idx
        kw = {} if padding_idx is None else {"padding_idx": padding_idx}
        for offset in (0, 9, np.array([0, 3, 100])):
            x = np.zeros((3, T, dim), dtype=dtype)
            mod.add_sinusoidal(x, offset=offset, preset="fairseq", **kw)
            off = np.broadcast_to(np.asarray(offset, dtype=np.float64), (3,))
            expected = np.stack([independent_table("fairseq", pad + 1 + o + np.arange(T), dim, {"padding_idx": pad})
                                 for o in off])
            assert_within(x, expected, contract_atol(dtype, 400), f"padding_idx={padding_idx} offset={offset}")
            # the first token is position padding_idx + 1 + offset, which is not the padding row
            assert (x[:, 0] != 0).any(axis=-1).all()
        # a negative offset that walks through padding_idx: that token gets nothing added
        x = rng.uniform(-1, 1, size=(2, 6, 8)).astype(dtype)
        x0 = x.copy()
        mod.add_sinusoidal(x, offset=np.array([-3, 0]), preset="fairseq", **kw)
        # sequence 0: positions pad+1-3+t = pad-2, pad-1, pad, pad+1, ...: token 2 untouched
        assert x[0, 2].tobytes() == x0[0, 2].tobytes()
        assert (x[0, [0, 1, 3, 4, 5]] != x0[0, [0, 1, 3, 4, 5]]).any(axis=-1).all()
        assert (x[1] != x0[1]).any(axis=-1).all()


@pytest.mark.parametrize("impl", ["reference", "fastpe"])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_padding_idx_without_preset(dtype, impl):
    """padding_idx without a preset: that position's encoding is zero; implicit positions are not shifted."""
    mod = reference if impl == "reference" else fastpe
    rng = rng_for("pad-no-preset", np.dtype(dtype).name, impl)
    for layout in (None, "interleaved", "concat"):
        kw = {} if layout is None else {"layout": layout}
        lay = layout or "interleaved"

        def row(p, dim):
            if lay == "interleaved":
                return vaswani_row(p, dim)
            # layout="concat": [sin | cos] of w_k = 10000**(-2k/d), a zero last column for odd d
            half = dim // 2
            w = [math.pow(10000.0, -2.0 * k / dim) for k in range(half)]
            return [math.sin(p * v) for v in w] + [math.cos(p * v) for v in w] + [0.0] * (dim % 2)

        t = mod.sinusoidal_table(10, 7, offset=-2, padding_idx=3, dtype=dtype, **kw)
        assert [r for r in range(10) if not t[r].any()] == [5]
        expected = np.array([[0.0] * 7 if p == 3 else row(float(p), 7) for p in range(-2, 8)])
        assert_within(t, expected, contract_atol(dtype, 10), f"table layout={layout}")
        pos = np.array([[0, 3, 5, 3], [3.0, 2.5, 1, 0]])
        pe = mod.sinusoidal_encode(pos, 7, padding_idx=3, dtype=dtype, **kw)
        assert (pe[pos == 3] == 0).all() and (np.abs(pe[pos != 3]).max(axis=-1) > 0.1).all()
        x = rng.uniform(-1, 1, size=(2, 5, 7)).astype(dtype)
        x0 = x.copy()
        mod.add_sinusoidal(x, offset=np.array([0, 2]), padding_idx=3, **kw)
        # implicit positions 0..4 and 2..6: position 3 is token 3 of sequence 0 and token 1 of sequence 1
        assert x[0, 3].tobytes() == x0[0, 3].tobytes() and x[1, 1].tobytes() == x0[1, 1].tobytes()
        expected = x0.astype(np.float64) + np.array([[[0.0] * 7 if p == 3 else row(float(p), 7)
                                                      for p in range(o, o + 5)] for o in (0, 2)])
        assert_within(x, expected, add_tolerance(dtype, 10, np.abs(x0)), f"add layout={layout}")


# --------------------------------------------------------------------------
# Argument rules: ValueError, nothing written.


def _targets(dim, dtype=np.float32):
    rng = rng_for("targets", dim)
    x = rng.uniform(-1, 1, size=(2, 5, dim)).astype(dtype)
    out = rng.uniform(-1, 1, size=(2, 5, dim)).astype(dtype)
    table_out = rng.uniform(-1, 1, size=(5, dim)).astype(dtype)
    enc_out = rng.uniform(-1, 1, size=(2, 5, dim)).astype(dtype)
    return x, out, table_out, enc_out


def _assert_every_function_raises(kwargs, dim, exc, words):
    """Every public function (kernels and reference, with and without out=) raises exc with a message
    containing every word, and leaves every array unchanged."""
    x, out, table_out, enc_out = _targets(dim)
    pos = np.arange(10).reshape(2, 5)
    snaps = snapshot(x, out, table_out, enc_out, pos)
    calls = []
    for mod in (fastpe, reference):
        name = mod.__name__
        calls += [
            (f"{name}.add_sinusoidal(x)", lambda m=mod: m.add_sinusoidal(x, **kwargs)),
            (f"{name}.add_sinusoidal(x, out)", lambda m=mod: m.add_sinusoidal(x, out=out, **kwargs)),
            (f"{name}.add_sinusoidal(x, positions)", lambda m=mod: m.add_sinusoidal(x, positions=pos, scale=2.0,
                                                                                     **kwargs)),
            (f"{name}.sinusoidal_table", lambda m=mod: m.sinusoidal_table(5, dim, **kwargs)),
            (f"{name}.sinusoidal_table(out)", lambda m=mod: m.sinusoidal_table(5, dim, out=table_out, **kwargs)),
            (f"{name}.sinusoidal_encode", lambda m=mod: m.sinusoidal_encode(pos, dim, **kwargs)),
            (f"{name}.sinusoidal_encode(out)", lambda m=mod: m.sinusoidal_encode(pos, dim, out=enc_out, **kwargs)),
        ]
    for label, call in calls:
        with pytest.raises(exc) as info:
            call()
        text = str(info.value)
        for w in words:
            assert w in text, f"{label} with {kwargs}: message {text!r} does not name {w!r}"
        assert_unchanged(snaps, f"{label} with {kwargs}")


@pytest.mark.parametrize("preset", PRESET_NAMES)
@pytest.mark.parametrize("layout", ["interleaved", "concat", "marian"])
def test_preset_with_layout_is_an_error(preset, layout):
    _assert_every_function_raises({"preset": preset, "layout": layout}, 8, ValueError, ["preset", "layout"])


@pytest.mark.parametrize("preset", PRESET_NAMES)
def test_preset_with_inv_freq_is_an_error(preset):
    _assert_every_function_raises({"preset": preset, "inv_freq": np.ones(4)}, 8, ValueError, ["preset", "inv_freq"])
    _assert_every_function_raises({"preset": preset, "inv_freq": np.ones(4), "layout": "concat"}, 8, ValueError,
                                  ["preset"])


OWN_PARAMETERS = {
    "vaswani": {"base"},
    "marian": {"base"},
    "tensor2tensor": {"min_timescale", "max_timescale"},
    "fairseq": {"base"},
    "whisper": {"max_timescale"},
}
FOREIGN_CASES = [(p, name) for p in PRESET_NAMES for name in ("base", "min_timescale", "max_timescale")
                 if name not in OWN_PARAMETERS[p]]


@pytest.mark.parametrize("case", FOREIGN_CASES, ids=case_id)
def test_preset_with_foreign_parameter_is_an_error(case):
    preset, name = case
    for value in (10000.0, 2.0):  # even the value the preset would use is refused
        _assert_every_function_raises({"preset": preset, name: value}, 8, ValueError, [preset, name])


@pytest.mark.parametrize("case", [(p, n) for p in PRESET_NAMES for n in sorted(OWN_PARAMETERS[p])], ids=case_id)
def test_preset_own_parameters_are_accepted(case):
    preset, name = case
    got = fastpe.sinusoidal_encode(np.array([3.0, 40.0]), 8, preset=preset, dtype=np.float64, **{name: 50.0})
    expected = independent_table(preset, np.array([3.0, 40.0]), 8, {name: 50.0})
    assert_within(got, expected, 1e-12, f"{preset} {name}=50")


@pytest.mark.parametrize("name", ["min_timescale", "max_timescale"])
@pytest.mark.parametrize("layout", [None, "interleaved", "concat"])
def test_timescales_without_preset_are_an_error(name, layout):
    kw = {name: 100.0}
    if layout is not None:
        kw["layout"] = layout
    _assert_every_function_raises(kw, 8, ValueError, [name])


@pytest.mark.parametrize("preset", ["bert", "Vaswani", "", "t2t", "fairseq ", "rope"])
def test_unknown_preset_lists_the_names(preset):
    _assert_every_function_raises({"preset": preset}, 8, ValueError, ["preset", *PRESET_NAMES])


def test_a_number_as_preset_is_a_type_error():
    _assert_every_function_raises({"preset": 3}, 8, TypeError, ["preset", *PRESET_NAMES])


@pytest.mark.parametrize("preset", ["fairseq", "whisper"])
@pytest.mark.parametrize("dim", [0, 1, 2, 3])
def test_fairseq_whisper_need_half_at_least_2(preset, dim):
    _assert_every_function_raises({"preset": preset}, dim, ValueError, ["dim", preset])


@pytest.mark.parametrize("dim", [5, 9, 65, 1023])
def test_whisper_needs_even_dim(dim):
    _assert_every_function_raises({"preset": "whisper"}, dim, ValueError, ["dim", "whisper", "even"])


@pytest.mark.parametrize("preset", ["vaswani", "marian", "tensor2tensor"])
@pytest.mark.parametrize("dim", [1, 2, 3])
def test_small_dims_of_other_presets(preset, dim):
    """Presets without a (d//2 - 1) divisor accept any width."""
    pos = np.array([0.0, 1.0, 7.5])
    for mod in (fastpe, reference):
        got = mod.sinusoidal_encode(pos, dim, preset=preset, dtype=np.float64)
        assert_within(got, independent_table(preset, pos, dim), 1e-12, f"{mod.__name__} {preset} dim={dim}")


def test_errors_with_float64_arrays_leave_them_unchanged():
    """The rules above with float64 targets and a scale (the other dtype path)."""
    rng = rng_for("f64-errors")
    for kw in ({"preset": "whisper", "base": 10.0}, {"preset": "marian", "layout": "concat"},
               {"preset": "nope"}, {"min_timescale": 1.0}):
        x = rng.uniform(-1, 1, size=(3, 4, 9)).astype(np.float64)
        snaps = snapshot(x)
        for mod in (fastpe, reference):
            with pytest.raises(ValueError):
                mod.add_sinusoidal(x, scale=3.0, **kw)
            assert_unchanged(snaps, f"{mod.__name__} {kw}")


# --------------------------------------------------------------------------
# make_positions


def loop_make_positions(token_ids, padding_idx, past_length=0):
    """fairseq utils.make_positions, one token at a time: non-pad tokens are numbered
    padding_idx + past + 1, padding_idx + past + 2, ... in order; pads keep padding_idx."""
    ids = np.asarray(token_ids)
    lead = ids.shape[:-1]
    past = np.broadcast_to(np.asarray(past_length), lead)
    out = np.empty(ids.shape, dtype=np.int64)
    for idx in np.ndindex(*lead) if lead else [()]:
        count = 0
        for t in range(ids.shape[-1]):
            tok = int(ids[idx + (t,)])
            if tok == padding_idx:
                out[idx + (t,)] = padding_idx
            else:
                count += 1
                out[idx + (t,)] = padding_idx + int(past[idx]) + count
    return out


MAKE_POSITIONS_CASES = [
    # (ids, padding_idx, past_length)
    ([5, 6, 7, 8], 1, 0),
    ([5, 6, 7, 1, 1], 1, 0),              # right padding
    ([1, 1, 5, 6, 7], 1, 0),              # left padding
    ([1, 1, 5, 6, 7], 1, 10),
    ([0, 0, 5, 0, 6], 0, 3),              # pads in the middle, padding_idx 0
    ([1, 1, 1], 1, 4),                    # all padding
    ([[5, 6, 7, 1, 1], [1, 1, 5, 6, 7], [5, 1, 6, 1, 7]], 1, 0),
    ([[5, 6, 7, 1, 1], [1, 1, 5, 6, 7], [5, 1, 6, 1, 7]], 1, 7),
    ([[5, 6, 7, 1, 1], [1, 1, 5, 6, 7], [5, 1, 6, 1, 7]], 1, [0, 2, 100]),
    ([[2, 3, 0], [0, 2, 3]], 0, np.array([5, 0])),
    ([[9, 9], [9, 2]], 9, 1),
]


@pytest.mark.parametrize("impl", ["reference", "fastpe"])
@pytest.mark.parametrize("case", range(len(MAKE_POSITIONS_CASES)))
def test_make_positions_cases(case, impl):
    mod = reference if impl == "reference" else fastpe
    ids, padding_idx, past = MAKE_POSITIONS_CASES[case]
    got = mod.make_positions(np.array(ids), padding_idx, past_length=past)
    expected = loop_make_positions(ids, padding_idx, past)
    assert got.dtype == np.int64, got.dtype
    assert got.shape == expected.shape
    assert np.array_equal(got, expected), f"{ids} pad={padding_idx} past={past}: {got.tolist()} != {expected.tolist()}"


def test_make_positions_known_values():
    assert fastpe.make_positions(np.array([1, 1, 5, 6, 7]), 1).tolist() == [1, 1, 2, 3, 4]
    assert fastpe.make_positions(np.array([5, 6, 1, 1]), 1, past_length=3).tolist() == [5, 6, 1, 1]
    assert fastpe.make_positions(np.array([[0, 4], [4, 4]]), 0, past_length=np.array([2, 0])).tolist() == [[0, 3],
                                                                                                         [1, 2]]


@pytest.mark.parametrize("impl", ["reference", "fastpe"])
@pytest.mark.parametrize("id_dtype", [np.int64, np.int32, np.uint8, np.int16])
def test_make_positions_random_batches(id_dtype, impl):
    mod = reference if impl == "reference" else fastpe
    rng = rng_for("make_positions", np.dtype(id_dtype).name, impl)
    for shape in ((17,), (4, 23), (2, 3, 11)):
        for padding_idx in (0, 1, 3):
            ids = rng.integers(0, 6, size=shape).astype(id_dtype)
            for past in (0, 5, rng.integers(0, 50, size=shape[:-1])):
                got = mod.make_positions(ids, padding_idx, past_length=past)
                expected = loop_make_positions(ids, padding_idx, past)
                assert got.dtype == np.int64
                assert np.array_equal(got, expected), f"shape={shape} pad={padding_idx} past={past}"


def test_make_positions_feeds_fairseq_encoding():
    """make_positions + sinusoidal_encode(preset='fairseq') = the per-token lookup into get_embedding's table."""
    rng = rng_for("mp-encode")
    ids = _tokens(rng, 3, 40, 1)
    pos = fastpe.make_positions(ids, 1, past_length=np.array([0, 4, 9]))
    pe = fastpe.sinusoidal_encode(pos, 16, preset="fairseq", dtype=np.float64)
    table = independent_table("fairseq", np.arange(60), 16)
    assert_within(pe, table[pos], 1e-12, "encode(make_positions) vs table lookup")
    assert (pe[ids == 1] == 0).all()
