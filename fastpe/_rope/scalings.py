"""The reader of Hugging Face's RoPE scalings: a dict or a config is read and
each rope type's keys are checked (fastpe._rope.frequencies applies the rule
of fastpe._formulas to the checked values).
tests/conformance/test_conformance_rope_scaling.py compares every rule with
Hugging Face's own functions.

Conventions
-----------
* ``dim`` is HF's ``head_dim``. A ``partial_rotary_factor`` key gives the
  rotary width as HF does, ``int(dim * partial_rotary_factor)``; ``inv_freq``
  has half that many entries (``dim // 2`` without the key). The rotary width
  must be even and >= 2 (HF's yarn fails on an odd one; fastpe refuses it for
  every type). HF's generic functions apply ``partial_rotary_factor`` for every
  type; fastpe does so for ``"default"`` too (GPT-NeoX, Phi), where Llama's
  own default ignores it (Llama configs never set it).
* ``scaling`` is the model's config itself (anything with a ``rope_parameters``
  attribute, or a transformers 4.x config: ``rope_scaling`` (None without a
  scaling) and ``rope_theta`` attributes; transformers is never imported), or
  ``config.rope_parameters``
  (or a legacy ``rope_scaling``) as a dict: ``rope_type`` (or the legacy
  ``type``; ``rope_type`` wins when both are present, as in HF's
  ``standardize_rope_params``) picks the rule. A ``rope_theta`` key (not
  None) overrides ``base``.
* A config gives what HF reads from it besides the dict:
  ``max_position_embeddings`` (dynamic, and yarn/longrope without
  ``factor``), ``original_max_position_embeddings`` (an attribute of Phi-3's
  config, which HF prefers to the dict's for yarn/longrope/llama3), the head
  width (``head_dim``, else ``hidden_size // num_attention_heads``), and
  ``rope_theta`` / ``partial_rotary_factor`` attributes of configs that keep
  them outside the dict (as ``standardize_rope_params`` does). With a dict,
  ``max_position_embeddings`` is a key of ``scaling`` instead. A missing
  ``original_max_position_embeddings`` defaults to ``max_position_embeddings``
  for yarn/longrope/llama3, as HF's ``standardize_rope_params`` does.
  Per-layer dicts (``{"full_attention": {...}, "sliding_attention": {...}}``,
  Gemma 3), given as the dict or inside a config, are refused: the layer
  types rotate differently, so pass one layer type's dict (with
  ``max_position_embeddings``), or a config whose ``rope_parameters`` is flat.
* Keys the rope type does not use warn (``UserWarning`` naming them), as HF's
  ``validate_rope`` does (it logs them); a config's
  ``ignore_keys_at_rope_validation`` are not warned about, as in HF. A
  ``seq_len`` key is an error: it is an argument, never a rope parameter
  (``rope_inv_freq(..., seq_len=)``; ``apply_rotary`` takes it from the
  positions). Only the keys a rope type uses are validated. ``scaling`` is
  never modified.
* ``"proportional"`` (HF's ``_compute_proportional_rope_parameters``):
  ``int(partial_rotary_factor * dim // 2)`` frequencies
  ``base ** (-2k / dim)`` over the whole head, the remaining ``dim // 2``
  ones 0 (those channel pairs are not rotated), all divided by ``factor``
  (default 1). Its rotary width is the whole head.
* ``seq_len`` matters only for ``"dynamic"`` (clamped below by
  ``max_position_embeddings``; None means ``max_position_embeddings``) and
  ``"longrope"`` (long factors when ``seq_len`` is truthy and
  ``> original_max_position_embeddings``, short ones otherwise, None and 0
  included); other types ignore it, as HF does.
* fastpe is stateless. HF's ``dynamic_rope_update`` keeps the frequencies of
  the longest sequence seen so far (it only recomputes on growth, and resets to
  the original ones when a sequence shorter than ``max_position_embeddings``
  follows a longer one); here the result depends only on the ``seq_len`` given.
  For longrope HF switches on ``max(position_ids) + 1``: pass that as seq_len.

HF semantics kept on purpose (some surprising)
----------------------------------------------
* yarn: ``attention_factor`` (when not given) is
  ``get_mscale(factor, mscale) / get_mscale(factor, mscale_all_dim)`` only when
  *both* ``mscale`` and ``mscale_all_dim`` are truthy; otherwise it is
  ``get_mscale(factor)`` = ``0.1 * ln(factor) + 1`` (1 for factor <= 1), so a
  lone ``mscale`` is ignored and ``mscale=0`` means "absent".
* yarn: ``truncate`` absent means True, but ``truncate=None`` means False (HF:
  ``truncate = rope_parameters.get("truncate", True)`` then ``if truncate:``).
* yarn: the correction range is clamped to ``[0, dim - 1]`` although the ramp
  runs over ``dim // 2`` entries (HF's ``min(high, dim - 1)``), and equal
  bounds get ``high += 0.001``.
* yarn/longrope: ``factor`` None or absent means
  ``max_position_embeddings / original_max_position_embeddings``.
* longrope: the attention factor uses that ``factor`` (not the long/short
  lists): 1 when ``factor <= 1``, else
  ``sqrt(1 + ln(factor) / ln(original_max_position_embeddings))``.
* dynamic: ``base * (factor * seq_len / max_pos - (factor - 1)) ** (dim / (dim - 2))``
  with ``dim`` the rotary width (so it needs dim >= 4).

Stricter than HF (HF only logs a warning or fails with an arithmetic error):
factors, attention_factor, beta_fast/beta_slow, max_position_embeddings and
original_max_position_embeddings must be > 0 (``beta_fast`` / ``beta_slow`` of
0 are errors, where HF's ``or 32`` / ``or 1`` would silently use the
default); ``beta_fast >= beta_slow``; ``high_freq_factor > low_freq_factor``;
``long_factor`` / ``short_factor`` must have exactly ``rotary_dim // 2``
positive entries; ``mscale`` / ``mscale_all_dim`` >= 0; yarn needs
``rope_theta != 1`` and longrope with factor > 1 and no ``attention_factor``
needs ``original_max_position_embeddings >= 2`` (both divide by a log).
"""

