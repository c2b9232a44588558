"""The sinusoid family: sinusoidal_table, sinusoidal_encode, add_sinusoidal (with
the model presets as preset=), the learned-table add_table and make_positions.

Each function validates every argument (fastpe._validation), takes its plan
from fastpe._frontdoor's cache and has the rows made or added by
fastpe._tables. add_sinusoidal first offers its arguments to its compiled
front door (fastpe._frontdoor.add_sinusoidal), which serves the common call
or hands it back."""

from __future__ import annotations

from typing import Optional

import numpy as np
import numpy.typing as npt

from . import _formulas, _frontdoor, _tables
from ._runtime import add_source, through_aligned
from ._typing import ArrayT, Int, Layout, OptArrayLike, OptInt, OptReal, Preset, Real, Table
from ._validation import (
    Encoding,
    add_request,
    caller_result,
    check_count,
    check_make_positions,
    read_apart,
    real_array,
    table_offset,
    table_request,
    table_target,
)
from ._validation import params
from ._validation.arrays import written_views


def sinusoidal_table(n_positions: Int, dim: Int, *, offset: Real = 0, base: OptReal = None,
                     layout: Optional[Layout] = None, dtype: Optional[npt.DTypeLike] = None, out: Optional[Table] = None,
                     num_threads: OptInt = None, inv_freq: OptArrayLike = None, preset: Optional[Preset] = None,
                     padding_idx: OptInt = None, min_timescale: OptReal = None,
                     max_timescale: OptReal = None) -> Table:
    """The table of sinusoidal encodings of consecutive positions.

    Row ``t`` encodes position ``offset + t``: with the default layout,
    column ``2k`` is ``sin(p * w_k)`` and column ``2k + 1`` is
    ``cos(p * w_k)``, ``w_k = base ** (-2k / dim)``. Angles are formed in
    float64 and each value is rounded once to the table's dtype.

    Parameters
    ----------
    n_positions : int
        Number of rows (>= 0).
    dim : int
        Width of each encoding (>= 0).
    offset : int or float, optional
        Position of the first row (default 0); may be negative or fractional.
    base : float, optional
        Frequency base, ``10000`` when None. Ignored when `inv_freq` is given.
    layout : {"interleaved", "concat"}, optional
        Column order: ``"interleaved"`` (default; sin and cos of one frequency
        side by side) or ``"concat"`` (all sines, then all cosines).
    dtype : dtype, optional
        float64, float32, float16 or bfloat16 (``"bfloat16"`` needs
        ml_dtypes). None (default) means float32 for a new table and `out`'s
        dtype when `out` is given; a dtype given with `out` must be `out`'s.
    out : array, optional
        A writable ``(n_positions, dim)`` float array (or tensor) to fill.
    num_threads : int, optional
        OpenMP threads for this call; None uses OpenMP's default.
    inv_freq : array_like, optional
        The pair frequencies ``w_k`` themselves (1-D, ``ceil(dim / 2)``
        entries for ``"interleaved"``, ``dim // 2`` for ``"concat"``).
    preset : {"vaswani", "marian", "tensor2tensor", "fairseq", "whisper"}, optional
        A model's own convention (see ``fastpe.PRESETS``); cannot be combined
        with `layout` or `inv_freq`.
    padding_idx : int, optional
        A position whose encoding is zero (fairseq defaults it to 1).
    min_timescale, max_timescale : float, optional
        Parameters of the ``"tensor2tensor"`` (both) and ``"whisper"``
        (`max_timescale`) presets.

    Returns
    -------
    table : ndarray
        The new ``(n_positions, dim)`` array, or `out` (the caller's object).

    Raises
    ------
    TypeError
        A non-integer `n_positions`, `dim` or `num_threads`; an unsupported
        `dtype` or `out` dtype.
    ValueError
        Negative counts, non-finite `offset` or `base`, ``base <= 0``, an
        unknown `layout` or `preset`, an `inv_freq` of the wrong length, a
        preset combined with `layout`, `inv_freq` or another preset's
        parameters, an `out` of the wrong shape or read-only, a `dtype` that
        is not `out`'s.

    See Also
    --------
    sinusoidal_encode : encodings of arbitrary positions.
    add_sinusoidal : the encoding added into an array in place.
    fastpe.reference.sinusoidal_table : the NumPy definition.

    Notes
    -----
    An odd `dim` ends with a sine column in the interleaved layout and with a
    zero column in the concat layout (fairseq's convention).

    Examples
    --------
    >>> import numpy as np
    >>> import fastpe
    >>> table = fastpe.sinusoidal_table(2048, 512)
    >>> table.shape, table.dtype.name
    ((2048, 512), 'float32')
    >>> row = fastpe.sinusoidal_table(1, 4, offset=3, dtype=np.float64)[0]
    >>> bool(np.allclose(row, [np.sin(3), np.cos(3), np.sin(0.03), np.cos(0.03)]))
    True
    """
    n_positions = check_count("n_positions", n_positions)
    dim = check_count("dim", dim)
    offset = table_offset(offset, n_positions)
    enc = Encoding(dim, base, layout, inv_freq, preset, padding_idx, min_timescale, max_timescale)
    num_threads = params.NUM_THREADS.check(num_threads)
    table = table_target(out, (n_positions, dim), dtype, "n_positions x dim")
    enc.inv_freq = read_apart(enc.inv_freq, (table,))

    def store(table, _):
        _tables.store_table(table, _frontdoor.encoding_plan(enc), offset, num_threads, enc.zero_position)

    if table.size:
        # No leading axis: a misaligned out is filled through one scratch (rows
        # offset + t formed from another first row could round otherwise).
        through_aligned(table, None, store, (), 0)
    return caller_result(table, out)


