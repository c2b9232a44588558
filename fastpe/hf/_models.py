"""apply_to and revert: which Hugging Face models fastpe.hf patches, and how.

transformers 5 wires rotary the same way in every family patched here: the
model's rotary module turns position_ids into cos and sin once per forward
(HF forms the angles ``position_ids.float() * inv_freq`` in float32, whatever
the model's dtype), hands them to every decoder layer, and each attention
layer calls its modeling module's ``apply_rotary_pos_emb`` by its global
name. apply_to therefore patches two things:

* the model's rotary module, per instance: its forward returns, in place of
  cos and sin, NaN stand-ins that carry the positions and the model's
  scaling (fastpe.hf._rotation.RotaryCall);
* the modeling module's ``apply_rotary_pos_emb`` (a name every model of the
  family shares, so it cannot be per instance): a dispatcher that rotates
  calls carrying positions with fastpe.torch.apply_rotary (float64 angles)
  and passes every other call to the original function unchanged.

Nothing of the model is touched before every check has passed. Each scaling
is checked against the rotary module's own frequencies (to the precision of
their dtype), so a scaling fastpe would read differently from the model is
refused, not applied. ``dynamic`` keeps HF's state: HF's own update runs on
the largest position, and the frequencies are those of the length HF
settles on. ``longrope`` switches on the call's largest position + 1, as HF
does.
"""

from __future__ import annotations

import inspect
import sys
import weakref
from collections.abc import Mapping
from types import MethodType, SimpleNamespace

import numpy as np
import torch

from .._rotary import rope_inv_freq, rotary_cos_sin
from .._rope import scaling_parameters
from ._rotation import RotaryCall, dispatcher, is_dispatcher

# The rotary module classes patched, each with its attention class (in the
# same modeling module) and the form of that module's apply_rotary_pos_emb.
_QK, _GPTJ = "qk", "gptj"
FAMILIES = {
    "LlamaRotaryEmbedding": ("LlamaAttention", _QK),
    "MistralRotaryEmbedding": ("MistralAttention", _QK),
    "Qwen2RotaryEmbedding": ("Qwen2Attention", _QK),
    "Qwen3RotaryEmbedding": ("Qwen3Attention", _QK),
    "GemmaRotaryEmbedding": ("GemmaAttention", _QK),
    "Gemma2RotaryEmbedding": ("Gemma2Attention", _QK),
    "Gemma3RotaryEmbedding": ("Gemma3Attention", _QK),   # one rope dict per layer type
    "Phi3RotaryEmbedding": ("Phi3Attention", _QK),       # rotates cos.shape[-1] channels of each head
    "PhiRotaryEmbedding": ("PhiAttention", _QK),         # the attention passes the rotary channels alone
    "GPTNeoXRotaryEmbedding": ("GPTNeoXAttention", _QK),  # rotates cos.shape[-1] channels of each head
    "GPTJRotaryEmbedding": ("GPTJAttention", _GPTJ),     # its own table, interleaved pairs, (B, T, H, D)
}
_PARAMETERS = {_QK: ("q", "k", "cos", "sin", "unsqueeze_dim"), _GPTJ: ("tensor", "sin", "cos")}
_FUNCTION = "apply_rotary_pos_emb"
_GPTJ_BASE = 10000.0  # GPT-J's create_sinusoidal_positions
# What the scaling reader reads from a config besides rope_parameters. HF's standardize_rope_params
# prefers a config's original_max_position_embeddings to the dict's for a flat dict only (Phi-3's case).
_CONFIG_ATTRIBUTES = ("head_dim", "hidden_size", "num_attention_heads", "max_position_embeddings", "rope_theta",
                      "partial_rotary_factor", "ignore_keys_at_rope_validation")
_FLAT_ONLY_ATTRIBUTES = ("original_max_position_embeddings",)
_PATCH = "_fastpe_hf_patch"  # the rotary module's attribute holding its _Patch
_LIVE = {}  # modeling module name -> WeakSet of its patched rotary modules