from __future__ import annotations

import math
import warnings
from collections import namedtuple
from collections.abc import Mapping

import numpy as np

from .._formulas import dynamic_base
from .._validation.scalars import check_int, check_real_scalar

ROPE_TYPES = ("default", "linear", "dynamic", "yarn", "longrope", "llama3", "proportional")

# The keys each rope type reads (HF's validate_rope lists), besides the ones every type takes.
_COMMON_KEYS = {"rope_type", "type", "rope_theta", "partial_rotary_factor", "max_position_embeddings"}
_TYPE_KEYS = {
    "default": set(),
    "linear": {"factor"},
    "dynamic": {"factor"},
    "yarn": {"factor", "original_max_position_embeddings", "attention_factor", "beta_fast", "beta_slow", "mscale",
             "mscale_all_dim", "truncate"},
    "longrope": {"short_factor", "long_factor", "original_max_position_embeddings", "attention_factor", "factor"},
    "llama3": {"factor", "original_max_position_embeddings", "low_freq_factor", "high_freq_factor"},
    "proportional": {"factor"},
}
# Where a config keeps its rope dict: transformers 5's rope_parameters, else
# transformers 4's rope_scaling (with rope_theta and partial_rotary_factor as
# attributes of their own, read as HF 5's standardize_rope_params moves them).
_CONFIG_DICTS = ("rope_parameters", "rope_scaling")
# HF's standardize_rope_params fills original_max_position_embeddings for these.
_ORIGINAL_MAX_TYPES = ("llama3", "yarn", "longrope")

def _name(key):
    return f"scaling[{key!r}]"


def _real(params, key, *, required=False, positive=True, nonnegative=False, why=""):
    """A finite real value of params[key]; None if absent or None (unless required)."""
    value = params.get(key)
    if value is None:
        if required:
            raise ValueError(f"{_name(key)} is required for rope_type={params['__type__']!r}{why}")
        return None
    value = check_real_scalar(_name(key), value)
    if positive and value <= 0:
        raise ValueError(f"{_name(key)} must be > 0, got {value}")
    if nonnegative and value < 0:
        raise ValueError(f"{_name(key)} must be >= 0, got {value}")
    return value


