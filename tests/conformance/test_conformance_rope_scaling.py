"""fastpe.rope_inv_freq against Hugging Face transformers'
ROPE_INIT_FUNCTIONS (skipped when transformers is not installed), for every
rope type, several head dims, bases, factors and sequence lengths. The
checks that need no HF are in rotary/test_rope_scaling.py.

Tolerance against HF: HF computes the frequencies in float32 (the exponent
``arange(0, dim, 2).float() / dim`` is rounded to float32, then a float32 pow,
reciprocal and scaling), fastpe in float64. Rounding the exponent e (<= 1) to
float32 changes base**e by a relative ln(base) * 2**-24 at most, and every
further float32 operation adds about 2**-24, so the bound used is
``2**-24 * (2 * ln(base_eff) + 8)`` (about 1.3e-6 for base 5e5; base_eff is
the scaled base of "dynamic"). yarn and llama3 blend ``w`` and ``w / factor``
with a weight computed in float32: an absolute error of ~2**-24 * w in the
blend is up to ``factor`` times the result's relative error, so their bound is
multiplied by ``factor``. Attention factors are Python floats (float64) in HF
too: compared to 1e-15 relative.
"""

import math

import numpy as np
import pytest

from fastpe._rotary import rope_inv_freq
from fastpe._rope import ROPE_TYPES
from optional import conformance_import
from rope_parameters import LLAMA3, longrope_parameters

F32 = 2.0 ** -24


# --------------------------------------------------------------------------- HF

def _hf(dim, params, seq_len=None, max_pos=4096):
    """HF's (inv_freq as float64 numpy, attention_factor) for a minimal LlamaConfig."""
    conformance_import("transformers")
    torch = conformance_import("torch")
    torch.set_num_threads(1)
    from transformers import LlamaConfig
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS
    from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding

    cfg = LlamaConfig(hidden_size=2 * dim, num_attention_heads=2, head_dim=dim,
                      max_position_embeddings=max_pos, rope_parameters=dict(params))
    rope_type = cfg.rope_parameters["rope_type"]
    if rope_type == "default":
        inv, att = LlamaRotaryEmbedding.compute_default_rope_parameters(cfg)
    else:
        inv, att = ROPE_INIT_FUNCTIONS[rope_type](cfg, seq_len=seq_len)
    assert inv.dtype == torch.float32
    return inv.double().numpy(), att


def _cases():
    cases = []
    for dim in (64, 128, 96):
        for base in (10000.0, 500000.0):
            cases.append((dim, {"rope_type": "default", "rope_theta": base}, None, 1.0))
            for factor in (2.0, 8.0):
                cases.append((dim, {"rope_type": "linear", "factor": factor, "rope_theta": base}, None, 1.0))
                for seq_len in (None, 100, 4096, 4097, 20000):
                    cases.append((dim, {"rope_type": "dynamic", "factor": factor, "rope_theta": base}, seq_len, 1.0))
            for factor in (4.0, 32.0):
                y = {"rope_type": "yarn", "factor": factor, "rope_theta": base, "original_max_position_embeddings": 1024}
                cases.append((dim, y, None, factor))
                cases.append((dim, {**y, "beta_fast": 16.0, "beta_slow": 2.0}, None, factor))
                cases.append((dim, {**y, "truncate": False}, None, factor))
                cases.append((dim, {**y, "mscale": 0.707, "mscale_all_dim": 1.0}, None, factor))
                cases.append((dim, {**y, "mscale": 0.707}, None, factor))
                cases.append((dim, {**y, "attention_factor": 1.25}, None, factor))
                # HF's truthiness rules: truncate=None means False, mscale_all_dim=0 means absent
                cases.append((dim, {**y, "truncate": None, "beta_fast": None, "beta_slow": None}, None, factor))
                cases.append((dim, {**y, "mscale": 1.0, "mscale_all_dim": 0.0}, None, factor))
            cases.append((dim, {"rope_type": "yarn", "factor": None, "rope_theta": base,
                                "original_max_position_embeddings": 1024}, None, 4.0))
            for seq_len in (None, 0, 1024, 1025, 9000):
                cases.append((dim, longrope_parameters(dim // 2, dim, rope_theta=base), seq_len, 1.0))
                cases.append((dim, longrope_parameters(dim // 2, dim, rope_theta=base, factor=8.0), seq_len, 1.0))
            cases.append((dim, longrope_parameters(dim // 2, dim, rope_theta=base, attention_factor=1.1), 2000, 1.0))
            for orig, lo, hi in ((4000, 1.0, 2.0), (1024, 1.0, 4.0), (2048, 2.0, 8.0)):
                cases.append((dim, {**LLAMA3, "rope_theta": base, "original_max_position_embeddings": orig,
                                    "low_freq_factor": lo, "high_freq_factor": hi}, None, 8.0))
    # partial rotary (HF applies partial_rotary_factor in every ROPE_INIT_FUNCTION)
    for dim, prf in ((128, 0.5), (80, 0.4), (96, 0.25)):
        r = int(dim * prf)
        cases.append((dim, {"rope_type": "linear", "factor": 4.0, "partial_rotary_factor": prf}, None, 1.0))
        cases.append((dim, {"rope_type": "dynamic", "factor": 4.0, "partial_rotary_factor": prf}, 9000, 1.0))
        cases.append((dim, {"rope_type": "yarn", "factor": 8.0, "partial_rotary_factor": prf,
                            "original_max_position_embeddings": 512}, None, 8.0))
        cases.append((dim, {**longrope_parameters(r // 2, r), "partial_rotary_factor": prf}, 5000, 1.0))
        cases.append((dim, {**LLAMA3, "partial_rotary_factor": prf}, None, 8.0))
    # proportional: frequencies over the whole head, the unrotated pairs 0
    for dim, prf, factor in ((64, 0.25, 1.0), (128, 0.5, 2.0), (80, 1.0, 4.0), (96, 0.3, 1.0)):
        cases.append((dim, {"rope_type": "proportional", "rope_theta": 10000.0, "partial_rotary_factor": prf,
                            "factor": factor}, None, 1.0))
    # legacy key
    cases.append((64, {"type": "linear", "factor": 3.0}, None, 1.0))
    return cases


def _base_eff(dim, params, seq_len, max_pos):
    base = params.get("rope_theta", 10000.0)
    if params.get("rope_type") == "dynamic":
        r = int(dim * params.get("partial_rotary_factor", 1.0))
        s = max(seq_len or max_pos, max_pos)
        f = params["factor"]
        base *= (f * s / max_pos - (f - 1)) ** (r / (r - 2))
    return base


@pytest.mark.parametrize("dim,params,seq_len,amp", _cases())
def test_matches_hf(dim, params, seq_len, amp):
    max_pos = 4096
    hf_inv, hf_att = _hf(dim, params, seq_len, max_pos)
    ours, att = rope_inv_freq(dim, 10000.0, {**params, "max_position_embeddings": max_pos}, seq_len=seq_len)
    assert ours.dtype == np.float64 and ours.shape == hf_inv.shape
    rtol = F32 * (2 * math.log(_base_eff(dim, params, seq_len, max_pos)) + 8) * amp
    np.testing.assert_allclose(ours, hf_inv, rtol=rtol, atol=0)
    assert isinstance(att, float)
    assert att == pytest.approx(hf_att, rel=1e-15, abs=0)


def test_hf_case_count_and_types_covered():
    assert {(p.get("rope_type") or p.get("type")) for _, p, _, _ in _cases()} == set(ROPE_TYPES)
