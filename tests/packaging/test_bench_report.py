"""The benchmark's report from its JSON document: the busy-machine rule
(what is measured again and what is withheld), the columns, the labels of
the documentation's tables and the chart. Nothing here asserts a speed."""

import json
import struct

import numpy as np
import pytest

from fastpe import bench
from fastpe.bench import measure, report, results
from fastpe.bench.measure import Series

NEW_OFFSET = bench.NEW_OFFSET
TINY = [bench.Case("add", bench.ADD, (1, 16, 64), options=NEW_OFFSET),
        bench.Case("table", bench.TABLE, (16, 32))]


def _series(impl, samples, threads=1):
    return Series(impl, threads, fn=None, resets=False, samples=list(samples))


def _result(series, load=None):
    case = bench.Case("add", bench.ADD, (1, 16, 64), options=NEW_OFFSET)
    return results.CaseResult(case, (1, 16, 64), np.dtype(np.float32), series, [], 0.0,
                              load=load or {"before": 0.0, "after": 0.0, "usable_cpus": 2})


def test_spread_is_the_interquartile_range_over_the_median():
    assert results.spread([1.0, 2.0, 3.0, 4.0, 5.0]) == pytest.approx((4.0 - 2.0) / 3.0)
    assert results.spread([1.0, 1.0, 1.0]) == 0.0
    assert results.spread([1.0, 9.0]) is None  # too few samples to judge


def test_a_series_spread_beyond_the_bound_is_noisy_the_reference_is_not_judged():
    steady = [1.0, 1.01, 0.99, 1.0, 1.02]
    wide = [1.0, 1.5, 0.6, 1.3, 0.7]  # interquartile range 0.6 of a median 1.0
    assert results.spread(wide) > results.SPREAD_BOUND >= results.spread(steady)
    res = _result([_series("fastpe", wide), _series("probe", steady), _series("numpy", steady),
                   _series("reference", wide)])
    assert res.noisy() == ["fastpe"]
    assert res.unreliable_reasons() == [f"noisy: fastpe spread beyond {results.SPREAD_BOUND:.0%} of the median"]
    row = res.rows()[0]
    assert row["noisy"] == ["fastpe"] and row["busy"] is False
    shown = report.figures(row)
    assert shown["fastpe"] == shown["fastpe/peer"] == shown["% probe"] == shown["vs ref"] == "noisy"
    assert shown["peers"]["numpy"].endswith("s") and shown["probe"].endswith("s")  # steady figures still print


def test_a_load_above_the_usable_cpus_makes_the_case_busy():
    steady = [1.0, 1.01, 0.99]
    res = _result([_series("fastpe", steady), _series("probe", steady)],
                  load={"before": 1.5, "after": 2.5, "usable_cpus": 2})
    assert res.busy and res.unreliable_reasons() == ["busy: load average 2.50 above the 2 usable CPUs"]
    shown = report.figures(res.rows()[0])
    assert shown["fastpe"] == shown["probe"] == shown["reference"] == "busy"
    at_the_limit = _result([_series("fastpe", steady)], load={"before": 2.0, "after": 2.0, "usable_cpus": 2})
    assert not at_the_limit.busy  # the run's own two threads make a load of 2


def test_a_busy_case_is_measured_again_and_then_withheld(monkeypatch):
    loads = iter([5.0] * 100)
    monkeypatch.setattr(measure, "load_average", lambda: next(loads))
    measured = []
    real = measure._measure

    def counting(*args, **kwargs):
        measured.append(args[0].name)
        return real(*args, **kwargs)

    monkeypatch.setattr(measure, "_measure", counting)
    run = bench.run(cases=TINY, repeat=2, budget_s=0.5, log=None, quick=True)
    assert measured == ["add", "add", "table", "table"]
    for res in run.results:
        assert res.remeasured == [f"busy: load average 5.00 above the {res.load['usable_cpus']} usable CPUs"]
    text = bench.format_report(run)
    add_line = next(line for line in text.splitlines() if line.startswith("add "))
    assert " us" not in add_line and "busy" in add_line
    assert "measured again: the first measurement was busy: load average 5.00" in text


def test_a_case_that_settles_is_measured_twice_and_printed(monkeypatch):
    loads = iter([5.0, 5.0] + [0.0] * 100)  # busy during the first measurement only
    monkeypatch.setattr(measure, "load_average", lambda: next(loads))
    run = bench.run(cases=TINY[:1], repeat=2, budget_s=0.5, log=None, quick=True)
    (res,) = run.results
    assert res.remeasured and not res.busy
    assert report.figures(res.rows()[0])["fastpe"].endswith("s")