def sinusoidal_encode(positions: npt.ArrayLike, dim: Int, *, base: OptReal = None, layout: Optional[Layout] = None,
                      dtype: Optional[npt.DTypeLike] = None, out: Optional[Table] = None, num_threads: OptInt = None,
                      inv_freq: OptArrayLike = None, preset: Optional[Preset] = None, padding_idx: OptInt = None,
                      min_timescale: OptReal = None, max_timescale: OptReal = None) -> Table:
    """Sinusoidal encodings of arbitrary positions.

    Each position (int or fractional, any order, any shape) gets the row
    `sinusoidal_table` would give it; angles are formed in float64.

    Parameters
    ----------
    positions : array_like
        Real positions, any shape; all finite.
    dim : int
        Width of each encoding (>= 0).
    base, layout, inv_freq, preset, padding_idx, min_timescale, max_timescale
        The encoding, as in `sinusoidal_table`.
    dtype : dtype, optional
        Result dtype, as in `sinusoidal_table`: None (default) means float32,
        or `out`'s dtype when `out` is given.
    out : array, optional
        A writable array of shape ``positions.shape + (dim,)`` to fill.
    num_threads : int, optional
        OpenMP threads for this call; None uses OpenMP's default.

    Returns
    -------
    encodings : ndarray
        Shape ``positions.shape + (dim,)``: a new array, or `out`.

    Raises
    ------
    TypeError
        Non-real `positions`, a non-integer `dim` or `num_threads`, an
        unsupported dtype.
    ValueError
        Non-finite positions, and the encoding errors of `sinusoidal_table`.

    See Also
    --------
    sinusoidal_table : consecutive positions.
    fastpe.reference.sinusoidal_encode : the NumPy definition.

    Examples
    --------
    >>> import numpy as np
    >>> import fastpe
    >>> pe = fastpe.sinusoidal_encode(np.array([[0, 1, 2], [5, 6, 7]]), 64)
    >>> pe.shape
    (2, 3, 64)
    >>> half = fastpe.sinusoidal_encode([2.5], 8, dtype=np.float64)
    >>> between = fastpe.sinusoidal_table(1, 8, offset=2.5, dtype=np.float64)
    >>> bool(np.array_equal(half, between))
    True
    """
    pos = real_array("positions", positions, position=True)
    dim = check_count("dim", dim)
    enc = Encoding(dim, base, layout, inv_freq, preset, padding_idx, min_timescale, max_timescale)
    num_threads = params.NUM_THREADS.check(num_threads)
    shape = pos.shape + (dim,)
    table = table_target(out, shape, dtype, "positions.shape + (dim,)")
    pos, enc.inv_freq = read_apart(pos, (table,)), read_apart(enc.inv_freq, (table,))

    def store(table, _, pos):
        _tables.store_encodings(table, _frontdoor.encoding_plan(enc), pos, num_threads, enc.zero_position)

    if table.size:
        through_aligned(table, None, store, (pos,), pos.ndim)
    return caller_result(table, out)


