"""transformers 5's kernel-hub slot ``rotary_pos_emb``, served on CPU by fastpe.

The ``kernels`` package maps a layer name to a repository per device and
mode. A repository is anything with ``load()`` returning a stateless
``torch.nn.Module`` class whose forward takes the arguments of the layer it
replaces (kernels' RepositoryProtocol); `kernels.kernelize` then points the
forward of HF's ``apply_rotary_pos_emb`` (a module made by
``use_kernel_forward_from_hub("rotary_pos_emb")``) at the loaded class's
forward. fastpe's repository loads a class that calls
fastpe.hf.apply_rotary_pos_emb: no download, training and inference.
"""

from __future__ import annotations

import torch

from ._rotation import apply_rotary_pos_emb

SLOT = "rotary_pos_emb"


class RotaryPosEmb(torch.nn.Module):
    """HF's ``rotary_pos_emb`` kernel layer, computed by fastpe.hf.apply_rotary_pos_emb."""

    # kernels' flags: a backward (training mode), and torch.compile
    has_backward = True
    can_torch_compile = True

    def forward(self, q, k, cos, sin, unsqueeze_dim=1):
        return apply_rotary_pos_emb(q, k, cos, sin, unsqueeze_dim)


class _InstalledRepository:
    """kernels' repository protocol for a layer installed with fastpe (nothing to fetch)."""

    def load(self):
        return RotaryPosEmb

    def __str__(self):
        return f"fastpe {__package__} (installed), layer {RotaryPosEmb.__name__}"


_REPOSITORY = _InstalledRepository()  # one object: kernels caches the loaded layer by repository


def kernel_mapping():
    """The ``kernels`` mapping that serves HF's ``rotary_pos_emb`` slot on CPU with fastpe.

    For `kernels.use_kernel_mapping` (or `kernels.register_kernel_mapping`)
    before `kernels.kernelize` (or transformers' ``model.set_use_kernels``,
    ``from_pretrained(..., use_kernels=True)``). Every mode is mapped:
    inference and training, with and without ``torch.compile``.

    Returns
    -------
    dict
        ``{"rotary_pos_emb": {"cpu": {mode: repository, ...}}}``.

    Notes
    -----
    The slot belongs to a modeling module, not to a model: kernelizing one
    Llama model serves every Llama model of the process, as the kernels
    package designs it; kernelizing again outside the mapping gives HF's
    function back. The slot receives HF's cos and sin (float32 angles);
    `apply_to` goes further and computes the angles from the positions.

    Examples
    --------
    >>> import torch
    >>> import transformers
    >>> from kernels import Mode, kernelize, use_kernel_mapping
    >>> import fastpe.hf
    >>> config = transformers.LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
    ...                                   num_attention_heads=4, num_key_value_heads=2, vocab_size=128)
    >>> model = transformers.LlamaForCausalLM(config)
    >>> with use_kernel_mapping(fastpe.hf.kernel_mapping()):
    ...     model = kernelize(model, mode=Mode.TRAINING, device="cpu")
    >>> loss = model(torch.tensor([[5, 17, 42, 9]]), labels=torch.tensor([[5, 17, 42, 9]])).loss
    >>> loss.backward()
    >>> model = kernelize(model, mode=Mode.TRAINING, device="cpu")   # outside the mapping: HF's own again
    """
    from kernels import Mode

    modes = (Mode.INFERENCE, Mode.TRAINING, Mode.INFERENCE | Mode.TORCH_COMPILE, Mode.TRAINING | Mode.TORCH_COMPILE)
    return {SLOT: {"cpu": {mode: _REPOSITORY for mode in modes}}}