class _LayerPlan:
    """How one layer type (None: the model's only one) rotates."""

    __slots__ = ("layer_type", "rotary_dim", "layout", "table_width", "frequencies", "view", "dynamic",
                 "_last_dynamic")

    def __init__(self, layer_type, rotary_dim, layout, table_width, frequencies, view=None, dynamic=False):
        self.layer_type = layer_type
        self.rotary_dim = rotary_dim
        self.layout = layout
        self.table_width = table_width
        self.frequencies = frequencies
        self.view = view
        self.dynamic = dynamic
        self._last_dynamic = None  # (seq_len, its frequencies) of the last dynamic call

    def frequencies_for(self, module, x, position_ids):
        """fastpe.torch.apply_rotary's frequency arguments for this call."""
        if not self.dynamic:
            return self.frequencies
        # HF's own dynamic update (it only looks at the largest position), on a one-position table
        extra = {} if self.layer_type is None else {"layer_type": self.layer_type}
        type(module).forward(module, x, position_ids.amax().reshape(1, 1), **extra)
        seq_len = int(_state(module, self.layer_type, "max_seq_len_cached", module.max_seq_len_cached))
        if self._last_dynamic is None or self._last_dynamic[0] != seq_len:
            self._last_dynamic = (seq_len, {"inv_freq": rope_inv_freq(None, scaling=self.view, seq_len=seq_len)[0]})
        return self._last_dynamic[1]


class _Patch:
    """A patched rotary module's plans (by layer type) and modeling module."""

    __slots__ = ("plans", "modeling", "signature", "gptj")

    def __init__(self, plans, modeling, signature):
        self.plans = plans
        self.modeling = modeling
        self.signature = signature
        self.gptj = signature == _GPTJ

    def __deepcopy__(self, memo):
        return self  # a copy of the model shares it: it holds nothing of the module (and a module cannot be copied)


def _patched_forward(self, x, position_ids, layer_type=None):
    """The rotary module's forward under apply_to: stand-ins for cos and sin
    that carry position_ids and the layer type's frequencies."""
    patch = self.__dict__[_PATCH]
    _ensure_dispatcher(patch, self)
    plan = patch.plans[layer_type]
    call = RotaryCall(position_ids, plan.rotary_dim, plan.layout, plan.frequencies_for(self, x, position_ids))
    cos, sin = call.tables(x, plan.table_width)
    return (sin, cos) if patch.gptj else (cos, sin)


def _ensure_dispatcher(patch, module):
    """The dispatcher in the modeling module (again, if a revert of another
    model took it out while this one, or a copy of it, stayed patched)."""
    modeling = patch.modeling
    current = getattr(modeling, _FUNCTION)
    if not is_dispatcher(current):
        setattr(modeling, _FUNCTION, dispatcher(current, patch.signature))
    _LIVE.setdefault(modeling.__name__, weakref.WeakSet()).add(module)


def _state(module, layer_type, name, default=None):
    return getattr(module, name if layer_type is None else f"{layer_type}_{name}", default)


def _family_error(model, what):
    names = ", ".join(sorted(FAMILIES))
    return TypeError(f"fastpe.hf.apply_to cannot patch {type(model).__name__}: {what}. It patches the models whose "
                     f"rotary module is one of {names} (transformers 5); nothing was changed")


def _rotary_modules(model):
    """(name, module, family) of the model's rotary modules; TypeError for
    any it does not know (never a partial patch) or none at all."""
    found, unknown = [], []
    for name, module in model.named_modules():
        cls = type(module)
        if not cls.__name__.endswith("RotaryEmbedding"):
            continue
        family = FAMILIES.get(cls.__name__) if cls.__module__.startswith("transformers.models.") else None
        if family is None:
            unknown.append(f"{name or 'the model'} ({cls.__module__}.{cls.__qualname__})")
        else:
            found.append((name, module, family))
    if unknown:
        raise _family_error(model, f"its rotary module {', '.join(unknown)} is of a class fastpe.hf does not know")
    if not found:
        raise _family_error(model, "it has no rotary embedding module (a module of a class named *RotaryEmbedding)")
    return found


