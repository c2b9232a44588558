"""Every argument check, shared by the kernels' API and the NumPy reference.

Every public call goes through here before anything is written, so a rejected
call leaves every array exactly as it was. Messages name the argument and say
what was expected. The exception type follows one rule: TypeError for a value
of the wrong type (bool or float where an int is expected, a list where an
array is written), ValueError for a value of the right type but out of range,
IndexError for a row outside a table, MemoryError for a size that cannot be
allocated (fastpe._formulas.new_array). check_int is the one integer check.

It also holds what the checks need:

* the type aliases of the public signatures (for type checkers and editors
  only). An "int" argument is any numbers.Integral but bool (Python or NumPy
  integers), a "real" one any numbers.Real but bool. The names of layouts and
  presets are Literal types listing every name the checks accept. The arrays
  the in-place functions write are typed by a TypeVar with no bound: what the
  caller passes is the type returned. The aliases are ordinary runtime
  objects, so typing.get_type_hints() resolves every public signature;
* arrays of other libraries seen as NumPy views of the same memory. fastpe
  writes into the caller's memory, so a PyTorch tensor (or any CPU array
  exposing DLPack, ``__dlpack__``, or the NumPy array interface) is viewed
  without a copy, the kernels write through the view, and the public
  functions return the caller's own object (caller_result). Nothing here
  imports an array library: a tensor's library is already loaded when the
  tensor exists;
* aliasing (docs/aliasing.rst): any array a call reads may share memory with
  an array it writes, and the result is what it would be had every input
  been read before anything was written. An input that overlaps an output is
  read from a private copy (read_apart); outputs that partly overlap one
  another have no defined result and are refused before anything is
  written. The common case, arrays far apart, costs one bounds comparison
  per pair.

The rotary family's checks, with the RoPE scalings they read, are this
module's sub-part fastpe._validation.rotary.
"""

import numbers
import operator
import sys
from typing import Any, Iterable, Literal, Mapping, Optional, Protocol, TypeVar, Union

import numpy as np
import numpy.typing as npt

from .._formulas import (
    alibi_slopes,
    LAYOUTS,
    n_frequencies,
    DEFAULT_BASE,
    DEFAULT_MAX_TIMESCALE,
    DEFAULT_MIN_TIMESCALE,
    FAIRSEQ_PADDING_IDX,
    PRESET_PARAMETERS,
    PRESETS,
    concat_columns,
    interleaved_columns,
    new_array,
    preset_layout,
    vaswani_frequencies,
)
from .._double_double import DoubleDouble
from .torch_tensors import bump_versions, is_bfloat16_bits, refuse_inference_write, requires_grad_error, widened

# ------------------------------------------------------------------ type aliases

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


# ------------------------------------------------------------------ arrays of other libraries

_DLPACK_CPU = 1  # DLDeviceType kDLCPU
_DLPACK_DEVICES = {2: "cuda", 3: "cuda host", 4: "opencl", 7: "vulkan", 8: "metal", 9: "vpi", 10: "rocm",
                   13: "cuda managed", 14: "oneapi"}


def _device_name(device):
    kind = int(device[0])
    return f"{_DLPACK_DEVICES.get(kind, f'DLPack device type {kind}')}:{int(device[1])}"


def _torch_bfloat16_view(name, value):
    """A torch bfloat16 tensor as an ml_dtypes bfloat16 view (DLPack cannot
    carry bfloat16 into NumPy), or None for anything else."""
    torch = sys.modules.get("torch")
    if torch is None or not isinstance(value, torch.Tensor) or value.dtype != torch.bfloat16:
        return None
    try:
        import ml_dtypes
    except ImportError:
        raise TypeError(f"{name} is a bfloat16 tensor; viewing it needs the optional ml_dtypes package "
                        "(pip install ml_dtypes, or fastpe[bfloat16])") from None
    bits = value.view(torch.int16)
    return _writeable_torch_view(bits, np.from_dlpack(bits)).view(ml_dtypes.bfloat16)


# NumPy before 2.2 imports every DLPack array read-only (the unversioned
# protocol has no read-only flag). A torch tensor is always writeable, and
# its own NumPy view (Tensor.numpy) shares its memory: fastpe takes that one.
_DLPACK_READ_ONLY = np.lib.NumpyVersion(np.__version__) < "2.2.0"


def _writeable_torch_view(value, view):
    """view (np.from_dlpack(value)), or torch's own writeable view of the same
    memory where NumPy made it read-only."""
    torch = sys.modules.get("torch")
    if view.flags.writeable or torch is None or not isinstance(value, torch.Tensor):
        return view
    return value.numpy()


def _refuse_lazy_tensor(name, value):
    """Refuse torch tensors whose memory does not hold their values.

    A conjugate or negative bit is applied lazily when torch reads the
    tensor; DLPack exports the raw memory without the negative bit, so fastpe
    would read (and write) the negated values. A ZeroTensor has no memory at
    all: its data pointer is not a buffer of zeros."""
    torch = sys.modules.get("torch")
    if torch is None or not isinstance(value, torch.Tensor):
        return
    if value.is_conj():
        raise TypeError(f"{name} is a lazily conjugated tensor (its conjugate bit is set); pass "
                        f"{name}.resolve_conj() (a copy), and copy the result back if fastpe writes it")
    if value.is_neg():
        raise TypeError(f"{name} is a lazily negated tensor (its negative bit is set, e.g. the .imag of a "
                        f"conjugate view); pass {name}.resolve_neg() (a copy), and copy the result back if fastpe "
                        "writes it")
    is_zero = getattr(value, "_is_zerotensor", None)  # a private method (torch 1.11 and later)
    if is_zero is not None and is_zero():
        raise TypeError(f"{name} is a ZeroTensor (torch's all-zero tensor without memory); pass "
                        f"torch.zeros_like({name}) or another tensor with storage")


