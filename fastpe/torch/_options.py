"""The non-tensor arguments of a call, carried to the registered operators as one string.

An operator's schema knows tensors, numbers and strings only, and fastpe's
arguments include scaling dicts and model configs. So the wrappers pack
every non-tensor argument, exactly as the caller gave it, into one JSON
string (``encode``), and the implementation unpacks it (``decode``) and hands
it to fastpe's NumPy-facing function, which checks it: fastpe.torch checks
nothing itself, and the errors are the NumPy-facing functions' own. JSON
keeps Python's int, float, bool, None and str apart, so a wrong type still
gets the wrong-type error.

Under torch.compile, ``encode`` runs at trace time with the real arguments
(``torch.compiler.assume_constant_result``), so its string is a constant of
the graph, guarded like any other constant.

A model config given as ``scaling`` is read once by fastpe's scaling reader
(``scaling_parameters``) and carried as what it contributes: its
rope_parameters dict (with the config's max_position_embeddings and the like
merged in), its head width and its ignored keys; the implementation rebuilds
a config-like object of them, which the reader treats exactly as the config.
"""

import functools
import json
from collections.abc import Mapping
from types import SimpleNamespace

import numpy as np
import torch

from .._rope import scaling_parameters

_CONFIG = "__config__"


def _plain(name, value):
    """value as JSON data: numbers, strings, None, lists and str-keyed dicts."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, torch.Tensor) and value.ndim == 0:
        return value.item()
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, Mapping):
        return {str(key): _plain(name, item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(name, item) for item in value]
    raise TypeError(f"{name} got a {type(value).__name__}; fastpe.torch passes numbers, strings, None, lists and "
                    f"dicts (and a model config as scaling) to its operators")


def _scaling(scaling):
    if scaling is None or isinstance(scaling, Mapping):
        return _plain("scaling", scaling)
    params, head_dim, ignore = scaling_parameters(scaling)
    return {_CONFIG: {"rope_parameters": _plain("scaling", params), "head_dim": head_dim,
                      "ignore_keys_at_rope_validation": sorted(ignore)}}


@torch.compiler.assume_constant_result
def encode(**options):
    """The call's non-tensor arguments as one string (see the module docstring)."""
    plain = {name: (_scaling(value) if name == "scaling" else _plain(name, value)) for name, value in options.items()}
    return json.dumps(plain, sort_keys=True, allow_nan=True)


@functools.lru_cache(maxsize=256)
def decode(text):
    """The arguments encode packed, as keyword arguments of the NumPy-facing
    function (shared between calls: never modified)."""
    options = json.loads(text)
    scaling = options.get("scaling")
    if isinstance(scaling, dict) and _CONFIG in scaling:
        options["scaling"] = SimpleNamespace(**scaling[_CONFIG])
    return options
