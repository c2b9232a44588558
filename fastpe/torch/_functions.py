"""fastpe.torch's functions: fastpe's encodings as torch operators.

Each function has an out-of-place form (a new tensor) and an in-place twin
with a trailing underscore (writes the caller's tensor, bumps its version
counter, returns it). Arguments are those of fastpe's NumPy-facing function
of the same name and mean the same; the NumPy-facing function checks them.
Tensors that are only read (offset, positions, inv_freq, slopes, ...) may
also be Python numbers or NumPy arrays; under torch.compile pass tensors or
numbers, and pass offsets as tensors for a graph that serves every offset
(a Python int is a constant of the graph to Dynamo: a new value recompiles
once, then Dynamo makes it dynamic).

When autograd records an in-place call (grad mode on, the tensor requires
grad), the twin computes out of place and copies the result back with
``Tensor.copy_``, so autograd's own in-place rules apply (a leaf that
requires grad is refused, as ``leaf.add_()`` is).
"""

import torch

from .._validation.torch_tensors import refuse_inference_write
from . import _impl, _ops
from ._graph import rotated as _rotated_in_graph
from ._graph import rotated_by_cos_sin as _rotated_by_cos_sin_in_graph
from ._graph import sinusoid_added as _sinusoid_added_in_graph
from ._graph import table_added as _table_added_in_graph
from ._options import encode
from ._tensors import bump_versions, check_tensor, eager_route, needs_grad, op_tensor, refuse_grad


def _op_offset(offset):
    """offset for an operator: None for the default 0, else a tensor."""
    if type(offset) is int and offset == 0:
        return None
    return op_tensor("offset", offset)


def _refuse_inference_write(name, tensor):
    # Dynamo would break its graph at the check (a NumPy-facing module): eager calls only.
    if not torch.compiler.is_compiling() and tensor.is_inference():
        refuse_inference_write(name, tensor)


# ------------------------------------------------------------------ one tensor written

def _refuse_grads(inputs, options, differentiable=()):
    """Refuse inputs without a gradient that require one (on the operator route: the eager route is taken
    only when nothing requires grad). inputs: (name, value) pairs; options' tensors (a 0-d scale) count."""
    for name, value in (*inputs, *options.items()):
        if name not in differentiable:
            refuse_grad(name, value, f"fastpe.torch has no gradient with respect to {name}")


def _op_input(name, value):
    return _op_offset(value) if name == "offset" else op_tensor(name, value)


def _out_of_place(into, op, x, inputs, options, differentiable=()):
    """A new tensor: into(out, x, *inputs' values, options) on the eager route, else the operator.
    inputs: the read arguments, (name, value) in the operator's order; differentiable: the names of those
    with a gradient."""
    values = [value for _, value in inputs]
    if eager_route(x, *values, *options.values()):  # options: a 0-d tensor scale
        out = torch.empty_like(x)
        into(out, x, *values, options)
        return out
    _refuse_grads(inputs, options, differentiable)
    return op(x, *(_op_input(name, value) for name, value in inputs), encode(**options))


def _in_place(into, op_, x, name, inputs, options):
    """x written in place (version counter bumped): into(x, x, ...) on the eager route, else the mutating
    operator. Called when autograd does not record the call."""
    _refuse_inference_write(name, x)
    values = [value for _, value in inputs]
    if eager_route(x, *values, *options.values()):  # options: a 0-d tensor scale
        into(x, x, *values, options)
        bump_versions((x,))
    else:
        _refuse_grads(inputs, options)
        op_(x, *(_op_input(name, value) for name, value in inputs), encode(**options))
    return x


# ------------------------------------------------------------------ sinusoid

def _sinusoid_options(scale, base, layout, preset, padding_idx, min_timescale, max_timescale, num_threads):
    return dict(scale=scale, base=base, layout=layout, preset=preset, padding_idx=padding_idx,
                min_timescale=min_timescale, max_timescale=max_timescale, num_threads=num_threads)