def ndarray_view(name, value):
    """A NumPy array sharing value's memory, for a CPU array exposing DLPack or
    the array interface; None for any other object (lists, scalars, ...).

    Errors name the argument: a tensor that requires grad (its in-place change
    would bypass autograd), one on another device, or one DLPack cannot export,
    and a masked array (see refuse_masked)."""
    if isinstance(value, np.ndarray):
        refuse_masked(name, value)
        return value
    if getattr(value, "requires_grad", False):
        raise requires_grad_error(name)
    if hasattr(value, "__dlpack__"):
        _refuse_lazy_tensor(name, value)
        try:
            device = value.__dlpack_device__() if hasattr(value, "__dlpack_device__") else (_DLPACK_CPU, 0)
        except (BufferError, RuntimeError, TypeError, ValueError) as exc:  # e.g. torch's "meta" device
            raise ValueError(f"{name} is not in CPU memory ({exc}); fastpe computes on the CPU") from None
        if int(device[0]) != _DLPACK_CPU:
            raise ValueError(f"{name} lives on {_device_name(device)}; fastpe computes on the CPU. "
                             f"Move it with {name}.cpu() (a copy) and copy the result back")
        view = _torch_bfloat16_view(name, value)
        if view is not None:
            return view
        try:
            return _writeable_torch_view(value, np.from_dlpack(value))
        except (BufferError, RuntimeError, TypeError, ValueError) as exc:
            raise TypeError(f"{name} cannot be viewed as a NumPy array through DLPack: {exc}") from None
    if hasattr(value, "__array_interface__") or hasattr(value, "__array_struct__"):
        # Both protocols describe existing memory, so NumPy wraps it without a copy.
        return np.asarray(value)
    return None


def refuse_masked(name, value):
    """A numpy.ma masked array is refused (TypeError): fastpe would read and
    write the entries under the mask as if there were none."""
    if isinstance(value, np.ma.MaskedArray):
        raise TypeError(f"{name} is a masked array (numpy.ma.MaskedArray); fastpe does not support masked arrays: "
                        f"pass {name}.filled(value) (a copy), or {name}.data (the values under the mask included)")


def caller_result(result, out):
    """What a public function returns: the caller's own out if given (a tensor
    stays a tensor), else `result` (the caller's x, or a new table)."""
    written = result if out is None else out
    bump_versions((written,))
    return written


def caller_results(arrays, out):
    """What apply_rotary returns: the caller's arrays (or outs), one alone or a tuple."""
    returned = tuple(arrays) if out is None else tuple(out)
    bump_versions(returned)
    return returned[0] if len(returned) == 1 else returned


# ------------------------------------------------------------------ aliasing

# Work bound of NumPy's exact overlap solver. Strided views of one buffer
# (heads, fused q/k/v columns, reversed or shifted rows) are settled far
# below it; a problem it cannot settle counts as an overlap.
_OVERLAP_MAX_WORK = 1 << 20
# NumPy 1.25 moved its exceptions to np.exceptions; older ones have it in numpy itself.
_TooHardError = np.exceptions.TooHardError if hasattr(np, "exceptions") else np.TooHardError


def shares_memory(a, b):
    """True if a and b have an element in common (True too when NumPy's solver gives up)."""
    if not np.may_share_memory(a, b):  # bounds only: the common, cheap answer
        return False
    try:
        return np.shares_memory(a, b, max_work=_OVERLAP_MAX_WORK)
    except _TooHardError:
        return True


def same_view(a, b):
    """a and b are the same elements in the same order (x written in place as out).
    The stride of an axis of length 1 is never used, so it may differ."""
    if a is b:
        return True
    if a.shape != b.shape or a.dtype != b.dtype or not np.may_share_memory(a, b):
        return False  # the cheap tests first: building __array_interface__ costs microseconds
    if not all(n == 1 or sa == sb for n, sa, sb in zip(a.shape, a.strides, b.strides)):
        return False
    return a.__array_interface__["data"][0] == b.__array_interface__["data"][0]


def read_apart(value, outputs):
    """value, or a private copy of it when it shares memory with one of `outputs`.

    For inputs that are read while the outputs are written (tables,
    positions, offsets, frequencies, slopes): a copy taken before the first
    write makes the call see every input as it was."""
    if isinstance(value, np.ndarray) and value.size:
        for dst in outputs:
            if dst is not None and shares_memory(value, dst):
                return value.copy()
    return value


# ------------------------------------------------------------------ argument checks


FLOAT16 = np.dtype(np.float16)
NATIVE_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
_SUPPORTED_NAMES = "float16, bfloat16, float32 or float64"
_BFLOAT16_HINT = "bfloat16 is the ml_dtypes dtype: pip install ml_dtypes (or fastpe[bfloat16])"


def is_bfloat16(dtype):
    """dtype is ml_dtypes' bfloat16. fastpe never imports ml_dtypes for this:
    a bfloat16 array means it is already loaded. (Never compare a dtype with
    None: np.dtype(None) is float64.) fastpe.torch's BFLOAT16_BITS counts too."""
    if is_bfloat16_bits(dtype):
        return True
    ml_dtypes = sys.modules.get("ml_dtypes")
    return ml_dtypes is not None and dtype == np.dtype(ml_dtypes.bfloat16)


