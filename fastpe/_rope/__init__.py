"""RoPE frequencies: the reader of Hugging Face's scalings and the scaled frequencies.

scalings reads a scaling argument (a rope_parameters dict or a config) once
and checks each rope type's keys; frequencies applies the rule of
fastpe._formulas to the checked values (or takes the frequencies given) and
says what the result depends on, so that fastpe._frontdoor can keep it.
Nothing here is cached or compiled: the cache and the front door sit above.
"""

from .frequencies import (
    ScaledFrequencies,
    call_frequencies,
    given_frequencies,
    rope_frequencies,
    scaled_frequencies,
)
from .scalings import ROPE_TYPES, ScalingParameters, scaling_parameters, warn_unused_keys

__all__ = ["ROPE_TYPES", "ScaledFrequencies", "ScalingParameters", "call_frequencies", "given_frequencies",
           "rope_frequencies", "scaled_frequencies", "scaling_parameters", "warn_unused_keys"]
