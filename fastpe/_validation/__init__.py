"""Every argument check, shared by the kernels' API and the NumPy reference.

Every public call goes through here before anything is written, so a rejected
call leaves every array exactly as it was. Messages name the argument and say
what was expected. The exception type follows one rule: TypeError for a value
of the wrong type (bool or float where an int is expected, a list where an
array is written), ValueError for a value of the right type but out of range,
IndexError for a row outside a table, MemoryError for a size that cannot be
allocated (fastpe._formulas.new_array). check_int is the one integer check.

The checks only check: what a call computes from its checked arguments
(frequencies, plans, default slopes) is the formulas' and the plans'. One
module per concept:

* views: arrays of other libraries (DLPack, the array interface) as NumPy
  views of the same memory, and the caller's own objects returned;
* scalars: ints, bools, reals, names, and the position limit;
* arrays: dtypes, arrays read and written, shapes and broadcasting;
* aliasing: inputs and outputs that share memory (docs/aliasing.rst);
* params: the declarations of the parameters the compiled front doors
  recognise, each rule written once;
* requests (the sinusoid family, tables, grids), bias, rotary, cos_sin: each
  family's checked arguments;
* torch_tensors: what the checks owe PyTorch.

This package's namespace gathers the checks the other packages of fastpe
(the reference, fastpe.dask, fastpe.torch) call.
"""

from .aliasing import read_apart, same_view, shares_memory
from .arrays import (
    NATIVE_FLOATS,
    array_of_kind,
    as_float_array,
    broadcastable_to,
    check_dtype_argument,
    encoding_dtype_for,
    integer_array,
    real_array,
    table_target,
)
from .bias import (
    DEFAULT_MAX_BIAS,
    alibi_request,
    check_bias_table,
    check_bucket_settings,
    check_heads,
    check_key_positions,
    check_max_bias,
    check_offset,
    check_relative_positions,
    check_slopes,
    relative_request,
)
from .requests import (
    Encoding,
    add_request,
    check_grid_2d,
    check_grid_nd,
    check_make_positions,
    table_offset,
    table_request,
    x_and_out,
)
from .scalars import POSITION_LIMIT, check_count, check_int, check_real_scalar, check_scale
from .views import caller_result, caller_results

__all__ = [
    "DEFAULT_MAX_BIAS", "Encoding", "NATIVE_FLOATS", "POSITION_LIMIT", "add_request", "alibi_request",
    "array_of_kind", "as_float_array", "broadcastable_to", "caller_result", "caller_results", "check_bias_table",
    "check_bucket_settings", "check_count", "check_dtype_argument", "check_grid_2d", "check_grid_nd",
    "check_heads", "check_int", "check_key_positions", "check_make_positions", "check_max_bias", "check_offset",
    "check_real_scalar", "check_relative_positions", "check_scale", "check_slopes", "encoding_dtype_for",
    "integer_array", "read_apart", "real_array", "relative_request", "same_view", "shares_memory", "table_offset",
    "table_request", "table_target", "x_and_out",
]