def encoding_dtype_for(dtype):
    """The dtype a fused add rounds its encoding (or table) to before adding
    into x of `dtype`: x's own for float32/float64, float64 for the 16-bit
    types, whose sum is formed in float64 and rounded once."""
    return dtype if dtype in NATIVE_FLOATS else np.dtype(np.float64)


def _dtype_problem(dtype):
    """Why an array dtype cannot be used, or None."""
    if dtype in NATIVE_FLOATS or dtype == FLOAT16 or is_bfloat16(dtype):
        return None
    if dtype.kind == "f" and dtype.newbyteorder("=") in NATIVE_FLOATS + (FLOAT16,):
        return f"has non-native byte order ({dtype.str}); convert it with .astype({dtype.newbyteorder('=').name!r})"
    if dtype.kind == "f":
        return f"has dtype {dtype.name}, which fastpe does not support"
    return f"has dtype {dtype}"


def _bfloat16_by_name():
    """ml_dtypes' bfloat16, for dtype="bfloat16" (NumPy knows the name only once ml_dtypes is loaded)."""
    try:
        import ml_dtypes
    except ImportError:
        raise TypeError(f"dtype 'bfloat16' needs the optional ml_dtypes package; {_BFLOAT16_HINT}") from None
    return np.dtype(ml_dtypes.bfloat16)


DEFAULT_TABLE_DTYPE = np.dtype(np.float32)


def check_dtype_argument(dtype):
    """The `dtype=` argument of the table functions. None means the documented
    default, float32 (np.dtype(None) would be float64)."""
    if dtype is None:
        return DEFAULT_TABLE_DTYPE
    try:
        dt = np.dtype(dtype)
    except TypeError:
        if not (isinstance(dtype, str) and dtype == "bfloat16"):
            raise TypeError(f"dtype must be {_SUPPORTED_NAMES}, got {dtype!r}") from None
        dt = _bfloat16_by_name()
    problem = _dtype_problem(dt)
    if problem:
        raise TypeError(f"dtype must be {_SUPPORTED_NAMES}; {dt!r} {problem}")
    return dt


def _read_array(name, value, expected):
    """value as an ndarray to read: a view of a tensor's memory (see ndarray_view),
    or np.asarray's conversion; `expected` says what else it should be."""
    arr = ndarray_view(name, value)
    if arr is not None:
        return arr
    try:
        return np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be {expected}; NumPy cannot convert it: {exc}") from None


def as_float_array(name, value, like=None):
    """A supported float ndarray that is only read (x when out= is given).

    A value without a dtype of its own (a list, nested sequences of Python
    numbers) is read as `like`, the dtype of the array written, as NumPy's
    ufuncs do with out=; an array keeps its dtype."""
    if like is not None and not hasattr(value, "dtype") and ndarray_view(name, value) is None:
        try:
            value = np.asarray(value, dtype=like)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{name} must be an array of {_SUPPORTED_NAMES}; NumPy cannot convert it: {exc}") from None
    value = readable(_read_array(name, value, f"an array of {_SUPPORTED_NAMES}"))
    problem = _dtype_problem(value.dtype)
    if problem:
        raise TypeError(f"{name} must be an array of {_SUPPORTED_NAMES}; it {problem}")
    return value


def readable(a):
    """An array that is only read, as the kernels read it: a itself, or one
    copy in native byte order and aligned to its dtype (big-endian data, and
    unpickled out-of-band buffers such as Dask's, which sit at any address)."""
    if not a.dtype.isnative:
        return a.astype(a.dtype.newbyteorder("="))
    return a if a.flags.aligned else a.copy()


def has_internal_overlap(a):
    """True if two elements of `a` may share memory (zero or crossing strides).

    Sufficient test: sorted by |stride|, each axis must step over the whole
    extent of the axes inside it. Rejects nothing NumPy itself allocates."""
    if a.flags.c_contiguous or a.flags.f_contiguous:
        return False
    extent = a.itemsize
    for size, stride in sorted(
        ((s, abs(st)) for s, st in zip(a.shape, a.strides) if s > 1), key=lambda p: p[1]
    ):
        if stride < extent:
            return True
        extent = stride * (size - 1) + extent
    return False


def writable_array(name, value, *, hint=""):
    """An ndarray fastpe may write into in place: value itself, or a view of a
    tensor's memory (see ndarray_view)."""
    view = ndarray_view(name, value)
    if view is None:
        raise TypeError(
            f"{name} must be a numpy.ndarray, or a CPU array exposing __dlpack__ or the array interface "
            f"(a torch.Tensor), to be written in place; got {type(value).__name__}{hint}"
        )
    refuse_inference_write(name, value)
    given, value = value, view
    problem = _dtype_problem(value.dtype)
    if problem:
        raise TypeError(f"{name} must be an array of {_SUPPORTED_NAMES}; it {problem}")
    if not value.flags.writeable:
        why = ""
        if _DLPACK_READ_ONLY and value is not given and hasattr(given, "__dlpack__"):
            why = f" (NumPy {np.__version__} imports every DLPack array read-only; NumPy >= 2.2 does not)"
        raise ValueError(f"{name} is read-only{why}; fastpe writes its result in place and needs a writeable array")
    if value.size and has_internal_overlap(value):
        raise ValueError(f"{name} has overlapping elements (zero or overlapping strides); writing into it in place is ambiguous")
    return value


