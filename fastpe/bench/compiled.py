"""The compiled peers, the strongest a CPU user can pick: torch.compile
(inductor) of the eager torch code, ONNX Runtime's ``com.microsoft``
RotaryEmbedding contrib op with IOBinding, and Intel Extension for
PyTorch's fused rotary op with a cached table. Each is measured only where
its packages import, and checked against fastpe before it is timed like
every peer (fastpe.bench.peers).

How each is made steady (docs/performance.rst says the same):

* torch.compile: compiled once, while the peers are built (untimed); the
  offset of the cached add is a dynamic int (``dynamic=True``, the arrays
  marked static), rotary's reaches it as ``position_ids``, a tensor, so no
  new offset compiles again; each case starts from empty compile caches
  (torch._dynamo.reset()). The graphs compiled before timing and any
  compiled while timed are counted (``CompileCount``) and reported. Its
  OpenMP workers spin after a call like torch's: the visit pause outlasts them.
* ONNX Runtime: a session of one graph (q's and k's RotaryEmbedding nodes)
  at the run's thread count, ``session.force_spinning_stop`` set so its
  workers stop spinning when a run ends; inputs and outputs bound once to
  the case's arrays (IOBinding), so a call copies nothing; the position is
  a one-element int64 input (the op's offset form) written before each call.
* IPEX: ``torch.ops.torch_ipex.rotary_position_embedding`` on (batch, T,
  heads, D) views of q and k with one cached float32 sin/cos table, as
  ``ipex.llm.functional.rotary_embedding`` calls it. IPEX 2.8 refuses to
  import beside any torch but 2.8, so this builder has not run here.
"""

import contextlib
import importlib
import importlib.util
import io
import re
import warnings

import numpy as np

from .cases import CACHED_ADD, ROTARY_FAMILY, call_offset
from .eager import (
    PeerUnavailable,
    cos_sin_cache,
    hf_formula,
    hf_rotary,
    offset_position_ids,
    rotate_half_torch,
    tensor,
)


class CompileCount:
    """Graphs torch.compile made for one case's peers: before timing (while
    built and checked) and while timed. Dynamo's graph counter is global;
    a run builds and times one case at a time."""

    def __init__(self, torch):
        from torch._dynamo.utils import counters

        self._stats = counters["stats"]
        self._start = self._graphs()
        self._timing = None

    def _graphs(self):
        return int(self._stats["unique_graphs"])

    def start_timing(self):
        self._timing = self._graphs()

    def figures(self):
        now = self._graphs()
        timing = now if self._timing is None else self._timing
        return {"before_timing": timing - self._start, "while_timed": now - timing}


class CountedCall:
    """A peer's call(i) that carries its CompileCount."""

    def __init__(self, call, count):
        self._call = call
        self.compile_count = count

    def __call__(self, i):
        return self._call(i)


