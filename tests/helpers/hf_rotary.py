"""Hugging Face's rotation of an array, for the conformance tests (imports
torch and transformers when called: the callers skip without them)."""

import numpy as np


def hf_rotate(rotary_module, q, positions):
    """q rotated by a model's rotary embedding module as its attention does:
    cos, sin from the module's forward, applied with apply_rotary_pos_emb to
    the first rotary channels, the rest passed through (Phi, GPT-NeoX).
    Returns (the result as NumPy, the rotary width)."""
    import torch
    from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

    qt = torch.from_numpy(q)
    cos, sin = rotary_module(qt, torch.from_numpy(np.asarray(positions)))
    r = cos.shape[-1]
    rotated, _ = apply_rotary_pos_emb(qt[..., :r], qt[..., :r], cos, sin)
    return torch.cat([rotated, qt[..., r:]], dim=-1).numpy(), r
