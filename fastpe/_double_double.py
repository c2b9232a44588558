"""Frequencies to twice float64's precision, for the seeds of the sinusoid kernels.

A frequency w rounded to float64 is off by up to half an ulp, and the angle
``p * w`` of a position p inherits ``p`` times that error: 0.04 rad at
``p = 2**50`` for ``w`` near 1. So every frequency a rule of
fastpe._formulas computes is kept as an unevaluated sum ``hi + lo`` of two
float64 values (a double-double): ``hi`` is the exact value rounded to
float64, the frequency everybody else sees, and ``lo`` the rest. The kernels
seed the angles from both (fpe_seed in _simd.h); everything else reads
``hi`` alone.

Here are

* DoubleDouble, arrays ``hi`` and ``lo`` with the exact operations the rules
  need: products and quotients by float64 values, sums, selection;
* exp_progression, ``exp(k * step)`` for integers ``k >= 0`` where the step
  is a sum of float64 logarithms over an integer: every rule's base powers.
  It evaluates the step and ``exp(step)`` with the decimal module, the powers
  by integer arithmetic (192-bit mantissas) and combines two tables of them
  with one double-double product per frequency, so a rule costs about
  ``2 sqrt(n)`` Python-level operations for ``n`` frequencies.

Accuracy: exp_progression's ``hi + lo`` is within about ``2**-102`` of the
exact value, relative (the last double-double product and the rounding of
the two tables); each further operation adds about ``2**-104``. At the
largest position fastpe accepts (``2**53``) that moves an angle by about
``2**-49 |w|`` rad, ``1.8e-15 |w|``. The error-free products use Dekker's
split (NumPy has no fused multiply-add), exact while the values stay within
about ``2**±990``; beyond that (frequencies of absurd bases) ``lo`` is 0.

Plain Python, decimal and NumPy: the reference imports the rules as well.
"""

import decimal
import math

import numpy as np

# Decimal digits of the exact steps and of exp(step): about 133 bits, so that
# the k-th power of exp(step) stays within 2**-120 (relative) for k < 2**13
# and within 2**-106 for k < 2**27.
_DIGITS = 40
_CONTEXT = decimal.Context(prec=_DIGITS, Emax=decimal.MAX_EMAX, Emin=decimal.MIN_EMIN)
# Mantissa bits of the integer chains of powers (a truncation costs 2**-191 relative).
_BITS = 192
# Dekker's split of a float64 into two halves of 26 bits: 2**27 + 1.
_SPLIT = 134217729.0


def _two_sum(a, b):
    """s, e with s = fl(a + b) and a + b == s + e exactly (Knuth)."""
    s = a + b
    v = s - a
    return s, (a - (s - v)) + (b - v)


def _halves(a):
    c = _SPLIT * a
    high = c - (c - a)
    return high, a - high


def _two_product(a, b):
    """p, e with p = fl(a * b) and a * b == p + e exactly (Dekker; no overflow)."""
    p = a * b
    ah, al = _halves(a)
    bh, bl = _halves(b)
    return p, ((ah * bh - p) + ah * bl + al * bh) + al * bl


