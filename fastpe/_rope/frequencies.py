"""The frequencies of a rotary call: HF's scalings applied, or the frequencies given.

Built from a scaling read once (fastpe._rope.scalings) and the rules of
fastpe._formulas; nothing here is cached (fastpe._frontdoor keeps them,
keyed by what ScaledFrequencies says they depend on).
"""

import numpy as np

from .._double_double import DoubleDouble
from .._formulas import rope_rule, vaswani_frequencies
from .._validation.requests import frequencies_argument
from .._validation.rotary import check_rotary_dim
from .._validation.scalars import check_count, check_real_scalar
from .scalings import (
    ROPE_TYPES,
    _READERS,
    _check_dim,
    _name,
    _partial_rotary_factor,
    _read_proportional,
    _real,
    _rope_type_of,
    _unused_keys_message,
    scaling_parameters,
    warn_unused_keys,
)


class ScaledFrequencies:
    """The frequencies of a rotary call and what they depend on besides the
    scaling: a pure function of (width, rotary_dim, base, scaling, the
    seq_len key). freq is the float64 frequencies (read-only), freq_lo the
    rest of the exact ones (freq + freq_lo, a double-double: see
    fastpe._formulas, "Exact frequencies"), which the kernels' seeds read.

    warning: the unused-keys message to emit on each use (or None).
    seq_dependence: None, ("dynamic", max_position_embeddings) or
    ("longrope", original_max_position_embeddings): how seq_len enters (see
    seq_len_key and per_length, the rules of what the cache keeps of them)."""

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

    def seq_len_key(self, seq_len):
        """What of seq_len the frequencies depend on, by the rules of
        fastpe._formulas: dynamic sees max(seq_len, max_position_embeddings)
        (dynamic_base), longrope only whether seq_len passes
        original_max_position_embeddings (_rope_longrope); the others ignore it."""
        if self.seq_dependence is None:
            return None
        kind, limit = self.seq_dependence
        if kind == "dynamic":
            return limit if seq_len is None else max(seq_len, limit)
        return bool(seq_len and seq_len > limit)

    def per_length(self, seq_len):
        """dynamic past max_position_embeddings: frequencies of this length
        alone (a new base at every length), which the cache does not keep."""
        dependence = self.seq_dependence
        return dependence is not None and dependence[0] == "dynamic" and seq_len is not None and seq_len > dependence[1]


def rope_frequencies(dim, base, scaling, seq_len):
    """(inv_freq, attention_factor) of rope_inv_freq: the scaling read once,
    the warning emitted; inv_freq the caller's own (writeable)."""
    params, config_dim, ignore = scaling_parameters(scaling)
    dim = _head_width(dim, config_dim)
    base = check_real_scalar("base", base, positive=True)
    if seq_len is not None:
        seq_len = check_count("seq_len", seq_len)
    freq = _frequencies_of(dim, base, dict(params), ignore, seq_len)
    warn_unused_keys(freq.warning)
    return np.array(freq.freq), freq.attention_factor


def _head_width(dim, config_dim):
    """The head width: dim, or the config's (checked: positive, even, the config's if it has one)."""
    if dim is None:
        if config_dim is None:
            raise TypeError("dim must be a positive even integer (or None with a config that gives head_dim, or "
                            "hidden_size and num_attention_heads, as scaling)")
        dim = config_dim
    dim = _check_dim(dim)
    if config_dim is not None and dim != config_dim:
        raise ValueError(f"dim={dim} disagrees with the config's head width {config_dim} (head_dim, or "
                         f"hidden_size // num_attention_heads)")
    return dim


def _frequencies_of(dim, base, params, ignore, seq_len):
    """ScaledFrequencies of a head width dim and a checked base (rotary_dim:
    the rotary width), the warning not emitted. params is consumed."""
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


def _scaled_by(read, base, seq_len, width, rotary_dim):
    """ScaledFrequencies of apply_rotary and rotary_cos_sin with a scaling (the warning not emitted).

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
    params, config_dim, ignore = dict(read.params), read.head_dim, read.ignore
    rope_type = _rope_type_of(params)[0]
    has_factor = params.get("partial_rotary_factor") is not None
    alone_hint = ""  # how to ask for the rotary channels alone, where the caller could mean them
    if config_dim is not None:
        freq = _frequencies_of(config_dim, base, params, ignore, seq_len)
        rotated = 2 * freq.freq.shape[0]
        if width is not None and width not in (config_dim, rotated):
            raise ValueError(f"the arrays have {width} channels but the config's head width is {config_dim} "
                             f"(head_dim, or hidden_size // num_attention_heads) and its rotary width {rotated}: "
                             f"pass whole heads, or the rotary channels alone")
    elif has_factor and rope_type != "proportional" and width is not None:
        if rotary_dim == width:  # the rotary channels alone: the model's slicing applied the factor
            _partial_rotary_factor(params)
            params.pop("partial_rotary_factor")
        freq = _frequencies_of(_head_width(width, None), base, params, ignore, seq_len)
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
        freq = _frequencies_of(_head_width(head_dim, None), base, params, ignore, seq_len)
        rotated = 2 * freq.freq.shape[0]
    if rotary_dim is not None and rotary_dim != rotated:
        raise ValueError(f"rotary_dim={rotary_dim} disagrees with scaling, which rotates {rotated} channels "
                         f"(partial_rotary_factor={params.get('partial_rotary_factor')}, rope_type={rope_type!r}); "
                         f"pass rotary_dim={rotated}{alone_hint}, or leave it None in apply_rotary")
    freq.rotary_dim = rotated
    return freq


def scaled_frequencies(width, rotary_dim, base, scaling, read, seq_len):
    """ScaledFrequencies of apply_rotary and rotary_cos_sin (the warning not
    emitted): the cache's builder. width: the channel count shared by the
    arrays (None if they differ, or for rotary_cos_sin); rotary_dim and base:
    the caller's, checked (rotary_dim may be None); read: the scaling as
    scaling_parameters read it, or None to read it here (once)."""
    if scaling is not None:
        return _scaled_by(scaling_parameters(scaling) if read is None else read, base, seq_len, width, rotary_dim)
    if rotary_dim is None:
        rotary_dim = _rotary_width(width)
    return ScaledFrequencies(vaswani_frequencies(rotary_dim, base, rotary_dim // 2, "the rotary frequencies"), 1.0,
                             rotary_dim)


def given_frequencies(width, rotary_dim, scaling, inv_freq):
    """ScaledFrequencies of an explicit inv_freq (exact as given; attention factor 1)."""
    if scaling is not None:
        raise ValueError("inv_freq cannot be combined with scaling: scaling computes the frequencies")
    if rotary_dim is None:
        rotary_dim = _rotary_width(width)
    freq = frequencies_argument(inv_freq, rotary_dim, "concat", f"rotary_dim // 2, rotary_dim={rotary_dim}")
    return ScaledFrequencies(DoubleDouble(freq), 1.0, rotary_dim)


def call_frequencies(width, rotary_dim, base, scaling, inv_freq, seq_len):
    """The ScaledFrequencies of one call, built anew (the reference's; the
    implementation takes fastpe._frontdoor.rotary_frequencies, the same
    values through the cache), the warning emitted."""
    if inv_freq is not None:
        return given_frequencies(width, rotary_dim, scaling, inv_freq)
    freq = scaled_frequencies(width, rotary_dim, base, scaling, None, seq_len)
    warn_unused_keys(freq.warning)
    return freq


def _rotary_width(width):
    if width is None:
        raise ValueError("the arrays have different channel counts: pass rotary_dim")
    return check_rotary_dim(width)
