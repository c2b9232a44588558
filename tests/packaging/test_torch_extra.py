"""fastpe.torch is optional: ``import fastpe`` never imports torch, and without
torch ``import fastpe.torch`` fails with an ImportError naming the extra that
brings it (these run whether torch is installed or not)."""

from processes import run_python


def test_import_fastpe_torch_without_torch_names_the_extra():
    result = run_python("import sys\nsys.modules['torch'] = None  # `import torch` now fails\n"
                        "import fastpe\n"
                        "try:\n    import fastpe.torch\nexcept ImportError as exc:\n    print(exc)\n")
    assert result.returncode == 0, result.stderr
    assert "fastpe[torch]" in result.stdout and "PyTorch" in result.stdout, result.stdout


def test_import_fastpe_imports_no_torch():
    result = run_python("import sys, fastpe\nprint('torch' in sys.modules)")
    assert result.returncode == 0 and result.stdout.strip() == "False", result.stdout + result.stderr
