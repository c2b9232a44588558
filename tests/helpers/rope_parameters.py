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