def add_sinusoidal(x, *, offset=0, positions=None, scale=None, base=None, layout=None, inv_freq=None, preset=None,
                   padding_idx=None, min_timescale=None, max_timescale=None, num_threads=None):
    """``x * scale + PE``, a new tensor (`fastpe.add_sinusoidal`'s arguments; gradient ``scale * grad``).

    >>> import torch, fastpe.torch
    >>> x = torch.zeros(2, 16, 32, requires_grad=True)
    >>> y = fastpe.torch.add_sinusoidal(x, scale=2.0, offset=torch.tensor([0, 5]))
    >>> torch.equal(y[1, 0].detach(), fastpe.torch.sinusoidal_table(1, 32, offset=5)[0])
    True
    >>> y.sum().backward()
    >>> x.grad.unique().tolist()
    [2.0]
    """
    if _dynamo_tracing():
        if (positions is None and inv_freq is None and preset is None and padding_idx is None
                and min_timescale is None and max_timescale is None):
            traced = _sinusoid_added_in_graph(x, offset, scale, base, layout)
            if traced is not None:
                return traced
    else:
        made = _impl.eager_sinusoid(x, True, offset, positions, scale, base, layout, num_threads, inv_freq, preset,
                                    padding_idx, min_timescale, max_timescale)
        if made is not None:
            return made
    check_tensor("x", x, "add_sinusoidal")
    options = _sinusoid_options(scale, base, layout, preset, padding_idx, min_timescale, max_timescale, num_threads)
    return _out_of_place(_impl.add_sinusoidal_into, _ops.add_sinusoidal, x,
                         [("offset", offset), ("positions", positions), ("inv_freq", inv_freq)], options)


def add_sinusoidal_(x, *, offset=0, positions=None, scale=None, base=None, layout=None, inv_freq=None, preset=None,
                    padding_idx=None, min_timescale=None, max_timescale=None, num_threads=None):
    """`add_sinusoidal` in place: writes x, bumps its version counter, returns x."""
    if _impl.eager_sinusoid(x, False, offset, positions, scale, base, layout, num_threads, inv_freq, preset,
                            padding_idx, min_timescale, max_timescale) is not None:
        return x
    check_tensor("x", x, "add_sinusoidal")
    options = _sinusoid_options(scale, base, layout, preset, padding_idx, min_timescale, max_timescale, num_threads)
    if needs_grad(x):
        return x.copy_(add_sinusoidal(x, offset=offset, positions=positions, inv_freq=inv_freq, **options))
    return _in_place(_impl.add_sinusoidal_into, _ops.add_sinusoidal_, x, "x",
                     [("offset", offset), ("positions", positions), ("inv_freq", inv_freq)], options)


def make_positions(token_ids, padding_idx, *, past_length=0):
    """`fastpe.make_positions` of a tensor of token ids: fairseq's padding-aware positions (int64, same device).

    >>> import torch, fastpe.torch
    >>> fastpe.torch.make_positions(torch.tensor([[1, 1, 5, 6]]), padding_idx=1).tolist()
    [[1, 1, 2, 3]]
    """
    check_tensor("token_ids", token_ids, "make_positions")
    if eager_route(token_ids, past_length):
        return _impl.make_positions(token_ids, padding_idx, past_length)
    return _ops.make_positions(token_ids, padding_idx, _op_offset(past_length))


# ------------------------------------------------------------------ learned tables

def add_table(x, table, *, offset=0, positions=None, scale=None, num_threads=None):
    """``x * scale + table[p]``, a new tensor (`fastpe.add_table`'s arguments).

    Gradients: ``scale * grad`` to x, and to the table each row of grad added
    into the row it read (a scatter-add).

    >>> import torch, fastpe.torch
    >>> table = torch.nn.Parameter(torch.zeros(8, 4))
    >>> y = fastpe.torch.add_table(torch.ones(2, 3, 4), table, offset=torch.tensor([0, 4]))
    >>> y.sum().backward()
    >>> table.grad[:, 0].tolist()        # rows 0-2 read by the first sequence, 4-6 by the second
    [1.0, 1.0, 1.0, 0.0, 1.0, 1.0, 1.0, 0.0]
    """
    if _dynamo_tracing():
        if (positions is None and scale is None and isinstance(x, torch.Tensor) and isinstance(table, torch.Tensor)
                and (type(offset) is int or isinstance(offset, torch.Tensor))):
            return _table_added_in_graph(x, table, offset)
    else:
        made = _impl.eager_table(x, table, True, offset, positions, scale, num_threads)
        if made is not None:
            return made
    check_tensor("x", x, "add_table")
    check_tensor("table", table, "add_table")
    return _out_of_place(_impl.add_table_into, _ops.add_table, x,
                         [("table", table), ("offset", offset), ("positions", positions)],
                         dict(scale=scale, num_threads=num_threads), differentiable=("table",))


