"""Every function of fastpe.dask on a real cluster: a distributed LocalCluster
of two worker processes, so blocks are pickled (protocol 5: they may arrive at
any address) and computed in other processes. Each result is compared with the
eager call on the whole array, bit for bit, and with fastpe.reference."""

import numpy as np
import pytest
from optional import extra_import

da = extra_import("dask.array", "test")
distributed = extra_import("distributed", "test")

from dask_checks import assert_eager_bits, check_add_sinusoidal  # noqa: E402
from rope_parameters import longrope_parameters  # noqa: E402
from util import add_tolerance, assert_within, rng_for  # noqa: E402

import fastpe  # noqa: E402
import fastpe.dask as fpd  # noqa: E402
from fastpe import reference  # noqa: E402

# Every cluster result is awaited at most this long: a worker that dies on
# every try must fail the test, not hang the run.
CLUSTER_TIMEOUT_S = 120


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as c:
        yield c


def on_cluster(client, *lazies):
    return [future.result(timeout=CLUSTER_TIMEOUT_S) for future in client.compute(list(lazies))]


def data(shape, dtype=np.float64, key="x"):
    return rng_for(key, shape, np.dtype(dtype).name).uniform(-3, 3, size=shape).astype(dtype)


def misaligned_blocks(darr):
    """darr, each block moved to an odd address inside the worker (as an
    unpickled buffer may sit); Dask fuses this step into the task that reads it."""
    def misalign(block):
        raw = np.zeros(block.nbytes + 1, np.uint8)
        moved = raw[1:].view(block.dtype).reshape(block.shape)
        moved[...] = block
        return moved

    return darr.map_blocks(misalign, dtype=darr.dtype)


def test_workers_are_processes(client):
    pids = set(client.run(lambda: __import__("os").getpid()).values())
    assert len(pids) == 2 and __import__("os").getpid() not in pids


@pytest.mark.parametrize("chunks", [(2, 3, 16, 10), (2, 3, 40, (3, 5, 2)), ((1, 1), (2, 1), (7, 20, 13), (1, 8, 1))],
                         ids=["T", "D-odd", "irregular"])
def test_sinusoid(client, chunks):
    x = data((2, 3, 40, 10))
    offset = da.from_array(np.array([[3, 0, 9], [100, 7, 1]]), chunks=1)
    positions = da.from_array(rng_for("cluster positions").uniform(0, 50, size=(3, 1)), chunks=(2, 1))
    first, second = on_cluster(client,
                               fpd.add_sinusoidal(da.from_array(x, chunks=chunks), offset=offset, scale=2.0),
                               fpd.add_sinusoidal(da.from_array(x, chunks=chunks), positions=positions,
                                                  preset="fairseq"))
    check_add_sinusoidal(first, x, f"cluster chunks={chunks}", offset=offset, scale=2.0)
    check_add_sinusoidal(second, x, f"cluster chunks={chunks}", positions=positions, preset="fairseq")