def table_target(out, shape, dtype, what):
    """The array a table function (sinusoidal_table, sinusoidal_encode) fills:
    a new table of `dtype`, or the caller's out. dtype=None means float32 for
    a new table and out's dtype when out is given; an explicit dtype must be
    out's (a ValueError naming both, never a silent choice of one)."""
    given = None if dtype is None else check_dtype_argument(dtype)
    if out is None:
        return new_array(shape, DEFAULT_TABLE_DTYPE if given is None else given, f"a table ({what})")
    out = check_out(out, shape)
    if given is not None and given != out.dtype:
        raise ValueError(f"dtype={given.name} disagrees with out's dtype {out.dtype.name}: pass dtype=None "
                         f"(the default: out's dtype), or out of dtype {given.name}")
    return out


def check_out(out, shape, dtype=None, name="out"):
    out = writable_array(name, out)
    if out.shape != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {out.shape}")
    if dtype is not None and out.dtype != dtype:
        raise ValueError(f"{name} must have dtype {dtype.name}, got {out.dtype.name}")
    return out


def is_integer(value):
    """value is a Python or NumPy integer; bool is not (it is the wrong type for every int argument)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def check_int(name, value, expected="an int"):
    """A Python or NumPy integer, or a 0-d integer array or tensor, as an int.
    bool and float are the wrong type (TypeError), whatever their value."""
    value = _unwrap_0d(name, value)
    if not is_integer(value):
        raise TypeError(f"{name} must be {expected}, got {value!r}")
    return operator.index(value)


def check_bool(name, value):
    """True or False (Python or NumPy bool, or a 0-d bool array or tensor); 0 and 1 are the wrong type."""
    value = _unwrap_0d(name, value)
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def check_count(name, value, minimum=0):
    """An integer >= minimum (n_positions, dim, n_heads)."""
    value = check_int(name, value, f"an integer >= {minimum}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def _to_float(name, value):
    try:
        return float(value)
    except OverflowError:
        raise ValueError(f"{name} must be finite and fit in a float64, got an integer with {value.bit_length()} bits") from None


def _unwrap_0d(name, value):
    """A 0-d array or tensor (np.array(2.0), torch.tensor(2.0)) as its NumPy scalar;
    anything else as it is. Scalar arguments take them as offset does."""
    if isinstance(value, (numbers.Number, str, bytes)) or value is None:
        return value
    if not (hasattr(value, "__array_interface__") or hasattr(value, "__dlpack__") or hasattr(value, "__array__")):
        return value
    arr = ndarray_view(name, value)
    if arr is None:
        try:
            arr = np.asarray(value)
        except (TypeError, ValueError):
            return value
    if arr.ndim != 0:
        raise TypeError(f"{name} must be a number (or a 0-d array), got an array of shape {arr.shape}")
    if is_bfloat16(arr.dtype):
        arr = widened(arr, np.float32)
    return arr[()]


def check_real_scalar(name, value, *, positive=False):
    value = _unwrap_0d(name, value)
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    value = _to_float(name, value)
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if positive and value <= 0:
        raise ValueError(f"{name} must be > 0, got {value}")
    return value


def check_layout(layout, layouts=LAYOUTS):
    """One of the layout names a function knows (1-D, rotary or 2-D grid layouts)."""
    if not isinstance(layout, str):
        raise TypeError(f"layout must be one of {', '.join(map(repr, layouts))} (a str); got {layout!r}")
    if layout not in layouts:
        raise ValueError(f"layout must be one of {', '.join(map(repr, layouts))}; got {layout!r}")
    return layout


def check_num_threads(num_threads):
    """None (OpenMP's default) or an int >= 1."""
    if num_threads is None:
        return None
    num_threads = check_int("num_threads", num_threads, "None or an int >= 1")
    if num_threads < 1:
        raise ValueError(f"num_threads must be None or an int >= 1, got {num_threads}")
    return num_threads


def array_of_kind(name, value, kinds, holds):
    """np.asarray(value), whose dtype kind must be one of `kinds` ("iuf": numbers).
    bfloat16 counts as a float and is widened to float32 (exactly)."""
    arr = _read_array(name, value, f"a number or an array of {holds}")
    if "f" in kinds and is_bfloat16(arr.dtype):
        arr = widened(arr, np.float32)
    if arr.dtype.kind not in kinds:
        raise TypeError(f"{name} must hold {holds}, got dtype {arr.dtype}")
    return readable(arr)


# float64 holds every integer of magnitude below 2**53 exactly; beyond it
# neighbouring positions round to the same value and angles silently go wrong.
POSITION_LIMIT = 2**53


def _position_limit_error(name, value):
    return ValueError(f"{name} must lie in (-2**53, 2**53), where float64 holds every integer position "
                      f"exactly; got {value}")


def check_position_range(name, lowest, highest):
    """The positions a call forms (e.g. offset .. offset + T - 1) stay below 2**53 in magnitude.
    lowest/highest are exact Python numbers or float64 values formed by ONE rounded
    addition (rounding is monotonic, so a float64 sum that reaches the limit means the
    exact one does too; two additions could round below it again)."""
    for value in (lowest, highest):
        if abs(value) >= POSITION_LIMIT:
            raise _position_limit_error(name, value)


def _first_beyond_limit(arr):
    """The first entry of an int/float array with |value| >= 2**53 (as a Python number), or None.
    Integers are compared as integers, so the message shows the caller's own value."""
    if arr.size == 0:
        return None
    if arr.dtype.kind == "u":
        beyond = arr >= POSITION_LIMIT
    elif arr.dtype.kind == "i":
        beyond = (arr >= POSITION_LIMIT) | (arr <= -POSITION_LIMIT)
    else:
        beyond = np.abs(arr) >= np.float64(POSITION_LIMIT)  # a strong float64: float16 must not cast 2**53
    return arr[beyond].flat[0].item() if beyond.any() else None


def real_array(name, value, *, allow_nonfinite=False, position=False):
    """Positions, offsets and frequencies: any real (int or float) array, as float64.
    position=True refuses values of magnitude 2**53 and above (POSITION_LIMIT)."""
    if isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_, np.ndarray)):
        # Scalars (int, float, NumPy scalars, Fraction...) without NumPy's overhead.
        if position and isinstance(value, numbers.Integral) and abs(int(value)) >= POSITION_LIMIT:
            raise _position_limit_error(name, int(value))
        value = _to_float(name, value)
        if not allow_nonfinite and value - value != 0.0:
            raise ValueError(f"{name} must be finite (no NaN or inf)")
        if position and abs(value) >= POSITION_LIMIT:
            raise _position_limit_error(name, value)
        return np.full((), value)
    arr = array_of_kind(name, value, "iuf", "integers or floats")
    if arr.dtype.kind == "f" and not allow_nonfinite and not np.isfinite(arr).all():
        raise ValueError(f"{name} must be finite (no NaN or inf)")
    if position:
        beyond = _first_beyond_limit(arr)
        if beyond is not None:
            raise _position_limit_error(name, beyond)
    return arr.astype(np.float64, copy=False)