def add_table_(x, table, *, offset=0, positions=None, scale=None, num_threads=None):
    """`add_table` in place: writes x, bumps its version counter, returns x."""
    if _impl.eager_table(x, table, False, offset, positions, scale, num_threads) is not None:
        return x
    check_tensor("x", x, "add_table")
    check_tensor("table", table, "add_table")
    if needs_grad(x, table):
        return x.copy_(add_table(x, table, offset=offset, positions=positions, scale=scale, num_threads=num_threads))
    return _in_place(_impl.add_table_into, _ops.add_table_, x, "x",
                     [("table", table), ("offset", offset), ("positions", positions)],
                     dict(scale=scale, num_threads=num_threads))


# ------------------------------------------------------------------ rotary

def _arrays(q, k, function):
    check_tensor("q", q, function)
    if k is None:
        return [q]
    return [q, check_tensor("k", k, function)]


def _returned(results, k):
    return results[0] if k is None else tuple(results)


def rotate(arrays, offset, positions, inv_freq, options, encoded=None):
    """The out-of-place rotation of a list of tensors (what apply_rotary and
    RotaryEmbedding call); encoded: options already encoded, if known."""
    traced = _traced(arrays, offset, positions, inv_freq, options, encoded)
    if traced is not None:
        return traced
    if eager_route(*arrays, offset, positions, inv_freq):
        return _impl.rotated(arrays, offset, positions, inv_freq, options, like_fake=False)
    _refuse_grads([("offset", offset), ("positions", positions), ("inv_freq", inv_freq)], {})
    encoded = encode(**options) if encoded is None else encoded
    return _ops.apply_rotary(arrays, _op_offset(offset), op_tensor("positions", positions),
                             op_tensor("inv_freq", inv_freq), encoded, False)


_is_compiling = torch.compiler.is_compiling  # (torch's module read through fastpe.torch._graph alone: _traced)
# Dynamo's question alone, cheaper (32 ns against 83 ns): where a non-strict torch.export, which it does not
# see, still reaches the traced rotation through rotate's _traced
_dynamo_tracing = torch.compiler.is_dynamo_compiling


def _traced(arrays, offset, positions, inv_freq, options, encoded):
    """While a graph is traced: the rotation in torch operations the compiler fuses (fastpe.torch._graph),
    or None where the registered operator serves the call. First, with as little traced before it as can
    be: Dynamo guards every function and global a trace reads, and evaluates the guards on every call.
    (Its offsets and positions are integers, which cannot require grad.)"""
    if not _is_compiling() or inv_freq is not None:
        return None
    return _rotated_in_graph(arrays, offset, positions, encode(**options) if encoded is None else encoded)


def rotate_(arrays, offset, positions, inv_freq, options, encoded=None):
    """The in-place rotation of a list of tensors."""
    if needs_grad(*arrays):
        for a, r in zip(arrays, rotate(arrays, offset, positions, inv_freq, options, encoded)):
            a.copy_(r)
        return arrays
    for name, a in zip(("q", "k"), arrays):
        _refuse_inference_write(name, a)
    if eager_route(*arrays, offset, positions, inv_freq):
        _impl.rotary_into(arrays, arrays, offset, positions, inv_freq, options)
        bump_versions(arrays)
    else:
        _refuse_grads([("offset", offset), ("positions", positions), ("inv_freq", inv_freq)], {})
        encoded = encode(**options) if encoded is None else encoded
        # One array only: the operator checks whether q and k overlap when the graph runs; a trace cannot
        traced = _traced(arrays, offset, positions, inv_freq, options, encoded) if len(arrays) == 1 else None
        if traced is not None:
            arrays[0].copy_(traced[0])
        else:
            _ops.apply_rotary_(arrays, _op_offset(offset), op_tensor("positions", positions),
                               op_tensor("inv_freq", inv_freq), encoded, False)
    return arrays


