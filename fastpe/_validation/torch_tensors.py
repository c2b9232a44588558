"""What the NumPy-facing functions owe PyTorch when they are handed tensors.

fastpe's NumPy-facing functions write tensors through NumPy views of their
memory, outside autograd. So that this is never silently wrong:

* a tensor that requires grad is refused, and the error names fastpe.torch,
  whose functions are registered operators with gradients (detaching the
  tensor instead would hide the write from autograd);
* every tensor a call writes has its version counter bumped, so autograd
  raises at backward time when the tensor was saved for it, as it does after
  torch's own ``t.detach().add_()``;
* a tensor made under ``torch.inference_mode()`` is written only inside
  inference mode, as torch itself requires.

fastpe.torch views bfloat16 tensors without ml_dtypes: as uint16 bits whose
NumPy dtype carries a metadata tag (BFLOAT16_BITS). The kernels take any
2-byte dtype other than float16 for bfloat16 (fastpe/_simd.pxd,
fpe_storage_of), so such a view runs exactly the bits the ml_dtypes dtype
runs; the Python layers recognise the tag through is_bfloat16 and widen it
exactly (widened) where NumPy cannot cast it.

Nothing here imports torch: a tensor's library is loaded when the tensor exists.
"""

import sys

import numpy as np

# uint16 bits that hold bfloat16 values (see the module docstring).
BFLOAT16_BITS = np.dtype(np.uint16, metadata={"fastpe.storage": "bfloat16"})


def is_bfloat16_bits(dtype):
    """dtype is BFLOAT16_BITS (NumPy compares it equal to plain uint16: the tag tells them apart)."""
    metadata = dtype.metadata
    return metadata is not None and metadata.get("fastpe.storage") == "bfloat16"


def widened(arr, dtype):
    """A float16 or bfloat16 array (ml_dtypes' or BFLOAT16_BITS) as float32 or
    float64 `dtype`: exact, every 16-bit value is one in either."""
    if is_bfloat16_bits(arr.dtype):
        # bfloat16 is the high half of a float32.
        arr = (arr.view(np.uint16).astype(np.uint32) << 16).view(np.float32)
    return arr.astype(dtype)


def _torch_tensor(value):
    """value if it is a torch tensor (torch already loaded), else None."""
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(value, torch.Tensor):
        return value
    return None


def requires_grad_error(name):
    """The error for a tensor that requires grad."""
    return ValueError(f"{name} requires grad; fastpe's NumPy-facing functions write outside autograd. Use "
                      f"fastpe.torch instead (the same functions as torch operators with gradients, "
                      f"torch.compile and torch.export support), or pass a tensor that does not require grad")


def refuse_inference_write(name, value):
    """Refuse to write an inference tensor outside inference mode, as torch does."""
    tensor = _torch_tensor(value)
    if tensor is not None and tensor.is_inference():
        torch = sys.modules["torch"]
        if not torch.is_inference_mode_enabled():
            raise ValueError(f"{name} is an inference tensor (made under torch.inference_mode()); torch forbids "
                             f"writing it outside inference mode. Call fastpe inside torch.inference_mode(), or "
                             f"pass {name}.clone() made outside it")


def bump_versions(written):
    """Bump the version counter of every tensor among `written` (the objects a call wrote)."""
    torch = sys.modules.get("torch")
    if torch is None:
        return
    tensors = [value for value in written if isinstance(value, torch.Tensor)]
    if tensors:
        torch.autograd.graph.increment_version(tensors)  # a no-op for inference tensors
