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
  It evaluates the step and ``exp(step)`` with the decimal module, two
  tables of about ``sqrt(n)`` powers by integer arithmetic (192-bit
  mantissas), and each frequency as the double-double product of an entry
  of each (NumPy, all at once): a rule costs about ``2 sqrt(n)`` Python-level
  operations for ``n`` frequencies, once per plan.

Accuracy: exp_progression's ``hi + lo`` is within about ``2**-102`` of the
exact value, relative (the last double-double product and the rounding of
the two tables); each further operation adds about ``2**-104``. At the
largest position fastpe accepts (``2**53``) that moves an angle by about
``2**-49 |w|`` rad, ``1.8e-15 |w|``. The error-free products use Dekker's
split (NumPy has no fused multiply-add), exact while the values stay within
``2**-900`` and ``2**900``; beyond (frequencies of absurd bases) ``lo`` is 0
and ``hi`` within an ulp or two.

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
    scale = _DIGITS - 1 - value.adjusted()  # value * 10**scale is an integer of _DIGITS digits
    num = int(_CONTEXT.scaleb(value, scale))
    num, den = (num, 10**scale) if scale >= 0 else (num * 10**-scale, 1)
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


# Values (table entries and their products) outside these magnitudes get no
# low part: Dekker's split could overflow, or its error terms lose bits to
# underflow.
_SAFE_LOW, _SAFE_HIGH = 2.0**-900, 2.0**900


def _as_pairs(powers):
    """(hi, lo, hi_high, hi_low) float64 arrays: the nearest double-double to
    each (m, e) pair and Dekker's halves of hi; None when an entry lies
    outside (_SAFE_LOW, _SAFE_HIGH)."""
    rows = []
    for m, e in powers:
        head = float(m)  # correctly rounded
        try:
            h = math.ldexp(head, e)
        except OverflowError:
            return None
        if not _SAFE_LOW < h < _SAFE_HIGH:
            return None
        c = _SPLIT * h
        high = c - (c - h)
        rows.append((h, math.ldexp(float(m - int(head)), e), high, h - high))
    return np.array(rows).T


def _products_safe(a, b):
    """Whether every product of an entry of a and one of b (positive powers,
    each table monotonic) stays in (_SAFE_LOW, _SAFE_HIGH)."""
    if a is None or b is None:
        return False
    ends = [x * y for x in (a[0][0], a[0][-1]) for y in (b[0][0], b[0][-1])]
    return max(ends) < _SAFE_HIGH and min(ends) > _SAFE_LOW


def exp_progression(n, log_terms, denominator):
    """``exp(k * sum(c * ln(x) for c, x in log_terms) / denominator)`` for
    k = 0, 1, ..., n - 1, as a DoubleDouble: e.g. ``base ** (-2k / dim)`` is
    ``exp_progression(n, [(-2, base)], dim)``. log_terms: (int, positive
    float64) pairs; denominator: a positive int."""
    if n == 0:
        return DoubleDouble(np.zeros(0))
    ctx = _CONTEXT
    step = decimal.Decimal(0)
    for c, x in log_terms:  # every operation in _CONTEXT: Decimal's operators would round to 28 digits
        step = ctx.add(step, ctx.multiply(c, ctx.ln(decimal.Decimal(x))))
    ratio = _binary(ctx.exp(ctx.divide(step, denominator)))
    # k = i * width + j: w_k = (ratio**width)**i * ratio**j, the product of an
    # entry of a short table of each, taken for every (i, j) at once.
    width = max(math.isqrt(n), 1)
    small = _powers(ratio, width + 1)
    large = _powers(small.pop(), (n - 1) // width + 1)
    b, a = _as_pairs(small), _as_pairs(large)
    outer = np.multiply.outer
    if not _products_safe(a, b):
        with np.errstate(over="ignore", under="ignore"):  # an absurd base: inf or 0, as a float64 power
            hi = outer([_float(m, e) for m, e in large], [_float(m, e) for m, e in small])
        return DoubleDouble(hi.ravel()[:n])
    (ah, al, a1, a2), (bh, bl, b1, b2) = a, b
    # Three arrays of about n entries, in place (a large rule must not need
    # many times its own size): p + e == ah * bh exactly, then the low parts.
    p = outer(ah, bh)
    e = outer(a1, b1)
    e -= p
    term = outer(a1, b2)
    for x, y in ((a2, b1), (a2, b2), (ah, bl), (al, bh)):
        e += term
        outer(x, y, out=term)
    e += term
    hi = np.add(p, e, out=term)
    p -= hi  # -(hi - p)
    e += p   # e - (hi - p): the low part
    return DoubleDouble(hi.ravel()[:n], e.ravel()[:n])


def _float(m, e):
    """m * 2**e rounded to float64 (inf beyond its range)."""
    try:
        return math.ldexp(float(m), e)
    except OverflowError:
        return math.inf
