"""Arrays of other libraries seen as NumPy views of the same memory.

fastpe writes into the caller's memory, so a PyTorch tensor (or any CPU
array exposing DLPack, ``__dlpack__``, or the NumPy array interface) is
viewed without a copy, the kernels write through the view, and the public
functions return the caller's own object (caller_result). Nothing here
imports an array library: a tensor's library is already loaded when the
tensor exists.
"""

import sys

import numpy as np

from .torch_tensors import bump_versions, is_bfloat16_bits, requires_grad_error

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
DLPACK_READ_ONLY = np.lib.NumpyVersion(np.__version__) < "2.2.0"


def _writeable_torch_view(value, view):
    """view (np.from_dlpack(value)), or torch's own writeable view of the same
    memory where NumPy made it read-only."""
    torch = sys.modules.get("torch")
    if view.flags.writeable or torch is None or not isinstance(value, torch.Tensor):
        return view
    return value.numpy()


def refuse_lazy_tensor(name, value):
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
    torch = sys.modules.get("torch")
    if (torch is not None and type(value) in (torch.Tensor, torch.nn.Parameter) and value.is_cpu
            and value.dtype != torch.bfloat16):
        refuse_lazy_tensor(name, value)
        return value.numpy()  # torch's own view of the memory: a tenth of DLPack's cost
    if hasattr(value, "__dlpack__"):
        refuse_lazy_tensor(name, value)
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


def is_bfloat16(dtype):
    """dtype is ml_dtypes' bfloat16. fastpe never imports ml_dtypes for this:
    a bfloat16 array means it is already loaded. (Never compare a dtype with
    None: np.dtype(None) is float64.) fastpe.torch's BFLOAT16_BITS counts too."""
    if is_bfloat16_bits(dtype):
        return True
    ml_dtypes = sys.modules.get("ml_dtypes")
    return ml_dtypes is not None and dtype == np.dtype(ml_dtypes.bfloat16)
