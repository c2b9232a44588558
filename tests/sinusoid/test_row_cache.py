"""The front door's cache of encoding rows (fastpe/_frontdoor_sinusoid.pxi, "cached rows").

A small common call adds rows kept in fastpe's cache in blocks of 256
positions, built by the kernel as tables. The rows must be the rows every
other path computes (the bits rule), for any offset, dtype and layout of x,
whatever the state of the cache; the blocks are counted in cache_info() and
kept within the limit. fastpe._frontdoor.row_calls() tells which calls took
cached rows; the general path alone is run by switching the front door off.
"""

import threading

import numpy as np
import pytest

import fastpe
from fastpe import _frontdoor, reference
from fastpe._validation.torch_tensors import BFLOAT16_BITS
from fastpath import fast_and_general, general_path_only
from optional import extra_import
from util import array_variants, assert_same_bits, check_add_against_reference, random_values, rng_for

BLOCK = 256


def cached_and_general(x, offset, **kwargs):
    """(cached-rows result, general-path result, cached-row calls taken) on copies of x."""
    before = _frontdoor.row_calls()
    x_fast, x_general, taken = fast_and_general(x, offset=offset, **kwargs)
    assert taken == 1
    return x_fast, x_general, _frontdoor.row_calls() - before


# Offsets around block edges, negative ones, and far ones.
OFFSETS = [0, 1, 255, 256, 250, -1, -256, -257, -300, 511, 4095, 2**40 + 3, -(2**40) - 5, 2**53 - 300]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1, 16, 64), (1, 128, 768), (3, 33, 7), (2, 3, 17, 1), (5, 2), (40, 9, 24)],
                         ids=str)
def test_cached_rows_have_the_general_bits(fresh_cache, shape, dtype):
    rng = rng_for("row cache", shape, np.dtype(dtype).name)
    for offset in OFFSETS:
        for kind, x in array_variants(shape, dtype, rng):
            msg = f"shape={shape} {np.dtype(dtype).name} {kind} offset={offset}"
            x_fast, x_general, rows = cached_and_general(x, offset)
            assert rows == 1, f"{msg}: did not take cached rows"
            assert_same_bits(x_fast, x_general, msg)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cached_rows_against_the_reference(fresh_cache, dtype):
    rng = rng_for("row cache reference", np.dtype(dtype).name)
    for offset in (0, 37, 250, -300, 4000):
        for shape in ((1, 16, 64), (2, 300, 10), (7, 1)):
            before = _frontdoor.row_calls()
            check_add_against_reference(random_values(shape, dtype, rng), f"{shape} offset={offset}", offset=offset)
            assert _frontdoor.row_calls() == before + 1


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_cached_row_is_the_table_row(fresh_cache, dtype):
    """Into zeros, cached rows are the rows of sinusoidal_table at any offset,
    warm or cold, including rows spanning three blocks."""
    T, dim = 600, 12
    table = fastpe.sinusoidal_table(3000, dim, offset=-1000, dtype=dtype)
    for offset in (-1000, -745, -1, 3, 255, 700, 1400):
        for _ in range(2):  # cold, then warm
            x = np.zeros((T, dim), dtype)
            before = _frontdoor.row_calls()
            fastpe.add_sinusoidal(x, offset=offset)
            assert _frontdoor.row_calls() == before + 1
            start = offset + 1000
            assert_same_bits(x + 0.0, table[start:start + T] + 0.0, f"offset={offset}")


def test_fractional_offsets_generate(fresh_cache):
    x = random_values((2, 8, 6), np.float32, rng_for("fraction"))
    for offset in (0.5, -3.25, np.float32(7.5)):
        x_fast, x_general, rows = cached_and_general(x, offset)
        assert rows == 0
        assert_same_bits(x_fast, x_general, f"offset={offset}")
    assert fastpe.cache_info().entries == 1  # the plan alone


