"""Run add_sinusoidal with its compiled fast path on, and with the general path alone."""

import fastpe
import util
from fastpe import _frontdoor


def general_path_only():
    """While the block runs, add_sinusoidal takes its general path only."""
    return util.general_path_only(_frontdoor, "add_sinusoidal")


def fast_and_general(x, **kwargs):
    """(fast-enabled result, general-only result, fast calls taken) on copies of x."""
    x_fast, x_general = x.copy(), x.copy()
    before = _frontdoor.sinusoid_calls()
    fastpe.add_sinusoidal(x_fast, **kwargs)
    taken = _frontdoor.sinusoid_calls() - before
    with general_path_only():
        fastpe.add_sinusoidal(x_general, **kwargs)
    return x_fast, x_general, taken
