"""The benchmark's peers (what users write instead of fastpe) compute what
fastpe.reference computes, the check that guards the report can fail, and a
tiny run reports the peers beside fastpe. Nothing here asserts a speed."""

import dataclasses
import json

import numpy as np
import pytest

import fastpe
from fastpe import bench, reference
from fastpe.bench import cases, eager
from optional import missing_reason

try:
    import ml_dtypes
except ImportError:  # optional
    ml_dtypes = None

try:
    import torch as TORCH
except ImportError:  # optional
    TORCH = None
EAGER_PEERS = ("numpy", "torch")
PEER_NAMES = [name if name != "torch" or TORCH is not None
              else pytest.param(name, marks=pytest.mark.skip(reason=missing_reason("torch")))
              for name in EAGER_PEERS]

NEW_OFFSET = bench.NEW_OFFSET
# The call index whose offset is the largest one: the peers' tables must reach it.
LAST_OFFSET_CALL = next(i for i in range(cases.OFFSET_RANGE)
                        if cases.call_offset(i, NEW_OFFSET) == cases.OFFSET_RANGE)
CALLS = [0, 1, 7, LAST_OFFSET_CALL]

# (op, shape, dtype, options): small shapes of every op that has peers
SMALL_CASES = [
    pytest.param(bench.ADD, (2, 16, 32), np.float32, NEW_OFFSET, id="add-f32"),
    pytest.param(bench.ADD, (2, 16, 32), np.float64, NEW_OFFSET, id="add-f64"),
    pytest.param(bench.ADD, (2, 16, 32), np.float16, NEW_OFFSET, id="add-f16"),
    pytest.param(bench.ADD, (1, 5, 6), np.float32, {}, id="add-offset0"),
    pytest.param(bench.ADD_PRESET, (2, 16, 32), np.float32, {"preset": "fairseq", **NEW_OFFSET}, id="fairseq"),
    pytest.param(bench.ADD_PRESET, (2, 16, 32), np.float32, {"preset": "vaswani", **NEW_OFFSET}, id="vaswani"),
    pytest.param(bench.ADD_LEARNED, (2, 16, 32), np.float32, NEW_OFFSET, id="learned"),
    pytest.param(bench.ADD_GRID_2D, (2, 32, 16), np.float32, {"grid": (4, 8)}, id="grid-2d"),
    pytest.param(bench.ADD_POSITIONS, (3, 16, 32), np.float32, {}, id="positions"),
    pytest.param(bench.ROTARY, (1, 4, 1, 16), np.float32, NEW_OFFSET, id="rotary-decode"),
    pytest.param(bench.ROTARY, (1, 4, 1, 16), np.float32, {"scaling": bench.LLAMA3_SCALING, **NEW_OFFSET},
                 id="rotary-decode-llama3"),
    pytest.param(bench.ROTARY, (1, 4, 1, 16), np.float32, {"scaling": bench.YARN_SCALING, **NEW_OFFSET},
                 id="rotary-decode-yarn"),
    pytest.param(bench.ROTARY, (1, 2, 9, 16), np.float64, {"scaling": bench.YARN_SCALING, **NEW_OFFSET},
                 id="rotary-prefill-yarn-f64"),
]
if ml_dtypes is not None:
    SMALL_CASES.append(pytest.param(bench.ADD, (2, 16, 32), np.dtype(ml_dtypes.bfloat16), NEW_OFFSET, id="add-bf16"))
    SMALL_CASES.append(pytest.param(bench.ROTARY, (1, 4, 3, 16), np.dtype(ml_dtypes.bfloat16),
                                    {"scaling": bench.LLAMA3_SCALING, **NEW_OFFSET}, id="rotary-bf16"))


def _state(op, shape, dtype, options, seed=0):
    return op.setup(shape, np.dtype(dtype), np.random.default_rng(seed), options)


def _result(st, call, i):
    """A peer's (or reference's) result of call i, as a float64 copy."""
    return bench.peer_result(st, call, i, st.target.dtype).astype(np.float64)


def _reference_result(op, st, i, options):
    return _result(st, lambda i: op.call(reference, st, i, None, options), i)


