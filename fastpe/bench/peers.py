"""The peers: the registry of what users write instead of fastpe, how each
is loaded and at how many threads it runs, and the check that a peer
computes what fastpe computes before it is timed.

A peer is a column of the report. It is measured only where its library
imports; an op names its peer family (``Op.peer_family``) and each peer
says which families it has a builder for (fastpe.bench.eager: NumPy and
torch; fastpe.bench.compiled: torch.compile, ONNX Runtime, IPEX).
"""

import contextlib
import importlib
import math
from dataclasses import dataclass
from typing import Any, Callable, Dict, Mapping

import numpy as np

import fastpe

from . import compiled, eager
from .eager import PeerUnavailable

__all__ = [
    "PEERS",
    "PEER_NAMES",
    "PE_CONTRACT_F64",
    "Peer",
    "PeerMismatch",
    "PeerUnavailable",
    "build_peers",
    "check_peers",
    "load_peers",
    "max_abs_diff",
    "peer_result",
    "peer_tolerance",
]


@dataclass(frozen=True)
class Peer:
    """One peer: a column of the report.

    builders: op.peer_family -> build(op, st, dtype, options, lib, threads)
        -> call(i), made outside the timed region (fastpe.bench.eager).
    load(): the library handle the builders take; raises PeerUnavailable
        where it cannot be had (not installed, a release that does not run
        beside this torch).
    pool: where its threads come from: "single" (one thread, NumPy),
        "torch" (torch's intra-op pool, set to the run's thread count for
        the run) or "own" (the builder sets the run's thread count itself).
    quick: False leaves it out of --quick runs (its set-up takes seconds).
    always_column: the report shows its column even where it is not
        installed (the baseline peers); others only where measured.
    """

    name: str
    builders: Mapping[str, Callable[..., Callable[[int], Any]]]
    load: Callable[[], Any]
    pool: str = "torch"
    quick: bool = True
    always_column: bool = False


def importer(module):
    """load() of a peer that needs `module` alone."""

    def load():
        try:
            return importlib.import_module(module)
        except ImportError:
            raise PeerUnavailable(f"{module} is not installed") from None

    return load


PEERS = (
    Peer("numpy", eager.NUMPY_BUILDERS, lambda: np, pool="single", always_column=True),
    Peer("torch", eager.TORCH_BUILDERS, importer("torch"), always_column=True),
    # compiling takes seconds a case: left out of --quick runs
    Peer("torch.compile", compiled.TORCH_COMPILE_BUILDERS, compiled.load_torch_compile, quick=False),
    Peer("onnxruntime", compiled.ONNXRUNTIME_BUILDERS, compiled.load_onnxruntime, pool="own"),
    Peer("ipex", compiled.IPEX_BUILDERS, compiled.load_ipex),
)
PEER_NAMES = tuple(peer.name for peer in PEERS)


class PeerSet:
    """The peers a run can time: {name: library} loaded, {name: why not} the rest."""

    def __init__(self, libs, missing, threads):
        self.libs = libs
        self.missing = missing
        self.threads = threads

    def peer_threads(self, peer):
        if peer.pool == "single":
            return 1
        if peer.pool == "torch":
            return self.libs["torch"].get_num_threads() if "torch" in self.libs else self.threads
        return self.threads

    def describe(self):
        """{peer: {"version": its library's, "threads": its thread count}} of the loaded peers."""
        out = {}
        for peer in PEERS:
            if peer.name in self.libs:
                lib = self.libs[peer.name]
                main = lib[0] if isinstance(lib, tuple) else lib
                out[peer.name] = {"version": getattr(main, "__version__", None), "threads": self.peer_threads(peer)}
        return out


@contextlib.contextmanager
def load_peers(threads, wanted=True, quick=False):
    """Load every peer (none when `wanted` is false) and run torch's pool at
    `threads` while the PeerSet is in use, restoring torch's own count after."""
    libs, missing = {}, {}
    for peer in PEERS if wanted else ():
        if quick and not peer.quick:
            missing[peer.name] = "left out of --quick runs"
            continue
        try:
            libs[peer.name] = peer.load()
        except PeerUnavailable as why:
            missing[peer.name] = str(why)
    torch = libs.get("torch")
    before = torch.get_num_threads() if torch is not None else None
    try:
        if torch is not None:
            torch.set_num_threads(threads)  # the peers run at fastpe's thread count
        yield PeerSet(libs, missing, threads)
    finally:
        if torch is not None:
            torch.set_num_threads(before)


