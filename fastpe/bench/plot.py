"""The benchmark's chart (``fastpe bench --plot``, and docs/_static/bench.png
through tools/render_figures.py), drawn from the run's JSON document;
needs matplotlib.

Two panels share one row per case, the cases grouped by family: on the
left fastpe's time over the fastest peer's (log scale, 1.0 marked: left of
it fastpe is faster), coloured by which peer that was; on the right
fastpe's speed as a percentage of the bandwidth probe's (100% marked).
Marker shapes are the dtypes. A figure the busy-machine rule withholds is
not drawn; the row says "busy" or "noisy" instead. The legend sits under
the panels, off the data.
"""

from .peers import PEER_NAMES
from .report import document, label_parts, unreliable

__all__ = ["PLOT_MISSING", "matplotlib_available", "plot"]

PLOT_MISSING = (
    "--plot needs matplotlib, which is not installed; install it with "
    "`pip install matplotlib` (or `pip install 'fastpe[bench]'`)"
)

_PEER_COLORS = dict(zip(PEER_NAMES, ("tab:green", "tab:red", "tab:purple", "tab:orange", "tab:brown")))
_DTYPE_MARKERS = {"float32": "o", "float64": "s", "float16": "^", "bfloat16": "D"}
_FASTPE_COLOR = "tab:blue"


def matplotlib_available():
    import importlib.util

    return importlib.util.find_spec("matplotlib") is not None


def _rows(data):
    """[(family or None, case, row)]: a header entry before each family's
    cases (in the order the run measured them), then its cases; thread
    scaling, measured at several counts, is left out."""
    families = []
    for case in data["cases"]:
        if len(case["rows"]) == 1 and case["group"] not in families:
            families.append(case["group"])
    out = []
    for family in families:
        out.append((family, None, None))
        out.extend((None, case, case["rows"][0]) for case in data["cases"]
                   if case["group"] == family and len(case["rows"]) == 1)
    return out


def _short_label(case):
    """The case's label without the call (its family heads the group; a preset is named)."""
    _, shape, extras = label_parts(case)
    preset = case.get("options", {}).get("preset")
    return ", ".join(([f"{preset} preset"] if preset else []) + [shape] + extras)


def plot(report, path):
    """Write the chart of a run (a Report or its JSON document) to `path` (PNG)."""
    try:
        import matplotlib
    except ImportError:
        raise RuntimeError(PLOT_MISSING) from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

    data = document(report)
    entries = _rows(data)
    height = 1.9 + 0.25 * len(entries)
    fig, (ratio_ax, probe_ax) = plt.subplots(1, 2, figsize=(9.0, height), sharey=True,
                                             gridspec_kw={"width_ratios": [1.15, 1.0], "wspace": 0.06})
    ys = list(range(len(entries)))[::-1]
    labels, peers_seen, dtypes_seen = [], [], []
    ratios, percents = [], []

    def seen(names, name):
        if name not in names:
            names.append(name)

    for y, (family, case, row) in zip(ys, entries):
        if family is not None:
            labels.append(family)
            if y != ys[0]:
                for ax in (ratio_ax, probe_ax):
                    ax.axhline(y + 0.5, color="0.75", linewidth=0.8)
            continue
        labels.append(_short_label(case))
        marker = _DTYPE_MARKERS.get(case["dtype"], "o")
        best = row["best_peer"]
        withheld = unreliable(row, "fastpe", best)
        if best is not None and not withheld:
            ratios.append(row["fastpe_over_best_peer"])
            ratio_ax.scatter([row["fastpe_over_best_peer"]], [y], marker=marker, s=36, zorder=3,
                             color=_PEER_COLORS.get(best, "black"))
            seen(peers_seen, best)
            seen(dtypes_seen, case["dtype"])
        withheld_probe = unreliable(row, "fastpe", "probe")
        if not withheld_probe and row["percent_of_probe"] is not None:
            percents.append(row["percent_of_probe"])
            probe_ax.barh([y], [row["percent_of_probe"]], height=0.6, color=_FASTPE_COLOR, alpha=0.35, zorder=2)
            probe_ax.scatter([row["percent_of_probe"]], [y], marker=marker, s=30, color=_FASTPE_COLOR, zorder=3)
            seen(dtypes_seen, case["dtype"])
        for ax, why in ((ratio_ax, withheld if best is not None else "no peer"), (probe_ax, withheld_probe)):
            if why:
                ax.text(0.01, y, why, transform=ax.get_yaxis_transform(), va="center", fontsize=7, color="0.4")

    lo = min(ratios + [0.5]) / 1.4
    hi = max(ratios + [2.0]) * 1.4
    ratio_ax.set_xscale("log")
    ratio_ax.set_xlim(lo, hi)
    steps = (1, 2, 5) if hi / lo <= 300 else (1,)  # labels that do not run into each other
    ticks = [v * 10.0 ** e for e in range(-3, 5) for v in steps if lo <= v * 10.0 ** e <= hi]
    ratio_ax.xaxis.set_major_locator(FixedLocator(ticks))
    ratio_ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}x"))
    ratio_ax.xaxis.set_minor_formatter(NullFormatter())
    ratio_ax.axvline(1.0, color="black", linewidth=1.0, zorder=1)
    ratio_ax.set_title("fastpe time / fastest peer's time\n(log scale; left of 1: fastpe is faster)", fontsize=8)
    probe_ax.axvline(100.0, color="black", linewidth=1.0, zorder=1)
    probe_ax.set_xlim(0, max([110.0] + [p * 1.05 for p in percents]))
    probe_ax.set_title("fastpe speed, % of the bandwidth probe's\n(x += c on the same array: the memory limit)",
                       fontsize=8)
    ratio_ax.set_yticks(ys)
    ratio_ax.set_yticklabels(labels, fontsize=8.5)
    for tick, (family, _, _) in zip(ratio_ax.get_yticklabels(), entries):
        if family is not None:
            tick.set_fontweight("bold")
    ratio_ax.set_ylim(-0.7, len(entries) - 0.3)
    for ax in (ratio_ax, probe_ax):
        ax.tick_params(axis="x", labelsize=7.5)
        ax.grid(True, axis="x", which="both", alpha=0.25)

    handles = [Line2D([], [], linestyle="none", marker="o", color=_PEER_COLORS.get(p, "black"),
                      label=f"fastest peer: {p}") for p in peers_seen]
    handles += [Line2D([], [], linestyle="none", marker=_DTYPE_MARKERS.get(d, "o"), color="0.3", label=d)
                for d in dtypes_seen]
    handles.append(Patch(color=_FASTPE_COLOR, alpha=0.35, label="fastpe, % of the probe"))
    handles.append(Line2D([], [], color="black", linewidth=1.0, label="parity / the probe's speed"))
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 5), fontsize=8, frameon=False)
    cfg, st, m = data["config"], data["settings"], data["machine"]
    commit = data.get("source", {}).get("commit")
    fig.suptitle(f"fastpe {cfg.get('fastpe')}" + (f" at {commit[:7]}" if commit else "")
                 + f", {st['mode']} run: {m['cpu']}, {st['threads']} threads, simd {cfg.get('simd')}", fontsize=9)
    legend_rows = -(-len(handles) // 5)
    fig.subplots_adjust(left=0.22, right=0.98, top=1 - 0.75 / height, bottom=(0.45 + 0.2 * legend_rows) / height)
    fig.savefig(path, dpi=110)
    plt.close(fig)
