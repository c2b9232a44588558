"""apply_rotary against torchtune's RotaryPositionalEmbeddings and
Llama3ScaledRoPE, where torchtune is installed (skipped otherwise).

torchtune's package __init__ needs a torchao release that matches it; its two
position-embedding source files need only torch, so they are loaded on their
own from the installed package (nothing copied, nothing stubbed).

torchtune rotates interleaved pairs (2i, 2i+1) of x shaped (b, s, n_h, h_d):
fastpe's layout="interleaved", seq_axis=-3. It computes the angles in
float32 (theta and positions as float32, their product rounded), so it is
off the float64 angles by about p * 6e-8 radians at position p; the
tolerance grows with position accordingly: 2e-6 + 1.5e-7 * p * |x|.
"""

import importlib.util
import os

import numpy as np
import pytest
from util import assert_within, rng_for

import fastpe

from optional import conformance_import, no_deps_reason  # noqa: E402

torch = conformance_import("torch")

from torch_util import single_threaded_torch  # noqa: E402,F401 (autouse fixture)


def _torchtune_file(relative):
    spec = importlib.util.find_spec("torchtune")
    if spec is None or spec.origin is None:
        pytest.skip(no_deps_reason("torchtune"))
    path = os.path.join(os.path.dirname(spec.origin), relative)
    name = "_fastpe_conformance_" + relative.replace("/", "_").replace(".py", "")
    module_spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


def _tolerance(x, positions):
    p = np.abs(np.asarray(positions, dtype=np.float64)).reshape(1, -1, 1, 1)
    return 2e-6 + 1.5e-7 * p * (1.0 + np.abs(x))


@pytest.mark.parametrize("dim,base", [(64, 10000.0), (128, 500000.0), (32, 10000.0)])
def test_rotary_positional_embeddings(dim, base):
    tt = _torchtune_file("modules/position_embeddings.py")
    rope = tt.RotaryPositionalEmbeddings(dim=dim, max_seq_len=4096, base=base)
    rng = rng_for("torchtune-rope", dim)
    x = rng.standard_normal((2, 50, 4, dim)).astype(np.float32)
    expected = rope(torch.from_numpy(x)).numpy()
    got = fastpe.apply_rotary(x.copy(), base=base, layout="interleaved", seq_axis=-3)
    assert_within(got, expected, _tolerance(x, np.arange(50)), f"RotaryPositionalEmbeddings dim={dim}")
    # explicit positions (torchtune's input_pos), far into the sequence
    input_pos = np.stack([np.arange(3000, 3050), np.arange(100, 150)])
    expected = rope(torch.from_numpy(x), input_pos=torch.from_numpy(input_pos)).numpy()
    got = fastpe.apply_rotary(x.copy(), positions=input_pos, base=base, layout="interleaved", seq_axis=-3)
    tol = 2e-6 + 1.5e-7 * input_pos[:, :, None, None] * (1.0 + np.abs(x))
    assert_within(got, expected, tol, f"RotaryPositionalEmbeddings input_pos dim={dim}")


def test_llama3_scaled_rope():
    tt = _torchtune_file("models/llama3_1/_position_embeddings.py")
    dim = 128
    rope = tt.Llama3ScaledRoPE(dim=dim, max_seq_len=4096, base=500000.0, scale_factor=8, low_freq_factor=1,
                               high_freq_factor=4, old_context_len=8192)
    scaling = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
               "original_max_position_embeddings": 8192, "rope_theta": 500000.0}
    rng = rng_for("torchtune-llama3")
    x = rng.standard_normal((1, 64, 2, dim)).astype(np.float32)
    input_pos = np.arange(2000, 2064)[None, :]
    expected = rope(torch.from_numpy(x), input_pos=torch.from_numpy(input_pos)).numpy()
    got = fastpe.apply_rotary(x.copy(), positions=input_pos, scaling=scaling, layout="interleaved", seq_axis=-3)
    assert_within(got, expected, _tolerance(x, input_pos[0]), "Llama3ScaledRoPE")