def apply_rotary(q, k=None, *, offset=0, positions=None, base=None, layout="half", rotary_dim=None, inv_freq=None,
                 scaling=None, seq_axis=-2, num_threads=None):
    """Rotary embedding (RoPE) of q (and k): new tensors (`fastpe.apply_rotary`'s arguments).

    Returns the rotated q, or (q, k). The gradient is the transposed rotation:
    the same float64 angles with the sines negated.

    >>> import torch, fastpe.torch
    >>> q = torch.randn(1, 8, 16, 64, requires_grad=True)
    >>> k = torch.randn(1, 2, 16, 64)
    >>> scaling = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
    ...            "original_max_position_embeddings": 8192, "rope_theta": 500000.0}
    >>> q_rot, k_rot = fastpe.torch.apply_rotary(q, k, offset=torch.tensor(100), scaling=scaling)
    >>> q_rot.norm(dim=-1).sub(q.norm(dim=-1)).abs().max().item() < 1e-4      # a rotation keeps lengths
    True
    >>> q_rot.sum().backward()
    >>> q.grad.shape
    torch.Size([1, 8, 16, 64])
    """
    if _dynamo_tracing():
        # Dynamo guards every function and global its trace reads on every call of the compiled code:
        # straight to the traced rotation, reading as few as can be
        if inv_freq is None:
            traced = _rotated_in_graph([q] if k is None else [q, k], offset, positions, encode(
                base=base, layout=layout, rotary_dim=rotary_dim, scaling=scaling, seq_axis=seq_axis,
                num_threads=num_threads))
            if traced is not None:
                return traced[0] if k is None else tuple(traced)
    elif positions is None and inv_freq is None:
        made = _impl.eager_rotation((q,) if k is None else (q, k), True, offset, base, layout, rotary_dim, scaling,
                                    seq_axis, num_threads)
        if made is not None:
            return made[0] if k is None else tuple(made)
    arrays = _arrays(q, k, "apply_rotary")
    options = {"base": base, "layout": layout, "rotary_dim": rotary_dim, "scaling": scaling, "seq_axis": seq_axis,
               "num_threads": num_threads}
    rotated = rotate(arrays, offset, positions, inv_freq, options)
    return rotated[0] if k is None else tuple(rotated)


def apply_rotary_(q, k=None, *, offset=0, positions=None, base=None, layout="half", rotary_dim=None,
                  inv_freq=None, scaling=None, seq_axis=-2, num_threads=None):
    """`apply_rotary` in place: writes q (and k), bumps their version counters, returns q or (q, k)."""
    if positions is None and inv_freq is None and _impl.eager_rotation(
            (q,) if k is None else (q, k), False, offset, base, layout, rotary_dim, scaling, seq_axis,
            num_threads) is not None:
        return q if k is None else (q, k)
    arrays = _arrays(q, k, "apply_rotary")
    options = {"base": base, "layout": layout, "rotary_dim": rotary_dim, "scaling": scaling, "seq_axis": seq_axis,
               "num_threads": num_threads}
    rotate_(arrays, offset, positions, inv_freq, options)
    return q if k is None else (q, k)


def apply_rotary_cos_sin(q, k, cos, sin, *, unsqueeze_dim=1):
    """Hugging Face's ``apply_rotary_pos_emb(q, k, cos, sin, unsqueeze_dim)`` in one fused pass.

    ``q * cos' + rotate_half(q) * sin'`` (and the same for k), ``cos'`` being
    cos with an axis inserted at `unsqueeze_dim`: cos and sin of shape
    ``(B, T, D)`` or ``(T, D)`` as Hugging Face's rotary modules return them
    (each half repeating the other), q and k ``(B, H, T, D)`` with
    ``unsqueeze_dim=1`` or ``(B, T, H, D)`` with ``unsqueeze_dim=2``. The
    rotation is formed in float64 and rounded once. k may be None (then q's
    result alone is returned). Gradients: the rotation by (cos, -sin) to q and
    k, and to cos and sin when they require grad.

    >>> import torch, fastpe, fastpe.torch
    >>> cos, sin = (torch.from_numpy(t)[None] for t in fastpe.rotary_cos_sin(16, 64))   # (1, T, D)
    >>> q, k = torch.randn(1, 8, 16, 64), torch.randn(1, 2, 16, 64)
    >>> q_rot, k_rot = fastpe.torch.apply_rotary_cos_sin(q, k, cos, sin)
    >>> torch.allclose(q_rot, fastpe.torch.apply_rotary(q), atol=1e-6)
    True
    """
    if _is_compiling():  # one traced call (fastpe.torch._graph), few functions for Dynamo to guard
        arrays = _arrays(q, k, "apply_rotary")
        return _returned(_rotated_by_cos_sin_in_graph(arrays, check_tensor("cos", cos, "apply_rotary"),
                                                      check_tensor("sin", sin, "apply_rotary"), unsqueeze_dim), k)
    made = _impl.eager_cos_sin((q,) if k is None else (q, k), True, cos, sin, unsqueeze_dim)
    if made is not None:
        return _returned(made, k)
    arrays = _arrays(q, k, "apply_rotary")
    check_tensor("cos", cos, "apply_rotary")
    check_tensor("sin", sin, "apply_rotary")
    if eager_route(*arrays, cos, sin):
        outs = [torch.empty_like(a) for a in arrays]
        _impl.cos_sin_into(outs, arrays, cos, sin, unsqueeze_dim)
    else:
        outs = _ops.apply_rotary_cos_sin(arrays, cos, sin, unsqueeze_dim, False)
    return _returned(outs, k)