def _positive_int(params, key, *, required=False, why=""):
    value = params.get(key)
    if value is None:
        if required:
            raise ValueError(f"{_name(key)} is required for rope_type={params['__type__']!r}{why}")
        return None
    return _check_positive_int(_name(key), value)


def _check_positive_int(name, value):
    value = check_int(name, value, "a positive integer")
    if value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value}")
    return value


def _original_max(params):
    """original_max_position_embeddings, defaulting to max_position_embeddings (HF's standardization)."""
    orig = _positive_int(params, "original_max_position_embeddings")
    mpe = _positive_int(params, "max_position_embeddings")
    if orig is None:
        if mpe is None:
            raise ValueError(
                f"{_name('original_max_position_embeddings')} is required for rope_type={params['__type__']!r} "
                f"(or {_name('max_position_embeddings')}, its default)")
        orig = mpe
    return orig, mpe


def _factor_or_ratio(params, orig, mpe):
    """yarn/longrope: factor, or max_position_embeddings / original_max_position_embeddings."""
    factor = _real(params, "factor")
    if factor is None:
        if mpe is None:
            raise ValueError(
                f"{_name('factor')} is required for rope_type={params['__type__']!r} "
                f"(or {_name('max_position_embeddings')}, to use max_position_embeddings / "
                f"original_max_position_embeddings)")
        factor = mpe / orig
    return factor


def _factor_list(params, key, n):
    value = params.get(key)
    if value is None:
        raise ValueError(f"{_name(key)} is required for rope_type='longrope'")
    if isinstance(value, (str, bytes)):
        raise TypeError(f"{_name(key)} must be a list of {n} positive numbers, got {value!r}")
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{_name(key)} must be a list of {n} positive numbers; NumPy cannot convert it: {exc}") from None
    if arr.dtype.kind not in "iuf":
        raise TypeError(f"{_name(key)} must be a list of {n} positive numbers, got dtype {arr.dtype}")
    if arr.shape != (n,):
        raise ValueError(f"{_name(key)} must hold rotary_dim // 2 = {n} numbers, got shape {arr.shape}")
    arr = arr.astype(np.float64)
    if not (np.isfinite(arr).all() and (arr > 0).all()):
        raise ValueError(f"{_name(key)} must hold finite numbers > 0")
    return arr


def _partial_rotary_factor(params):
    """partial_rotary_factor, in (0, 1], or None."""
    prf = _real(params, "partial_rotary_factor")
    if prf is not None and prf > 1:
        raise ValueError(f"{_name('partial_rotary_factor')} must be in (0, 1], got {prf}")
    return prf


def _check_dim(dim):
    dim = check_int("dim", dim, "a positive even integer")
    if dim <= 0 or dim % 2:
        raise ValueError(f"dim must be a positive even integer, got {dim}")
    return dim


def _read_linear(p, rdim, base, seq_len):
    return {"factor": _real(p, "factor", required=True)}


def _read_dynamic(p, rdim, base, seq_len):
    factor = _real(p, "factor", required=True)
    mpe = _positive_int(p, "max_position_embeddings", required=True,
                        why=" (HF reads it from config.max_position_embeddings)")
    if rdim < 4:
        raise ValueError(f"rope_type='dynamic' needs a rotary width >= 4 (its base exponent is "
                         f"dim / (dim - 2)), got {rdim}")
    if not math.isfinite(dynamic_base(base, factor, mpe, rdim, seq_len)):
        raise ValueError(f"rope_type='dynamic': the scaled base overflows float64 (seq_len={seq_len}, factor={factor})")
    return {"factor": factor, "max_position_embeddings": mpe}


