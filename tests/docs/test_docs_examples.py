"""No example in docs/*.rst escapes CI.

tools/build_docs.sh runs `sphinx-build -b doctest`, which runs every doctest
block (paragraphs of ``>>>`` lines) of the pages, and the docstrings' examples
autodoc pulls in. A Python example written any other way (a ``code-block::
python``, a ``::`` literal block, a ``>>>`` block inside a literal block) would
be shown but never run; these tests refuse such pages.
"""

import os
import re

import pytest
from util import REPO_ROOT

DOCS = os.path.join(REPO_ROOT, "docs")
# Literal blocks that hold shell commands or program output, never Python.
NOT_PYTHON = {"bash", "console", "shell", "sh", "text", "none", "toml", "ini"}
# Directives whose content sphinx.ext.doctest runs.
RUN_BY_DOCTEST = {"doctest", "testcode", "testsetup", "testcleanup", "testoutput"}
DIRECTIVE = re.compile(r"^(\s*)\.\.\s+([\w:-]+)::\s*(\S*)")


def _pages():
    if not os.path.isdir(DOCS):
        return []
    return sorted(name for name in os.listdir(DOCS) if name.endswith(".rst"))


def _indent(line):
    return len(line) - len(line.lstrip(" "))


def _parent(lines, i):
    """The nearest line above lines[i] that is less indented (what the block at i belongs to)."""
    own = _indent(lines[i])
    for j in range(i - 1, -1, -1):
        if lines[j].strip() and _indent(lines[j]) < own:
            return lines[j]
    return None


def escaping_examples(text):
    """(line number, reason) of every Python example in an rst text that sphinx's doctest builder would not run."""
    lines = text.split("\n")
    problems = []
    for i, line in enumerate(lines):
        directive = DIRECTIVE.match(line)
        if directive and directive.group(2) in ("code-block", "code", "sourcecode"):
            language = directive.group(3).lower() or "(none)"
            if language not in NOT_PYTHON:
                problems.append((i + 1, f"a {directive.group(2)}:: {language} block is shown, not run; "
                                        "write it as a >>> doctest block"))
        starts_block = line.lstrip().startswith(">>>") and (i == 0 or not lines[i - 1].strip())
        if not starts_block:
            continue
        parent = _parent(lines, i)
        if parent is None:
            continue
        parent_directive = DIRECTIVE.match(parent)
        if parent_directive and parent_directive.group(2) not in RUN_BY_DOCTEST:
            problems.append((i + 1, f"a >>> block inside a {parent_directive.group(2)}:: directive is not run"))
        elif not parent_directive and parent.rstrip().endswith("::"):
            problems.append((i + 1, "a >>> block inside a :: literal block is not run"))
    # Python in a plain :: literal block (not a >>> block: those are caught above).
    for i, line in enumerate(lines):
        if line.rstrip().endswith("::") and not DIRECTIVE.match(line):
            body = []
            for following in lines[i + 1:]:
                if following.strip() and _indent(following) <= _indent(line):
                    break
                body.append(following)
            if re.search(r"^\s*(import |from \w+ import |fastpe\.)", "\n".join(body), flags=re.M):
                problems.append((i + 1, "Python in a :: literal block is shown, not run"))
    return problems


@pytest.mark.parametrize("page", _pages())
def test_every_python_example_is_a_doctest(page):
    with open(os.path.join(DOCS, page), encoding="utf-8") as f:
        problems = escaping_examples(f.read())
    assert not problems, "\n".join(f"docs/{page}:{line}: {why}" for line, why in problems)


def test_the_checker_finds_each_kind_of_escape():
    shown_only = {
        "code-block": "Text\n\n.. code-block:: python\n\n   import fastpe\n",
        "literal": "Text::\n\n   import fastpe\n   fastpe.add_sinusoidal(x)\n",
        "doctest in literal": "Text::\n\n   >>> 1 + 1\n   2\n",
        "doctest in code-block": "Text\n\n.. code-block:: pycon\n\n   >>> 1 + 1\n   2\n",
    }
    for kind, text in shown_only.items():
        assert escaping_examples(text), f"the checker missed a {kind} example"
    run = "Text\n\n>>> 1 + 1\n2\n\n* item\n\n  >>> 2 + 2\n  4\n\n.. code-block:: bash\n\n   pip install .\n"
    assert escaping_examples(run) == []


def test_the_doc_build_runs_doctest_blocks():
    if not os.path.isdir(DOCS):
        pytest.skip("docs/ is not beside the tests (an installed test tree)")
    with open(os.path.join(DOCS, "conf.py"), encoding="utf-8") as f:
        conf = f.read()
    assert "sphinx.ext.doctest" in conf
    # The default ("default") makes the doctest builder run plain >>> blocks;
    # an empty value would show them without running them.
    assert "doctest_test_doctest_blocks" not in conf