def apply_rotary_cos_sin_(q, k, cos, sin, *, unsqueeze_dim=1):
    """`apply_rotary_cos_sin` in place: writes q (and k), bumps their version counters, returns them."""
    if _impl.eager_cos_sin((q,) if k is None else (q, k), False, cos, sin, unsqueeze_dim) is not None:
        return q if k is None else (q, k)
    arrays = _arrays(q, k, "apply_rotary")
    if needs_grad(*arrays, cos, sin):
        results = apply_rotary_cos_sin(q, k, cos, sin, unsqueeze_dim=unsqueeze_dim)
        for a, r in zip(arrays, [results] if k is None else results):
            a.copy_(r)
        return _returned(arrays, k)
    for name, a in zip(("q", "k"), arrays):
        _refuse_inference_write(name, a)
    if eager_route(*arrays, cos, sin):
        _impl.cos_sin_into(arrays, arrays, cos, sin, unsqueeze_dim)
        bump_versions(arrays)
    else:
        _ops.apply_rotary_cos_sin_(arrays, cos, sin, unsqueeze_dim, False)
    return _returned(arrays, k)


# ------------------------------------------------------------------ attention biases

def add_alibi(scores, *, slopes=None, max_bias=8.0, offset=0, key_positions=None, num_threads=None):
    """ALiBi's bias added to attention scores, a new tensor (`fastpe.add_alibi`'s arguments; gradient: grad)."""
    check_tensor("scores", scores, "add_alibi")
    return _out_of_place(_impl.alibi_into, _ops.add_alibi, scores,
                         [("slopes", slopes), ("offset", offset), ("key_positions", key_positions)],
                         dict(max_bias=max_bias, num_threads=num_threads))


def add_alibi_(scores, *, slopes=None, max_bias=8.0, offset=0, key_positions=None, num_threads=None):
    """`add_alibi` in place: writes scores, bumps its version counter, returns it."""
    check_tensor("scores", scores, "add_alibi")
    if needs_grad(scores):
        return scores.copy_(add_alibi(scores, slopes=slopes, max_bias=max_bias, offset=offset,
                                      key_positions=key_positions, num_threads=num_threads))
    return _in_place(_impl.alibi_into, _ops.add_alibi_, scores, "scores",
                     [("slopes", slopes), ("offset", offset), ("key_positions", key_positions)],
                     dict(max_bias=max_bias, num_threads=num_threads))


def add_relative_bias(scores, bias_table, *, bidirectional, num_buckets, max_distance, offset=0, num_threads=None):
    """T5's bucketed relative bias added to scores, a new tensor (`fastpe.add_relative_bias`'s arguments).

    Gradients: grad to the scores; to `bias_table`, grad summed over the
    (query, key) pairs of each bucket.
    """
    check_tensor("scores", scores, "add_relative_bias")
    check_tensor("bias_table", bias_table, "add_relative_bias")
    return _out_of_place(_impl.relative_bias_into, _ops.add_relative_bias, scores,
                         [("bias_table", bias_table), ("offset", offset)],
                         dict(bidirectional=bidirectional, num_buckets=num_buckets, max_distance=max_distance,
                              num_threads=num_threads), differentiable=("bias_table",))


def add_relative_bias_(scores, bias_table, *, bidirectional, num_buckets, max_distance, offset=0,
                       num_threads=None):
    """`add_relative_bias` in place: writes scores, bumps its version counter, returns it."""
    check_tensor("scores", scores, "add_relative_bias")
    check_tensor("bias_table", bias_table, "add_relative_bias")
    options = dict(bidirectional=bidirectional, num_buckets=num_buckets, max_distance=max_distance,
                   num_threads=num_threads)
    if needs_grad(scores, bias_table):
        return scores.copy_(add_relative_bias(scores, bias_table, offset=offset, **options))
    return _in_place(_impl.relative_bias_into, _ops.add_relative_bias_, scores, "scores",
                     [("bias_table", bias_table), ("offset", offset)], options)