def _function_parameters(function):
    while is_dispatcher(function):
        function = function.__wrapped__
    target = function.forward if isinstance(function, torch.nn.Module) else function  # kernels' function module
    try:
        return tuple(inspect.signature(target).parameters)
    except (TypeError, ValueError):
        return None


def _check_wiring(model, name, module, family):
    """The modeling module of a rotary module, after checking that it wires
    rotary as fastpe.hf expects; TypeError naming what is missing."""
    attention_name, signature = family
    modeling = sys.modules.get(type(module).__module__)
    where = f"{type(module).__module__}"
    function = getattr(modeling, _FUNCTION, None)
    if function is None or _function_parameters(function) != _PARAMETERS[signature]:
        raise _family_error(model, f"{where}.{_FUNCTION} is missing or does not take "
                                   f"({', '.join(_PARAMETERS[signature])})")
    attention = getattr(modeling, attention_name, None)
    if attention is None or not any(type(m) is attention for m in model.modules()):
        raise _family_error(model, f"it has no {where}.{attention_name} layer, the attention that calls "
                                   f"{_FUNCTION} with the cos and sin of {name}")
    forward = module.__dict__.get("forward")
    if forward is not None and getattr(forward, "__func__", None) is not _patched_forward:
        raise _family_error(model, f"the forward of {name} was replaced by something other than fastpe.hf")
    return modeling, attention


def _buffer(module, layer_type, name):
    value = _state(module, layer_type, name)
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"fastpe.hf.apply_to: the rotary module has no {name} buffer"
                        + ("" if layer_type is None else f" for layer type {layer_type!r}"))
    return value.detach().to("cpu", torch.float64).numpy()


def _precision(tensor_dtype):
    """The relative precision of HF's frequencies or tables held in tensor_dtype: HF computes them in float32,
    and model.to(dtype) rounds them again."""
    return max(float(torch.finfo(tensor_dtype).eps), float(torch.finfo(torch.float32).eps))


def _scaling_view(config, layer_type):
    """What the scaling reader reads of config for one layer type: a config
    of its own, whose rope_parameters are that layer type's dict (copied
    when apply_to runs, as HF's rotary module read it when it was built)."""
    params = config.rope_parameters
    if layer_type is not None:
        params = params[layer_type]
    names = _CONFIG_ATTRIBUTES + (_FLAT_ONLY_ATTRIBUTES if layer_type is None else ())
    attributes = {n: getattr(config, n) for n in names if getattr(config, n, None) is not None}
    return SimpleNamespace(rope_parameters=dict(params), **attributes)


def _flat_scaling(view):
    """The view's scaling as the reader reads it, as a dict: what the rotation
    takes on every call (a dict is keyed in fastpe's cache at a glance; a
    config is read again each time). Its rotary width goes with it as
    rotary_dim, so a partial factor stays unambiguous. The keys the config
    asks not to validate are left out, as the reader leaves them unread."""
    params, _, ignore = scaling_parameters(view)
    return {key: value for key, value in params.items() if key not in ignore}


