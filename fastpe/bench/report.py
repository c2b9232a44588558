"""The benchmark's text report, its JSON file, and the cells of the
documentation's performance tables, all rendered from the run's JSON
document (``Report.to_dict()``), so that a committed JSON renders the same
text as the run that wrote it.

One rule for every printed figure (``cell``): a figure computed from a
series the busy-machine rule calls unreliable (fastpe.bench.results) is
printed as "busy" or "noisy", never as a number.
"""

import json
import math

from .peers import PEERS

__all__ = ["case_label", "doc_table", "document", "label_parts", "fmt_pct", "fmt_ratio", "fmt_time", "format_report", "peer_columns",
           "shape_str", "write_json"]


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


def document(report):
    """The JSON document of a Report, or the document itself."""
    return report if isinstance(report, dict) else report.to_dict()


def unreliable(row, *impls):
    """"busy" or "noisy" when a figure of these implementations breaks the
    busy-machine rule in this row, else None."""
    if row.get("busy"):
        return "busy"
    if any(impl in row.get("noisy", ()) for impl in impls if impl):
        return "noisy"
    return None


def cell(row, value, impls, fmt):
    """A printed figure: fmt(value), or why it is not printed."""
    return unreliable(row, *impls) or fmt(value)


def _ratio(v):
    return "-" if v is None else f"{v:.2f}x"


def figures(row):
    """The printed figures of one report row (every table shows these)."""
    best = row["best_peer"]
    return {
        "fastpe": cell(row, row["fastpe_s"], ("fastpe",), fmt_time),
        "reference": cell(row, row["reference_s"], (), fmt_time),
        "probe": cell(row, row["probe_s"], ("probe",), fmt_time),
        "peers": {name: cell(row, s, (name,), fmt_time) for name, s in row["peers_s"].items()},
        "best_peer": best,
        "fastpe/peer": cell(row, row["fastpe_over_best_peer"], ("fastpe", best), _ratio) if best else "-",
        "vs ref": cell(row, row["speedup_vs_reference"], ("fastpe",), fmt_ratio),
        "% probe": cell(row, row["percent_of_probe"], ("fastpe", "probe"), fmt_pct),
        "GB/s": cell(row, row["gbps"]["fastpe"], ("fastpe",), lambda v: "-" if v is None else f"{v:.1f}"),
    }


def peer_columns(data):
    """The peers the tables show: the baseline ones always, the others where measured."""
    measured = {name for case in data["cases"] for row in case["rows"]
                for name, s in row["peers_s"].items() if s is not None}
    return [p.name for p in PEERS if p.always_column or p.name in measured]


def _short_dtype(name):
    return {"float32": "f32", "float64": "f64"}.get(name, name)


def _load_text(m):
    load = m.get("load_average_1min")
    if load is None:
        return ""
    text = f"; load average {load:.2f} before the run"
    if m.get("usable_cpus") and load >= 0.5:
        text += " (busy machine: other work competes for the cores, expect noise)"
    return text


def _peer_versions(settings):
    measured = ", ".join(f"{name} {p['version']} ({p['threads']} thread{'s' if p['threads'] != 1 else ''})"
                         for name, p in settings.get("peers", {}).items())
    missing = settings.get("peers_not_measured", {})
    text = f"measured: {measured or 'none'}"
    if missing:
        text += "; not measured: " + "; ".join(f"{name} ({why})" for name, why in missing.items())
    return text


def _compile_summary(data):
    counts = [c["peer_compiles"][name] for c in data["cases"] for name in c.get("peer_compiles", {})]
    if not counts:
        return []
    before = sum(c["before_timing"] for c in counts)
    timed = sum(c["while_timed"] for c in counts)
    return [f"torch.compile: {before} graph(s) compiled before timing in {len(counts)} case(s), "
            f"{timed} recompile(s) while timed"]


