"""The benchmark's chart (``fastpe bench --plot``); needs matplotlib."""

import math

import numpy as np

from .results import IMPLS

__all__ = ["PLOT_MISSING", "matplotlib_available", "plot"]


def matplotlib_available():
    import importlib.util

    return importlib.util.find_spec("matplotlib") is not None


PLOT_MISSING = (
    "--plot needs matplotlib, which is not installed; install it with "
    "`pip install matplotlib` (or `pip install 'fastpe[bench]'`)"
)


def plot(report, path):
    """PNG chart: GB/s of array traffic against array size for every implementation."""
    try:
        import matplotlib
    except ImportError:
        raise RuntimeError(PLOT_MISSING) from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {"fastpe": "tab:blue", "reference": "tab:orange", "probe": "tab:gray", "numpy": "tab:green",
              "torch": "tab:red"}
    markers = {"fused add": "o", "table": "s", "positions": "^"}
    fig, ax = plt.subplots(figsize=(9, 5.5))
    default_threads = report.settings["threads"]
    seen = set()
    for impl in IMPLS:
        line = []
        for res in report.results:
            if res.case.threads is not None:
                continue  # thread scaling: repeats a size measured elsewhere
            rows = res.rows()
            row = next((r for r in rows if r["threads"] == default_threads), rows[-1])
            gbps = row["gbps"][impl]
            if gbps is None or not math.isfinite(gbps):
                continue
            mib = res.nbytes / 2**20
            marker = markers.get(res.case.op.group, "D")
            label = impl if impl not in seen else None
            seen.add(impl)
            f32 = res.dtype == np.float32
            ax.scatter([mib], [gbps], marker=marker, label=label, zorder=3, edgecolors=colors[impl],
                       facecolors=colors[impl] if f32 else "none")
            if res.case.op.group == "fused add" and f32:
                line.append((mib, gbps))
        if len(line) > 1:
            line.sort()
            ax.plot(*zip(*line), color=colors[impl], alpha=0.6)
    for group, marker in markers.items():
        if any(r.case.op.group == group for r in report.results):
            ax.scatter([], [], color="black", marker=marker, label=group)
    if any(r.dtype == np.float64 for r in report.results):
        ax.scatter([], [], facecolors="none", edgecolors="black", marker="o", label="float64 (hollow)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("array size (MiB)")
    ax.set_ylabel("GB/s of array traffic (add: read + write, table: write)")
    cfg = report.config
    ax.set_title(f"fastpe {cfg.get('fastpe')} ({report.settings['mode']} run): threads {report.settings['threads']}, "
                 f"simd {cfg.get('simd')}; lines join float32 fused adds", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
