"""What a newcomer meets first: the fastpe command, the error of an unbuilt
source folder, and the build facts show_config() reports (setup.py)."""

import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import sysconfig

import pytest

import fastpe
from fastpe import _kernels, bench
from processes import run_command
from util import REPO_ROOT as REPO

PACKAGE_DIR = os.path.dirname(os.path.abspath(fastpe.__file__))
BUILD_KEYS = {"openmp", "compiler", "compile_args", "link_args", "native", "sanitize"}


def fastpe_commands():
    """The ways to run the command line here: the installed script (absent when
    fastpe is only on PYTHONPATH, an in-place build) and python -m fastpe."""
    commands = [[sys.executable, "-m", "fastpe"]]
    script = shutil.which("fastpe", path=os.path.dirname(sys.executable))
    if script is not None:
        commands.append([script])
    return commands


COMMANDS = fastpe_commands()
COMMAND_IDS = [" ".join(os.path.basename(part) for part in command) for command in COMMANDS]


def test_the_fastpe_script_is_installed_with_the_package():
    try:
        distribution = importlib.metadata.distribution("fastpe")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip(f"fastpe is imported from {PACKAGE_DIR} without being installed (an in-place build)")
    scripts = [ep.value for ep in distribution.entry_points if ep.group == "console_scripts" and ep.name == "fastpe"]
    assert scripts == ["fastpe._cli:main"]
    assert len(COMMANDS) == 2, f"no fastpe script in {os.path.dirname(sys.executable)}"


# --------------------------------------------------------------------------
# fastpe info / config


def parse_show_config(text):
    """{key: value text} of show_config()'s 'key : value' lines."""
    pairs = (re.match(r"^(.+?)\s+: (.*)$", line) for line in text.splitlines())
    return {m.group(1): m.group(2) for m in pairs if m}


@pytest.mark.parametrize("command", COMMANDS, ids=COMMAND_IDS)
@pytest.mark.parametrize("subcommand", ["info", "config"])
def test_info_prints_show_config(command, subcommand):
    result = run_command(command + [subcommand])
    assert result.returncode == 0, result.stderr
    printed = parse_show_config(result.stdout)
    expected = fastpe.show_config(print_out=False)
    assert set(printed) == set(expected)
    for key in ("fastpe", "openmp", "compiler", "compile_args", "native", "sanitize"):
        assert printed[key] == str(expected[key]), key


@pytest.mark.parametrize("command", COMMANDS, ids=COMMAND_IDS)
def test_no_command_prints_the_usage(command):
    result = run_command(command)
    assert result.returncode == 0, result.stderr
    assert "bench" in result.stdout and "info" in result.stdout


@pytest.mark.parametrize("command", COMMANDS, ids=COMMAND_IDS)
def test_version_prints_the_package_version(command):
    result = run_command(command + ["--version"])
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-1] == fastpe.__version__ == importlib.metadata.version("fastpe")


@pytest.mark.parametrize("command", COMMANDS, ids=COMMAND_IDS)
def test_the_description_covers_the_whole_package(command):
    result = run_command(command + ["--help"])
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())
    for family in ("sinusoidal", "learned tables", "grids", "rotary embeddings (RoPE)", "ALiBi", "T5", "--version"):
        assert family in text, family


@pytest.mark.parametrize("command", COMMANDS, ids=COMMAND_IDS)
def test_a_bad_bench_option_prints_the_bench_usage(command):
    """Regression: `fastpe bench --bogus` printed the top-level usage."""
    result = run_command(command + ["bench", "--bogus"], timeout=60)
    assert result.returncode == 2 and result.stdout == ""
    usage, error = result.stderr.strip().splitlines()[0], result.stderr.strip().splitlines()[-1]
    assert usage.startswith("usage: ") and " bench [-h] [--quick]" in usage
    assert error.endswith("bench: error: unrecognized arguments: --bogus")


