"""A user's own Dask code on worker processes, end to end.

Blocks reach a process worker by pickle protocol 5, out of band: they sit
wherever their frame does, so a float32 block is often at address % 4 != 0.
``xa.map_blocks(lambda b: fastpe.add_sinusoidal(b))`` and
``client.submit(fastpe.add_sinusoidal, array)`` raised "x is not aligned"
there; they are written in place and give the reference's values.
(fastpe.dask's own wrappers are tested in tests/dask/.)
"""

import numpy as np
import pytest

import fastpe
from fastpe import reference
from util import add_tolerance, assert_within

INSTALL = 'the test extra brings it: pip install ".[test]"'
da = pytest.importorskip("dask.array", reason=f"dask is not installed; {INSTALL}")
distributed = pytest.importorskip("distributed", reason=f"distributed is not installed; {INSTALL}")

pytestmark = [
    # the cluster's own shutdown chatter is not this test's business
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(processes=True, n_workers=1, threads_per_worker=1, dashboard_address=None,
                                  silence_logs=50) as cluster, distributed.Client(cluster) as client:
        yield client


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_regression_map_blocks_on_process_workers(client, dtype):
    x = np.random.default_rng(0).standard_normal((8, 64, 32)).astype(dtype)
    xa = da.from_array(x, chunks=(2, 64, 32))
    got = xa.map_blocks(lambda b: fastpe.add_sinusoidal(b)).compute()
    expected = reference.add_sinusoidal(x.copy())
    assert_within(got, expected, add_tolerance(dtype, 64, np.abs(x)), "map_blocks on process workers")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_regression_client_submit_on_process_workers(client, dtype):
    x = np.random.default_rng(1).standard_normal((3, 17, 16)).astype(dtype)
    got = client.submit(fastpe.add_sinusoidal, x, offset=5).result()
    expected = reference.add_sinusoidal(x.copy(), offset=5)
    assert_within(got, expected, add_tolerance(dtype, 22, np.abs(x)), "client.submit on a process worker")
