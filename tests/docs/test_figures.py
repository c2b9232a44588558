"""The performance figures of README.md and docs/performance.rst are rendered
from one committed bench run (tools/render_figures.py): the committed ones
pass the tool's check, and the check fails on an edited table, an edited
report and a source changed after the run. The tool's other paths run on a
copy of the checkout with a small run of the benchmark."""

import importlib.util
import json
import os
import shutil
import subprocess
import sys

import pytest
from util import REPO_ROOT

from fastpe import bench
from fastpe.bench import measure, provenance

TOOL = os.path.join(REPO_ROOT, "tools", "render_figures.py")
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def _tool():
    if not os.path.exists(TOOL):
        pytest.skip("tools/render_figures.py is not beside the tests (an installed test tree)")
    spec = importlib.util.spec_from_file_location("render_figures", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_committed_figures_pass_the_check():
    """The CI check: the committed tables and report are those of the committed
    JSON, and no figure source changed since that run (or, before the first
    generated run, no block claims to be generated)."""
    tool = _tool()
    problems, _ = tool.check(REPO_ROOT)
    assert problems == []


def test_every_figure_source_the_list_names_exists():
    """FIGURE_SOURCES follows renames: a named module that is gone would leave its successor unwatched."""
    if not os.path.isdir(os.path.join(REPO_ROOT, "fastpe")):
        pytest.skip("the fastpe sources are not beside the tests (an installed test tree)")
    sources = provenance.figure_sources(REPO_ROOT)
    assert "fastpe/_kernels.pyx" in sources and "fastpe/_simd.h" in sources


@pytest.fixture(scope="module")
def tool():
    return _tool()


@pytest.fixture
def tree(tmp_path, tool):
    """A copy of the checkout's documents and fastpe sources."""
    root = tmp_path / "checkout"
    for rel in tool.TARGETS:
        os.makedirs(root / os.path.dirname(rel), exist_ok=True)
        shutil.copy(os.path.join(REPO_ROOT, rel), root / rel)
    os.makedirs(root / "docs" / "_static", exist_ok=True)
    shutil.copytree(os.path.join(REPO_ROOT, "fastpe"), root / "fastpe",
                    ignore=shutil.ignore_patterns("*.so", "*.pyd", "__pycache__", "*.c"))
    _hand_typed(tool, root)
    return str(root)


def _hand_typed(tool, root):
    """The copied documents as they were before the first generated run,
    whatever the checkout's are now: each figure block hand-typed."""
    for rel, syntax in tool.TARGETS.items():
        generated, hand, end = tool.MARKERS[syntax]
        path = root / rel
        text = path.read_text()
        start = text.find(generated)
        if start >= 0:
            stop = text.index(end, start)
            text = text[:start] + hand + "\n\nfigures typed by hand\n\n" + text[stop:]
            path.write_text(text)


@pytest.fixture(scope="module")
def run_document():
    """A tiny run on a quiet machine, as its JSON document."""
    saved = measure.load_average
    measure.load_average = lambda: 0.0
    try:
        cases = [bench.Case("add", bench.ADD, (1, 16, 64), options=bench.NEW_OFFSET),
                 bench.Case("scaling", bench.ADD, (2, 2048, 1024), threads=(1, 2), reference=False, peers=False),
                 bench.Case("decode", bench.ROTARY, (1, 4, 1, 16), options=bench.NEW_OFFSET)]
        return json.loads(json.dumps(bench.run(cases=cases, repeat=2, budget_s=0.5, log=None, quick=True).to_dict()))
    finally:
        measure.load_average = saved


def _committed(tool, root, data):
    """`data` as the committed run of the checkout at `root`."""
    data = json.loads(json.dumps(data))
    data["source"] = {"files": provenance.source_digests(root), "commit": COMMIT}
    with open(os.path.join(root, tool.JSON_PATH), "w") as fh:
        json.dump(data, fh)
    return data


def _edit(root, rel, old, new):
    path = os.path.join(root, rel)
    with open(path) as fh:
        text = fh.read()
    assert old in text
    with open(path, "w") as fh:
        fh.write(text.replace(old, new, 1))


def test_rendered_figures_pass_the_check(tool, tree, run_document):
    data = _committed(tool, tree, run_document)
    tool.render(tree, data, plot=False)
    problems, notice = tool.check(tree)
    assert problems == [] and notice.startswith(f"the figures are those of {tool.JSON_PATH} (commit 0123456)")
    with open(os.path.join(tree, "README.md")) as fh:
        readme = fh.read()
    assert tool.MARKERS["markdown"][0] in readme and tool.MARKERS["markdown"][1] not in readme
    assert "`add_sinusoidal` (1, 16, 64)" in readme and "at commit `0123456`" in readme
    with open(os.path.join(tree, "docs", "performance.rst")) as fh:
        rst = fh.read()
    assert "Thread scaling in that run: scaling (2,2048,1024) float32, 1 -> 2 threads: fastpe" in rst
    with open(os.path.join(tree, tool.REPORT_PATH)) as fh:
        assert fh.read() == bench.format_report(data) + "\n"


def test_hand_typed_figures_beside_a_json_fail(tool, tree, run_document):
    assert tool.check(tree)[0] == []  # the repository's state before the first generated run
    _committed(tool, tree, run_document)
    problems, _ = tool.check(tree)
    assert any("hand-typed figures beside" in p for p in problems)


def test_generated_figures_without_their_json_fail(tool, tree, run_document):
    tool.render(tree, _committed(tool, tree, run_document), plot=False)
    os.remove(os.path.join(tree, tool.JSON_PATH))
    problems, _ = tool.check(tree)
    assert problems == ["README.md, docs/performance.rst: generated figures, but docs/_static/bench.json is not "
                        "committed"]


def test_an_edited_table_fails_the_check(tool, tree, run_document):
    data = _committed(tool, tree, run_document)
    tool.render(tree, data, plot=False)
    _edit(tree, "README.md", "| `add_sinusoidal` (1, 16, 64) |", "| `add_sinusoidal` (1, 16, 64) (edited) |")
    problems, _ = tool.check(tree)
    assert problems == ["README.md: the figures differ from docs/_static/bench.json (python tools/render_figures.py)"]


def test_an_edited_report_fails_the_check(tool, tree, run_document):
    tool.render(tree, _committed(tool, tree, run_document), plot=False)
    _edit(tree, tool.REPORT_PATH, "total", "in all")
    problems, _ = tool.check(tree)
    assert problems == [f"{tool.REPORT_PATH}: differs from {tool.JSON_PATH} (python tools/render_figures.py)"]


def test_a_source_changed_after_the_run_fails_the_check(tool, tree, run_document):
    tool.render(tree, _committed(tool, tree, run_document), plot=False)
    with open(os.path.join(tree, "fastpe", "_simd.h"), "a") as fh:
        fh.write("\n")
    open(os.path.join(tree, "fastpe", "_new_kernel.pyx"), "w").close()
    problems, _ = tool.check(tree)
    assert len(problems) == 1
    assert "these sources changed since: fastpe/_new_kernel.pyx, fastpe/_simd.h." in problems[0]
    assert "python tools/render_figures.py --measure" in problems[0]


def test_a_change_outside_the_figure_sources_keeps_the_figures_fresh(tool, tree, run_document):
    tool.render(tree, _committed(tool, tree, run_document), plot=False)
    with open(os.path.join(tree, "fastpe", "_cli.py"), "a") as fh:
        fh.write("\n")
    assert tool.check(tree)[0] == []


def test_a_figure_source_the_list_names_must_exist(tool, tree, run_document):
    tool.render(tree, _committed(tool, tree, run_document), plot=False)
    os.remove(os.path.join(tree, "fastpe", "_plan.py"))
    problems, _ = tool.check(tree)
    assert len(problems) == 1 and "fastpe/_plan.py (named in fastpe/bench/provenance.py FIGURE_SOURCES)" in problems[0]


def test_a_block_needs_one_pair_of_markers(tool, tree):
    _edit(tree, "README.md", "<!-- figures: end -->", "")
    problems, _ = tool.check(tree)
    assert problems == ["README.md: expected one figure block (an opening marker, then '<!-- figures: end -->'); "
                        "found 1 opening and 0 closing markers"]


def _git(root, *args):
    subprocess.run(["git", "-C", root, "-c", "user.name=t", "-c", "user.email=t@t", *args], check=True,
                   capture_output=True)


@pytest.fixture
def repo(tree, tmp_path, run_document):
    """The copy as a git repository, and a stand-in for Python whose
    `-m fastpe bench --json PATH` copies the run's JSON of $FAKE_BENCH_JSON."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    _git(tree, "init", "-q")
    _git(tree, "add", "-A")
    _git(tree, "commit", "-q", "-m", "a commit")
    fake = tmp_path / "fake-python"
    fake.write_text('#!/bin/sh\n# -m fastpe bench --json PATH ...\ncp "$FAKE_BENCH_JSON" "$5"\n')
    fake.chmod(0o755)
    return tree, str(fake)


def _fake_run(monkeypatch, tmp_path, data, files):
    data = json.loads(json.dumps(data))
    data["source"] = {"files": files, "commit": None}
    path = tmp_path / "fake-run.json"
    path.write_text(json.dumps(data))
    monkeypatch.setenv("FAKE_BENCH_JSON", str(path))


def test_measure_records_the_commit_of_the_measured_code(tool, repo, run_document, monkeypatch, tmp_path):
    root, fake = repo
    _fake_run(monkeypatch, tmp_path, run_document, provenance.source_digests(root))
    data = tool.measure(root, fake, [])
    head = subprocess.run(["git", "-C", root, "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    assert data["source"]["commit"] == head
    with open(os.path.join(root, tool.JSON_PATH)) as fh:
        assert json.load(fh)["source"]["commit"] == head


def test_measure_refuses_a_fastpe_that_is_not_the_checkout(tool, repo, run_document, monkeypatch, tmp_path):
    root, fake = repo
    files = dict(provenance.source_digests(root), **{"fastpe/_simd.h": "0" * 64})
    _fake_run(monkeypatch, tmp_path, run_document, files)
    with pytest.raises(tool.FigureError, match=r"is not this checkout's code at HEAD \(fastpe/_simd.h differ\)"):
        tool.measure(root, fake, [])
    assert not os.path.exists(os.path.join(root, tool.JSON_PATH))


def test_measure_refuses_uncommitted_sources(tool, repo, run_document, monkeypatch, tmp_path):
    root, fake = repo
    with open(os.path.join(root, "fastpe", "_simd.h"), "a") as fh:
        fh.write("\n")
    _fake_run(monkeypatch, tmp_path, run_document, provenance.source_digests(root))
    with pytest.raises(tool.FigureError, match="commit these first"):
        tool.measure(root, fake, [])


def test_render_draws_the_plot(tool, tree, run_document):
    pytest.importorskip("matplotlib", reason='matplotlib is not installed: pip install ".[bench]"')
    tool.render(tree, _committed(tool, tree, run_document))
    with open(os.path.join(tree, tool.PLOT_PATH), "rb") as fh:
        assert fh.read(8) == b"\x89PNG\r\n\x1a\n"


def test_the_tool_runs_as_a_script(tool, tree, run_document):
    _committed(tool, tree, run_document)
    script = [sys.executable, TOOL, "--root", tree]
    assert subprocess.run(script + ["--check"], capture_output=True, text=True).returncode == 1  # hand blocks
    rendered = subprocess.run(script, capture_output=True, text=True)
    assert rendered.returncode == 0, rendered.stderr
    checked = subprocess.run(script + ["--check"], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    assert "the figures are those of docs/_static/bench.json (commit 0123456), and fresh" in checked.stdout
