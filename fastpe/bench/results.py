"""What a run measured: per case its series of samples and the figures
derived from them (medians, ratios, % of the probe, GB/s), the machine it
ran on, and the whole run as the JSON document the report, the plot and the
documentation's tables are rendered from."""

import math
import os
import platform
import sys
from dataclasses import dataclass, field
from typing import Any, Dict, List, Tuple

import numpy as np

from .cases import Case
from .peers import PEER_NAMES

__all__ = ["IMPLS", "SPREAD_BOUND", "THREADED", "CaseResult", "Report", "jsonable", "load_average", "machine_info",
           "spread"]

IMPLS = ("fastpe", "reference", "probe", *PEER_NAMES)
# Implementations timed at a chosen thread count (one series per count).
THREADED = ("fastpe", "probe")

# The busy-machine rule. A series is noisy when the middle half of its
# samples spans more than SPREAD_BOUND of their median (judged from
# MIN_JUDGED_SAMPLES samples on; the reference, with its few samples, is not
# judged); a case is busy when the 1-minute load average exceeded the usable
# CPUs before or after it was measured (this run's own threads count at most
# as many). measure.run measures such a case again, once; a figure still
# noisy or busy is printed as "noisy" or "busy", never as a number.
SPREAD_BOUND = 0.25
MIN_JUDGED_SAMPLES = 3


def spread(samples):
    """(75th - 25th percentile) / median of the samples; None below MIN_JUDGED_SAMPLES."""
    if len(samples) < MIN_JUDGED_SAMPLES:
        return None
    q25, q50, q75 = np.percentile(samples, [25, 50, 75])
    return float((q75 - q25) / q50) if q50 > 0 else None


@dataclass
class CaseResult:
    """Everything measured for one case (one report row per thread count)."""

    case: Case
    shape: Tuple[int, ...]
    dtype: np.dtype
    series: List[Any]
    notes: List[str]
    elapsed_s: float
    # peer -> why it was not measured, for the peers the op has but this run could not time
    peers_not_measured: Dict[str, str] = field(default_factory=dict)
    # peer -> its agreement with fastpe (check_peers)
    peer_check: Dict[str, Dict[str, float]] = field(default_factory=dict)
    # peer -> graphs torch.compile made before timing and while timed
    peer_compiles: Dict[str, Dict[str, int]] = field(default_factory=dict)
    # the 1-minute load average before and after the case, and the usable CPUs
    load: Dict[str, Any] = field(default_factory=dict)
    # why earlier attempts were measured again (the busy-machine rule)
    remeasured: List[str] = field(default_factory=list)

    @property
    def nbytes(self):
        return int(np.prod(self.shape)) * self.dtype.itemsize

    @property
    def traffic_bytes(self):
        return self.case.op.traffic_factor * self.nbytes

    def get(self, impl, threads=None):
        for s in self.series:
            if s.impl == impl and (threads is None or impl not in THREADED or s.threads == threads):
                return s
        return None

    def thread_counts(self):
        return sorted({s.threads for s in self.series if s.impl == "fastpe"})

    @property
    def peak_load(self):
        """The higher 1-minute load average of before and after the case (None where unknown)."""
        loads = [v for v in (self.load.get("before"), self.load.get("after")) if v is not None]
        return max(loads) if loads else None

    @property
    def busy(self):
        cpus = self.load.get("usable_cpus")
        return bool(cpus and self.peak_load is not None and self.peak_load > cpus)

    def noisy(self, threads=None):
        """The judged implementations whose samples spread beyond SPREAD_BOUND."""
        impls = [s for s in self.series if s.impl != "reference" and (threads is None or s.impl not in THREADED
                                                                          or s.threads == threads)]
        return sorted({s.impl for s in impls if (spread(s.samples) or 0.0) > SPREAD_BOUND})

    def unreliable_reasons(self):
        """Why the busy-machine rule calls this measurement unreliable (empty: it does not)."""
        reasons = []
        if self.busy:
            reasons.append(f"busy: load average {self.peak_load:.2f} above the {self.load['usable_cpus']} usable CPUs")
        noisy = self.noisy()
        if noisy:
            reasons.append(f"noisy: {', '.join(noisy)} spread beyond {SPREAD_BOUND:.0%} of the median")
        return reasons

    def rows(self):
        """One dict per thread count: medians, speedup vs reference, % of probe, GB/s."""
        out = []
        for t in self.thread_counts():
            f, r, p = self.get("fastpe", t), self.get("reference"), self.get("probe", t)
            tf = f.median
            tr = r.median if r else float("nan")
            tp = p.median if p else float("nan")
            peers = {name: self.get(name) for name in PEER_NAMES}
            peer_s = {name: s.median for name, s in peers.items() if s is not None and s.samples}
            best = min(peer_s, key=peer_s.get) if peer_s else None
            out.append({
                "threads": t,
                "fastpe_s": tf,
                "reference_s": tr,
                "probe_s": tp,
                "peers_s": {name: peer_s.get(name) for name in PEER_NAMES},
                "best_peer": best,
                "best_peer_s": peer_s[best] if best else None,
                "fastpe_over_best_peer": tf / peer_s[best] if best else None,
                "speedup_vs_reference": tr / tf,
                "percent_of_probe": 100.0 * tp / tf,
                "gbps": {
                    "fastpe": self.traffic_bytes / tf / 1e9,
                    "reference": self.traffic_bytes / tr / 1e9,
                    "probe": self.traffic_bytes / tp / 1e9,
                    **{name: self.traffic_bytes / peer_s[name] / 1e9 if name in peer_s else None
                       for name in PEER_NAMES},
                },
                "noisy": self.noisy(t),
                "busy": self.busy,
                "n": {
                    "fastpe": len(f.samples),
                    "reference": len(r.samples) if r else 0,
                    "probe": len(p.samples) if p else 0,
                    **{name: len(s.samples) if s else 0 for name, s in peers.items()},
                },
            })
        return out

    def to_dict(self):
        return {
            "name": self.case.name,
            "op": self.case.op.label,
            "group": self.case.op.group,
            "shape": list(self.shape),
            "dtype": self.dtype.name,
            "options": dict(self.case.options),
            "array_bytes": self.nbytes,
            "traffic_bytes": self.traffic_bytes,
            "probe": "x += c" if self.case.op.probe == "add" else "t[:] = c",
            "rows": jsonable(self.rows()),
            "series": [s.stats() for s in self.series],
            "peer_check": self.peer_check,
            "peers_not_measured": dict(self.peers_not_measured),
            "peer_compiles": dict(self.peer_compiles),
            "load": dict(self.load),
            "remeasured": list(self.remeasured),
            "notes": list(self.notes),
            "elapsed_s": self.elapsed_s,
        }