def test_without_remeasure_a_busy_case_is_measured_once(monkeypatch):
    monkeypatch.setattr(measure, "load_average", lambda: 5.0)
    run = bench.run(cases=TINY[:1], repeat=2, budget_s=0.5, log=None, quick=True, remeasure=False)
    assert run.results[0].remeasured == [] and run.results[0].busy


@pytest.fixture(scope="module")
def tiny_document():
    """The JSON document of a tiny run on a quiet machine (load average 0)."""
    saved = measure.load_average
    measure.load_average = lambda: 0.0
    try:
        run = bench.run(cases=[*TINY, bench.Case("decode", bench.ROTARY, (1, 4, 1, 16),
                                                 options={"scaling": bench.YARN_SCALING, **NEW_OFFSET})],
                        repeat=2, budget_s=1.0, log=None, quick=True)  # 2 samples: too few to judge
    finally:
        measure.load_average = saved
    return run, json.loads(json.dumps(run.to_dict()))


def test_the_text_report_is_the_same_from_the_json(tiny_document):
    run, data = tiny_document
    assert bench.format_report(data) == bench.format_report(run)


def test_the_json_records_the_measured_sources(tiny_document):
    from fastpe.bench import provenance

    _, data = tiny_document
    files = data["source"]["files"]
    assert files == provenance.source_digests(provenance.installed_root(), strict=False)
    assert "fastpe/_simd.h" in files and "fastpe/bench/cases.py" in files
    assert data["source"]["commit"] is None  # tools/render_figures.py records it


def test_columns_are_the_baseline_peers_and_those_measured(tiny_document):
    _, data = tiny_document
    measured = {name for c in data["cases"] for r in c["rows"] for name, s in r["peers_s"].items() if s is not None}
    columns = report.peer_columns(data)
    assert columns[:2] == ["numpy", "torch"]
    assert set(columns[2:]) == measured - {"numpy", "torch"}
    assert "torch.compile" not in columns  # left out of --quick runs


def test_doc_table_labels_and_cells(tiny_document):
    _, data = tiny_document
    header, rows = report.doc_table(data)
    assert header == ["case", "fastpe", "best peer", "fastpe/peer", "% probe", "vs reference"]
    labels = [row[0] for row in rows]
    assert labels == ["`add_sinusoidal` (1, 16, 64)", "`sinusoidal_table(out=)` (16, 32)",
                      "`apply_rotary(q, k)` (1, 4, 1, 16), yarn scaling"]
    add, table, decode = rows
    best = data["cases"][0]["rows"][0]["best_peer"]
    assert add[2].endswith(f" ({best})")
    assert add[3] == f"{data['cases'][0]['rows'][0]['fastpe_over_best_peer']:.2f}x"
    assert table[2] == table[3] == "-" and table[4].endswith("% of fill")
    busy = json.loads(json.dumps(data))
    for case in busy["cases"]:
        case["rows"][0]["busy"] = True
    _, busy_rows = report.doc_table(busy)
    assert busy_rows[0][1:] == ["busy"] * 5 and busy_rows[1][1:] == ["busy", "-", "-", "busy", "busy"]
    full_header, full_rows = report.doc_table(data, peers=report.peer_columns(data))
    assert full_header[2:-3] == report.peer_columns(data)
    assert len(full_rows) == len(rows)


def test_case_labels_name_what_differs():
    case = {"op": "add_sinusoidal(preset=)", "shape": [8, 2048, 1024], "dtype": "bfloat16",
            "options": {"preset": "fairseq", "new_offset": True}}
    assert report.case_label(case) == '`add_sinusoidal(preset="fairseq")` (8, 2048, 1024), bfloat16'
    grid = {"op": "add_sincos_2d", "shape": [8, 2048, 1024], "dtype": "float32", "options": {"grid": [32, 64]}}
    assert report.case_label(grid) == "`add_sincos_2d` (8, 2048, 1024), 32x64 grid"


def _png_size(path):
    with open(path, "rb") as fh:
        head = fh.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", head[16:24])


def test_the_plot_is_drawn_from_the_json(tiny_document, tmp_path):
    pytest.importorskip("matplotlib", reason='matplotlib is not installed: pip install ".[bench]"')
    _, data = tiny_document
    data = json.loads(json.dumps(data))
    data["cases"][0]["rows"][0]["noisy"] = ["fastpe"]  # a withheld figure is drawn as text
    path = tmp_path / "bench.png"
    bench.plot(data, str(path))
    width, height = _png_size(path)
    assert width <= 1000 and height > 200  # readable at the README's width