def _read_yarn(p, rdim, base, seq_len):
    orig, mpe = _original_max(p)
    factor = _factor_or_ratio(p, orig, mpe)
    attention_factor = _real(p, "attention_factor")
    mscale = _real(p, "mscale", positive=False, nonnegative=True)
    mscale_all_dim = _real(p, "mscale_all_dim", positive=False, nonnegative=True)
    beta_fast = _real(p, "beta_fast")
    beta_slow = _real(p, "beta_slow")
    beta_fast = 32.0 if beta_fast is None else beta_fast
    beta_slow = 1.0 if beta_slow is None else beta_slow
    if beta_fast < beta_slow:
        raise ValueError(f"{_name('beta_fast')} ({beta_fast}) must be >= {_name('beta_slow')} ({beta_slow})")
    truncate = p.get("truncate", True)
    if truncate is not None and not isinstance(truncate, (bool, np.bool_)):
        raise TypeError(f"{_name('truncate')} must be a bool, got {truncate!r}")
    if base == 1.0:
        raise ValueError(f"base (or {_name('rope_theta')}) must not be 1 for rope_type='yarn': "
                         f"its correction range divides by ln(base)")
    return {"original_max_position_embeddings": orig, "factor": factor, "attention_factor": attention_factor,
            "mscale": mscale, "mscale_all_dim": mscale_all_dim, "beta_fast": beta_fast, "beta_slow": beta_slow,
            "truncate": bool(truncate)}  # HF: `if truncate:`, so None means False


