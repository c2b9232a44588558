"""torch.compile and the NumPy-facing functions: a graph break, never a crash.

The NumPy-facing functions write tensors through NumPy views of their memory
(DLPack), which torch.compile's Dynamo cannot trace: traced, they crashed it
inside ``__dlpack_device__``. So they are kept out of its traces, in two ways,
without importing torch:

* each public function carries the attributes ``torch.compiler.disable``
  sets (``_torchdynamo_disable`` and its message): a compiled function that
  calls one breaks its graph there, and under ``fullgraph=True`` Dynamo's
  error names the function and says why, pointing to fastpe.torch;
* the files of the NumPy-facing modules join Dynamo's skipped files
  (``torch._dynamo.trace_rules.add``), so the call then runs as plain
  Python: Dynamo compiles none of the frames it runs. That registration needs
  Dynamo's trace rules loaded; when they are not yet (``import torch`` does
  not load them, and importing them costs a second), a finder on
  ``sys.meta_path`` registers fastpe right after they load, then steps aside.

fastpe.torch and fastpe.hf are left to Dynamo: they are the front doors
meant for compiled code; so is fastpe.bench, whose torch.compile peer
compiles its own functions.
"""

import importlib.abc
import importlib.util
import os
import sys

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
# fastpe's modules written for torch code, which torch.compile traces (the
# benchmark's torch.compile peer compiles functions of fastpe.bench).
_TRACEABLE = ("torch", "hf", "bench")
_TRACE_RULES = "torch._dynamo.trace_rules"
REASON = ("fastpe's NumPy-facing functions write tensors through NumPy views, outside the compiled graph; "
          "use fastpe.torch, whose functions are torch operators that compile without a graph break")


def numpy_facing_modules():
    """The names of fastpe's modules and subpackages other than the traceable ones."""
    names = []
    for entry in sorted(os.listdir(_PACKAGE_DIR)):
        name, ext = os.path.splitext(entry)
        if name in _TRACEABLE or name.startswith(("__", ".")):
            continue
        if ext == ".py" or (not ext and os.path.isfile(os.path.join(_PACKAGE_DIR, entry, "__init__.py"))):
            names.append(f"{__package__}.{name}")
    return names


def _skip_numpy_facing_files(trace_rules):
    for name in numpy_facing_modules():
        trace_rules.add(name)


class _AfterImport(importlib.abc.MetaPathFinder):
    """Runs callback(module) once the module `name` has been executed, then leaves sys.meta_path."""

    def __init__(self, name, callback):
        self.name, self.callback = name, callback

    def find_spec(self, fullname, path, target=None):
        if fullname != self.name:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)  # the finders after this one
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        execute, callback = spec.loader.exec_module, self.callback

        def execute_then_call_back(module):
            execute(module)
            try:
                callback(module)
            except Exception:  # never let fastpe break torch's own import
                pass

        spec.loader.exec_module = execute_then_call_back
        return spec


def keep_out_of_traces(functions):
    """Mark the public NumPy-facing functions and register their files with Dynamo (see the module docstring)."""
    for function in functions:
        function._torchdynamo_disable = True
        function._torchdynamo_disable_msg = REASON
    trace_rules = sys.modules.get(_TRACE_RULES)
    if trace_rules is not None:
        _skip_numpy_facing_files(trace_rules)
    elif not any(isinstance(finder, _AfterImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, _AfterImport(_TRACE_RULES, _skip_numpy_facing_files))
