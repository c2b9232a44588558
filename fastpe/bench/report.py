"""The benchmark's text report and its JSON file."""

import json
import math

import numpy as np

from .peers import PEER_NAMES

__all__ = ["fmt_pct", "fmt_ratio", "fmt_time", "format_report", "shape_str", "write_json"]


def shape_str(shape):
    return "(" + ",".join(str(n) for n in shape) + ")"


def fmt_time(s):
    if s is None or not math.isfinite(s):
        return "-"
    if s < 1e-3:
        return f"{s * 1e6:.1f} us"
    if s < 1.0:
        return f"{s * 1e3:.2f} ms"
    return f"{s:.2f} s"


def fmt_ratio(v):
    if v is None or not math.isfinite(v):
        return "-"
    return f"{v:.0f}x" if v >= 100 else f"{v:.1f}x"


def fmt_pct(v):
    if v is None or not math.isfinite(v):
        return "-"
    return f"{v:.0f}%" if v >= 10 else f"{v:.1f}%"


def _load_text(m):
    load = m.get("load_average_1min")
    if load is None:
        return ""
    text = f"; load average {load:.2f} before the run"
    if m.get("usable_cpus") and load >= 0.5:
        text += " (busy machine: other work competes for the cores, expect noise)"
    return text


def _peer_versions(settings):
    peers = settings.get("peers", {})
    torch = (f"torch {peers['torch']} at {peers['torch_threads']} thread(s)" if peers.get("torch")
             else "torch not measured")
    return f"numpy {peers.get('numpy')} (1 thread), {torch}"


def format_report(report):
    """The report as text: header, one row per case and thread count, scaling, notes."""
    cfg, m, st = report.config, report.machine, report.settings
    lines = [
        f"fastpe {cfg.get('fastpe')} benchmark ({st['mode']} run)  --  numpy {m['numpy']}, "
        f"Python {m['python']}, {m['platform']}",
        f"CPU: {m['cpu']} ({m['usable_cpus']} usable of {m['logical_cpus']} logical CPUs)"
        + _load_text(m),
        f"threads: {st['threads']}"
        + ("" if st["threads_requested"] is not None else " (default: omp_max_threads)")
        + f"  |  openmp: {cfg.get('openmp')} ({cfg.get('openmp_version')})  |  simd: {cfg.get('simd')}",
        "times: medians of round-robin interleaved samples; probe = x += c (add) or t[:] = c (table)",
        "       at the same size, dtype and thread count; vs ref = reference/fastpe; "
        "% probe = probe/fastpe x 100",
        "peers (what users write instead): the encoding computed once, untimed, then per call numpy "
        "`x += table[o:o+T]`, torch `x.add_(table[o:o+T])`",
        "       (rotary: HF's `q*cos + rotate_half(q)*sin` with cached cos/sin rows), checked against fastpe "
        "once per case; " + _peer_versions(st),
        "fastpe/peer = fastpe time / fastest peer's time (lower is better; below 1.00x fastpe is faster); "
        "- = no peer for this op, n/m = not measured",
        "",
    ]
    header = ("case", "shape", "dtype", "thr", "fastpe", *PEER_NAMES, "reference", "probe",
              "fastpe/peer", "vs ref", "% probe", "GB/s", "n f/r/p")
    table = []
    notes = []

    def mark(note):
        if note not in notes:
            notes.append(note)
        return f"[{notes.index(note) + 1}]"

    for res in report.results:
        marks = "".join(mark(note) for note in res.notes)
        for row in res.rows():
            n = row["n"]
            peer_cells = []
            for name in PEER_NAMES:
                if name in res.peers_not_measured:
                    peer_cells.append("n/m" + mark(f"{name}: not measured, {res.peers_not_measured[name]}"))
                else:
                    peer_cells.append(fmt_time(row["peers_s"][name]))
            best = row["best_peer"]
            table.append((
                res.case.name,
                shape_str(res.shape),
                "f32" if res.dtype == np.float32 else "f64" if res.dtype == np.float64 else res.dtype.name,
                str(row["threads"]),
                fmt_time(row["fastpe_s"]),
                *peer_cells,
                fmt_time(row["reference_s"]) + marks,
                fmt_time(row["probe_s"]),
                f"{row['fastpe_over_best_peer']:.2f}x {best}" if best else "-",
                fmt_ratio(row["speedup_vs_reference"]),
                fmt_pct(row["percent_of_probe"]),
                f"{row['gbps']['fastpe']:.1f}",
                f"{n['fastpe']}/{n['reference'] or '-'}/{n['probe']}",
            ))
    widths = [max(len(h), *(len(r[i]) for r in table)) if table else len(h) for i, h in enumerate(header)]
    right = set(range(3, len(header)))

    def fmt(cells):
        return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    lines.append(fmt(header))
    lines.append("  ".join("-" * w for w in widths))
    lines.extend(fmt(r) for r in table)
    lines.append("GB/s: fastpe's array traffic (add: read + write of x; table: write of out) per second")
    scaling = report.scaling()
    if scaling:
        lines.append("")
        lines.append("thread scaling (time at fewer threads / time at more threads):")
        for sc in scaling:
            lo, hi = sc["threads"]
            parts = []
            for impl in ("fastpe", "probe"):
                if impl in sc:
                    e = sc[impl]
                    parts.append(f"{impl} {fmt_time(e['t_low_s'])} -> {fmt_time(e['t_high_s'])} "
                                 f"= {e['speedup']:.2f}x")
            lines.append(f"  {sc['case']} {shape_str(sc['shape'])} {sc['dtype']}, {lo} -> {hi} threads: "
                         + "; ".join(parts))
    if notes:
        lines.append("")
        lines.extend(f"[{i + 1}] {note}" for i, note in enumerate(notes))
    lines.append("")
    lines.append(f"total {report.elapsed_s:.1f} s")
    return "\n".join(lines)


def write_json(report, path):
    """All figures of the report as JSON."""
    with open(path, "w") as fh:
        json.dump(report.to_dict(), fh, indent=2, allow_nan=False)
        fh.write("\n")