def test_sinusoid_tables(client):
    positions = rng_for("cluster encode").integers(0, 1000, size=(6, 7))
    table, enc = on_cluster(client, fpd.sinusoidal_table(300, 16, chunks=(64, (5, 11)), offset=4),
                            fpd.sinusoidal_encode(da.from_array(positions, chunks=3), 16, dtype=np.float64))
    assert_within(table, reference.sinusoidal_table(300, 16, offset=4), add_tolerance(np.float32, 310, 0),
                  "cluster table")
    assert_eager_bits(table, fastpe.sinusoidal_table(300, 16, offset=4), "cluster table")
    assert_within(enc, reference.sinusoidal_encode(positions, 16, dtype=np.float64),
                  add_tolerance(np.float64, 1000, 0), "cluster encode")


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
def test_every_family_on_misaligned_blocks(client, dtype):
    """Each new function of fastpe.dask, its input blocks at odd addresses in
    the worker processes: read as they are, written into new buffers."""
    rng = rng_for("cluster families", np.dtype(dtype).name)
    x = data((3, 20, 16), dtype)
    ids = rng.integers(2, 50, size=(3, 20))
    ids[0, :7] = 1
    ids[2, 15:] = 1
    table = data((40, 16), key="table")
    q, k = data((2, 4, 20, 16), dtype, key="q"), data((2, 2, 20, 16), dtype, key="k")
    scores = data((2, 4, 9, 11), dtype, key="scores")
    bias_table = data((16, 4), key="bias table")
    longrope = longrope_parameters(8, 3, original_max_position_embeddings=12, max_position_embeddings=48)
    t5 = {"bidirectional": False, "num_buckets": 16, "max_distance": 20}

    lazy_x = misaligned_blocks(da.from_array(x, chunks=(1, 7, 16)))
    positions = fpd.make_positions(da.from_array(ids, chunks=(2, 6)), padding_idx=1, past_length=np.array([0, 2, 5]))
    lazy_q, lazy_k = (misaligned_blocks(da.from_array(a, chunks=(1, 2, 6, 16))) for a in (q, k))
    lazy_scores = misaligned_blocks(da.from_array(scores, chunks=(1, 3, 4, 5)))
    lazies = {
        "fairseq": fpd.add_sinusoidal(lazy_x, positions=positions, preset="fairseq"),
        "table": fpd.add_table(lazy_x, da.from_array(table, chunks=(9, 8)), positions=positions, scale=1.5),
        "sincos_2d": fpd.add_sincos_2d(lazy_x, 4, 5, layout="timm"),
        "nd": fpd.add_sinusoidal_nd(lazy_x, (2, 2, 5)),
        "rotary": fpd.apply_rotary(lazy_q, lazy_k, offset=da.from_array(np.array([0, 9]), chunks=1),
                                   scaling=longrope),
        "alibi": fpd.add_alibi(lazy_scores, offset=da.from_array(np.array([4, 0]), chunks=1)),
        "t5": fpd.add_relative_bias(lazy_scores, da.from_array(bias_table, chunks=(16, 3)), **t5, offset=3),
    }
    names = list(lazies)
    flat = [lazy for name in names for lazy in (lazies[name] if isinstance(lazies[name], tuple) else (lazies[name],))]
    computed = iter(on_cluster(client, *flat))
    results = {name: tuple(next(computed) for _ in range(2)) if name == "rotary" else next(computed) for name in names}

    eager_positions = fastpe.make_positions(ids, padding_idx=1, past_length=np.array([0, 2, 5]))

    def whole(impl):
        """Each call on the whole arrays, by fastpe or by its reference."""
        return {
            "fairseq": impl.add_sinusoidal(x.copy(), positions=eager_positions, preset="fairseq"),
            "table": impl.add_table(x.copy(), table, positions=eager_positions, scale=1.5),
            "sincos_2d": impl.add_sincos_2d(x.copy(), 4, 5, layout="timm"),
            "nd": impl.add_sinusoidal_nd(x.copy(), (2, 2, 5)),
            "rotary": impl.apply_rotary(q.copy(), k.copy(), offset=np.array([0, 9]), scaling=longrope),
            "alibi": impl.add_alibi(scores.copy(), offset=np.array([4, 0])),
            "t5": impl.add_relative_bias(scores.copy(), bias_table, **t5, offset=3),
        }

    eager, expected = whole(fastpe), whole(reference)
    eps = float(np.finfo(dtype).eps)
    def each(value):
        return value if isinstance(value, tuple) else (value,)

    for name in names:
        for i, (got, bits, ref) in enumerate(zip(each(results[name]), each(eager[name]), each(expected[name]))):
            assert_eager_bits(got, bits, f"{name}[{i}] {np.dtype(dtype).name} on the cluster")
            # The reference rounds its float64 result once; fastpe's encodings
            # carry the contract's error (< 1e-9 here) and its sums one rounding more.
            tol = 2 * eps * (1.0 + np.abs(ref.astype(np.float64)) + 2 * np.abs(x).max()) + 1e-9
            assert_within(got, ref, tol, f"{name}[{i}] {np.dtype(dtype).name} on the cluster vs reference")