def add_sinusoidal(x: ArrayT, *, offset: npt.ArrayLike = 0, positions: OptArrayLike = None, scale: OptReal = None,
                   base: OptReal = None, layout: Optional[Layout] = None, out: Optional[ArrayT] = None,
                   num_threads: OptInt = None, inv_freq: OptArrayLike = None, preset: Optional[Preset] = None,
                   padding_idx: OptInt = None, min_timescale: OptReal = None,
                   max_timescale: OptReal = None) -> ArrayT:
    """Add the sinusoidal encoding into `x` in place: ``x * scale + PE``.

    `x` has shape ``(..., T, D)``: token ``t`` of each sequence sits at
    position ``offset + t``, or at the position `positions` gives it. The
    encoding of each position is generated once, in float64, rounded once to
    `x`'s dtype and added to every sequence in the same pass; no table is
    built first.

    Parameters
    ----------
    x : array
        Float array (or PyTorch CPU tensor, or any DLPack / array-interface
        array) with at least 2 dimensions ``(..., T, D)``. Written in place
        unless `out` is given; any strides.
    offset : int, float or array_like, optional
        Position of the first token: one number, or one per sequence
        (broadcastable to ``x.shape[:-2]``, e.g. the KV-cache lengths).
    positions : array_like, optional
        Explicit positions (int or float), broadcastable to ``x.shape[:-1]``
        (packed sequences, left padding, any position ids). Replaces `offset`.
    scale : float, optional
        Multiplies `x` before the encoding is added (e.g. ``sqrt(D)``).
    base, layout, inv_freq, preset, padding_idx, min_timescale, max_timescale
        The encoding, as in `sinusoidal_table`.
    out : array, optional
        Where to write the result (same shape and dtype as `x`); `x` is then
        left unchanged. It may be `x` itself or overlap it.
    num_threads : int, optional
        OpenMP threads for this call; None uses OpenMP's default.

    Returns
    -------
    result : array
        `x` (or `out`): the caller's own object, written in place.

    Raises
    ------
    TypeError
        A non-float or big-endian dtype, an `x` that cannot be written in
        place (e.g. a list without `out`), a non-integer `num_threads`.
    ValueError
        Fewer than 2 dimensions, read-only memory, a tensor that requires
        grad or lives on another device, `offset` or `positions` that do not
        broadcast, non-finite values, `offset` combined with `positions`, an
        `out` of another shape or dtype, and the encoding errors of
        `sinusoidal_table`.

    See Also
    --------
    sinusoidal_table : the table this adds.
    make_positions : padding-aware positions.
    fastpe.reference.add_sinusoidal : the NumPy definition.

    Notes
    -----
    Every argument is checked before anything is written: a rejected call
    leaves `x` and `out` as they were. For float32, ``x * scale + PE`` is
    formed in float32 with the exactly rounded PE (one fused multiply-add
    where the CPU has FMA); float16 and bfloat16 sums are formed in float64
    and rounded once. With the ``"fairseq"`` preset, implicit positions
    start at ``padding_idx + 1 + offset``.

    Examples
    --------
    >>> import numpy as np
    >>> import fastpe
    >>> x = np.zeros((2, 16, 8), dtype=np.float32)
    >>> y = fastpe.add_sinusoidal(x)
    >>> y is x
    True
    >>> bool(np.allclose(x[1], fastpe.sinusoidal_table(16, 8)))
    True

    One offset per sequence, and the ``sqrt(D)`` scale in the same pass:

    >>> x = np.ones((2, 16, 8))
    >>> _ = fastpe.add_sinusoidal(x, offset=np.array([0, 5]), scale=np.sqrt(8))
    >>> expected = np.sqrt(8) + fastpe.sinusoidal_table(16, 8, offset=5, dtype=np.float64)
    >>> bool(np.allclose(x[1], expected))
    True
    """
    # The front door serves the common call (an ndarray or, once fastpe.torch
    # is imported, a plain CPU tensor in place; a scalar offset; every option
    # but scale at its default); None hands the same arguments to the
    # general path.
    served = _frontdoor.add_sinusoidal(x, offset, positions, scale, base, layout, out, num_threads, inv_freq, preset,
                                       padding_idx, min_timescale, max_timescale)
    if served is not None:
        return served
    views = written_views((x,)) if out is None else None  # a tensor: its view may take the front door
    if views is not None and _frontdoor.add_sinusoidal(views[0], offset, positions, scale, base, layout, None,
                                                       num_threads, inv_freq, preset, padding_idx, min_timescale,
                                                       max_timescale) is not None:
        return caller_result(x, None)
    req = add_request(x, offset, positions, scale, base, layout, inv_freq, out, num_threads,
                      preset, padding_idx, min_timescale, max_timescale)
    dst = req.x if req.out is None else req.out
    if dst.size == 0:
        return caller_result(x, out)
    enc = req.encoding
    plan = _frontdoor.encoding_plan(enc)
    scale = 1.0 if req.scale is None else req.scale

    def add_at_offsets(dst, src, offsets):
        _tables.sinusoid_at_offsets(dst, src, plan, offsets, scale=scale, zero_position=enc.zero_position,
                                    num_threads=req.num_threads)

    def add_at_positions(dst, src, positions):
        _tables.sinusoid_at_positions(dst, src, plan, positions, scale=scale, zero_position=enc.zero_position,
                                      num_threads=req.num_threads)

    src = add_source(req.x, dst)
    if req.positions is None:
        offsets = req.offset + enc.implicit_shift if enc.implicit_shift else req.offset
        through_aligned(dst, src, add_at_offsets, (offsets,), dst.ndim - 2)
    else:
        through_aligned(dst, src, add_at_positions, (req.positions,), dst.ndim - 1)
    return caller_result(x, out)