def broadcastable_to(name, arr, shape, what, given_shape=None):
    """Check that arr broadcasts to exactly `shape`; return arr with leading 1s added.
    given_shape: the caller's own shape, for the message, when arr was reshaped first."""
    shape = tuple(shape)
    if arr.ndim == 0:
        return arr.reshape((1,) * len(shape))
    ok = arr.ndim <= len(shape)
    if ok:
        try:
            ok = np.broadcast_shapes(arr.shape, shape) == shape
        except ValueError:
            ok = False
    if not ok:
        shown = arr.shape if given_shape is None else tuple(given_shape)
        raise ValueError(f"{name} of shape {shown} does not broadcast to {what} {shape}")
    return arr.reshape((1,) * (len(shape) - arr.ndim) + arr.shape)


def check_scale(scale):
    return None if scale is None else check_real_scalar("scale", scale)


def frequencies_argument(inv_freq, dim, layout, rule=None):
    """An explicit inv_freq: 1-D, finite, one entry per frequency of the layout.
    rule: how the expected count follows from dim, for the message."""
    freq = real_array("inv_freq", inv_freq)
    expected = n_frequencies(dim, layout)
    if freq.ndim != 1 or freq.shape[0] != expected:
        if rule is None:
            rule = ("ceil(dim/2)" if layout == "interleaved" else "dim//2") + f" for layout={layout!r}, dim={dim}"
        raise ValueError(f"inv_freq must be a 1-D array of {expected} frequencies ({rule}), got shape {freq.shape}")
    return np.ascontiguousarray(freq)


class Encoding:
    """The validated description of a 1-D sinusoidal encoding: a preset, or a
    layout with base or inv_freq; plus the position whose encoding is zero
    (padding_idx) and the shift of implicit positions (fairseq)."""

    __slots__ = ("dim", "preset", "layout", "base", "inv_freq", "min_timescale", "max_timescale",
                 "padding_idx")

    def __init__(self, dim, base, layout, inv_freq, preset=None, padding_idx=None,
                 min_timescale=None, max_timescale=None):
        self.dim = dim
        self.preset = preset
        self.inv_freq = None
        self.min_timescale = self.max_timescale = None
        given = {"base": base, "min_timescale": min_timescale, "max_timescale": max_timescale,
                 "padding_idx": padding_idx}
        if preset is None:
            self.layout = check_layout("interleaved" if layout is None else layout)
            for name in ("min_timescale", "max_timescale"):
                if given[name] is not None:
                    raise ValueError(f"{name} is a parameter of preset='tensor2tensor' or 'whisper'; "
                                     f"it cannot be used without preset=")
            self.base = check_real_scalar("base", DEFAULT_BASE if base is None else base, positive=True)
            if inv_freq is not None:
                self.inv_freq = frequencies_argument(inv_freq, dim, self.layout)
        else:
            self._init_preset(preset, layout, inv_freq, given)
        self.padding_idx = self._padding_idx(padding_idx)

    def _init_preset(self, preset, layout, inv_freq, given):
        if not isinstance(preset, str):
            raise TypeError(f"preset must be one of {', '.join(map(repr, PRESETS))} (a str); got {preset!r}")
        if preset not in PRESETS:
            raise ValueError(f"preset must be one of {', '.join(map(repr, PRESETS))}; got {preset!r}")
        if layout is not None:
            raise ValueError(f"preset={preset!r} cannot be combined with layout={layout!r}: the preset fixes the layout")
        if inv_freq is not None:
            raise ValueError(f"preset={preset!r} cannot be combined with inv_freq: the preset fixes the frequencies")
        allowed = PRESET_PARAMETERS[preset]
        for name in ("base", "min_timescale", "max_timescale"):
            if given[name] is not None and name not in allowed:
                raise ValueError(f"preset={preset!r} does not take {name}= (it takes {', '.join(allowed)})")
        self.layout = None
        self.base = check_real_scalar("base", DEFAULT_BASE if given["base"] is None else given["base"], positive=True)
        if preset == "tensor2tensor":
            self.min_timescale = check_real_scalar(
                "min_timescale", DEFAULT_MIN_TIMESCALE if given["min_timescale"] is None else given["min_timescale"],
                positive=True)
        if preset in ("tensor2tensor", "whisper"):
            self.max_timescale = check_real_scalar(
                "max_timescale", DEFAULT_MAX_TIMESCALE if given["max_timescale"] is None else given["max_timescale"],
                positive=True)
        if preset in ("fairseq", "whisper") and self.dim // 2 < 2:
            raise ValueError(f"dim must be >= 4 for preset={preset!r} (its frequencies divide by dim//2 - 1), got {self.dim}")
        if preset == "whisper" and self.dim % 2:
            raise ValueError(f"dim must be even for preset='whisper', got {self.dim}")

    def _padding_idx(self, padding_idx):
        if padding_idx is None:
            return FAIRSEQ_PADDING_IDX if self.preset == "fairseq" else None
        return check_int("padding_idx", padding_idx)

    @property
    def zero_position(self):
        """The position whose encoding is all zeros (NaN: none)."""
        return float("nan") if self.padding_idx is None else float(self.padding_idx)

    @property
    def implicit_shift(self):
        """Added to offset + t when positions are implicit: fairseq starts at padding_idx + 1."""
        return self.padding_idx + 1 if self.preset == "fairseq" else 0

    def frequencies_and_columns(self):
        """(exact frequencies, a DoubleDouble; Columns) for the kernel's plan.
        An inv_freq is exact as given."""
        if self.preset is not None:
            return preset_layout(self.preset, self.dim, self.base, self.min_timescale, self.max_timescale)
        columns = interleaved_columns(self.dim) if self.layout == "interleaved" else concat_columns(self.dim)
        if self.inv_freq is not None:
            return DoubleDouble(self.inv_freq), columns
        return vaswani_frequencies(self.dim, self.base, columns.n_sin), columns


