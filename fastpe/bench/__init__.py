"""Benchmark report: fastpe against what users write instead, its NumPy
reference and a bandwidth probe.

Run it as ``fastpe bench [--quick] [--json PATH] [--plot PATH] [--threads N]
[--repeat N]``, or from Python::

    from fastpe import bench
    report = bench.run(quick=True)
    print(bench.format_report(report))

For every case these implementations are timed:

* ``fastpe``    -- the compiled OpenMP kernels;
* the peers     -- what a user writes without fastpe (``PEERS``, see
  :mod:`fastpe.bench.peers`): the encoding computed once, outside the timed
  region, then the rows a call needs added in place, in NumPy and torch;
  rotary as Hugging Face writes it, with cos and sin cached. Each is timed
  only where its library is installed, and compared with fastpe once before
  it is timed (``check_peers``): a peer that computes something else stops
  the run. "fastpe/peer" is fastpe's time over the fastest peer's: lower is
  better, below 1.00x fastpe is faster. Ops without a sensible peer
  (tables, biases) show "-"; a peer that makes sense but cannot run here
  shows "n/m" and a note;
* ``reference`` -- ``fastpe.reference``, the plain NumPy implementation;
* ``probe``     -- ``fastpe._kernels.probe``: the same array traffic with no
  arithmetic worth the name (``x += c`` for fused adds, ``t[:] = c`` for
  tables), same size, dtype and thread count. It is the speed a memory-bound
  kernel could reach on this machine, so "% of probe" (probe time / fastpe
  time x 100) says how close fastpe gets to that ceiling.

The modules, one job each: ``cases`` (what is measured: ``CASES``, a list
of :class:`Case`, each running an :class:`Op`; a new encoding is one ``Op``
plus one ``Case(...)`` line a case, and a case that needs an optional module,
such as ``fastpe.torch``, names it in ``Case.requires``), ``peers`` (the
registry of peers and the check against fastpe), ``eager`` (the NumPy and
torch peers), ``compiled`` (torch.compile, ONNX Runtime, IPEX), ``measure``
(how samples are taken, the busy-machine rule, and the run), ``results``
(the figures derived from the samples, and the JSON document), ``report``
(the text report and the documentation's table cells, from the JSON),
``plot`` (the chart) and ``provenance`` (which sources a run measured).
"""

from .cases import (
    ADD,
    ADD_GRID_2D,
    ADD_LEARNED,
    ADD_POSITIONS,
    ADD_PRESET,
    ALIBI,
    CASES,
    LLAMA3_SCALING,
    NEW_OFFSET,
    QUICK_SIDE_BY_SIDE,
    ROTARY,
    SIDE_BY_SIDE,
    T5_BIAS,
    TABLE,
    YARN_SCALING,
    Case,
    Op,
    select_cases,
)
from .eager import numpy_adds
from .measure import effective_threads, run
from .peers import (
    PE_CONTRACT_F64,
    PEER_NAMES,
    PEERS,
    PeerMismatch,
    PeerUnavailable,
    build_peers,
    check_peers,
    load_peers,
    max_abs_diff,
    peer_result,
    peer_tolerance,
)
from .plot import PLOT_MISSING, matplotlib_available, plot
from .report import format_report, write_json
from .results import CaseResult, Report

__all__ = [
    "ADD",
    "ADD_GRID_2D",
    "ADD_LEARNED",
    "ADD_POSITIONS",
    "ADD_PRESET",
    "ALIBI",
    "CASES",
    "LLAMA3_SCALING",
    "NEW_OFFSET",
    "PEERS",
    "PEER_NAMES",
    "PE_CONTRACT_F64",
    "PLOT_MISSING",
    "QUICK_SIDE_BY_SIDE",
    "ROTARY",
    "SIDE_BY_SIDE",
    "T5_BIAS",
    "TABLE",
    "YARN_SCALING",
    "Case",
    "CaseResult",
    "Op",
    "PeerMismatch",
    "PeerUnavailable",
    "Report",
    "build_peers",
    "check_peers",
    "effective_threads",
    "format_report",
    "load_peers",
    "matplotlib_available",
    "max_abs_diff",
    "numpy_adds",
    "peer_result",
    "peer_tolerance",
    "plot",
    "run",
    "select_cases",
    "write_json",
]
