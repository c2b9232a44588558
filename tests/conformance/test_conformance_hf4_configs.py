"""transformers 4.x configs (rope_theta, rope_scaling, partial_rotary_factor
as attributes, no rope_parameters) given to apply_rotary as they are, against
transformers 5's own rotary embedding of a config built with the same values
(PhiConfig, whose rotary applies partial_rotary_factor for every rope type, as
4.x's _compute_*_parameters did). HF forms the angles in float32: the
tolerance grows with the position, as in test_conformance_rotary.py.
"""

import logging
from types import SimpleNamespace

import numpy as np
import pytest

import fastpe
from hf_rotary import hf_rotate
from optional import conformance_import
from rope_parameters import as_rope_parameters, hf4_configs
from util import assert_within, rng_for

torch = conformance_import("torch")
transformers = conformance_import("transformers")

from optional import single_threaded_torch  # noqa: E402,F401 (autouse fixture)

CASES = hf4_configs()


def _transformers_5_config(attributes):
    """The same values in a transformers 5 PhiConfig (its own default
    partial_rotary_factor, 0.5, is replaced by the 4.x config's, or 1)."""
    values = as_rope_parameters(attributes)
    values["rope_parameters"].setdefault("partial_rotary_factor", 1.0)
    return transformers.PhiConfig(partial_rotary_factor=values["rope_parameters"]["partial_rotary_factor"], **values)


@pytest.mark.parametrize("name", sorted(CASES))
def test_4x_config_against_transformers_rotary(name):
    from transformers.models.phi.modeling_phi import PhiRotaryEmbedding

    logging.getLogger("transformers").setLevel(logging.ERROR)  # HF logs its own advice on some configs
    old = SimpleNamespace(**CASES[name])
    new = _transformers_5_config(CASES[name])
    head_dim = getattr(old, "head_dim", None) or old.hidden_size // old.num_attention_heads
    q = rng_for("hf4-conformance", name).standard_normal((2, 3, 40, head_dim)).astype(np.float32)
    for label, positions in (("short", np.stack([np.arange(40), np.arange(40) + 7])),
                             ("long", np.stack([np.arange(40) + 300, np.arange(40) + 20]))):
        expected, r = hf_rotate(PhiRotaryEmbedding(new), q, positions)
        tol = 2e-6 + 3e-7 * positions[:, None, :, None] * (1.0 + np.abs(q))
        got = fastpe.apply_rotary(q.copy(), positions=positions, scaling=old)
        assert_within(got, expected, tol, f"{name} {label}: scaling=the 4.x config")
        assert r == 2 * fastpe.rope_inv_freq(None, scaling=old, seq_len=int(positions.max()) + 1)[0].shape[0]
