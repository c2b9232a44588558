"""The README's examples run as written.

The ```python blocks of the sections below (all of them, or the first few)
are executed in order in one namespace per section; a block that needs a
running cluster or Ray is not run (NOT_RUN says why). Sections that need
torch or dask skip where those are not installed.
"""

import os
import re

import pytest
from optional import missing_reason

README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")
# section -> how many of its blocks run (None: all); the API section's later
# blocks are fragments that use names the reader supplies.
SECTIONS = {"API": 1, "PyTorch and other array libraries": None, "Examples": None, "Dask and Ray": None}
# A block containing one of these is shown, not run.
NOT_RUN = {
    'Client("scheduler-address:8786")': "needs a running Dask scheduler",
    "ds.map_batches": "needs Ray and a dataset",
}
NEEDS = {"torch": "torch", "dask": "dask.array", "ml_dtypes": "ml_dtypes"}


def _sections():
    if not os.path.exists(README):
        pytest.skip("README.md is not beside the tests (an installed test tree)")
    with open(README, encoding="utf-8") as f:
        text = f.read()
    found = {}
    for match in re.finditer(r"^## (.+?)\n(.*?)(?=^## |\Z)", text, flags=re.M | re.S):
        found[match.group(1).strip()] = re.findall(r"```python\n(.*?)```", match.group(2), flags=re.S)
    return found


@pytest.mark.parametrize("section", list(SECTIONS))
def test_readme_examples_run(section, tmp_path, monkeypatch):
    blocks = _sections().get(section)
    assert blocks, f"README has no python example in section {section!r}"
    blocks = blocks[:SECTIONS[section]]
    code = "\n".join(block for block in blocks if not any(marker in block for marker in NOT_RUN))
    for word, module in NEEDS.items():
        if re.search(rf"\b{word}\b", code):
            # torch comes with the conformance extra, the others with the test extra
            pytest.importorskip(module, reason=missing_reason(module) if module == "torch" else None)
    if "bfloat16" in code:
        pytest.importorskip("ml_dtypes")
    monkeypatch.chdir(tmp_path)
    exec(compile(code, f"README.md ({section})", "exec"), {"__name__": "readme_example"})