@pytest.mark.parametrize("peer", PEER_NAMES)
@pytest.mark.parametrize("op, shape, dtype, options", SMALL_CASES)
def test_peer_matches_reference(op, shape, dtype, options, peer):
    dtype = np.dtype(dtype)
    st = _state(op, shape, dtype, options)
    with bench.load_peers(2, quick=True) as peer_set:  # the compiled peers: test_bench_compiled.py
        peers, missing, _ = bench.build_peers(op, st, dtype, options, peer_set)
    if peer not in peers:
        assert peer == "numpy" and dtype.name == "bfloat16"
        if op is bench.ROTARY:
            # the bfloat16 rotary cases compare with torch, not NumPy: refused, saying why
            assert missing["numpy"].startswith("numpy has no native bfloat16 arithmetic")
            return
        assert not bench.numpy_adds(dtype) and missing["numpy"] == f"numpy has no {dtype.name} arithmetic"
        pytest.skip(f"NumPy has no {dtype.name} arithmetic here")
    tolerance = bench.peer_tolerance(st.pattern, dtype, op.peer_ulps)
    for i in CALLS:
        expected = _reference_result(op, st, i, options)
        got = _result(st, peers[peer], i)
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, rtol=0, atol=tolerance, err_msg=f"call {i}")
        # the encoding was really added: the result is not the input
        assert not np.array_equal(got, np.broadcast_to(st.pattern, got.shape).astype(np.float64))


def test_rotary_peer_is_hf_rotate_half_by_hand():
    """The HF formula, written out for one position without the peer's code."""
    options = {"scaling": bench.YARN_SCALING, **NEW_OFFSET}
    st = _state(bench.ROTARY, (1, 2, 1, 8), np.float64, options)
    i = 3
    call = eager.NUMPY_BUILDERS[cases.ROTARY_FAMILY](bench.ROTARY, st, np.dtype(np.float64), options, np, 1)
    got = _result(st, call, i)
    inv_freq, factor = fastpe.rope_inv_freq(8, scaling=bench.YARN_SCALING)
    angles = cases.call_offset(i, options) * inv_freq
    cos = np.concatenate([np.cos(angles)] * 2) * factor
    sin = np.concatenate([np.sin(angles)] * 2) * factor
    x = np.asarray(st.pattern, dtype=np.float64)
    rotated = np.concatenate([-x[..., 4:], x[..., :4]], axis=-1)
    # q and k (stacked) both start from the pattern, on every head
    np.testing.assert_allclose(got, np.broadcast_to(x * cos + rotated * sin, got.shape), rtol=0, atol=1e-12)


def test_max_abs_diff_reads_every_chunk():
    a = np.zeros(10, dtype=np.float32)
    b = np.zeros(10, dtype=np.float32)
    b[9] = 0.5
    assert bench.max_abs_diff(a, b, chunk=4) == 0.5
    assert bench.max_abs_diff(a[:0], b[:0]) == 0.0


def test_peer_tolerance_is_ulps_of_the_largest_input():
    pattern = np.array([[0.5, -5.0], [3.0, 1.0]], dtype=np.float32)
    assert bench.peer_tolerance(pattern, np.float32, 2) == pytest.approx(
        2 * float(np.spacing(np.float32(5.0))) + bench.PE_CONTRACT_F64, rel=1e-12)
    # below magnitude 1 the encoding's own magnitude sets the ulp
    small = np.full((2, 2), 0.25, dtype=np.float16)
    assert bench.peer_tolerance(small, np.float16, 1) == pytest.approx(
        float(np.spacing(np.float16(1.0))) + bench.PE_CONTRACT_F64, rel=1e-12)


def test_check_peers_catches_a_peer_one_row_off():
    options = NEW_OFFSET
    dtype = np.dtype(np.float32)
    st = _state(bench.ADD, (2, 16, 32), dtype, options)
    table = reference.sinusoidal_table(cases.OFFSET_RANGE + 40, 32, dtype=dtype)

    def one_row_off(i):
        o = cases.call_offset(i, options) + 1
        np.add(st.target, table[o:o + 16], out=st.target)

    good = {"numpy": eager.NUMPY_BUILDERS[cases.CACHED_ADD](bench.ADD, st, dtype, options, np, 1)}
    figures = bench.check_peers(bench.ADD, st, dtype, options, good, None)
    assert figures["numpy"]["max_abs_diff"] <= figures["numpy"]["tolerance"]
    with pytest.raises(bench.PeerMismatch, match="peer wrong differs from fastpe"):
        bench.check_peers(bench.ADD, st, dtype, options, {"wrong": one_row_off}, None)
    # the state is left as it started
    np.testing.assert_array_equal(st.target, np.broadcast_to(st.pattern, st.target.shape))


TINY_CASES = [
    bench.Case("add", bench.ADD, (1, 16, 64), options=NEW_OFFSET),
    bench.Case("decode", bench.ROTARY, (1, 4, 1, 16), options={"scaling": bench.LLAMA3_SCALING, **NEW_OFFSET}),
    bench.Case("table", bench.TABLE, (16, 32)),
]