def _read_longrope(p, rdim, base, seq_len):
    long_factor = _factor_list(p, "long_factor", rdim // 2)
    short_factor = _factor_list(p, "short_factor", rdim // 2)
    orig, mpe = _original_max(p)
    factor = _factor_or_ratio(p, orig, mpe)
    attention_factor = _real(p, "attention_factor")
    if attention_factor is None and factor > 1.0 and orig < 2:
        raise ValueError(f"{_name('original_max_position_embeddings')} must be >= 2 for rope_type='longrope' "
                         f"with factor > 1 (the attention factor divides by its log), got {orig}")
    return {"long_factor": long_factor, "short_factor": short_factor, "original_max_position_embeddings": orig,
            "factor": factor, "attention_factor": attention_factor}


def _read_llama3(p, rdim, base, seq_len):
    factor = _real(p, "factor", required=True)
    low_freq_factor = _real(p, "low_freq_factor", required=True)
    high_freq_factor = _real(p, "high_freq_factor", required=True)
    if high_freq_factor <= low_freq_factor:
        raise ValueError(f"{_name('high_freq_factor')} ({high_freq_factor}) must be > "
                         f"{_name('low_freq_factor')} ({low_freq_factor})")
    return {"factor": factor, "low_freq_factor": low_freq_factor, "high_freq_factor": high_freq_factor,
            "original_max_position_embeddings": _original_max(p)[0]}


def _read_proportional(p, head_dim, base, seq_len):
    factor = _real(p, "factor")
    return {"factor": 1.0 if factor is None else factor, "partial_rotary_factor": _real(p, "partial_rotary_factor")}


# How each rope type's keys are read and checked; the rules themselves are
# fastpe._formulas.ROPE_RULES.
_READERS = {"default": lambda p, rdim, base, seq_len: {}, "linear": _read_linear, "dynamic": _read_dynamic,
            "yarn": _read_yarn, "longrope": _read_longrope, "llama3": _read_llama3,
            "proportional": _read_proportional}


def _attribute_int(config, name):
    value = getattr(config, name, None)
    return None if value is None else _check_positive_int(f"config.{name}", value)


def config_head_dim(config):
    """HF's head width: config.head_dim, else hidden_size // num_attention_heads (None if neither)."""
    head_dim = _attribute_int(config, "head_dim")
    if head_dim is None:
        hidden, heads = _attribute_int(config, "hidden_size"), _attribute_int(config, "num_attention_heads")
        if hidden is not None and heads is not None:
            head_dim = hidden // heads
    return head_dim


def _rope_type_of(params):
    if "rope_type" in params:
        return params["rope_type"], "rope_type"
    return params.get("type", "default"), "type"


# A scaling argument as read: its rope parameters (a new dict), the head
# width a config gives (or None), the keys not to warn about.
ScalingParameters = namedtuple("ScalingParameters", "params head_dim ignore")


def scaling_parameters(scaling):
    """The ScalingParameters of a scaling argument: None, a rope_parameters
    dict, or a config (transformers 5's rope_parameters, or 4.x's
    rope_scaling and rope_theta attributes; see _CONFIG_DICTS). The one
    reading of a scaling: a call reads its scaling once."""
    if scaling is None:
        return ScalingParameters({}, None, frozenset())
    if isinstance(scaling, Mapping):
        params, head_dim, ignore = dict(scaling), None, frozenset()
    elif any(hasattr(scaling, name) for name in _CONFIG_DICTS + ("rope_theta",)):
        config = scaling
        source = next((name for name in _CONFIG_DICTS if hasattr(config, name)), None)
        rope_parameters = None if source is None else getattr(config, source)
        if rope_parameters is None:
            rope_parameters = {}
        if not isinstance(rope_parameters, Mapping):
            raise TypeError(f"scaling.{source} must be a dict, got {type(rope_parameters).__name__}")
        # before the config's attributes join the dict, where they would hide its per-layer form
        _refuse_per_layer_types(rope_parameters, f"scaling.{source} (a config's)")
        params = dict(rope_parameters)
        # what HF's standardize_rope_params moves into the dict, and what it reads from the config
        for name in ("rope_theta", "partial_rotary_factor"):
            if params.get(name) is None and getattr(config, name, None) is not None:
                params[name] = getattr(config, name)
        max_pos = _attribute_int(config, "max_position_embeddings")
        if max_pos is not None:
            params["max_position_embeddings"] = max_pos
        rope_type = _rope_type_of(params)[0]
        if rope_type in _ORIGINAL_MAX_TYPES and _attribute_int(config, "original_max_position_embeddings"):
            params["original_max_position_embeddings"] = config.original_max_position_embeddings
        head_dim = config_head_dim(config)
        ignore = frozenset(getattr(config, "ignore_keys_at_rope_validation", None) or ())
    else:
        raise TypeError(f"scaling must be None, a dict like config.rope_parameters, or a model config with a "
                        f"rope_parameters attribute (transformers 5) or rope_scaling and rope_theta ones "
                        f"(transformers 4); got {type(scaling).__name__}")
    if "seq_len" in params:
        raise ValueError("scaling['seq_len'] is not a rope parameter: pass seq_len= to rope_inv_freq "
                         "(apply_rotary and rotary_cos_sin take it from their positions)")
    _refuse_per_layer_types(params, "scaling")
    return ScalingParameters(params, head_dim, ignore)


def _refuse_per_layer_types(params, what):
    """A rope_parameters dict with one dict per layer type (Gemma 3's sliding
    and full attention layers) has no single rotation: refuse it, asking for
    one layer type's dict."""
    if not params or "rope_type" in params or "type" in params or \
            not all(isinstance(v, Mapping) or v is None for v in params.values()):
        return
    layer_types = [name for name, value in params.items() if value is not None]
    if not layer_types:
        return
    example = "full_attention" if "full_attention" in layer_types else layer_types[0]
    raise ValueError(
        f"{what} holds one rope dict per layer type ({', '.join(map(repr, layer_types))}): the layers of each "
        f"type rotate differently, so choose a layer type: pass "
        f"scaling=dict(config.rope_parameters[{example!r}], max_position_embeddings=config.max_position_embeddings) "
        f"for the {example} layers, and the same with the other layer types' dicts for theirs")


def _unused_keys_message(params, rope_type, ignore):
    """The warning about keys the rope type does not use, or None."""
    unused = set(params) - _COMMON_KEYS - _TYPE_KEYS[rope_type] - set(ignore)
    if not unused:
        return None
    return (f"scaling has keys that rope_type={rope_type!r} does not use, ignored: "
            f"{', '.join(map(repr, sorted(unused, key=str)))}")


def warn_unused_keys(message):
    """Emit the unused-keys warning of a scaling (a message from ScaledFrequencies)."""
    if message is not None:
        warnings.warn(message, UserWarning, stacklevel=4)