def make_positions(token_ids: npt.ArrayLike, padding_idx: Int, *,
                   past_length: npt.ArrayLike = 0) -> npt.NDArray[np.int64]:
    """Padding-aware positions of token ids (fairseq's ``make_positions``).

    Computes ``(cumsum(mask) + past_length) * mask + padding_idx`` along the
    last axis, with ``mask = token_ids != padding_idx``: real tokens count up
    from ``padding_idx + 1 + past_length``, pad tokens get ``padding_idx``.
    This is also Hugging Face's ``create_position_ids_from_input_ids``.

    Parameters
    ----------
    token_ids : array_like of int
        Token ids, 1-D ``(T,)`` or batched ``(..., T)``; left or right padding.
    padding_idx : int
        The id of the padding token (also the position pads get).
    past_length : int or array_like of int, optional
        Tokens already seen (a KV cache): one number, or one per sequence.

    Returns
    -------
    positions : ndarray of int64
        Same shape as `token_ids`.

    Raises
    ------
    TypeError
        Non-integer `token_ids`, `padding_idx` or `past_length`.
    ValueError
        `past_length` that does not broadcast to the sequences.

    See Also
    --------
    add_sinusoidal : pass the result as ``positions=`` (with
        ``preset="fairseq"``, pad tokens then get nothing added).

    Notes
    -----
    NumPy already does this in one pass, so the kernels are not involved:
    this function and `fastpe.reference.make_positions` share the formula.

    Examples
    --------
    >>> import numpy as np
    >>> import fastpe
    >>> ids = np.array([[5, 6, 7, 1, 1], [1, 1, 5, 6, 7]])
    >>> fastpe.make_positions(ids, padding_idx=1).tolist()
    [[2, 3, 4, 1, 1], [1, 1, 2, 3, 4]]
    >>> fastpe.make_positions(ids, padding_idx=1, past_length=10)[0].tolist()
    [12, 13, 14, 1, 1]
    """
    ids, padding_idx, past_length = check_make_positions(token_ids, padding_idx, past_length)
    return _formulas.make_positions(ids, padding_idx, past_length)


