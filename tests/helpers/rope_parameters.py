"""RoPE scaling parameter sets shared by the rope-scaling tests
(rotary/test_rope_scaling.py) and their comparison with Hugging Face
(conformance/test_conformance_rope_scaling.py), in HF's rope_parameters form."""

import numpy as np

LLAMA3 = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
          "original_max_position_embeddings": 1024}


def longrope_parameters(n, seed, **extra):
    """A longrope parameter set with n random long and short factors (seeded)."""
    rng = np.random.default_rng(seed)
    return {"rope_type": "longrope", "original_max_position_embeddings": 1024,
            "long_factor": list(1.0 + 30 * rng.random(n)), "short_factor": list(1.0 + 0.2 * rng.random(n)),
            **extra}


def hf4_configs():
    """Configs in transformers 4.x's shape (rope_theta, rope_scaling and
    partial_rotary_factor as attributes, no rope_parameters), one per rope
    type 4.x had, as {id: dict of config attributes}. Small sizes, so long
    positions pass original_max_position_embeddings."""
    base = {"hidden_size": 256, "num_attention_heads": 4, "max_position_embeddings": 256}
    long = longrope_parameters(32, 5)
    return {
        "default-theta": {**base, "rope_theta": 500000.0, "rope_scaling": None},
        "linear-legacy-type": {**base, "rope_theta": 1e6, "rope_scaling": {"type": "linear", "factor": 4.0}},
        "dynamic": {**base, "rope_theta": 25000.0, "rope_scaling": {"type": "dynamic", "factor": 2.0}},
        "yarn-qwen2": {**base, "rope_theta": 1e6, "rope_scaling": {"type": "yarn", "factor": 4.0,
                                                                    "original_max_position_embeddings": 64}},
        "longrope-phi3": {**base, "rope_theta": 10000.0, "original_max_position_embeddings": 64,
                          "rope_scaling": {"type": "longrope", "long_factor": long["long_factor"],
                                           "short_factor": long["short_factor"]}},
        "llama3": {**base, "rope_theta": 500000.0, "rope_scaling": {**LLAMA3, "original_max_position_embeddings": 64}},
        "partial-neox": {**base, "rope_theta": 25000.0, "partial_rotary_factor": 0.25,
                         "rope_scaling": {"rope_type": "linear", "factor": 2.0}},
        "head-dim": {**base, "head_dim": 32, "rope_theta": 50000.0, "rope_scaling": None},
    }


def as_rope_parameters(attributes):
    """The same config in transformers 5's shape: rope_theta and
    partial_rotary_factor moved into rope_parameters (as HF 5's
    standardize_rope_params moves them), the other attributes kept."""
    attributes = dict(attributes)
    params = dict(attributes.pop("rope_scaling") or {"rope_type": "default"})
    params["rope_theta"] = attributes.pop("rope_theta")
    if "partial_rotary_factor" in attributes:
        params["partial_rotary_factor"] = attributes.pop("partial_rotary_factor")
    return {**attributes, "rope_parameters": params}
