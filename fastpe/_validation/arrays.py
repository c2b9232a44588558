"""Arrays as the checks take them: dtypes, arrays read and written, and their shapes.

An array argument may be an ndarray, a CPU array of another library (viewed
without a copy, fastpe._validation.views) or, where it is only read, anything
NumPy converts. An array fastpe writes must be writable in place: a
supported float dtype in native byte order, writeable, without overlapping
elements. An array only read is taken as the kernels read it (native byte
order, aligned; at most one copy). Positions are checked against the
position limit (fastpe._validation.scalars.POSITION_LIMIT).
"""

import numbers
import operator

import numpy as np

from .._formulas import new_array
from .aliasing import has_internal_overlap
from .scalars import POSITION_LIMIT, is_integer, position_limit_error, to_float
from .torch_tensors import refuse_inference_write, widened
from .views import DLPACK_READ_ONLY, is_bfloat16, ndarray_view

FLOAT16 = np.dtype(np.float16)
NATIVE_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
_SUPPORTED_NAMES = "float16, bfloat16, float32 or float64"
_BFLOAT16_HINT = "bfloat16 is the ml_dtypes dtype: pip install ml_dtypes (or fastpe[bfloat16])"


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
        if DLPACK_READ_ONLY and value is not given and hasattr(given, "__dlpack__"):
            why = f" (NumPy {np.__version__} imports every DLPack array read-only; NumPy >= 2.2 does not)"
        raise ValueError(f"{name} is read-only{why}; fastpe writes its result in place and needs a writeable array")
    if value.size and has_internal_overlap(value):
        raise ValueError(f"{name} has overlapping elements (zero or overlapping strides); writing into it in place is ambiguous")
    return value


def written_views(arrays):
    """The ndarrays writable_array makes of arrays written in place, for a
    front door to try again with; None when they are all ndarrays already (the
    front door had them) or when one is refused (the general path then
    raises its own error, in its own order)."""
    if all(type(a) is np.ndarray for a in arrays):
        return None
    try:
        return tuple(writable_array(f"arrays[{i}]", a) for i, a in enumerate(arrays))
    except Exception:  # noqa: BLE001 - every refusal is the general path's to report
        return None


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


def array_of_kind(name, value, kinds, holds):
    """np.asarray(value), whose dtype kind must be one of `kinds` ("iuf": numbers).
    bfloat16 counts as a float and is widened to float32 (exactly)."""
    arr = _read_array(name, value, f"a number or an array of {holds}")
    if "f" in kinds and is_bfloat16(arr.dtype):
        arr = widened(arr, np.float32)
    if arr.dtype.kind not in kinds:
        raise TypeError(f"{name} must hold {holds}, got dtype {arr.dtype}")
    return readable(arr)


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
            raise position_limit_error(name, int(value))
        value = to_float(name, value)
        if not allow_nonfinite and value - value != 0.0:
            raise ValueError(f"{name} must be finite (no NaN or inf)")
        if position and abs(value) >= POSITION_LIMIT:
            raise position_limit_error(name, value)
        return np.full((), value)
    arr = array_of_kind(name, value, "iuf", "integers or floats")
    if arr.dtype.kind == "f" and not allow_nonfinite and not np.isfinite(arr).all():
        raise ValueError(f"{name} must be finite (no NaN or inf)")
    if position:
        beyond = _first_beyond_limit(arr)
        if beyond is not None:
            raise position_limit_error(name, beyond)
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