def add_table(x: ArrayT, table: npt.ArrayLike, *, offset: npt.ArrayLike = 0, positions: OptArrayLike = None,
              scale: OptReal = None, out: Optional[ArrayT] = None, num_threads: OptInt = None) -> ArrayT:
    """Add rows of a learned position table into `x` in place: ``x * scale + table[p]``.

    Token ``t`` of each sequence reads row ``offset + t`` (BERT, GPT-2,
    BART, fairseq learned embeddings), or the row `positions` gives it. The
    rows are read where they are: nothing of `x`'s size is gathered first.

    Parameters
    ----------
    x : array
        Float array (or tensor) of shape ``(..., T, D)``, written in place
        unless `out` is given.
    table : array_like
        The ``(n_rows, D)`` float table (any supported dtype; it may differ
        from `x`'s).
    offset : int or array_like of int, optional
        Row of the first token: one number, or one per sequence
        (broadcastable to ``x.shape[:-2]``). BART's learned positions use
        ``offset=2``.
    positions : array_like of int, optional
        Rows, broadcastable to ``x.shape[:-1]``; replaces `offset`.
    scale : float, optional
        Multiplies `x` before the row is added.
    out : array, optional
        Where to write the result (same shape and dtype as `x`).
    num_threads : int, optional
        OpenMP threads for this call; None uses OpenMP's default.

    Returns
    -------
    result : array
        `x` (or `out`): the caller's own object.

    Raises
    ------
    IndexError
        A position outside ``[0, len(table))``, raised before anything is
        written.
    TypeError
        Non-float dtypes, non-integer positions or offsets.
    ValueError
        A table of the wrong width or not 2-D, and the errors of
        `add_sinusoidal`.

    See Also
    --------
    fastpe.reference.add_table : the NumPy definition.

    Notes
    -----
    With one native dtype (float32 or float64 for both), the sum is formed in
    that dtype. With mixed dtypes, or a 16-bit `x` or table, it is formed in
    float64 and rounded once to `x`'s dtype. A table whose rows are not
    contiguous is copied once (the table, never `x`).

    Examples
    --------
    >>> import numpy as np
    >>> import fastpe
    >>> table = np.arange(12.0).reshape(6, 2)      # 6 learned positions, D = 2
    >>> x = np.zeros((1, 3, 2))
    >>> fastpe.add_table(x, table, offset=2)[0].tolist()
    [[4.0, 5.0], [6.0, 7.0], [8.0, 9.0]]
    >>> fastpe.add_table(np.zeros((2, 2)), table, positions=[5, 0]).tolist()
    [[10.0, 11.0], [0.0, 1.0]]
    >>> fastpe.add_table(np.zeros((1, 3, 2)), table, offset=4)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    IndexError: positions offset + t (t < 3) must lie in [0, 6) (the table's rows); ...
    """
    # The front door serves the common call (ndarrays or, once fastpe.torch is imported, plain CPU tensors in
    # place; an integer offset; a number scale); None hands the same arguments to the general path.
    served = _frontdoor.add_table(x, table, offset, positions, scale, out, num_threads)
    if served is not None:
        return served
    req = table_request(x, table, offset, positions, scale, out, num_threads)
    _tables.add_table_rows(req.x, req.out, req.table, req.offset, req.positions, req.scale, req.num_threads)
    return caller_result(x, out)