class AddRequest:
    """Validated arguments of add_sinusoidal.

    `keys` holds either per-sequence offsets (aligned to x.shape[:-2]) or
    explicit positions (aligned to x.shape[:-1]), as float64."""

    __slots__ = ("x", "out", "encoding", "offset", "positions", "scale", "num_threads")


def x_and_out(x, out):
    """The array a fused add reads (x) and the one it writes (out, or x itself)."""
    if out is None:
        x = writable_array("x", x, hint="; pass out= to write the result into another array")
    else:
        x = as_float_array("x", x, like=writable_array("out", out).dtype)
    if x.ndim < 2:
        raise ValueError(f"x must have at least 2 dimensions (..., T, D), got shape {x.shape}")
    if out is not None:
        out = check_out(out, x.shape, x.dtype)
    return x, out


def add_request(x, offset, positions, scale, base, layout, inv_freq, out, num_threads,
                preset=None, padding_idx=None, min_timescale=None, max_timescale=None):
    req = AddRequest()
    x, out = x_and_out(x, out)
    req.x, req.out = x, out
    req.encoding = Encoding(x.shape[-1], base, layout, inv_freq, preset, padding_idx, min_timescale, max_timescale)
    req.scale = check_scale(scale)
    req.num_threads = check_num_threads(num_threads)
    off = real_array("offset", offset, position=True)
    if positions is not None:
        if (off != 0).any():
            raise ValueError("offset cannot be combined with positions: positions already give every token's position")
        pos = real_array("positions", positions, position=True)
        req.positions = broadcastable_to("positions", pos, x.shape[:-1], "x.shape[:-1]")
        req.offset = None
    else:
        req.offset = broadcastable_to("offset", off, x.shape[:-2], "x.shape[:-2] (one offset per sequence)")
        req.positions = None
        if req.offset.size and x.shape[-2]:
            shift = req.encoding.implicit_shift
            check_position_range("offset + T - 1", float(req.offset.min()) + shift,
                                 float(req.offset.max()) + (shift + x.shape[-2] - 1))
    written = (x if out is None else out,)
    req.offset, req.positions = read_apart(req.offset, written), read_apart(req.positions, written)
    req.encoding.inv_freq = read_apart(req.encoding.inv_freq, written)
    return req


def table_offset(offset, n_positions):
    """sinusoidal_table's offset: its rows hold positions offset .. offset + n_positions - 1."""
    offset = check_real_scalar("offset", offset)
    check_position_range("offset", offset, offset)
    if n_positions:
        check_position_range("offset + n_positions - 1", offset, offset + (n_positions - 1))
    return offset


def check_make_positions(token_ids, padding_idx, past_length):
    """Arguments of make_positions: integer ids (>= 1 dim), int padding_idx,
    int past_length or integer array broadcastable to token_ids.shape[:-1]."""
    ids = array_of_kind("token_ids", token_ids, "iu", "integers")
    if ids.ndim < 1:
        raise ValueError(f"token_ids must have at least 1 dimension (..., T), got shape {ids.shape}")
    padding_idx = check_int("padding_idx", padding_idx)
    refuse_masked("past_length", past_length)
    past = np.asarray(past_length)
    if past.dtype.kind not in "iu":
        raise TypeError(f"past_length must be an int or an integer array, got {past_length!r}")
    past = broadcastable_to("past_length", past, ids.shape[:-1], "token_ids.shape[:-1] (one per sequence)")
    return ids, padding_idx, past.astype(np.int64)[..., None]


def integer_array(name, value):
    """Table positions and offsets: integers only (a table has no row 2.5), in
    their own integer dtype (cast to int64 after the range check, so a uint64
    beyond int64 is reported as itself, not wrapped)."""
    if is_integer(value):
        value = operator.index(value)
        if not -2**63 <= value < 2**63:
            raise IndexError(f"{name}={value} lies outside any table's rows")
        return np.full((), value, dtype=np.int64)
    return array_of_kind(name, value, "iu", "integers (table rows)")