@contextlib.contextmanager
def _torch_internals_quiet():
    """Compiling imports parts of torch that warn of their own deprecations
    (torch.utils.mkldnn's torch.jit.script_method in 2.13): not the caller's to fix."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch(\.|$)")
        yield


def _mark_static(torch, *tensors):
    for t in tensors:
        torch._dynamo.mark_static(t)


def _fresh_compile_caches(torch):
    """Each case compiles from empty caches, as a process that times it alone
    would: a run times many shapes and dtypes through the same functions, and
    Dynamo keeps at most its recompile limit (8) of graphs per function, where
    fullgraph=True makes one more an error. The previous case's graphs are
    not needed again (a run times one case at a time)."""
    torch._dynamo.reset()


def _compiled_cached_add(op, st, dtype, options, torch, threads):
    _fresh_compile_caches(torch)
    count = CompileCount(torch)
    table = op.peer_table(st, dtype, options)
    xt, tt = tensor(torch, st.target), tensor(torch, table)
    if op.peer_rows == "positions":
        index = torch.from_numpy(st.positions)

        def gather_add(x, table, index):
            x.add_(table[index])

        fn = torch.compile(gather_add, fullgraph=True)

        def call(i):
            fn(xt, tt, index)
    else:
        n = st.target.shape[-2]

        def slice_add(x, table, o: int):
            x.add_(table[o:o + n])

        # dynamic=True: the offset is a symbolic int, one graph for every offset
        fn = torch.compile(slice_add, fullgraph=True, dynamic=True)
        _mark_static(torch, xt, tt)

        def call(i):
            fn(xt, tt, call_offset(i, options))

    with _torch_internals_quiet():
        call(0)  # compile now, untimed (check_peers restores the array)
    return CountedCall(call, count)


def _compiled_rotary(op, st, dtype, options, torch, threads):
    _fresh_compile_caches(torch)
    count = CompileCount(torch)
    cos, sin = cos_sin_cache(st, dtype, options)
    fn = torch.compile(hf_formula(rotate_half_torch(torch)), fullgraph=True)
    call = hf_rotary(tensor(torch, st.target[0]), tensor(torch, st.target[1]), tensor(torch, cos), tensor(torch, sin),
                     offset_position_ids(st, options, torch.from_numpy), fn, options)
    with _torch_internals_quiet():
        call(0)  # compile now, untimed
    return CountedCall(call, count)


def load_torch_compile():
    """torch, where its inductor backend can compile here (it needs a C++ compiler)."""
    try:
        torch = importlib.import_module("torch")
    except ImportError:
        raise PeerUnavailable("torch is not installed") from None
    try:
        with _torch_internals_quiet():
            torch.compile(lambda a: a + 1, fullgraph=True)(torch.zeros(2))
    except Exception as why:  # inductor reports a missing compiler as several exception types
        said = " ".join(line.strip() for line in str(why).splitlines()[:2] if line.strip())
        raise PeerUnavailable(f"torch.compile does not work here: {said[:200]}") from None
    return torch


# ONNX Runtime's RotaryEmbedding has CPU kernels for these dtypes (1.32: no bfloat16).
_ORT_DTYPES = {"float32": "FLOAT", "float16": "FLOAT16"}


def load_onnxruntime():
    """(onnxruntime, onnx): the runtime, and onnx to write the one-node graphs."""
    try:
        return importlib.import_module("onnxruntime"), importlib.import_module("onnx")
    except ImportError as why:
        raise PeerUnavailable(f"{why.name} is not installed") from None


def _ort_graph(onnx, elem_type, shape, rows, half):
    helper, int64 = onnx.helper, onnx.TensorProto.INT64
    nodes = [helper.make_node("RotaryEmbedding", [name, "position", "cos", "sin"], [name + "_out"],
                              domain="com.microsoft", interleaved=0) for name in ("q", "k")]
    inputs = [helper.make_tensor_value_info(name, elem_type, list(shape)) for name in ("q", "k")]
    inputs.append(helper.make_tensor_value_info("position", int64, [1]))
    inputs += [helper.make_tensor_value_info(name, elem_type, [rows, half]) for name in ("cos", "sin")]
    outputs = [helper.make_tensor_value_info(name + "_out", elem_type, list(shape)) for name in ("q", "k")]
    graph = helper.make_graph(nodes, "rotary", inputs, outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                    helper.make_opsetid("com.microsoft", 1)])
    model.ir_version = 9  # the newest IR every supported onnxruntime reads
    return model.SerializeToString()


def _ort_rotary(op, st, dtype, options, lib, threads):
    ort, onnx = lib
    if dtype.name not in _ORT_DTYPES:
        raise PeerUnavailable(f"onnxruntime's RotaryEmbedding has no {dtype.name} CPU kernel")
    q, k = st.target[0], st.target[1]
    half = q.shape[-1] // 2
    cos, sin = (np.ascontiguousarray(a[:, :half]) for a in cos_sin_cache(st, dtype, options))
    session_options = ort.SessionOptions()
    session_options.intra_op_num_threads = threads
    session_options.inter_op_num_threads = 1
    # its workers spin after a run and would take a core from what runs next
    session_options.add_session_config_entry("session.force_spinning_stop", "1")
    model = _ort_graph(onnx, getattr(onnx.TensorProto, _ORT_DTYPES[dtype.name]), q.shape, cos.shape[0], half)
    session = ort.InferenceSession(model, session_options, providers=["CPUExecutionProvider"])
    position = np.zeros(1, dtype=np.int64)
    q_out, k_out = np.empty_like(q), np.empty_like(k)
    binding = session.io_binding()
    for name, array in (("q", q), ("k", k), ("position", position), ("cos", cos), ("sin", sin)):
        binding.bind_input(name, "cpu", 0, array.dtype, list(array.shape), array.ctypes.data)
    for name, array in (("q_out", q_out), ("k_out", k_out)):
        binding.bind_output(name, "cpu", 0, array.dtype, list(array.shape), array.ctypes.data)
    keep = (cos, sin)  # the session reads them through raw pointers

    def ort_rotary(i, keep=keep):
        position[0] = call_offset(i, options)
        session.run_with_iobinding(binding)
        return q_out, k_out

    ort_rotary.session = session  # for the tests of its settings
    return ort_rotary


def load_ipex():
    """intel_extension_for_pytorch, where it imports beside this torch (each
    IPEX release runs with one torch release only, and says so on stdout)."""
    if importlib.util.find_spec("intel_extension_for_pytorch") is None:
        raise PeerUnavailable("intel_extension_for_pytorch is not installed")
    said = io.StringIO()
    try:
        with contextlib.redirect_stdout(said), contextlib.redirect_stderr(said):
            return importlib.import_module("intel_extension_for_pytorch")
    except Exception as why:  # a release mismatch ends in a bare exit or an AttributeError
        needs = re.search(r"needs to work with PyTorch (\S+?),", said.getvalue())
        if needs:
            torch = importlib.import_module("torch")
            message = f"it needs torch {needs.group(1)}, this is torch {torch.__version__}"
        else:
            message = (said.getvalue().strip() or repr(why)).splitlines()[0][:200]
        raise PeerUnavailable(f"intel_extension_for_pytorch does not import here: {message}") from None


def _ipex_rotary(op, st, dtype, options, ipex, threads):
    torch = importlib.import_module("torch")
    if dtype.name not in ("float32", "bfloat16"):
        raise PeerUnavailable(f"ipex's rotary op has no {dtype.name} kernel")
    q, k = (tensor(torch, a).transpose(1, 2) for a in (st.target[0], st.target[1]))  # (batch, T, heads, D)
    dim = q.shape[-1]
    cos, sin = cos_sin_cache(st, np.dtype(np.float32), options)
    sin_cos = torch.from_numpy(np.ascontiguousarray(np.concatenate((sin[:, :dim // 2], cos[:, :dim // 2]), 1)))
    ids = offset_position_ids(st, options, torch.from_numpy)
    rope = torch.ops.torch_ipex.rotary_position_embedding

    def ipex_rotary(i):
        pid = ids[call_offset(i, options)]
        q_rot = rope(q, sin_cos, pid, q.shape[-2], dim, dim // 2, dim)[0]
        k_rot = rope(k, sin_cos, pid, k.shape[-2], dim, dim // 2, dim)[0]
        return q_rot.transpose(1, 2), k_rot.transpose(1, 2)

    return ipex_rotary


TORCH_COMPILE_BUILDERS = {CACHED_ADD: _compiled_cached_add, ROTARY_FAMILY: _compiled_rotary}
ONNXRUNTIME_BUILDERS = {ROTARY_FAMILY: _ort_rotary}
IPEX_BUILDERS = {ROTARY_FAMILY: _ipex_rotary}