class DoubleDouble:
    """Values ``hi + lo`` held as two float64 arrays, ``|lo| <= ulp(hi) / 2``."""

    __slots__ = ("hi", "lo")

    def __init__(self, hi, lo=None):
        self.hi = np.asarray(hi, dtype=np.float64)
        self.lo = np.zeros_like(self.hi) if lo is None else np.asarray(lo, dtype=np.float64)

    @staticmethod
    def _normalized(head, tail):
        """head + tail renormalised (|tail| small against head); a tail that is
        not finite (out of the split's range) is dropped."""
        tail = np.where(np.isfinite(tail), tail, 0.0)
        hi = head + tail
        lo = tail - (hi - head)
        return DoubleDouble(hi, np.where(np.isfinite(lo), lo, 0.0))

    def times(self, factor):
        """self * factor for float64 factor(s), exactly rounded to a double-double."""
        p, e = _two_product(self.hi, factor)
        return self._normalized(p, e + self.lo * factor)

    def divided(self, divisor):
        """self / divisor for float64 divisor(s)."""
        q = self.hi / divisor
        p, e = _two_product(q, divisor)
        return self._normalized(q, ((self.hi - p) - e + self.lo) / divisor)

    def plus(self, other):
        s, e = _two_sum(self.hi, other.hi)
        return self._normalized(s, e + (self.lo + other.lo))

    def product(self, other):
        """self * other, both double-doubles."""
        p, e = _two_product(self.hi, other.hi)
        return self._normalized(p, e + (self.hi * other.lo + self.lo * other.hi))

    @staticmethod
    def where(condition, if_true, if_false):
        return DoubleDouble(np.where(condition, if_true.hi, if_false.hi), np.where(condition, if_true.lo, if_false.lo))

    def padded(self, n):
        """The first entries, then zeros up to n entries."""
        pad = np.zeros(n - self.hi.shape[0])
        return DoubleDouble(np.concatenate([self.hi, pad]), np.concatenate([self.lo, pad]))


# ------------------------------------------------------------ exact base powers

def _binary(value):
    """A positive Decimal as (m, e), value ~ m * 2**e with an m of _BITS bits."""
    exponent = value.as_tuple().exponent  # (as_integer_ratio reduces the fraction: slower)
    num, den = (int(value), 1) if exponent >= 0 else (int(_CONTEXT.scaleb(value, -exponent)), 10**-exponent)
    shift = _BITS - (num.bit_length() - den.bit_length())
    m = (num << shift) // den if shift >= 0 else num // (den << -shift)
    return m, -shift


def _times(a, b):
    """(m, e) * (m, e), truncated to _BITS bits."""
    m, e = a[0] * b[0], a[1] + b[1]
    extra = m.bit_length() - _BITS
    return (m >> extra, e + extra) if extra > 0 else (m, e)


def _powers(base, count):
    """[base**i for i < count] as (m, e) pairs."""
    out = [(1 << (_BITS - 1), 1 - _BITS)]
    for _ in range(count - 1):
        out.append(_times(out[-1], base))
    return out


def _as_pairs(powers):
    """(hi, lo) float64 arrays of the nearest double-doubles to (m, e) pairs."""
    hi = np.empty(len(powers))
    lo = np.empty(len(powers))
    for i, (m, e) in enumerate(powers):
        head = float(m)  # correctly rounded
        try:
            hi[i] = math.ldexp(head, e)
            lo[i] = math.ldexp(float(m - int(head)), e)
        except OverflowError:
            hi[i], lo[i] = math.inf, 0.0
    return hi, lo


def exp_progression(k, log_terms, denominator):
    """``exp(k * sum(c * ln(x) for c, x in log_terms) / denominator)`` for each
    entry of k (a float64 array of integers >= 0), as a DoubleDouble: e.g.
    ``base ** (-2k / dim)`` is ``exp_progression(k, [(-2, base)], dim)``.
    log_terms: (int, positive float64) pairs; denominator: a positive int."""
    if k.size == 0:
        return DoubleDouble(k, k)
    ctx = _CONTEXT
    step = decimal.Decimal(0)
    for c, x in log_terms:  # every operation in _CONTEXT: Decimal's operators would round to 28 digits
        step = ctx.add(step, ctx.multiply(c, ctx.ln(decimal.Decimal(x))))
    ratio = _binary(ctx.exp(ctx.divide(step, denominator)))
    n = int(k.max()) + 1
    # k = i * width + j: w_k = (ratio**width)**i * ratio**j, each factor from a short table.
    width = max(math.isqrt(n), 1)
    small = _powers(ratio, width + 1)
    large = _powers(small.pop(), n // width + 1)
    j = (k % width).astype(np.intp)
    i = (k // width).astype(np.intp)
    small_hi, small_lo = _as_pairs(small)
    large_hi, large_lo = _as_pairs(large)
    return DoubleDouble(small_hi[j], small_lo[j]).product(DoubleDouble(large_hi[i], large_lo[i]))
