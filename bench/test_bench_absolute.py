"""Benchmarks of the encodings beyond the plain sinusoid: a preset, a learned
table and a 2-D grid on the shape of the main fused add, rotary on q and k
(a decode step with and without a scaling, and a prefill), and the ALiBi and
T5 biases on attention scores; each next to its peers (where one makes
sense), the reference and the probe, one group per operation and shape, so
each table shows the ratios.

See bench/conftest.py for how to run, save and compare.
"""

import numpy as np
import pytest

from fastpe import bench

IMPLS = ["fastpe", *bench.PEER_NAMES, "reference", "probe"]
NO_PEER_IMPLS = ["fastpe", "reference", "probe"]
SHAPE = bench.SIDE_BY_SIDE
NEW_OFFSET = bench.NEW_OFFSET


@pytest.mark.parametrize("impl", IMPLS)
def test_fairseq_preset(pe_bench, impl):
    pe_bench.case("fairseq preset", bench.ADD_PRESET, SHAPE, np.float32, impl, {"preset": "fairseq", **NEW_OFFSET})


@pytest.mark.parametrize("impl", IMPLS)
def test_learned_table(pe_bench, impl):
    pe_bench.case("learned table", bench.ADD_LEARNED, SHAPE, np.float32, impl, NEW_OFFSET)


@pytest.mark.parametrize("impl", IMPLS)
def test_grid_2d(pe_bench, impl):
    pe_bench.case("2-D grid 32x64", bench.ADD_GRID_2D, SHAPE, np.float32, impl, {"grid": (32, 64)})


SCALINGS = [pytest.param(None, id="default"), pytest.param(bench.LLAMA3_SCALING, id="llama3"),
            pytest.param(bench.YARN_SCALING, id="yarn")]


@pytest.mark.parametrize("scaling", SCALINGS)
@pytest.mark.parametrize("impl", IMPLS)
def test_rotary_decode_step(pe_bench, impl, scaling):
    """apply_rotary on q and k, each (1, 32, 1, 128), at a new position every call."""
    name = scaling["rope_type"] if scaling else "default"
    pe_bench.case(f"rotary decode step ({name})", bench.ROTARY, (1, 32, 1, 128), np.float32, impl,
                  {"scaling": scaling, **NEW_OFFSET})


@pytest.mark.parametrize("impl", IMPLS)
def test_rotary_decode_step_bfloat16(pe_bench, impl):
    """apply_rotary on q and k, each (1, 32, 1, 128), in bfloat16."""
    pe_bench.case("rotary decode step", bench.ROTARY, (1, 32, 1, 128), pe_bench.dtype("bfloat16"), impl, NEW_OFFSET)


@pytest.mark.parametrize("impl", IMPLS)
def test_rotary_prefill(pe_bench, impl, rotary_dtype):
    """apply_rotary on q and k, each (1, 32, 4096, 128), in float32 and bfloat16."""
    pe_bench.case("rotary prefill", bench.ROTARY, (1, 32, 4096, 128), rotary_dtype, impl, NEW_OFFSET)


@pytest.mark.parametrize("kind, op", [("alibi", bench.ALIBI), ("t5", bench.T5_BIAS)])
@pytest.mark.parametrize("impl", NO_PEER_IMPLS)
def test_attention_bias(pe_bench, impl, kind, op):
    """add_alibi and add_relative_bias on scores (1, 16, 2048, 2048)."""
    pe_bench.case(f"{kind} bias", op, (1, 16, 2048, 2048), np.float32, impl)
