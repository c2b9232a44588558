"""The benchmark's compiled peers (torch.compile, ONNX Runtime's contrib op,
IPEX) compute what fastpe.reference computes, compile once, are set up as
docs/performance.rst says, and say why when they cannot run. Nothing here
asserts a speed."""

import builtins
import importlib
import json

import numpy as np
import pytest
from optional import missing_reason

from fastpe import bench, reference
from fastpe.bench import cases, compiled

NEW_OFFSET = bench.NEW_OFFSET
LAST_OFFSET_CALL = next(i for i in range(cases.OFFSET_RANGE)
                        if cases.call_offset(i, NEW_OFFSET) == cases.OFFSET_RANGE)
# offsets 1 (call 0, the one it compiles at), 1022, 4095 (the largest), 0 never comes
CALLS = [0, 1, 7, LAST_OFFSET_CALL]


def _bfloat16():
    ml_dtypes = pytest.importorskip("ml_dtypes", reason='ml_dtypes is not installed: pip install ".[test]"')
    return np.dtype(ml_dtypes.bfloat16)


def _state(op, shape, dtype, options):
    return op.setup(shape, np.dtype(dtype), np.random.default_rng(0), options)


def _matches_reference(op, st, call, options):
    """The peer's result of each call in CALLS against fastpe.reference's, within the peers' tolerance."""
    dtype = st.target.dtype
    tolerance = bench.peer_tolerance(st.pattern, dtype, op.peer_ulps)
    for i in CALLS:
        expected = bench.peer_result(st, lambda i: op.call(reference, st, i, None, options), i, dtype)
        expected = expected.astype(np.float64)
        got = bench.peer_result(st, call, i, dtype).astype(np.float64)
        np.testing.assert_allclose(got, expected, rtol=0, atol=tolerance, err_msg=f"call {i}")
        assert not np.array_equal(got, np.broadcast_to(st.pattern, got.shape).astype(np.float64))


@pytest.fixture(scope="module")
def torch_compile():
    pytest.importorskip("torch", reason=missing_reason("torch"))
    return compiled.load_torch_compile()


@pytest.fixture(scope="module")
def onnxruntime():
    pytest.importorskip("onnxruntime", reason=missing_reason("onnxruntime"))
    pytest.importorskip("onnx", reason=missing_reason("onnx"))
    return compiled.load_onnxruntime()


COMPILED_CASES = [
    pytest.param(bench.ADD, (2, 16, 32), np.float32, NEW_OFFSET, id="add-slice"),
    pytest.param(bench.ADD_POSITIONS, (3, 16, 32), np.float32, {}, id="add-positions"),
    pytest.param(bench.ROTARY, (1, 4, 3, 16), np.float32, {"scaling": bench.LLAMA3_SCALING, **NEW_OFFSET},
                 id="rotary-llama3"),
    pytest.param(bench.ROTARY, (1, 4, 1, 16), "bfloat16", NEW_OFFSET, id="rotary-bf16"),
]


@pytest.mark.slow
@pytest.mark.parametrize("op, shape, dtype, options", COMPILED_CASES)
def test_torch_compile_peer_matches_reference_and_compiles_once(torch_compile, op, shape, dtype, options):
    dtype = _bfloat16() if dtype == "bfloat16" else np.dtype(dtype)
    st = _state(op, shape, dtype, options)
    call = compiled.TORCH_COMPILE_BUILDERS[op.peer_family](op, st, dtype, options, torch_compile, 2)
    assert call.compile_count.figures() == {"before_timing": 1, "while_timed": 0}  # compiled when built
    call.compile_count.start_timing()
    _matches_reference(op, st, call, options)
    for i in range(0, 3 * cases.OFFSET_RANGE, 97):  # offsets all over their range
        call(i)
    assert call.compile_count.figures() == {"before_timing": 1, "while_timed": 0}


@pytest.mark.slow
def test_torch_compile_peer_builds_for_more_cases_than_dynamos_recompile_limit(torch_compile):
    """Regression: a full run builds the compiled add for more shapes than Dynamo keeps graphs of one
    function (8), and the ninth failed (FailOnRecompileLimitHit under fullgraph=True)."""
    limit = torch_compile._dynamo.config.recompile_limit
    for n in range(limit + 2):
        shape = (1, 4 + n, 8)
        st = _state(bench.ADD, shape, np.float32, NEW_OFFSET)
        call = compiled.TORCH_COMPILE_BUILDERS[bench.ADD.peer_family](bench.ADD, st, np.dtype(np.float32), NEW_OFFSET,
                                                                       torch_compile, 1)
        expected = bench.peer_result(st, lambda i: bench.ADD.call(reference, st, i, None, NEW_OFFSET), 1,
                                     st.target.dtype)
        np.testing.assert_allclose(bench.peer_result(st, call, 1, st.target.dtype), expected, rtol=0,
                                   atol=bench.peer_tolerance(st.pattern, st.target.dtype, bench.ADD.peer_ulps))


def test_torch_compile_that_cannot_compile_says_why(monkeypatch):
    torch = pytest.importorskip("torch", reason=missing_reason("torch"))

    def no_compiler(*args, **kwargs):
        raise RuntimeError("Compiler: cc is not found\nmore detail")

    monkeypatch.setattr(torch, "compile", no_compiler)
    with pytest.raises(bench.PeerUnavailable, match="torch.compile does not work here: Compiler: cc is not found more detail$"):
        compiled.load_torch_compile()