def jsonable(obj):
    """NaN/inf -> None, so the JSON is strict."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    return obj


@dataclass
class Report:
    machine: Dict[str, Any]
    config: Dict[str, Any]
    settings: Dict[str, Any]
    results: List[CaseResult]
    elapsed_s: float
    # which code was measured (fastpe.bench.provenance); "commit" is set by tools/render_figures.py
    source: Dict[str, Any] = field(default_factory=dict)

    def scaling(self):
        """Thread scaling of every case measured at several thread counts."""
        out = []
        for res in self.results:
            counts = res.thread_counts()
            if len(counts) < 2:
                continue
            lo, hi = counts[0], counts[-1]
            entry = {"case": res.case.name, "shape": list(res.shape), "dtype": res.dtype.name,
                     "threads": [lo, hi]}
            for impl in THREADED:
                a, b = res.get(impl, lo), res.get(impl, hi)
                if a and b:
                    entry[impl] = {"t_low_s": a.median, "t_high_s": b.median,
                                   "speedup": a.median / b.median}
            out.append(entry)
        return out

    def to_dict(self):
        return jsonable({
            "machine": self.machine,
            "config": self.config,
            "settings": self.settings,
            "cases": [r.to_dict() for r in self.results],
            "thread_scaling": self.scaling(),
            "elapsed_s": self.elapsed_s,
            "source": self.source,
        })


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_average():
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):  # not available on this platform
        return None


def usable_cpus():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count()


def _memory_gib():
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (AttributeError, ValueError, OSError):  # not on this platform
        return None


def machine_info():
    usable = usable_cpus()
    return {
        "load_average_1min": load_average(),
        "cpu": _cpu_model(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": usable,
        "memory_gib": _memory_gib(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "numpy": np.__version__,
    }