@pytest.mark.parametrize("command", COMMANDS, ids=COMMAND_IDS)
def test_bench_help_prints_every_option(command):
    """Regression: `fastpe bench --help` crashed (a bare "%" in an option's help is a format code to argparse)."""
    result = run_command(command + ["bench", "--help"], timeout=60)
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())
    for option in ("--quick", "--json PATH", "--plot PATH", "--threads N", "--repeat N"):
        assert option in text, option
    assert "% of the bandwidth probe" in text


@pytest.mark.parametrize("command", COMMANDS, ids=COMMAND_IDS)
def test_a_bad_top_level_option_prints_the_top_level_usage(command):
    result = run_command(command + ["--bogus"], timeout=60)
    assert result.returncode == 2
    assert "COMMAND ..." in result.stderr and "error: unrecognized arguments: --bogus" in result.stderr


@pytest.mark.parametrize("command", COMMANDS, ids=COMMAND_IDS)
def test_bench_rejects_a_bad_option_before_measuring(command):
    result = run_command(command + ["bench", "--repeat", "0"], timeout=60)
    assert result.returncode == 2
    assert "--repeat" in result.stderr and "positive integer" in result.stderr
    assert result.stdout == ""


@pytest.mark.slow
def test_fastpe_bench_quick_reports_every_quick_case():
    command = COMMANDS[-1]  # the script where it is installed
    result = run_command(command + ["bench", "--quick", "--repeat", "1"], timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    names = {case.name for case, _ in bench.select_cases(bench.CASES, quick=True)}
    assert names
    missing = sorted(name for name in names if name not in result.stdout)
    assert not missing, f"cases missing from the report: {missing}\n{result.stdout}"


# --------------------------------------------------------------------------
# import fastpe from a folder without compiled kernels


def unbuilt_copy(root, with_setup_py):
    """root/fastpe: the package's Python files without its compiled modules;
    root/setup.py makes root look like a source checkout."""
    shutil.copytree(PACKAGE_DIR, os.path.join(root, "fastpe"),
                    ignore=shutil.ignore_patterns("*.so", "*.pyd", "*.dylib", "__pycache__"))
    if with_setup_py:
        open(os.path.join(root, "setup.py"), "w").close()  # only its presence counts


def run_from(cwd, argv):
    """python argv from cwd, which comes first on sys.path. -S (no site-packages):
    an editable install's import hook would otherwise answer before cwd. The
    guard runs before fastpe imports anything from site-packages."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    return subprocess.run([sys.executable, "-S", *argv], capture_output=True, text=True, timeout=120, env=env,
                          cwd=cwd)


@pytest.mark.parametrize("argv", [["-c", "import fastpe"], ["-m", "fastpe", "info"]], ids=["import", "python -m"])
@pytest.mark.parametrize("with_setup_py", [True, False], ids=["source tree", "bare folder"])
def test_unbuilt_folder_gives_an_error_naming_both_fixes(tmp_path, argv, with_setup_py):
    """Regression: from the repository root, python -m fastpe failed with
    "cannot import name '_bias_kernels' from partially initialized module
    'fastpe' (most likely due to a circular import)"."""
    unbuilt_copy(str(tmp_path), with_setup_py)
    result = run_from(str(tmp_path), argv)
    assert result.returncode != 0
    err = result.stderr
    assert "ImportError: fastpe was imported from" in err, err
    assert os.path.join(str(tmp_path), "fastpe") in err
    assert "without compiled kernels" in err
    assert ("the fastpe source folder" in err) == with_setup_py
    assert "run Python from another folder" in err
    assert "pip install -e ." in err
    assert "partially initialized" not in err and "circular import" not in err
    # the current folder is the copy: with setup.py beside it, the error says so
    assert ("You are in that source folder" in err) == with_setup_py


def test_unbuilt_source_folder_imported_from_elsewhere_gives_no_current_folder_hint(tmp_path):
    """The hint is for `python -m fastpe` run from the repository root, not for a source folder on sys.path."""
    source, elsewhere = tmp_path / "source", tmp_path / "elsewhere"
    source.mkdir()
    elsewhere.mkdir()
    unbuilt_copy(str(source), with_setup_py=True)
    result = run_from(str(elsewhere), ["-c", f"import sys; sys.path.insert(0, {str(source)!r}); import fastpe"])
    assert "the fastpe source folder without compiled kernels" in result.stderr
    assert "You are in that source folder" not in result.stderr


def test_a_broken_extension_keeps_its_own_error(tmp_path):
    """A compiled module that is present but cannot load is not an unbuilt
    tree: its own error is the one shown."""
    unbuilt_copy(str(tmp_path), with_setup_py=True)
    for name in ("_kernels", "_frontdoor"):
        with open(os.path.join(str(tmp_path), "fastpe", name + sysconfig.get_config_var("EXT_SUFFIX")), "wb") as fh:
            fh.write(b"not a shared object")
    result = run_from(str(tmp_path), ["-c", "import fastpe"])
    assert result.returncode != 0
    assert "without compiled kernels" not in result.stderr
    assert "ImportError" in result.stderr


# --------------------------------------------------------------------------
# build facts (setup.py compiles them into _kernels)


def test_build_info_has_every_field():
    assert set(_kernels.build_info()) == BUILD_KEYS


def test_build_info_agrees_with_the_compiled_code():
    build = _kernels.build_info()
    assert build["openmp"] is _kernels.openmp_enabled()
    assert (_kernels.openmp_version() > 0) is build["openmp"]
    openmp_flags = {"-fopenmp", "/openmp"}
    assert bool(openmp_flags & set(build["compile_args"])) is build["openmp"]
    assert ("-march=native" in build["compile_args"]) is build["native"]
    assert any("-fsanitize=address" in arg for arg in build["compile_args"]) is build["sanitize"]
    assert build["compiler"]


def test_show_config_reports_the_build_facts():
    info = fastpe.show_config(print_out=False)
    build = _kernels.build_info()
    assert info["openmp"] is build["openmp"]
    for key in ("compiler", "compile_args", "link_args", "native", "sanitize"):
        assert info[key] == build[key], key


def test_the_build_wrote_no_python_or_c_into_the_package():
    """Regression: setup.py wrote fastpe/_build_info.py, and Cython its C files, into the source tree."""
    generated = [name for name in os.listdir(PACKAGE_DIR) if name == "_build_info.py" or name.endswith(".c")]
    assert generated == []


# --------------------------------------------------------------------------
# a compiler without OpenMP


def test_a_compiler_without_openmp_fails_the_build_naming_the_opt_out(tmp_path):
    if not os.path.exists(os.path.join(REPO, "setup.py")):
        pytest.skip("setup.py is not beside the tests (an installed test tree)")
    if sys.platform == "win32":
        pytest.skip("the compiler wrapper is a POSIX shell script")
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(os.path.join(REPO, "setup.py"), src)
    # no pyproject.toml: its metadata would tie the test to a setuptools release
    shutil.copytree(os.path.join(REPO, "fastpe"), src / "fastpe",
                    ignore=shutil.ignore_patterns("*.so", "*.pyd", "__pycache__", "*.c"))
    real_cc = (sysconfig.get_config_var("CC") or "cc").split()[0]
    wrapper = tmp_path / "cc-without-openmp"
    wrapper.write_text(
        "#!/bin/sh\n"
        "for arg in \"$@\"; do\n"
        "  case \"$arg\" in -fopenmp) echo 'cc-without-openmp: -fopenmp is not supported' >&2; exit 1 ;; esac\n"
        "done\n"
        f"exec {real_cc} \"$@\"\n"
    )
    wrapper.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "FASTPE_OPENMP")}
    env["CC"] = str(wrapper)
    result = subprocess.run([sys.executable, "setup.py", "build_ext", "--inplace"], capture_output=True,
                            text=True, timeout=300, env=env, cwd=str(src))
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "cannot build an OpenMP program" in output, output[-3000:]
    assert "FASTPE_OPENMP=0" in output
    assert not [name for name in os.listdir(src / "fastpe") if name.endswith((".so", ".pyd", ".c"))]
