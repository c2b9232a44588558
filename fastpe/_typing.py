"""The type aliases of fastpe's public signatures, for type checkers and editors only.

An "int" argument is any numbers.Integral but bool (Python or NumPy
integers), a "real" one any numbers.Real but bool. The names of layouts and
presets are Literal types listing every name the checks accept. The arrays
the in-place functions write are typed by a TypeVar with no bound: what the
caller passes is the type returned. The aliases are ordinary runtime objects,
so typing.get_type_hints() resolves every public signature.
"""

from typing import Any, Iterable, Literal, Mapping, Optional, Protocol, TypeVar, Union

import numpy as np
import numpy.typing as npt

# The caller's array, returned as is by the in-place functions. Their x and
# out are both ArrayT (a pragmatic signature rather than @overload pairs for
# out=None and out given, repeated in the compiled and reference modules):
# exact when x and out are of one type, the usual case; otherwise the checker
# infers their common supertype.
ArrayT = TypeVar("ArrayT")

Int = Union[int, np.integer[Any]]
Bool = Union[bool, np.bool_]
Real = Union[float, np.integer[Any], np.floating[Any]]
OptInt = Optional[Int]
OptReal = Optional[Real]
OptArrayLike = Optional[npt.ArrayLike]
# A grid shape: one length, or one per axis.
Shape = Union[Int, Iterable[Int]]

# A table the library allocates: its dtype is chosen at run time (dtype=).
Table = npt.NDArray[Any]

Layout = Literal["interleaved", "concat"]
Preset = Literal["vaswani", "marian", "tensor2tensor", "fairseq", "whisper"]
RotaryLayout = Literal["half", "interleaved"]


class RopeConfig(Protocol):
    """A model config as Hugging Face has it (duck-typed: transformers is never
    imported): its rope_parameters, and max_position_embeddings, head_dim or
    hidden_size / num_attention_heads where the rope type needs them."""

    @property
    def rope_parameters(self) -> Any: ...


class LegacyRopeConfig(Protocol):
    """A transformers 4.x config: rope_theta and rope_scaling (a dict, or None)
    as attributes, without rope_parameters."""

    @property
    def rope_theta(self) -> Any: ...

    @property
    def rope_scaling(self) -> Any: ...


# config.rope_parameters (or rope_scaling) of a Hugging Face model as a dict, or the config itself.
Scaling = Optional[Union[Mapping[str, Any], RopeConfig, LegacyRopeConfig]]

GridLayout = Literal["mae", "timm", "big_vision"]
