"""Type hints: the public API type-checks under mypy --strict as users call it.

mypy checks tests/packaging/typing_usage.py (every call must pass) and a snippet of
deliberate mistakes (each must be reported on its line with its error code,
so a broken setup that checks nothing cannot pass). It runs once for both,
on the fastpe package this session imports: an installed wheel is found the
way users' mypy finds it (site-packages, through py.typed); a source tree
built in place is put on MYPYPATH. The stubs of the compiled modules are
compared with the built modules, name by name and parameter by parameter.
"""

import ast
import importlib
import importlib.util
import inspect
import os
import re
import subprocess
import sys
import types
import typing
from pathlib import Path

import pytest
from optional import extra_import

import fastpe
import fastpe.reference

PACKAGE_DIR = Path(fastpe.__file__).resolve().parent
USAGE = Path(__file__).resolve().parent / "typing_usage.py"

# mypy must report an error on each marked line and nowhere else (the codes
# say what mypy 2.4 reports; the test compares lines only).
MISTAKES = '''\
import numpy as np
import numpy.typing as npt

import fastpe
from fastpe import _kernels

x = np.zeros((2, 16, 8), dtype=np.float32)
fastpe.add_sinusoidal(x, num_threads="4")  # error: arg-type
fastpe.sinusoidal_table(16, 8, layout="sideways")  # error: arg-type
fastpe.rope_inv_freq(64, scaling=[("rope_type", "linear")])  # error: arg-type
one: npt.NDArray[np.float32] = fastpe.apply_rotary(x, x)  # error: assignment
pair: tuple[npt.NDArray[np.float32], ...] = fastpe.apply_rotary(x)  # error: arg-type
fastpe.apply_rotary()  # error: call-overload
_kernels.probe(x, 1.0, True, "2")  # error: arg-type
'''

ERROR_LINE = re.compile(r"^(?P<file>[^:\n]+):(?P<line>\d+): error: .*\[(?P<code>[a-z-]+)\]$", re.M)


def _in_site_packages(directory):
    return directory.name in ("site-packages", "dist-packages")


class MypyRun(typing.NamedTuple):
    status: int
    stdout: str
    cwd: Path
    mistakes: Path
    parsed: list  # the files mypy parsed as the module fastpe

    def errors(self, path):
        """[(line, code)] of the errors mypy reports in path."""
        return [(int(m["line"]), m["code"]) for m in ERROR_LINE.finditer(self.stdout)
                if (self.cwd / m["file"]).resolve() == path.resolve()]


@pytest.fixture(scope="module")
def mypy_run(tmp_path_factory):
    extra_import("mypy", "test")
    work = tmp_path_factory.mktemp("mypy")
    mistakes = work / "mistakes.py"
    mistakes.write_text(MISTAKES)
    env = {k: v for k, v in os.environ.items() if k not in ("MYPYPATH", "PYTHONPATH")}
    if not _in_site_packages(PACKAGE_DIR.parent):
        env["MYPYPATH"] = str(PACKAGE_DIR.parent)
    # cwd is the scratch directory, so a source tree at the repository root
    # cannot stand in for the package under test. fastpe's own function
    # bodies are untyped: --follow-imports=silent checks the calls against
    # its signatures without reporting on its internals.
    cmd = [sys.executable, "-m", "mypy", "--strict", "--follow-imports=silent", "--show-error-codes",
           "--no-error-summary", "--no-color-output", "--verbose", "--cache-dir", str(work / "cache"),
           "--python-executable", sys.executable, str(USAGE), str(mistakes)]
    proc = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=600)
    parsed = re.findall(r"Parsing (\S+) \(fastpe\)", proc.stderr)
    return MypyRun(proc.returncode, proc.stdout, work, mistakes, parsed)