def _standard_plans(model, name, module):
    """The layer plans of an HF rotary module (inv_freq buffers, possibly one
    set per layer type), each checked against the module's own frequencies."""
    config = module.config
    per_layer = isinstance(module.rope_type, Mapping)
    plans = {}
    for layer_type in (sorted(module.rope_type) if per_layer else [None]):
        rope_type = module.rope_type[layer_type] if per_layer else module.rope_type
        view = _scaling_view(config, layer_type)
        dynamic = "dynamic" in rope_type  # HF's dynamic_rope_update test
        where = f"{name}" + ("" if layer_type is None else f" (layer type {layer_type!r})")
        # HF's frequencies now: dynamic at the length it holds, longrope's short set (seq_len None)
        seq_len = int(_state(module, layer_type, "max_seq_len_cached", module.max_seq_len_cached)) if dynamic else None
        buffer_name = "original_inv_freq" if rope_type == "longrope" else "inv_freq"
        theirs = _buffer(module, layer_type, buffer_name)
        try:
            ours, factor = rope_inv_freq(None, scaling=view, seq_len=seq_len)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"fastpe.hf.apply_to: the scaling of {where}, rope_type={rope_type!r}, cannot be "
                             f"applied: {exc}") from exc
        dtype = _state(module, layer_type, buffer_name).dtype
        their_factor = float(_state(module, layer_type, "attention_scaling", 1.0))
        if ours.shape != theirs.shape or not np.allclose(ours, theirs, rtol=8 * _precision(dtype), atol=0) \
                or not np.isclose(factor, their_factor, rtol=1e-6, atol=0):
            raise ValueError(
                f"fastpe.hf.apply_to: the scaling of {where}, rope_type={rope_type!r}, reads differently in fastpe: "
                f"{len(ours)} frequencies from {ours[:1]} with attention factor {factor}, where the model's rotary "
                f"module holds {len(theirs)} from {theirs[:1]} with {their_factor}; nothing was changed")
        rotary_dim = 2 * len(ours)
        frequencies = {"scaling": _flat_scaling(view)}
        plans[layer_type] = _LayerPlan(layer_type, rotary_dim, "half", rotary_dim, frequencies, view, dynamic)
    return plans