class TableRequest:
    """Validated arguments of add_table."""

    __slots__ = ("x", "out", "table", "offset", "positions", "scale", "num_threads")


def table_request(x, table, offset, positions, scale, out, num_threads):
    req = TableRequest()
    req.x, req.out = x_and_out(x, out)
    x = req.x
    table = as_float_array("table", table)
    if table.ndim != 2 or table.shape[1] != x.shape[-1]:
        raise ValueError(f"table must have shape (n_rows, {x.shape[-1]}) to match x's last axis, got {table.shape}")
    req.table = table
    req.scale = check_scale(scale)
    req.num_threads = check_num_threads(num_threads)
    off = integer_array("offset", offset)
    n_rows, T = table.shape[0], x.shape[-2]
    if positions is not None:
        if (off != 0).any():
            raise ValueError("offset cannot be combined with positions: positions already give every token's row")
        pos = broadcastable_to("positions", integer_array("positions", positions), x.shape[:-1], "x.shape[:-1]")
        if x.size and pos.size and (pos.min() < 0 or pos.max() >= n_rows):
            raise IndexError(f"positions must lie in [0, {n_rows}) (the table's rows); got values from "
                             f"{pos.min()} to {pos.max()}")
        req.positions, req.offset = pos.astype(np.int64, copy=False), None
    else:
        off = broadcastable_to("offset", off, x.shape[:-2], "x.shape[:-2] (one offset per sequence)")
        if x.size and off.size and (off.min() < 0 or int(off.max()) + T - 1 >= n_rows):
            raise IndexError(f"positions offset + t (t < {T}) must lie in [0, {n_rows}) (the table's rows); "
                             f"offset ranges from {off.min()} to {off.max()}")
        req.positions, req.offset = None, off.astype(np.int64, copy=False)
    # The kernel reads table rows while it writes x (or out): a table in the
    # same memory is read from a copy (e.g. x a slice of the table).
    written = (x if req.out is None else req.out,)
    req.table = read_apart(table, written)
    req.offset, req.positions = read_apart(req.offset, written), read_apart(req.positions, written)
    return req


# ------------------------------------------------------------------ grids

LAYOUTS_2D = ("mae", "timm", "big_vision")


def check_grid_2d(grid_h, grid_w, dim, base, layout, cls_token):
    grid_h = check_count("grid_h", grid_h)
    grid_w = check_count("grid_w", grid_w)
    dim = check_count("dim", dim)
    base = check_real_scalar("base", base, positive=True)
    check_layout(layout, LAYOUTS_2D)
    if dim % 4:
        raise ValueError(f"dim must be a multiple of 4 for a 2-D sin-cos grid (sin and cos of 2 axes), got {dim}")
    if layout == "big_vision" and dim < 8:
        raise ValueError(f"dim must be >= 8 for layout='big_vision' (its frequencies divide by dim/4 - 1), got {dim}")
    return grid_h, grid_w, dim, base, check_bool("cls_token", cls_token)


def check_grid_nd(shape, dim, min_timescale, max_timescale):
    if isinstance(shape, (numbers.Number, np.ndarray)) and np.ndim(shape) == 0:
        shape = (shape,)
    try:
        shape = tuple(shape)
    except TypeError:
        raise TypeError(f"shape must be a tuple of non-negative ints, got {shape!r}") from None
    shape = tuple(check_int("shape", s, "a tuple of non-negative ints") for s in shape)
    if not shape or any(s < 0 for s in shape):
        raise ValueError(f"shape must be a non-empty tuple of non-negative ints, got {shape!r}")
    dim = check_count("dim", dim)
    min_timescale = check_real_scalar("min_timescale", min_timescale, positive=True)
    max_timescale = check_real_scalar("max_timescale", max_timescale, positive=True)
    n_timescales = dim // (2 * len(shape))
    if n_timescales < 2:
        raise ValueError(f"dim must be >= {4 * len(shape)} for a {len(shape)}-D grid: tensor2tensor gives each axis "
                         f"dim // (2 * ndim) >= 2 timescales, got dim={dim}")
    return shape, dim, min_timescale, max_timescale


# ------------------------------------------------------------------ attention biases

DEFAULT_MAX_BIAS = 8.0
# Positions and relative distances are exact in float64 up to here.
_MAX_POSITION = 2**52


def check_heads(n_heads):
    return check_count("n_heads", n_heads, minimum=1)


def check_max_bias(max_bias):
    return check_real_scalar("max_bias", max_bias, positive=True)


def scores_and_out(scores, out):
    """The scores a bias is added to (read), and the array written (out, or scores)."""
    if out is None:
        scores = writable_array("scores", scores, hint="; pass out= to write the result into another array")
    else:
        scores = as_float_array("scores", scores, like=writable_array("out", out).dtype)
    if scores.ndim != 4:
        raise ValueError(f"scores must have 4 dimensions (batch, heads, queries, keys), got shape {scores.shape}")
    if out is not None:
        out = check_out(out, scores.shape, scores.dtype)
    return scores, out


def check_offset(offset, scores_shape):
    """Query offsets: an integer, or one per batch entry; returned as int64 of shape (B,)."""
    if is_integer(offset):
        off = np.full((), operator.index(offset), dtype=object)
        if abs(int(off[()])) > _MAX_POSITION:
            raise ValueError(f"offset must lie in [-2**52, 2**52], got {offset}")
        off = off.astype(np.int64)
    else:
        off = array_of_kind("offset", offset, "iu", "integers (a query position offset)")
        if off.dtype.kind == "u" and off.size and off.max() > _MAX_POSITION:
            raise ValueError("offset must lie in [-2**52, 2**52]")
        off = off.astype(np.int64, copy=False)
    B, _, Tq, Tk = scores_shape
    off = broadcastable_to("offset", off, (B,), "the batch axis (one offset per sequence)")
    off = np.broadcast_to(off, (B,))
    if off.size and (np.abs(off).max() > _MAX_POSITION - Tq - Tk):
        raise ValueError(f"offset must lie within +-(2**52 - Tq - Tk) so that positions stay exact, "
                         f"got values from {off.min()} to {off.max()}")
    return np.ascontiguousarray(off, dtype=np.int64)