def test_integral_float_offsets_take_cached_rows(fresh_cache):
    x = random_values((2, 8, 6), np.float64, rng_for("integral float"))
    for offset in (3.0, np.float32(-300.0), np.float16(256.0)):
        x_fast, x_general, rows = cached_and_general(x, offset)
        assert rows == 1
        assert_same_bits(x_fast, x_general, f"offset={offset!r}")


def test_calls_whose_blocks_crowd_the_cache_generate(fresh_cache):
    """Blocks over half the cache's limit: generated, nothing cached but the plan."""
    dim = 64
    fastpe.set_cache_limit(5 * BLOCK * dim * 4)  # two blocks fit the share, three do not
    x = np.zeros((1, 2 * BLOCK, dim), np.float32)
    x_fast, x_general, rows = cached_and_general(x, 5)  # positions 5 .. 516: blocks 0, 1 and 2
    assert rows == 0
    assert_same_bits(x_fast, x_general, "large")
    assert fastpe.cache_info().entries == 1
    x_fast, x_general, rows = cached_and_general(x[:, : BLOCK + 100], 5)  # blocks 0 and 1
    assert rows == 1
    assert_same_bits(x_fast, x_general, "two blocks")


def _sixteen_bit(name, shape, rng):
    """Random x of a 16-bit type: float16, bfloat16 bits as fastpe.torch views them, or ml_dtypes' bfloat16."""
    values = random_values(shape, np.float32, rng)
    if name == "float16":
        return values.astype(np.float16)
    bits = (values.view(np.uint32) >> 16).astype(np.uint16)  # bfloat16 values: a float32's top half
    if name == "bfloat16 bits":
        return bits.view(BFLOAT16_BITS)
    return bits.view(extra_import("ml_dtypes", "test").bfloat16)


# Scales whose product with every 16-bit x is exact in float32 (the prepared
# rows take them; see fpe_half_prepared in _simd.h) and one that is not.
PREPARED_SCALES = [1.0, -0.5]
UNPREPARED_SCALE = 0.37


@pytest.mark.parametrize("scale", PREPARED_SCALES + [UNPREPARED_SCALE], ids=lambda s: f"scale={s}")
@pytest.mark.parametrize("name", ["float16", "bfloat16 bits", "bfloat16"])
@pytest.mark.parametrize("shape", [(1, 16, 64), (16, 64), (3, 33, 7), (40, 9, 24)], ids=str)
def test_16_bit_x_adds_float64_cached_rows(fresh_cache, name, shape, scale):
    """float16 and bfloat16 x of one sequence take float64 rows from the
    cache (the sum the kernel forms, rounded once); a batch does too where it
    adds float64 rows, but generates them where its sequences share prepared
    rows (a scale exact in float32). Either way: the general path's bits."""
    x = _sixteen_bit(name, shape, rng_for("16-bit rows", name, shape))
    one_sequence = len(shape) == 2 or shape[0] == 1
    expected_rows = 1 if one_sequence or scale == UNPREPARED_SCALE else 0
    for offset in OFFSETS:
        x_fast, x_general, rows = cached_and_general(x, offset, scale=scale)
        assert rows == expected_rows, f"offset={offset}"
        assert_same_bits(x_fast, x_general, f"{name} offset={offset}")
    fastpe.cache_clear()
    cached_and_general(x, 3, scale=scale)
    info = fastpe.cache_info()
    if expected_rows:
        assert info.nbytes > BLOCK * shape[-1] * 8 > info.nbytes - 4096, "one float64 block and the plan"
    else:
        assert info.nbytes < BLOCK * shape[-1] * 8, "the plan alone"


@pytest.mark.parametrize("name", ["float16", "bfloat16"])
def test_16_bit_batch_against_the_reference(fresh_cache, name):
    """A 16-bit batch, its rows generated and prepared (scale 1) or cached
    (an inexact scale), and one sequence of it: within the contract of the
    reference."""
    x = _sixteen_bit(name, (4, 70, 40), rng_for("16-bit batch", name))
    for scale in (1.0, UNPREPARED_SCALE):
        for offset in (0, 300, -77):
            for part in (x, x[:1]):
                check_add_against_reference(part.copy(), f"{name} {part.shape}", offset=offset, scale=scale)


