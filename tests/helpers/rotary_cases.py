"""Helpers shared by the apply_rotary tests against the reference
(rotary/test_rotary.py) and the row-order tests (rotary/test_visit_order.py)."""

import numpy as np


def rotary_tolerance(dtype, expected):
    """The kernel rotates in float64 and rounds once, like the reference; its
    angles differ from the reference's by the recurrence (<~1e-12 rad at these
    positions). float32: one ulp of the result either side of a rounding
    boundary; float64: angle error times |x| plus a few ulps."""
    mag = 1.0 + np.abs(expected.astype(np.float64))
    if np.dtype(dtype) == np.float32:
        return np.finfo(np.float32).eps * mag
    return 1e-11 * mag


def rotary_kwargs(kw, shape, seq_axis, rng):
    """A case's keyword arguments with "BT" / "T" standing for random
    positions of shape (batch, T) / a permutation of T scaled and shifted."""
    kw = dict(kw)
    T = shape[seq_axis]
    if kw.get("positions") == "BT":
        kw["positions"] = rng.integers(0, 5000, (shape[0], T))
    elif kw.get("positions") == "T":
        kw["positions"] = rng.permutation(T) * 3 - 10
    return kw


def torchtune_tolerance(x, positions):
    """torchtune against float64 angles: it forms theta and positions in float32
    and rounds their product, about p * 6e-8 radians off at position p."""
    p = np.abs(np.asarray(positions, dtype=np.float64)).reshape(1, -1, 1, 1)
    return 2e-6 + 1.5e-7 * p * (1.0 + np.abs(x))