def format_report(report):
    """The report as text: header, one row per case and thread count, scaling, notes."""
    data = document(report)
    cfg, m, st = data["config"], data["machine"], data["settings"]
    columns = peer_columns(data)
    bound = st.get("spread_bound")
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
        "       (rotary: HF's `q*cos + rotate_half(q)*sin` with cached cos/sin rows); torch.compile: that torch "
        "code compiled by inductor;",
        "       onnxruntime: its com.microsoft RotaryEmbedding op with IOBinding; ipex: its fused rotary op with "
        "a cached table; each checked against fastpe once per case",
        "       " + _peer_versions(st),
        *_compile_summary(data),
        "fastpe/peer = fastpe time / fastest peer's time (lower is better; below 1.00x fastpe is faster); "
        "- = no peer for this op, n/m = not measured",
    ]
    lines.extend(f"not measured: case {name!r}: {why}" for name, why in st.get("cases_not_measured", {}).items())
    if bound is not None:
        lines.append(f"busy / noisy: not printed, measured twice while the load average exceeded the usable CPUs / "
                     f"the samples' interquartile range exceeded {bound:.0%} of their median")
    lines.append("")
    header = ("case", "shape", "dtype", "thr", "fastpe", *columns, "reference", "probe",
              "fastpe/peer", "vs ref", "% probe", "GB/s", "n f/r/p")
    table = []
    notes = []

    def mark(note):
        if note not in notes:
            notes.append(note)
        return f"[{notes.index(note) + 1}]"

    for case in data["cases"]:
        case_notes = list(case["notes"])
        if case.get("remeasured"):
            case_notes.append("measured again: the first measurement was " + "; ".join(case["remeasured"]))
        for name, count in case.get("peer_compiles", {}).items():
            if count["while_timed"]:
                case_notes.append(f"{name}: {count['while_timed']} recompile(s) while timed")
        marks = "".join(mark(note) for note in case_notes)
        missing = case["peers_not_measured"]
        for row in case["rows"]:
            shown = figures(row)
            n = row["n"]
            peer_cells = [("n/m" + mark(f"{name}: not measured, {missing[name]}")) if name in missing
                          else shown["peers"].get(name, "-") for name in columns]
            best = row["best_peer"]
            table.append((
                case["name"],
                shape_str(case["shape"]),
                _short_dtype(case["dtype"]),
                str(row["threads"]),
                shown["fastpe"],
                *peer_cells,
                shown["reference"] + marks,
                shown["probe"],
                f"{shown['fastpe/peer']} {best}" if best else "-",
                shown["vs ref"],
                shown["% probe"],
                shown["GB/s"],
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
    if data["thread_scaling"]:
        lines.append("")
        lines.append("thread scaling (time at fewer threads / time at more threads):")
        lines.extend("  " + scaling_text(sc) for sc in data["thread_scaling"])
    if notes:
        lines.append("")
        lines.extend(f"[{i + 1}] {note}" for i, note in enumerate(notes))
    lines.append("")
    lines.append(f"total {data['elapsed_s']:.1f} s")
    return "\n".join(lines)


def scaling_text(sc):
    """One thread-scaling entry as a line of text."""
    lo, hi = sc["threads"]
    parts = [f"{impl} {fmt_time(sc[impl]['t_low_s'])} -> {fmt_time(sc[impl]['t_high_s'])} "
             f"= {sc[impl]['speedup']:.2f}x" for impl in ("fastpe", "probe") if impl in sc]
    return f"{sc['case']} {shape_str(sc['shape'])} {sc['dtype']}, {lo} -> {hi} threads: " + "; ".join(parts)


def label_parts(case):
    """(call, shape, [what differs from the default]) of a case: the call, the
    shape (of each of q and k for rotary), the dtype if not float32, the grid
    and the scaling."""
    options = case.get("options", {})
    call = case["op"]
    if options.get("preset"):
        call = f'add_sinusoidal(preset="{options["preset"]}")'
    extras = []
    if case["dtype"] != "float32":
        extras.append(case["dtype"])
    if options.get("grid"):
        extras.append("{}x{} grid".format(*options["grid"]))
    if options.get("scaling"):
        extras.append(f"{options['scaling']['rope_type']} scaling")
    return call, "(" + ", ".join(str(n) for n in case["shape"]) + ")", extras


def case_label(case):
    """A case as the documentation's tables name it."""
    call, shape, extras = label_parts(case)
    return f"`{call}` {shape}" + "".join(f", {e}" for e in extras)


def doc_table(data, peers=None):
    """(header, rows) of a documentation table: one row per case measured at
    the run's thread count (thread scaling is a sentence of its own). `peers`:
    a column per peer (None: one "best peer" column instead)."""
    header = ["case", "fastpe", *(peers if peers is not None else ["best peer"]), "fastpe/peer", "% probe",
              "vs reference"]
    rows = []
    for case in data["cases"]:
        if len(case["rows"]) != 1:
            continue
        row = case["rows"][0]
        shown = figures(row)
        if peers is not None:
            peer_cells = [shown["peers"].get(name, "-") if name not in case["peers_not_measured"] else "n/m"
                          for name in peers]
        else:
            best = row["best_peer"]
            withheld = unreliable(row, best)
            peer_cells = [withheld or f"{shown['peers'][best]} ({best})" if best else "-"]
        probe = shown["% probe"]
        if case["probe"] == "t[:] = c" and probe.endswith("%"):
            probe += " of fill"
        rows.append([case_label(case), shown["fastpe"], *peer_cells, shown["fastpe/peer"], probe, shown["vs ref"]])
    return header, rows


def write_json(report, path):
    """All figures of the report as JSON."""
    with open(path, "w") as fh:
        json.dump(document(report), fh, indent=2, allow_nan=False)
        fh.write("\n")