def build_peers(op, st, dtype, options, peer_set):
    """({peer: call}, {peer: why not measured}, {peer: threads}) for one case,
    built outside the timed region; peers without a builder for the op's
    family are left out (no such peer: "-" in the report)."""
    calls, missing, threads = {}, {}, {}
    for peer in PEERS:
        build = peer.builders.get(op.peer_family)
        if build is None:
            continue
        if peer.name not in peer_set.libs:
            missing[peer.name] = peer_set.missing.get(peer.name, "not loaded")
            continue
        try:
            calls[peer.name] = build(op, st, dtype, options, peer_set.libs[peer.name], peer_set.threads)
        except PeerUnavailable as why:
            missing[peer.name] = str(why)
            continue
        threads[peer.name] = peer_set.peer_threads(peer)
    return calls, missing, threads


def peer_result(st, call, i, dtype):
    """Run peer `call` once on call index `i` from the case's initial arrays
    (untimed) and return what it computed, in the case's dtype and shaped
    like ``st.target`` (a rotary peer's new q and k stacked). An in-place
    result is ``st.target`` itself: valid until the state's next reset."""
    st.reset()
    result = call(i)
    if result is None:
        return st.target
    # float64 holds every peer dtype exactly (torch's bfloat16 has no NumPy twin)
    arrays = [r if isinstance(r, np.ndarray) else r.detach().double().numpy() for r in result]
    return np.stack(arrays).astype(dtype)


def max_abs_diff(a, b, chunk=1 << 20):
    """max |a - b| in float64, a chunk at a time (the arrays may be 512 MiB)."""
    a, b = a.reshape(-1), b.reshape(-1)
    return max((float(np.max(np.abs(a[k:k + chunk].astype(np.float64) - b[k:k + chunk].astype(np.float64))))
                for k in range(0, a.size, chunk)), default=0.0)


def _ulp(value, dtype):
    """Spacing of `dtype` numbers at `value` (a positive float)."""
    try:
        eps = float(np.finfo(dtype).eps)
    except ValueError:  # ml_dtypes' bfloat16
        import ml_dtypes

        eps = float(ml_dtypes.finfo(dtype).eps)
    return eps * 2.0 ** math.floor(math.log2(value))


# The float64 encoding's own error (numerical contract, against the exact value).
PE_CONTRACT_F64 = 1e-9


def peer_tolerance(pattern, dtype, ulps):
    """How far a peer's result may be from fastpe's: `ulps` units in the last
    place of the inputs' largest magnitude (at least 1, the encoding's) in
    `dtype`, plus the float64 encoding's contract. Peer and fastpe round
    differently (a peer rounds the table, then each product and sum; fastpe
    once), by an ulp or two of the inputs (op.peer_ulps), a wrong row by far more."""
    magnitude = max(1.0, float(np.max(np.abs(np.asarray(pattern, dtype=np.float64)))))
    return ulps * _ulp(magnitude, dtype) + PE_CONTRACT_F64


class PeerMismatch(AssertionError):
    """A peer computed something else than fastpe: the comparison would be meaningless."""


def check_peers(op, st, dtype, options, peers, num_threads, i=0) -> Dict[str, Dict[str, float]]:
    """Run fastpe and every peer once on call `i` (untimed) and compare.

    Returns {peer: {"max_abs_diff", "tolerance"}}; raises PeerMismatch when a
    peer differs from fastpe by more than peer_tolerance. Leaves the state reset.
    """
    expected = peer_result(st, lambda i: op.call(fastpe, st, i, num_threads, options), i, dtype).copy()
    tolerance = peer_tolerance(st.pattern, dtype, op.peer_ulps)
    out = {}
    for name, call in peers.items():
        diff = max_abs_diff(peer_result(st, call, i, dtype), expected)
        if not diff <= tolerance:
            st.reset()
            raise PeerMismatch(f"{op.label}: peer {name} differs from fastpe by {diff:.3g} "
                               f"(tolerance {tolerance:.3g}) at call {i}")
        out[name] = {"max_abs_diff": diff, "tolerance": tolerance}
    st.reset()
    return out
