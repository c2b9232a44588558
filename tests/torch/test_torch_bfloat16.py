"""bfloat16 tensors through fastpe.torch need no ml_dtypes, and give the bits of the ml_dtypes route.

A fresh interpreter where ``import ml_dtypes`` fails runs fastpe.torch on
bfloat16 tensors and saves the results' bits; this process computes the same
with the NumPy-facing functions on ml_dtypes' bfloat16 arrays (the route that
needs ml_dtypes) and compares them bit for bit."""

import os
import tempfile
import textwrap

import numpy as np
import pytest
from optional import torch_or_skip
from processes import run_python
from util import assert_same_bits

torch = torch_or_skip()
ml_dtypes = pytest.importorskip("ml_dtypes", reason="the ml_dtypes route is the comparison: pip install ml_dtypes")

import fastpe  # noqa: E402

_CHILD = """
import sys
sys.modules["ml_dtypes"] = None  # `import ml_dtypes` now raises ImportError
import numpy as np
import torch
import fastpe.torch as ft
from fastpe.torch._device import torch_ops_everywhere

def inputs():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 9, 16, generator=g).to(torch.bfloat16)
    q = torch.randn(1, 3, 9, 16, generator=g).to(torch.bfloat16)
    table = torch.randn(20, 16, generator=g).to(torch.bfloat16)
    scores = torch.randn(2, 3, 4, 9, generator=g).to(torch.bfloat16)
    return x, q, table, scores

x, q, table, scores = inputs()
cos, sin = ft.rotary_cos_sin(9, 16, offset=40, dtype=torch.bfloat16)
results = {{
    "add_sinusoidal": ft.add_sinusoidal(x, offset=5, scale=3.0),
    "add_table": ft.add_table(x, table, offset=2),
    "apply_rotary": ft.apply_rotary(q, offset=1000, scaling={{"rope_type": "linear", "factor": 2.0}}),
    "apply_rotary_cos_sin": ft.apply_rotary_cos_sin(q, None, cos[None], sin[None]),
    "add_alibi": ft.add_alibi(scores, offset=torch.tensor([3, 70])),
    "add_relative_bias": ft.add_relative_bias(scores, table[:8, :3], bidirectional=True, num_buckets=8,
                                              max_distance=20),
    "sinusoidal_table": ft.sinusoidal_table(30, 16, dtype=torch.bfloat16),
    "rotary_cos": cos,
}}
with torch_ops_everywhere():
    results["torch ops add_sinusoidal"] = ft.add_sinusoidal(x, offset=5, scale=3.0)
for name, value in results.items():
    assert value.dtype == torch.bfloat16, name
    np.save("{directory}/" + name.replace(" ", "_") + ".npy", value.view(torch.int16).numpy())
print("ml_dtypes" in sys.modules and sys.modules["ml_dtypes"] is not None)
"""


def _ml(t):
    return t.view(torch.int16).numpy().copy().view(ml_dtypes.bfloat16)


def _bits(a):
    return np.asarray(a).view(np.int16)


def test_bfloat16_without_ml_dtypes_gives_the_ml_dtypes_bits():
    with tempfile.TemporaryDirectory() as directory:
        result = run_python(textwrap.dedent(_CHILD.format(directory=directory)), timeout=300)
        assert result.returncode == 0, result.stderr[-3000:]
        assert result.stdout.strip() == "False", "the child imported ml_dtypes"
        got = {name[:-4]: np.load(os.path.join(directory, name)) for name in os.listdir(directory)}

    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 9, 16, generator=g).to(torch.bfloat16)
    q = torch.randn(1, 3, 9, 16, generator=g).to(torch.bfloat16)
    table = torch.randn(20, 16, generator=g).to(torch.bfloat16)
    scores = torch.randn(2, 3, 4, 9, generator=g).to(torch.bfloat16)
    cos, sin = fastpe.rotary_cos_sin(9, 16, offset=40, dtype="bfloat16")
    half = 8
    rotate_half = np.concatenate([-_ml(q)[..., half:].astype(np.float64), _ml(q)[..., :half].astype(np.float64)], -1)
    expected = {
        "add_sinusoidal": fastpe.add_sinusoidal(_ml(x), offset=5, scale=3.0),
        "add_table": fastpe.add_table(_ml(x), _ml(table), offset=2),
        "apply_rotary": fastpe.apply_rotary(_ml(q), offset=1000, scaling={"rope_type": "linear", "factor": 2.0}),
        # the formula in float64 from the bfloat16 values, rounded once (fastpe's rounding: nearest even)
        "apply_rotary_cos_sin": (_ml(q).astype(np.float64) * cos.astype(np.float64)
                                 + rotate_half * sin.astype(np.float64)),
        "add_alibi": fastpe.add_alibi(_ml(scores), offset=np.array([3, 70])),
        "add_relative_bias": fastpe.add_relative_bias(_ml(scores), _ml(table)[:8, :3].astype(np.float32),
                                                      bidirectional=True, num_buckets=8, max_distance=20),
        "sinusoidal_table": fastpe.sinusoidal_table(30, 16, dtype="bfloat16"),
        "rotary_cos": cos,
    }
    for name, want in expected.items():
        if name == "apply_rotary_cos_sin":
            # the float64 result rounded by torch (through float32) can differ by one ulp at a near-tie
            diff = np.abs(got[name].astype(np.int32) - torch.from_numpy(want).to(torch.bfloat16).view(
                torch.int16).numpy().astype(np.int32))
            assert diff.max() <= 1, name
            continue
        assert_same_bits(got[name], _bits(want), f"{name}: fastpe.torch without ml_dtypes != the ml_dtypes route")
    # the torch-ops path (other devices) rounds through float32: within one bfloat16 ulp
    diff = np.abs(got["torch_ops_add_sinusoidal"].astype(np.int32) - got["add_sinusoidal"].astype(np.int32))
    assert diff.max() <= 1