def test_mypy_checks_the_imported_package(mypy_run):
    assert mypy_run.parsed, f"mypy did not parse fastpe at all:\n{mypy_run.stdout}"
    parsed = {(mypy_run.cwd / p).resolve() for p in mypy_run.parsed}
    assert parsed == {PACKAGE_DIR / "__init__.py"}, (parsed, PACKAGE_DIR)


def test_usage_type_checks_strictly(mypy_run):
    assert mypy_run.status in (0, 1), f"mypy failed to run (status {mypy_run.status}):\n{mypy_run.stdout}"
    assert mypy_run.errors(USAGE) == [], f"mypy --strict rejects {USAGE.name}:\n{mypy_run.stdout}"
    # Nothing but the mistakes' errors and notes: no crash, no note on a missing module.
    mistakes = mypy_run.mistakes.name
    other = [line for line in mypy_run.stdout.splitlines() if line.strip() and not line.startswith(mistakes)]
    assert other == [], mypy_run.stdout


def test_mistakes_are_reported(mypy_run):
    expected = [n for n, line in enumerate(MISTAKES.splitlines(), start=1) if "# error: " in line]
    assert mypy_run.status == 1, mypy_run.stdout
    assert sorted({line for line, _ in mypy_run.errors(mypy_run.mistakes)}) == expected, mypy_run.stdout


def test_usage_file_runs():
    """The calls type-checked above are real calls that succeed."""
    spec = importlib.util.spec_from_file_location("typing_usage", USAGE)
    usage = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(usage)
    for name in ("tables", "fused_adds", "rotary", "biases", "reference", "configuration"):
        getattr(usage, name)()


def test_package_is_marked_typed():
    assert (PACKAGE_DIR / "py.typed").is_file()


@pytest.mark.parametrize("module", [fastpe, fastpe.reference], ids=lambda m: m.__name__)
def test_public_functions_are_annotated(module):
    """Every public function has complete hints that resolve at run time."""
    for name in module.__all__:
        func = getattr(module, name)
        if not callable(func) or isinstance(func, type):
            continue
        hints = typing.get_type_hints(func)
        params = inspect.signature(func).parameters
        assert "return" in hints, name
        assert set(params) <= set(hints), f"{module.__name__}.{name} lacks hints for {set(params) - set(hints)}"


def _stub_names(path):
    """{name: parameter names, None for a constant, or {public member: None} for a class} of a .pyi's top level."""
    names = {}
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ClassDef):
            members = _stub_names_of_body(node.body)
            names[node.name] = {member: None for member in members}
        elif isinstance(node, ast.FunctionDef):
            args = node.args
            names[node.name] = [a.arg for a in args.posonlyargs + args.args + args.kwonlyargs]
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names[node.target.id] = None
        elif isinstance(node, ast.Assign):
            names.update((t.id, None) for t in node.targets if isinstance(t, ast.Name))
    return {name: params for name, params in names.items() if not name.startswith("_")}


def _stub_names_of_body(body):
    members = set()
    for node in body:
        if isinstance(node, ast.FunctionDef):
            members.add(node.name)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            members.add(node.target.id)
    return {name for name in members if not name.startswith("_")}


def _module_names(module):
    """The same for a compiled module: public names, less imported modules and Cython internals."""
    names = {}
    for name in dir(module):
        value = getattr(module, name)
        if name.startswith("_") or isinstance(value, types.ModuleType):
            continue
        if isinstance(value, type):
            own = set(vars(value)) | set(getattr(value, "_fields", ()))
            names[name] = {member: None for member in own if not member.startswith("_")}
        else:
            names[name] = list(inspect.signature(value).parameters) if callable(value) else None
    return names


@pytest.mark.parametrize("name", ["_kernels", "_frontdoor"])
def test_stubs_match_compiled_module(name):
    module = importlib.import_module(f"fastpe.{name}")
    stub = PACKAGE_DIR / f"{name}.pyi"
    assert stub.is_file(), f"{stub} is missing"
    assert _stub_names(stub) == _module_names(module)