ORT_CASES = [
    pytest.param((1, 4, 1, 16), np.float32, NEW_OFFSET, id="decode"),
    pytest.param((1, 4, 1, 16), np.float32, {"scaling": bench.YARN_SCALING, **NEW_OFFSET}, id="decode-yarn"),
    pytest.param((2, 3, 9, 32), np.float32, {"scaling": bench.LLAMA3_SCALING, **NEW_OFFSET}, id="prefill-llama3"),
    pytest.param((1, 4, 5, 16), np.float16, NEW_OFFSET, id="prefill-f16"),
]


@pytest.mark.parametrize("shape, dtype, options", ORT_CASES)
def test_onnxruntime_peer_matches_reference(onnxruntime, shape, dtype, options):
    st = _state(bench.ROTARY, shape, dtype, options)
    call = compiled.ONNXRUNTIME_BUILDERS[cases.ROTARY_FAMILY](bench.ROTARY, st, np.dtype(dtype), options,
                                                              onnxruntime, 2)
    _matches_reference(bench.ROTARY, st, call, options)


def test_onnxruntime_session_stops_spinning_and_runs_at_the_run_threads(onnxruntime):
    """docs/performance.rst: force_spinning_stop, the run's thread count, inputs bound once."""
    st = _state(bench.ROTARY, (1, 4, 1, 16), np.float32, NEW_OFFSET)
    call = compiled.ONNXRUNTIME_BUILDERS[cases.ROTARY_FAMILY](bench.ROTARY, st, np.dtype(np.float32), NEW_OFFSET,
                                                              onnxruntime, 3)
    options = call.session.get_session_options()
    assert options.get_session_config_entry("session.force_spinning_stop") == "1"
    assert options.intra_op_num_threads == 3


def test_onnxruntime_has_no_bfloat16_rotary_and_says_so(onnxruntime):
    dtype = _bfloat16()
    st = _state(bench.ROTARY, (1, 4, 1, 16), dtype, NEW_OFFSET)
    with pytest.raises(bench.PeerUnavailable, match="onnxruntime's RotaryEmbedding has no bfloat16 CPU kernel"):
        compiled.ONNXRUNTIME_BUILDERS[cases.ROTARY_FAMILY](bench.ROTARY, st, dtype, NEW_OFFSET, onnxruntime, 2)


def test_onnxruntime_without_onnx_says_which_is_missing(monkeypatch):
    real_import = importlib.import_module

    def without_onnx(name, *args):
        if name == "onnx":
            raise ImportError("No module named 'onnx'", name="onnx")
        return real_import(name, *args)

    monkeypatch.setattr(compiled.importlib, "import_module", without_onnx)
    if importlib.util.find_spec("onnxruntime") is None:
        pytest.skip(missing_reason("onnxruntime"))
    with pytest.raises(bench.PeerUnavailable, match="^onnx is not installed$"):
        compiled.load_onnxruntime()


def test_ipex_not_installed_is_not_measured(monkeypatch):
    monkeypatch.setattr(compiled.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(bench.PeerUnavailable, match="^intel_extension_for_pytorch is not installed$"):
        compiled.load_ipex()


def test_ipex_of_another_torch_release_names_the_torch_it_needs(monkeypatch):
    """IPEX 2.8 beside torch 2.13: it prints an error and fails (with an
    AttributeError: it calls os.exit); the reason names both releases."""
    torch = pytest.importorskip("torch", reason=missing_reason("torch"))
    real_import = importlib.import_module

    def ipex_of_torch_2_8(name, *args):
        if name == "intel_extension_for_pytorch":
            builtins.print("ERROR! Intel® Extension for PyTorch* needs to work with PyTorch 2.8.*, but PyTorch "
                           f"{torch.__version__} is found. Please switch to the matching version and run again.")
            raise AttributeError("module 'os' has no attribute 'exit'")
        return real_import(name, *args)

    monkeypatch.setattr(compiled.importlib.util, "find_spec", lambda name: object())
    monkeypatch.setattr(compiled.importlib, "import_module", ipex_of_torch_2_8)
    with pytest.raises(bench.PeerUnavailable) as raised:
        compiled.load_ipex()
    assert str(raised.value) == (f"intel_extension_for_pytorch does not import here: it needs torch 2.8.*, "
                                 f"this is torch {torch.__version__}")


@pytest.mark.slow
def test_a_run_with_torch_compile_reports_its_compiles(torch_compile, monkeypatch, tmp_path):
    from fastpe.bench import measure

    monkeypatch.setattr(measure, "load_average", lambda: 0.0)
    case = bench.Case("decode", bench.ROTARY, (1, 4, 1, 16), options=NEW_OFFSET)
    report = bench.run(cases=[case], repeat=2, budget_s=0.5, log=None)
    (res,) = report.results
    assert res.peer_compiles == {"torch.compile": {"before_timing": 1, "while_timed": 0}}
    assert res.rows()[0]["peers_s"]["torch.compile"] > 0
    text = bench.format_report(report)
    assert "torch.compile: 1 graph(s) compiled before timing in 1 case(s), 0 recompile(s) while timed" in text
    path = tmp_path / "run.json"
    bench.write_json(report, path)
    assert json.loads(path.read_text())["cases"][0]["peer_compiles"] == res.peer_compiles
