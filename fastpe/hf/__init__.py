"""fastpe in Hugging Face transformers models (needs torch; transformers itself is never imported).

* `apply_to(model)` patches a loaded model in one call: its rotary
  embedding is computed from the positions with float64 angles and the
  model's own scaling, q and k rotated in one pass (`revert` undoes it).
* `apply_rotary_pos_emb(q, k, cos, sin, unsqueeze_dim=1)` is HF's function
  of that name, fused, with a backward.
* `kernel_mapping()` serves transformers 5's kernel-hub slot
  ``rotary_pos_emb`` on CPU through the ``kernels`` package.

The recipes: docs/hf.rst.
"""

from ._hub import kernel_mapping
from ._models import apply_to, revert
from ._rotation import apply_rotary_pos_emb

__all__ = ["apply_rotary_pos_emb", "apply_to", "kernel_mapping", "revert"]
