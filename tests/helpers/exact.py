"""Exact values, with mpmath: frequencies written from their definitions and
the sines and cosines of exact angles (tests/accuracy/ and the formula tests).

Every function works at PRECISION bits in its own mpmath context, whatever
another module sets globally. A frequency is exact: the rule's formula on
the float64 parameters as given; a position is the float64 value as given.
"""

import math

import mpmath
import numpy as np

# Enough for an angle of 2**53 rad to 2**-140 and a frequency to 2**-250.
PRECISION = 256


def _mp(value):
    return mpmath.mpf(float(value))


def vaswani(dim, base, n):
    """base ** (-2k / dim), k < n."""
    with mpmath.workprec(PRECISION):
        return [_mp(base) ** (mpmath.mpf(-2 * k) / dim) for k in range(n)]


def log_increment(n, factor, log_ratio_of, denominator):
    """factor * exp(-k * ln(ratio) / denominator), k < n: tensor2tensor, fairseq
    and whisper. log_ratio_of: a function of nothing giving ln(ratio) in mpmath."""
    with mpmath.workprec(PRECISION):
        step = log_ratio_of() / denominator
        return [_mp(factor) * mpmath.exp(-k * step) for k in range(n)]


def preset_frequencies(preset, dim, base=10000.0, min_timescale=1.0, max_timescale=1e4):
    """Each preset's frequencies, from its source's own expression, exactly."""
    half = dim // 2
    if preset in ("vaswani", "marian"):
        return vaswani(dim, base, (dim + 1) // 2)
    with mpmath.workprec(PRECISION):
        if preset == "tensor2tensor":  # min * exp(-k * log(max / min) / max(half - 1, 1))
            return log_increment(half, min_timescale, lambda: mpmath.log(_mp(max_timescale) / _mp(min_timescale)),
                                 max(half - 1, 1))
        if preset == "fairseq":  # exp(-k * log(base) / (half - 1))
            return log_increment(half, 1.0, lambda: mpmath.log(_mp(base)), half - 1)
        if preset == "whisper":  # exp(-k * log(max_timescale) / (half - 1))
            return log_increment(half, 1.0, lambda: mpmath.log(_mp(max_timescale)), half - 1)
    raise AssertionError(preset)


def preset_columns(preset, dim):
    """Per output column: ("sin" | "cos" | "zero", frequency index)."""
    if preset in (None, "vaswani", "interleaved"):
        return [("sin" if j % 2 == 0 else "cos", j // 2) for j in range(dim)]
    if preset == "marian":
        sentinel = (dim + 1) // 2
        return [("sin", j) for j in range(sentinel)] + [("cos", j) for j in range(dim // 2)]
    half = dim // 2  # [sin | cos], an odd width's last column zero
    return [("sin", j) for j in range(half)] + [("cos", j) for j in range(half)] + [("zero", 0)] * (dim % 2)


def encodings(positions, freqs, columns):
    """float64 array (len(positions), len(columns)): each column's exact sin or
    cos of position * frequency, rounded once."""
    out = np.zeros((len(positions), len(columns)))
    with mpmath.workprec(PRECISION):
        for i, p in enumerate(positions):
            cache = {}
            for j, (kind, k) in enumerate(columns):
                if kind == "zero":
                    continue
                if k not in cache:
                    angle = _mp(p) * freqs[k]
                    cache[k] = (float(mpmath.sin(angle)), float(mpmath.cos(angle)))
                out[i, j] = cache[k][0 if kind == "sin" else 1]
    return out


def cos_sin(positions, freqs):
    """(cos, sin) float64 arrays (len(positions), len(freqs)) of the exact angles."""
    cos = np.empty((len(positions), len(freqs)))
    sin = np.empty_like(cos)
    with mpmath.workprec(PRECISION):
        for i, p in enumerate(positions):
            for k, w in enumerate(freqs):
                angle = _mp(p) * w
                cos[i, k], sin[i, k] = float(mpmath.cos(angle)), float(mpmath.sin(angle))
    return cos, sin


# ------------------------------------------------------------ RoPE scalings
# Hugging Face's rules (transformers 5.x ROPE_INIT_FUNCTIONS) written out
# again, exactly: base powers and their products and quotients by the
# float64 parameters exact, the blend weights of yarn and llama3 the float64
# values HF's expressions give (fastpe's contract, docs/contract.rst).

def rope(rope_type, rdim, base, params, seq_len=None):
    """The exact frequencies of a scaling (params: the rope_parameters dict)."""
    half = rdim // 2
    with mpmath.workprec(PRECISION):
        if rope_type == "default":
            return vaswani(rdim, base, half)
        if rope_type == "linear":
            return [w / _mp(params["factor"]) for w in vaswani(rdim, base, half)]
        if rope_type == "dynamic":
            mpe, factor = params["max_position_embeddings"], params["factor"]
            seq = mpe if seq_len is None else max(seq_len, mpe)
            dynamic = base * ((factor * seq / mpe) - (factor - 1)) ** (rdim / (rdim - 2))  # float64, as HF
            return vaswani(rdim, dynamic, half)
        if rope_type == "longrope":
            orig = params["original_max_position_embeddings"]
            ext = params["long_factor"] if (seq_len and seq_len > orig) else params["short_factor"]
            return [w / _mp(e) for w, e in zip(vaswani(rdim, base, half), ext)]
        if rope_type == "llama3":
            return _llama3(rdim, base, params)
        if rope_type == "yarn":
            return _yarn(rdim, base, params)
    raise AssertionError(rope_type)


def _llama3(rdim, base, params):
    factor, low, high = params["factor"], params["low_freq_factor"], params["high_freq_factor"]
    old = params["original_max_position_embeddings"]
    out = []
    for w in vaswani(rdim, base, rdim // 2):
        wavelen = 2 * math.pi / float(w)  # float64, from the float64 frequency
        if wavelen < old / high:
            out.append(w)
        elif wavelen > old / low:
            out.append(w / _mp(factor))
        else:
            smooth = (old / wavelen - low) / (high - low)  # float64 weights
            out.append(_mp(1 - smooth) * w / _mp(factor) + _mp(smooth) * w)
    return out


def _yarn(rdim, base, params):
    """yarn with the defaults beta_fast=32, beta_slow=1, truncate=True."""
    factor, orig = params["factor"], params["original_max_position_embeddings"]

    def correction_dim(rotations):
        return (rdim * math.log(orig / (rotations * 2 * math.pi))) / (2 * math.log(base))

    low = max(math.floor(correction_dim(params.get("beta_fast", 32))), 0)
    high = min(math.ceil(correction_dim(params.get("beta_slow", 1))), rdim - 1)
    if low == high:
        high += 0.001
    out = []
    for k, w in enumerate(vaswani(rdim, base, rdim // 2)):
        ramp = min(max((k - low) / (high - low), 0.0), 1.0)
        extrapolation_factor = 1.0 - ramp  # float64 weights, as HF's
        out.append(w / _mp(factor) * _mp(1.0 - extrapolation_factor) + w * _mp(extrapolation_factor))
    return out
