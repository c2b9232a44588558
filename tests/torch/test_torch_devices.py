"""Tensors off the CPU: the operators' torch-ops path (forced on the CPU here,
the one machine CI has), its float64-derived tables cached per device, and
the kernels never handed memory that is not the CPU's."""

import numpy as np
import pytest
from optional import torch_or_skip
from util import assert_within

torch = torch_or_skip()

import fastpe  # noqa: E402
import fastpe._frontdoor  # noqa: E402
import fastpe.torch as ft  # noqa: E402
from fastpe import reference  # noqa: E402
from fastpe.torch import _device  # noqa: E402
from torch_cases import float64_of, on_route, tolerance  # noqa: E402


def test_meta_tensors_get_shapes_and_never_reach_the_kernels():
    """A tensor without CPU memory goes to the operators' fake implementations."""
    x = torch.empty(2, 7, 16, device="meta")
    q, k = torch.empty(1, 4, 7, 16, device="meta"), torch.empty(1, 2, 7, 16, device="meta")
    y = ft.add_sinusoidal(x, offset=3)
    q_rot, k_rot = ft.apply_rotary(q, k, offset=torch.tensor(5, device="meta"))
    assert y.device.type == "meta" and y.shape == x.shape
    assert (q_rot.shape, k_rot.shape) == (q.shape, k.shape) and q_rot.device.type == "meta"
    assert ft.add_alibi(torch.empty(1, 4, 3, 3, device="meta")).shape == (1, 4, 3, 3)


@pytest.mark.parametrize("position", [0, 4096, 2**20 - 64])
def test_the_torch_ops_path_keeps_the_float32_contract_far_out(position):
    x = torch.randn(2, 64, 32)
    q = torch.randn(1, 4, 64, 32)
    with on_route("torch ops"):
        y = ft.add_sinusoidal(x, offset=position)
        q_rot = ft.apply_rotary(q, offset=position, base=500000.0)
    expected = reference.add_sinusoidal(float64_of(x), offset=position)
    assert_within(float64_of(y), expected, tolerance("float32", expected, float64_of(x)), f"sinusoid at {position}")
    expected = reference.apply_rotary(float64_of(q), offset=position, base=500000.0)
    magnitude = np.abs(float64_of(q)).max(axis=-1, keepdims=True)
    assert_within(float64_of(q_rot), expected, tolerance("float32", expected, magnitude), f"rotary at {position}")


def _device_tables():
    """The keys of the device tables in fastpe's cache."""
    return [key for key in fastpe._frontdoor.CACHE.keys() if key[0] == "device-table"]


def test_tables_are_cached_per_device_and_reused():
    fastpe.cache_clear()
    q = torch.randn(2, 4, 8, 16)
    positions = torch.arange(16).reshape(2, 8) * 3
    with on_route("torch ops"):
        first = ft.apply_rotary(q, positions=positions)
        cached, hits = _device_tables(), fastpe.cache_info().hits
        second = ft.apply_rotary(q.clone(), positions=positions)  # the next layer: the same positions
    assert cached and all(key[1] == "cpu" for key in cached)
    assert sorted(map(repr, _device_tables())) == sorted(map(repr, cached))
    assert fastpe.cache_info().hits > hits, "the second call read the tables the first kept"
    assert torch.equal(first, second)
    with on_route("torch ops"):
        ft.apply_rotary(q, positions=positions + 1)
    assert len(_device_tables()) > len(cached), "new positions, new rows"
    fastpe.cache_clear()
    assert not _device_tables(), "cache_clear empties the device tables too"


def test_the_device_tables_count_against_the_cache_limit():
    fastpe.cache_clear()
    before = fastpe.cache_info().limit
    x = torch.zeros(1, 2, 8)
    try:
        fastpe.set_cache_limit(4096)
        with on_route("torch ops"):
            for offset in range(64):
                ft.add_sinusoidal(x, offset=offset)
        assert _device_tables(), "the tables are kept while they fit"
        assert fastpe.cache_info().nbytes <= 4096
    finally:
        fastpe.set_cache_limit(before)
        fastpe.cache_clear()


def test_errors_are_the_numpy_facing_functions_own_on_every_route():
    x = torch.zeros(2, 4, 8)
    messages = set()
    for route in ("eager", "operator", "torch ops"):
        with on_route(route), pytest.raises(ValueError) as info:
            ft.add_sinusoidal(x, layout="sideways")
        messages.add(str(info.value))
        with on_route(route), pytest.raises(IndexError, match="table's rows"):
            ft.add_table(x, torch.zeros(5, 8), offset=3)
        with on_route(route), pytest.raises(ValueError, match="one rope dict per layer type"):
            ft.apply_rotary(x, scaling={"full_attention": {"rope_type": "default"}, "sliding_attention": {}})
    assert len(messages) == 1 and "layout must be one of" in messages.pop()
