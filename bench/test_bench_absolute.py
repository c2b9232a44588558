"""Benchmarks of the encodings beyond the plain sinusoid: a preset, a learned
table and a 2-D grid on the shape of the main fused add, rotary on q and k,
and the ALiBi and T5 biases on attention scores; each next to the reference
and the probe (one group per operation, so each table shows the ratios).

See bench/conftest.py for how to run, save and compare.
"""

import numpy as np
import pytest

IMPLS = ["fastpe", "reference", "probe"]
SHAPE = (8, 2048, 1024)


def _run(pe_bench, kind, impl, call):
    x, pattern = pe_bench.filled(SHAPE, np.float32)
    pe_bench.measure(f"{kind} float32 {'x'.join(map(str, SHAPE))}", impl, x, pattern, call)


@pytest.mark.parametrize("impl", IMPLS)
def test_fairseq_preset(pe_bench, impl):
    _run(pe_bench, "fairseq preset", impl, lambda api, x: api.add_sinusoidal(x, offset=7, preset="fairseq"))


@pytest.mark.parametrize("impl", IMPLS)
def test_learned_table(pe_bench, impl):
    table = np.random.default_rng(0).standard_normal((SHAPE[-2] + 8, SHAPE[-1])).astype(np.float32)
    _run(pe_bench, "learned table", impl, lambda api, x: api.add_table(x, table, offset=2))


@pytest.mark.parametrize("impl", IMPLS)
def test_grid_2d(pe_bench, impl):
    _run(pe_bench, "2-D grid 32x64", impl, lambda api, x: api.add_sincos_2d(x, 32, 64))


@pytest.mark.parametrize("impl", IMPLS)
def test_rotary_q_and_k(pe_bench, impl):
    """apply_rotary on q and k of (1, 32, 4096, 128), stacked so one probe covers both."""
    shape = (2, 1, 32, 4096, 128)
    both, pattern = pe_bench.filled(shape, np.float32)
    pe_bench.measure("rotary float32 2x1x32x4096x128", impl, both, pattern,
                     lambda api, both: api.apply_rotary(both[0], both[1], offset=3))

@pytest.mark.parametrize("kind", ["alibi", "t5"])
@pytest.mark.parametrize("impl", IMPLS)
def test_attention_bias(pe_bench, impl, kind):
    """add_alibi and add_relative_bias on scores (1, 16, 2048, 2048)."""
    shape = (1, 16, 2048, 2048)
    scores, pattern = pe_bench.filled(shape, np.float32)
    table = np.random.default_rng(1).standard_normal((32, 16)).astype(np.float32)
    if kind == "alibi":
        def call(api, scores):
            api.add_alibi(scores, offset=3)
    else:
        def call(api, scores):
            api.add_relative_bias(scores, table, bidirectional=True, num_buckets=32, max_distance=128)
    pe_bench.measure(f"{kind} bias float32 1x16x2048x2048", impl, scores, pattern, call)
