"""The rotary family's part of the argument checks, with Hugging Face's RoPE scalings.

A sub-part of fastpe._validation: apply_rotary's and rotary_cos_sin's checks
(RotaryRequest), shared by the implementation and the reference, and the
reading of Hugging Face's RoPE scalings: a dict or a config is read, each
rope type's keys are checked, and the rule of fastpe._formulas (inv_freq
and attention factor, as transformers 5.x ``ROPE_INIT_FUNCTIONS`` define
them, in float64) is applied to the checked values.
tests/conformance/test_conformance_rope_scaling.py compares every rule with
Hugging Face's own functions. It is a file of its own because the package's
__init__ would otherwise pass 1,300 lines.

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
from collections.abc import Mapping

import numpy as np

from .._formulas import (
    dynamic_base,
    offset_positions,
    rope_rule,
    rope_seq_len,
    rotary_positions_shaped,
    to_rows,
    vaswani_frequencies,
)
from . import (
    as_float_array,
    broadcastable_to,
    check_count,
    check_dtype_argument,
    check_int,
    check_layout,
    check_num_threads,
    check_out,
    check_position_range,
    check_real_scalar,
    frequencies_argument,
    read_apart,
    real_array,
    same_view,
    shares_memory,
    table_offset,
    writable_array,
)

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


def scaling_parameters(scaling):
    """(params dict, head width or None, keys not to warn about) of a scaling argument:
    None, a rope_parameters dict, or a config (transformers 5's rope_parameters,
    or 4.x's rope_scaling and rope_theta attributes; see _CONFIG_DICTS)."""
    if scaling is None:
        return {}, None, frozenset()
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
    return params, head_dim, ignore


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


class ScaledFrequencies:
    """The frequencies of a rotary call and what they depend on besides the
    scaling: a pure function of (width, rotary_dim, base, scaling, the
    seq_len key). freq is the float64 frequencies (read-only), freq_lo the
    rest of the exact ones (freq + freq_lo, a double-double: see
    fastpe._formulas, "Exact frequencies"), which the kernels' seeds read.

    warning: the unused-keys message to emit on each use (or None).
    seq_dependence: None, ("dynamic", max_position_embeddings) or
    ("longrope", original_max_position_embeddings): how seq_len enters (see
    seq_len_key)."""

    __slots__ = ("freq", "freq_lo", "attention_factor", "rotary_dim", "warning", "seq_dependence", "freq_bytes",
                 "nbytes")

    def __init__(self, freq, attention_factor, rotary_dim, warning=None, seq_dependence=None):
        """freq: a DoubleDouble."""
        self.freq = np.array(freq.hi, dtype=np.float64, copy=True)
        self.freq_lo = np.array(freq.lo, dtype=np.float64, copy=True)
        self.freq.flags.writeable = self.freq_lo.flags.writeable = False
        self.attention_factor = float(attention_factor)
        self.rotary_dim = rotary_dim
        self.warning = warning
        self.seq_dependence = seq_dependence
        # What the cos/sin rows of these frequencies are keyed by.
        self.freq_bytes = self.freq.tobytes() + self.freq_lo.tobytes()
        self.nbytes = 4 * self.freq.nbytes + 256  # the arrays, their bytes, the small fields

    def as_tuple(self):
        """scaled_frequencies' result."""
        return self.freq, self.attention_factor, self.rotary_dim, self.freq_lo


def seq_len_key(seq_dependence, seq_len):
    """What of seq_len the frequencies depend on, by the rules of
    fastpe._formulas: dynamic sees max(seq_len, max_position_embeddings)
    (dynamic_base), longrope only whether seq_len passes
    original_max_position_embeddings (_rope_longrope); the others ignore it."""
    if seq_dependence is None:
        return None
    kind, limit = seq_dependence
    if kind == "dynamic":
        return limit if seq_len is None else max(seq_len, limit)
    return bool(seq_len and seq_len > limit)


def rope_frequencies(dim, config_dim, base, params, ignore, seq_len):
    """(inv_freq, attention_factor) of rope_inv_freq, from parsed scaling (see scaling_parameters)."""
    freq = _rope_frequencies(dim, config_dim, base, params, ignore, seq_len)
    warn_unused_keys(freq.warning)
    return np.array(freq.freq), freq.attention_factor  # the caller's own, writeable


def _rope_frequencies(dim, config_dim, base, params, ignore, seq_len):
    """rope_frequencies' values as ScaledFrequencies (rotary_dim: the rotary width), warning not emitted."""
    if dim is None:
        if config_dim is None:
            raise TypeError("dim must be a positive even integer (or None with a config that gives head_dim, or "
                            "hidden_size and num_attention_heads, as scaling)")
        dim = config_dim
    dim = _check_dim(dim)
    if config_dim is not None and dim != config_dim:
        raise ValueError(f"dim={dim} disagrees with the config's head width {config_dim} (head_dim, or "
                         f"hidden_size // num_attention_heads)")
    base = check_real_scalar("base", base, positive=True)
    if seq_len is not None:
        seq_len = check_count("seq_len", seq_len)
    rope_type, key = _rope_type_of(params)
    if not isinstance(rope_type, str) or rope_type not in ROPE_TYPES:
        raise ValueError(f"{_name(key)} must be one of {', '.join(map(repr, ROPE_TYPES))}; got {rope_type!r}")
    warning = _unused_keys_message(params, rope_type, ignore)
    params["__type__"] = rope_type
    if rope_type == "proportional":  # its rotary width is the whole head, whatever the factor
        base = _real(params, "rope_theta") or base
        inv_freq, attention_factor = rope_rule("proportional", dim, base,
                                               _read_proportional(params, dim, base, seq_len), seq_len)
        return ScaledFrequencies(inv_freq, attention_factor, 2 * inv_freq.hi.shape[0], warning)

    theta = _real(params, "rope_theta")
    if theta is not None:
        base = theta
    rdim = dim
    prf = _partial_rotary_factor(params)
    if prf is not None:
        rdim = int(dim * prf)
        if rdim < 2 or rdim % 2:
            raise ValueError(f"{_name('partial_rotary_factor')}={prf} gives a rotary width int({dim} * {prf}) = "
                             f"{rdim}; it must be even and >= 2")

    values = _READERS[rope_type](params, rdim, base, seq_len)
    inv_freq, attention_factor = rope_rule(rope_type, rdim, base, values, seq_len)
    seq_dependence = None
    if rope_type == "dynamic":
        seq_dependence = ("dynamic", values["max_position_embeddings"])
    elif rope_type == "longrope":
        seq_dependence = ("longrope", values["original_max_position_embeddings"])
    return ScaledFrequencies(inv_freq, attention_factor, 2 * inv_freq.hi.shape[0], warning, seq_dependence)


def rotary_frequencies(scaling, base, seq_len, *, width=None, rotary_dim=None):
    """ScaledFrequencies of apply_rotary and rotary_cos_sin (the warning not emitted).

    width: the channel count of the arrays to rotate (apply_rotary; None for
    rotary_cos_sin, or arrays of several widths). rotary_dim: the caller's
    explicit rotary width, or None. partial_rotary_factor applies to the head
    width, as in HF; the arrays may hold whole heads or, as a model that
    slices them off before rotating (Phi) passes them, the rotary channels
    alone, which all rotate:

    * a config gives the head width: arrays of that width are whole heads,
      arrays of the config's rotary width the rotary channels alone;
    * a dict does not: with a factor that narrows the arrays' width, the
      caller says which with rotary_dim (int(width * factor): whole heads;
      width: the rotary channels alone), and without it the call is refused
      rather than guessed;
    * without arrays (rotary_cos_sin), rotary_dim is the rotary width and a
      dict's factor counts as applied already.

    Without a factor an explicit rotary_dim is the width the frequencies use (GPT-J)."""
    params, config_dim, ignore = scaling_parameters(scaling)
    rope_type = _rope_type_of(params)[0]
    has_factor = params.get("partial_rotary_factor") is not None
    alone_hint = ""  # how to ask for the rotary channels alone, where the caller could mean them
    if config_dim is not None:
        freq = _rope_frequencies(config_dim, config_dim, base, params, ignore, seq_len)
        rotated = 2 * freq.freq.shape[0]
        if width is not None and width not in (config_dim, rotated):
            raise ValueError(f"the arrays have {width} channels but the config's head width is {config_dim} "
                             f"(head_dim, or hidden_size // num_attention_heads) and its rotary width {rotated}: "
                             f"pass whole heads, or the rotary channels alone")
    elif has_factor and rope_type != "proportional" and width is not None:
        if rotary_dim == width:  # the rotary channels alone: the model's slicing applied the factor
            _partial_rotary_factor(params)
            params.pop("partial_rotary_factor")
        freq = _rope_frequencies(width, None, base, params, ignore, seq_len)
        rotated = 2 * freq.freq.shape[0]
        if rotated != width:
            alone_hint = f" or rotary_dim={width} (the arrays hold the rotary channels alone)"
            if rotary_dim is None:
                raise ValueError(
                    f"{_name('partial_rotary_factor')}={params['partial_rotary_factor']} in a dict, on arrays of "
                    f"{width} channels: whole heads rotate their first int({width} * "
                    f"{params['partial_rotary_factor']}) = {rotated} channels, but a model that slices the rotary "
                    f"channels off before rotating (Phi) passes the {width} rotary channels alone, which all rotate. "
                    f"Say which: pass rotary_dim={rotated} (whole heads){alone_hint}, or pass the model's config "
                    f"as scaling (it gives the head width)")
    else:
        head_dim = width if (has_factor or rope_type == "proportional" or rotary_dim is None) else None
        if head_dim is None:
            if rope_type == "proportional":
                raise ValueError("rope_type='proportional' needs the head width: pass the config as scaling")
            params.pop("partial_rotary_factor", None)
            head_dim = rotary_dim
        freq = _rope_frequencies(head_dim, None, base, params, ignore, seq_len)
        rotated = 2 * freq.freq.shape[0]
    if rotary_dim is not None and rotary_dim != rotated:
        raise ValueError(f"rotary_dim={rotary_dim} disagrees with scaling, which rotates {rotated} channels "
                         f"(partial_rotary_factor={params.get('partial_rotary_factor')}, rope_type={rope_type!r}); "
                         f"pass rotary_dim={rotated}{alone_hint}, or leave it None in apply_rotary")
    freq.rotary_dim = rotated
    return freq


# ------------------------------------------------------------------ rotary arguments

ROTARY_LAYOUTS = ("half", "interleaved")


class RotaryRequest:
    """Validated arguments of apply_rotary."""

    __slots__ = ("arrays", "outs", "seq_axes", "T", "rotary_dim", "layout", "freq", "attention_factor",
                 "freq_lo", "offset", "positions", "num_threads", "repeated")


def scaled_frequencies(width, rotary_dim, base, scaling, inv_freq, seq_len):
    """(float64 frequencies, attention factor, rotary width, the frequencies'
    low parts): HF's scalings when scaling is given (see ScaledFrequencies),
    else inv_freq as given (its low parts 0).

    width: the channel count shared by the arrays (None if they differ, or for
    rotary_cos_sin); rotary_dim: the caller's (checked), or None. A scaling's
    unused keys are warned about here."""
    if inv_freq is not None:
        if scaling is not None:
            raise ValueError("inv_freq cannot be combined with scaling: scaling computes the frequencies")
        if rotary_dim is None:
            rotary_dim = _rotary_width(width)
        freq = frequencies_argument(inv_freq, rotary_dim, "concat", f"rotary_dim // 2, rotary_dim={rotary_dim}")
        return freq, 1.0, rotary_dim, np.zeros(freq.shape)
    freq = scaled_frequencies_of(width, rotary_dim, base, scaling, seq_len)
    warn_unused_keys(freq.warning)
    return freq.as_tuple()


def scaled_frequencies_of(width, rotary_dim, base, scaling, seq_len):
    """scaled_frequencies without inv_freq, as ScaledFrequencies (the warning
    not emitted): what fastpe's cache of frequencies keeps."""
    if scaling is not None:
        return rotary_frequencies(scaling, base, seq_len, width=width, rotary_dim=rotary_dim)
    if rotary_dim is None:
        rotary_dim = _rotary_width(width)
    return ScaledFrequencies(vaswani_frequencies(rotary_dim, base, rotary_dim // 2, "the rotary frequencies"), 1.0,
                             rotary_dim)


def _rotary_width(width):
    if width is None:
        raise ValueError("the arrays have different channel counts: pass rotary_dim")
    return check_rotary_dim(width)


def check_rotary_dim(rotary_dim):
    """An even int >= 2: channels are rotated in pairs."""
    rotary_dim = check_int("rotary_dim", rotary_dim)
    if rotary_dim < 2 or rotary_dim % 2:
        raise ValueError(f"rotary_dim must be even and >= 2 (channel pairs are rotated), got {rotary_dim}")
    return rotary_dim


def _seq_axis(name, seq_axis, ndim):
    axis = check_int("seq_axis", seq_axis)
    if not -ndim <= axis < ndim or axis % ndim == ndim - 1:
        raise ValueError(f"seq_axis={seq_axis} must name an axis of {name} ({ndim} dims) before its channel axis")
    return axis % ndim


def arrays_to_rotate(arrays, out, min_ndim, shape):
    """The arrays a rotation reads (written in place when out is None), of one
    dtype and at least min_ndim dimensions (`shape` says which), and their names."""
    if not arrays:
        raise TypeError("apply_rotary needs at least one array to rotate")
    if out is not None:
        if isinstance(out, np.ndarray) or len(out) != len(arrays):
            raise ValueError(f"out must be a sequence of {len(arrays)} arrays, one per array to rotate")
    names = [f"arrays[{i}]" for i in range(len(arrays))]
    checked = []
    for i, a in enumerate(arrays):
        a = writable_array(names[i], a, hint="; pass out= to write the result elsewhere") if out is None \
            else as_float_array(names[i], a, like=writable_array(f"out[{i}]", out[i]).dtype)
        if a.ndim < min_ndim:
            raise ValueError(f"{names[i]} must have at least {min_ndim} dimensions {shape}, got shape {a.shape}")
        checked.append(a)
    if len({a.dtype for a in checked}) > 1:
        raise TypeError(f"the arrays to rotate must share one dtype, got {[a.dtype.name for a in checked]}")
    return checked, names


def rotary_request(arrays, offset, positions, base, layout, rotary_dim, inv_freq, scaling, seq_axis, out,
                   num_threads, frequencies=scaled_frequencies):
    """The checked arguments of apply_rotary. frequencies: scaled_frequencies,
    or a function of the same arguments and results (fastpe's cached one)."""
    req = RotaryRequest()
    checked, names = arrays_to_rotate(arrays, out, min_ndim=2, shape="(..., T, ..., D)")
    req.arrays = checked
    req.seq_axes = [_seq_axis(names[i], seq_axis, a.ndim) for i, a in enumerate(checked)]
    lengths = {a.shape[ax] for a, ax in zip(checked, req.seq_axes)}
    if len(lengths) > 1:
        raise ValueError(f"the arrays to rotate must agree on the sequence length, got {sorted(lengths)}")
    req.T = lengths.pop()
    req.layout = check_layout(layout, ROTARY_LAYOUTS)
    widths = {a.shape[-1] for a in checked}
    width = next(iter(widths)) if len(widths) == 1 else None
    if rotary_dim is not None:
        rotary_dim = check_rotary_dim(rotary_dim)
    base = check_real_scalar("base", 10000.0 if base is None else base, positive=True)
    req.num_threads = check_num_threads(num_threads)
    off = real_array("offset", offset, position=True)
    B = checked[0].shape[0]
    if positions is not None:
        if (off != 0).any():
            raise ValueError("offset cannot be combined with positions: positions already give every token's position")
        req.positions = real_array("positions", positions, position=True)
        req.offset = None
        for a, ax, name in zip(checked, req.seq_axes, names):
            _positions_for(req.positions, a.shape[: ax + 1], name)
        seq_len = rope_seq_len(np.max(req.positions) if req.positions.size else -1.0)
    else:
        if off.ndim > 1 or (off.ndim == 1 and off.shape[0] not in (1, B)):
            raise ValueError(f"offset must be a number or one per sequence, shape ({B},) along the first axis; "
                             f"got shape {off.shape}")
        if off.ndim == 1 and any(a.shape[0] != B or ax == 0 for a, ax in zip(checked, req.seq_axes)):
            raise ValueError("a per-sequence offset needs every array to have the batch on its first axis")
        req.offset, req.positions = off, None
        if off.size and req.T:
            check_position_range("offset + T - 1", float(np.min(off)), float(np.max(off)) + (req.T - 1))
        seq_len = rope_seq_len((float(np.max(off)) if off.size else 0.0) + req.T - 1)
    req.freq, req.attention_factor, rotary_dim, req.freq_lo = frequencies(width, rotary_dim, base, scaling, inv_freq,
                                                                           seq_len)
    narrowest = min(a.shape[-1] for a in checked)
    if rotary_dim > narrowest:
        raise ValueError(f"rotary_dim={rotary_dim} exceeds the channel count of an array ({narrowest})")
    req.rotary_dim = rotary_dim
    if out is not None:
        req.outs = [check_out(o, a.shape, a.dtype, name=f"out[{i}]") for i, (o, a) in enumerate(zip(out, checked))]
    else:
        req.outs = None
    _check_targets(req, names)
    written = rotation_targets(req)
    req.offset, req.positions, req.freq = (read_apart(a, written) for a in (req.offset, req.positions, req.freq))
    return req


def rotation_targets(req):
    """The array each rotation writes: out[i], or the array itself."""
    return req.arrays if req.outs is None else req.outs


def _check_targets(req, names):
    """Refuse targets that partly overlap (no defined result); note the ones
    that repeat an earlier target. The same target twice is defined only
    when it receives the same rotation of the same array (it is then written once)."""
    targets = rotation_targets(req)
    target_names = names if req.outs is None else [f"out[{i}]" for i in range(len(targets))]
    req.repeated = set()
    for j in range(len(targets)):
        for i in range(j):
            a, b = targets[i], targets[j]
            if not (a.size and b.size and np.may_share_memory(a, b)):
                continue  # the common case: bounds apart
            if same_view(a, b):
                if not same_view(req.arrays[i], req.arrays[j]):
                    raise ValueError(f"{target_names[i]} and {target_names[j]} are the same array but receive the "
                                     f"rotations of different arrays ({names[i]} and {names[j]}); pass distinct "
                                     "outputs")
                req.repeated.add(j)
            elif shares_memory(a, b):
                raise ValueError(f"{target_names[i]} and {target_names[j]} overlap in memory without being the same "
                                 "array; the result of writing both would depend on the order of the writes. Pass "
                                 "arrays that do not overlap, or the same array")


def _positions_for(positions, prefix_shape, name):
    """positions aligned to an array's axes up to and including its sequence
    axis (the rule of fastpe._formulas.rotary_positions_shaped), checked to broadcast."""
    return broadcastable_to("positions", rotary_positions_shaped(positions, len(prefix_shape)), prefix_shape,
                            f"the axes up to the sequence axis of {name}", given_shape=positions.shape)


def prefix_positions(req, i):
    """Float64 positions over array i's axes up to its sequence axis (size-1
    axes where they broadcast): small, before any fan-out over heads."""
    a, ax = req.arrays[i], req.seq_axes[i]
    if req.positions is not None:
        return _positions_for(req.positions, a.shape[: ax + 1], f"arrays[{i}]")
    return offset_positions(req.offset, req.T, ax)


def row_positions(req, i):
    """Float64 positions of every vector row of array i, shaped like its shape[:-1]."""
    return to_rows(prefix_positions(req, i), req.arrays[i].shape, req.seq_axes[i])


def rotary_table_arguments(n_positions, rotary_dim, offset, base, layout, dtype):
    """Checked arguments of rotary_cos_sin (shared with the reference)."""
    n_positions = check_count("n_positions", n_positions)
    return (n_positions, check_rotary_dim(rotary_dim), table_offset(offset, n_positions),
            check_real_scalar("base", base, positive=True), check_layout(layout, ROTARY_LAYOUTS),
            check_dtype_argument(dtype))