def check_slopes(slopes, max_bias, n_heads):
    """Explicit slopes (H,), or ALiBi's default for n_heads heads (float64)."""
    max_bias = check_max_bias(max_bias)
    if slopes is None:
        return alibi_slopes(n_heads, max_bias) if n_heads else np.zeros(0)
    if max_bias != DEFAULT_MAX_BIAS:
        raise ValueError("max_bias only shapes the default slopes; it cannot be combined with explicit slopes=")
    s = real_array("slopes", slopes)
    if s.shape != (n_heads,):
        raise ValueError(f"slopes must have shape ({n_heads},) (one per head of scores), got {s.shape}")
    return np.ascontiguousarray(s)


def check_key_positions(key_positions, offset, scores_shape):
    """BLOOM's key positions, broadcast to (B, Tk) float64; offset must then be 0."""
    if isinstance(offset, np.ndarray) or not (isinstance(offset, numbers.Integral) and offset == 0):
        refuse_masked("offset", offset)
        off = np.asarray(offset)
        if off.dtype.kind not in "iuf" or off.size == 0 or (off != 0).any():
            raise ValueError("offset cannot be combined with key_positions: the key-only form has no query position")
    kp = real_array("key_positions", key_positions, position=True)
    B, _, _, Tk = scores_shape
    kp = broadcastable_to("key_positions", kp, (B, Tk), "(batch, keys) =")
    return kp


def check_bucket_settings(bidirectional, num_buckets, max_distance):
    """(bidirectional, num_buckets, max_distance), checked against what T5's bucket arithmetic needs.

    Each direction gets n = num_buckets (// 2 when bidirectional) buckets, the
    first n // 2 exact. With n // 2 == 0 T5's formula divides log(0) by
    log(inf) (NaN buckets), and max_distance must exceed n // 2 or the log
    bins run backwards (max_distance < n // 2 gives negative buckets, == a
    division by zero)."""
    bidirectional = check_bool("bidirectional", bidirectional)
    num_buckets, max_distance = check_int("num_buckets", num_buckets), check_int("max_distance", max_distance)
    if num_buckets < 1:
        raise ValueError(f"num_buckets must be >= 1, got {num_buckets}")
    if max_distance <= 0:
        raise ValueError(f"max_distance must be > 0, got {max_distance}")
    n = num_buckets // 2 if bidirectional else num_buckets
    if n // 2 < 1:
        need = 4 if bidirectional else 2
        raise ValueError(f"num_buckets must be >= {need} when bidirectional={bidirectional} (T5's bucket formula "
                         f"needs at least one exact bucket per direction), got {num_buckets}")
    if max_distance <= n // 2:
        raise ValueError(f"max_distance must be > {n // 2} (the number of exact buckets per direction for "
                         f"num_buckets={num_buckets}, bidirectional={bidirectional}), got {max_distance}")
    return bidirectional, num_buckets, max_distance


def check_bias_table(bias_table, num_buckets, n_heads):
    table = real_array("bias_table", bias_table)
    if table.shape != (num_buckets, n_heads):
        raise ValueError(f"bias_table must have shape (num_buckets, heads) = ({num_buckets}, {n_heads}), "
                         f"got {table.shape}")
    return table


def alibi_request(scores, slopes, max_bias, offset, key_positions, out, num_threads):
    scores, out = scores_and_out(scores, out)
    num_threads = check_num_threads(num_threads)
    slopes = check_slopes(slopes, max_bias, scores.shape[1])
    if key_positions is not None:
        kp = check_key_positions(key_positions, offset, scores.shape)
        off = None
    else:
        kp = None
        off = check_offset(offset, scores.shape)
    written = (scores if out is None else out,)
    slopes, off, kp = (read_apart(a, written) for a in (slopes, off, kp))
    return scores, out, slopes, off, kp, num_threads


def relative_request(scores, bias_table, bidirectional, num_buckets, max_distance, offset, out, num_threads):
    scores, out = scores_and_out(scores, out)
    num_threads = check_num_threads(num_threads)
    settings = check_bucket_settings(bidirectional, num_buckets, max_distance)
    table = check_bias_table(bias_table, settings[1], scores.shape[1])
    off = check_offset(offset, scores.shape)
    written = (scores if out is None else out,)
    table, off = read_apart(table, written), read_apart(off, written)
    return scores, out, table, settings, off, num_threads


def check_relative_positions(relative_position):
    """relative_position_bucket's distances, as int64."""
    rp = array_of_kind("relative_position", relative_position, "iu", "integers (key - query positions)")
    # Compared as Python ints: NumPy < 1.25 compares uint64 with int64 in float64 (2**63 - 1 rounds to 2**63).
    if rp.size and ((rp.dtype.kind == "u" and int(rp.max()) > np.iinfo(np.int64).max)
                    or (rp.dtype.kind == "i" and int(rp.min()) < -np.iinfo(np.int64).max)):
        raise ValueError("relative_position must lie within +-(2**63 - 1) (int64 with a negatable minimum)")
    return rp.astype(np.int64, copy=False)