def _gptj_plans(model, name, module, attention):
    """GPT-J's plan: default RoPE, base 10000, over pos_embd_dim channels, interleaved; checked against its table."""
    rotary_dim = int(module.pos_embd_dim)
    layer = next(m for m in model.modules() if type(m) is attention)  # _check_wiring found one
    sliced = layer.head_dim if layer.rotary_dim is None else layer.rotary_dim  # what it passes to the rotation
    if sliced != rotary_dim or rotary_dim > layer.head_dim:
        raise ValueError(f"fastpe.hf.apply_to: {name} rotates {rotary_dim} channels (config.rotary_dim or "
                         f"hidden_size), but the attention passes {sliced} of its {layer.head_dim}-channel heads: "
                         f"the unpatched model cannot run either; nothing was changed")
    table = module.embed_positions
    n = min(64, table.shape[0])
    cos, sin = rotary_cos_sin(n, rotary_dim, base=_GPTJ_BASE, layout="interleaved", dtype=np.float64)
    ours = np.concatenate([sin[:, 0::2], cos[:, 0::2]], axis=1)
    theirs = table[:n].detach().to("cpu", torch.float64).numpy()
    if not np.allclose(ours, theirs, rtol=0, atol=_precision(table.dtype) + 4 * n * 2.0 ** -24):
        raise ValueError(f"fastpe.hf.apply_to: the sin/cos table of {name} is not default RoPE with base "
                         f"{_GPTJ_BASE} over {rotary_dim} channels; nothing was changed")
    plan = _LayerPlan(None, rotary_dim, "interleaved", rotary_dim // 2, {"base": _GPTJ_BASE})
    return {None: plan}


def _check_rotary_widths(model, attention, plans, name):
    """Attention layers that slice the rotary channels themselves (Phi,
    GPT-NeoX) must slice the width the frequencies cover."""
    widths = {plan.rotary_dim for plan in plans.values()}
    for layer in model.modules():
        sliced = getattr(layer, "rotary_ndims", None) if type(layer) is attention else None
        if sliced is not None and sliced not in widths:
            raise ValueError(f"fastpe.hf.apply_to: the attention slices {sliced} rotary channels, but {name} "
                             f"rotates {sorted(widths)}; nothing was changed")


def apply_to(model):
    """Patch a loaded Hugging Face model so that its rotary embedding runs on fastpe; returns the model.

    The model's rotary module stops computing cos and sin: it hands its
    attention layers the positions, and each layer rotates q and k with
    `fastpe.torch.apply_rotary`, angles formed in float64 from the positions
    with the model's own scaling (per layer type for Gemma 3), in one pass
    with a backward. HF forms them as ``position_ids.float() * inv_freq`` in
    float32, whatever the model's dtype (0.06 rad off at position 2**20 for a
    head of 128), so at long positions the patched model is closer to the
    exact one; elsewhere it agrees with the unpatched model to float32
    rounding. Training, generation with the KV cache and padding work as
    before.

    Parameters
    ----------
    model : transformers.PreTrainedModel
        A Llama (any of its rope types), Mistral, Qwen2, Qwen3, Gemma,
        Gemma2, Gemma3, Phi-3, Phi, GPT-NeoX or GPT-J model (transformers
        5), on any device and in any float dtype.

    Returns
    -------
    model
        The same object, patched. A second call patches it again from its
        config.

    Raises
    ------
    TypeError
        A model without a rotary module, with one of a class fastpe.hf does
        not know, or whose rotary wiring is not transformers 5's (the
        message names what is missing).
    ValueError
        A scaling fastpe would read differently from the model's rotary
        module. Nothing is changed before every check has passed.

    See Also
    --------
    revert : undoes the patch.
    apply_rotary_pos_emb : HF's function of that name, fused.

    Notes
    -----
    The rotary module is patched per instance. The attention layers call
    their modeling module's ``apply_rotary_pos_emb`` by its global name, so
    that function is replaced by a dispatcher shared by all models of the
    family in the process: it passes every call of an unpatched model to
    the original function unchanged. `revert` removes it again once no
    patched model of the family is left. ``dynamic`` scaling keeps HF's
    state (the longest sequence seen); ``longrope`` switches on the call's
    largest position + 1, as HF does. GPT-J's table ends at
    ``max_position_embeddings``; the patched model computes any position.
    The patch targets eager execution (``torch.compile`` of a patched
    model is not supported).

    Examples
    --------
    >>> import torch
    >>> import transformers
    >>> import fastpe.hf
    >>> config = transformers.LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
    ...                                   num_attention_heads=4, num_key_value_heads=2, vocab_size=128)
    >>> model = transformers.LlamaForCausalLM(config).eval()
    >>> input_ids = torch.tensor([[5, 17, 42, 9]])
    >>> with torch.no_grad():
    ...     before = model(input_ids).logits
    ...     after = fastpe.hf.apply_to(model)(input_ids).logits
    >>> bool(torch.allclose(before, after, atol=1e-5))
    True
    >>> _ = fastpe.hf.revert(model)
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a transformers model (a torch.nn.Module), got {type(model).__name__}")
    patches = []
    for name, module, family in _rotary_modules(model):
        modeling, attention = _check_wiring(model, name, module, family)
        if family[1] == _GPTJ:
            plans = _gptj_plans(model, name, module, attention)
        else:
            plans = _standard_plans(model, name, module)
        _check_rotary_widths(model, attention, plans, name)
        patches.append((module, _Patch(plans, modeling, family[1])))
    for module, patch in patches:  # every check passed: now patch
        module.__dict__[_PATCH] = patch
        module.forward = MethodType(_patched_forward, module)
        _ensure_dispatcher(patch, module)
    return model


def revert(model):
    """Undo `apply_to`; returns the model.

    The rotary modules get their own forward back; a modeling module gets
    its own ``apply_rotary_pos_emb`` back once no patched model of the family
    is left (a patched copy made with ``copy.deepcopy`` puts the dispatcher
    back when it runs). Reverting a model that is not patched does nothing.

    Parameters
    ----------
    model : torch.nn.Module
        A model patched by `apply_to` (or not).

    Returns
    -------
    model
        The same object.
    """
    for module in model.modules():
        patch = module.__dict__.pop(_PATCH, None)
        if patch is None:
            continue
        module.__dict__.pop("forward", None)
        live = _LIVE.get(patch.modeling.__name__)
        if live is not None:
            live.discard(module)
        current = getattr(patch.modeling, _FUNCTION)
        if not live and is_dispatcher(current):
            setattr(patch.modeling, _FUNCTION, current.__wrapped__)
    return model