def _cells(text, case):
    """The cells of the report's row of `case`, by column name (columns are
    the runs of dashes under the header)."""
    lines = text.splitlines()
    k = next(k for k, line in enumerate(lines) if line.startswith("case "))
    header, dashes = lines[k], lines[k + 1]
    row = next(line for line in lines[k + 2:] if line.startswith(case + " "))
    spans, start = [], 0
    for run in dashes.split("  "):
        spans.append((start, start + len(run)))
        start += len(run) + 2
    return {header[a:b].strip(): row[a:b].strip() for a, b in spans}


@pytest.fixture
def quiet_machine(monkeypatch):
    """A load average of 0: the busy-machine rule stays out of tests that check other things."""
    from fastpe.bench import measure

    monkeypatch.setattr(measure, "load_average", lambda: 0.0)


def _tiny_run(**kw):
    # quick: torch.compile, which takes seconds a case, is tested in test_bench_compiled.py
    return bench.run(cases=TINY_CASES, repeat=2, budget_s=1.0, log=None, quick=True, **kw)


def _installed(module):
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def test_tiny_run_reports_peers(tmp_path, quiet_machine):
    threads_before = TORCH.get_num_threads() if TORCH is not None else None
    report = _tiny_run()
    if TORCH is not None:
        assert TORCH.get_num_threads() == threads_before  # restored after the run
    add, decode, table = report.results
    eager = {"numpy", "torch"} if TORCH is not None else {"numpy"}
    ort = {"onnxruntime"} if _installed("onnxruntime") and _installed("onnx") else set()
    for res, expected in ((add, eager), (decode, eager | ort)):
        row = res.rows()[0]
        measured = {name: s for name, s in row["peers_s"].items() if s is not None}
        assert set(measured) == expected
        assert res.peers_not_measured["torch.compile"] == "left out of --quick runs"
        assert row["best_peer"] == min(measured, key=measured.get)
        assert row["fastpe_over_best_peer"] == pytest.approx(row["fastpe_s"] / measured[row["best_peer"]])
        assert set(res.peer_check) == set(measured)
        assert all(c["max_abs_diff"] <= c["tolerance"] for c in res.peer_check.values())
    table_row = table.rows()[0]
    assert table_row["best_peer"] is None and table_row["peers_s"] == dict.fromkeys(bench.PEER_NAMES)
    assert table.peers_not_measured == {}  # no peer makes sense for a table

    text = bench.format_report(report)
    assert "fastpe/peer" in text and "fastest peer" in text
    assert _cells(text, "table")["numpy"] == _cells(text, "table")["torch"] == "-"  # no peer for a table
    assert _cells(text, "add")["numpy"].endswith("us")

    path = tmp_path / "bench.json"
    bench.write_json(report, path)
    data = json.loads(path.read_text())
    assert data["cases"][0]["rows"][0]["best_peer"] == add.rows()[0]["best_peer"]
    assert {s["impl"] for s in data["cases"][0]["series"]} >= {"fastpe", "probe", "reference", "numpy"}


def _torch_not_installed():
    raise bench.PeerUnavailable("torch is not installed")


def test_run_without_torch_marks_its_cells_not_measured(monkeypatch, quiet_machine):
    from fastpe.bench import peers

    torch_peer = next(p for p in peers.PEERS if p.name == "torch")
    monkeypatch.setattr(peers, "PEERS", tuple(p if p is not torch_peer else
                                              dataclasses.replace(p, load=_torch_not_installed)
                                              for p in peers.PEERS))
    report = _tiny_run()
    add = report.results[0]
    assert add.peers_not_measured["torch"] == "torch is not installed"
    assert add.rows()[0]["best_peer"] == "numpy"
    text = bench.format_report(report)
    assert "n/m[" in text and "torch: not measured, torch is not installed" in text


def test_a_case_whose_module_does_not_import_is_left_out_and_named(quiet_machine):
    needs = bench.Case("needs a module", bench.ADD, (1, 16, 64), requires=("fastpe_no_such_module",))
    report = bench.run(cases=[needs, TINY_CASES[0]], repeat=2, budget_s=0.5, log=None, quick=True)
    assert [res.case.name for res in report.results] == ["add"]
    why = report.settings["cases_not_measured"]["needs a module"]
    assert why.startswith("fastpe_no_such_module does not import: No module named")
    assert f"not measured: case 'needs a module': {why}" in bench.format_report(report)


def test_rotary_is_measured_in_bfloat16_where_ml_dtypes_is():
    if ml_dtypes is None:
        pytest.skip('ml_dtypes is not installed: pip install ".[test]"')
    bf16_rotary = [(c.name, c.shape) for c in bench.CASES if c.op is bench.ROTARY and c.dtype == ml_dtypes.bfloat16]
    assert bf16_rotary == [("rotary decode step, bfloat16", (1, 32, 1, 128)),
                           ("rotary prefill, bfloat16, new offset", (1, 32, 4096, 128))]