def test_blocks_are_counted_in_cache_info(fresh_cache):
    dim = 24
    # Blocks 0 and 1 miss; building block 0 misses the plan, building block 1 hits it.
    fastpe.add_sinusoidal(np.zeros((2, 10, dim), np.float32), offset=250)
    info = fastpe.cache_info()
    plan_bytes = info.nbytes - 2 * BLOCK * dim * 4
    assert (info.entries, info.misses, info.hits) == (3, 3, 1)
    assert 0 < plan_bytes < 4096
    fastpe.add_sinusoidal(np.zeros((2, 10, dim), np.float32), offset=300)  # block 1 again
    info = fastpe.cache_info()
    assert (info.entries, info.misses, info.hits) == (3, 3, 2)
    # float64 has its own blocks: block 1 misses, its plan hits.
    fastpe.add_sinusoidal(np.zeros((2, 10, dim), np.float64), offset=300)
    info = fastpe.cache_info()
    assert (info.entries, info.misses, info.hits) == (4, 4, 3)
    assert info.nbytes == plan_bytes + 2 * BLOCK * dim * 4 + BLOCK * dim * 8


def test_blocks_stay_within_the_limit(fresh_cache):
    """A limit that holds a few blocks: older blocks are evicted, results stay exact."""
    dim = 16
    block_bytes = BLOCK * dim * 4
    fastpe.set_cache_limit(24 * block_bytes)
    rng = rng_for("limit")
    for offset in rng.integers(-20000, 20000, 60):
        x = random_values((1, 5, dim), np.float32, rng)
        x_fast, x_general, rows = cached_and_general(x, int(offset))
        assert rows == 1
        assert_same_bits(x_fast, x_general, f"offset={offset}")
        info = fastpe.cache_info()
        assert info.nbytes <= info.limit
    assert fastpe.cache_info().entries < 25


@pytest.mark.parametrize("limit", [0, 1000])
def test_a_small_limit_turns_cached_rows_off(fresh_cache, limit):
    """Blocks that would crowd the cache are not built: the call generates."""
    fastpe.set_cache_limit(limit)
    x = random_values((1, 16, 64), np.float32, rng_for("small limit"))
    x_fast, x_general, rows = cached_and_general(x, 9)
    assert rows == 0
    assert_same_bits(x_fast, x_general, "small limit")
    assert fastpe.cache_info().nbytes <= limit


def test_python_threads_share_the_cache(fresh_cache):
    """Threads building and reading the same blocks at once get exact rows."""
    dim, T = 40, 50
    offsets = list(range(-600, 600, 37))
    expected = {o: reference.add_sinusoidal(np.zeros((T, dim), np.float64), offset=o).astype(np.float32)
                for o in offsets}
    with general_path_only():
        exact = {o: fastpe.add_sinusoidal(np.zeros((T, dim), np.float32), offset=o) for o in offsets}
    fastpe.cache_clear()
    errors = []
    barrier = threading.Barrier(4)

    def work(seed):
        order = np.random.default_rng(seed).permutation(offsets)
        barrier.wait()
        for o in order:
            got = fastpe.add_sinusoidal(np.zeros((T, dim), np.float32), offset=int(o))
            if not np.array_equal(got.view(np.uint32), exact[int(o)].view(np.uint32)):
                errors.append(int(o))
            if np.max(np.abs(got - expected[int(o)])) > 2.4e-7:
                errors.append(("reference", int(o)))

    threads = [threading.Thread(target=work, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert fastpe.cache_info().nbytes <= fastpe.cache_info().limit


def test_blocks_are_private(fresh_cache):
    """A call's x never shares memory with a cached block, so adding into x
    twice adds the row twice."""
    x = np.zeros((4, 8), np.float32)
    once = fastpe.add_sinusoidal(np.zeros((4, 8), np.float32), offset=3).copy()
    fastpe.add_sinusoidal(x, offset=3)
    fastpe.add_sinusoidal(x, offset=3)
    assert_same_bits(x, once + once, "twice")
