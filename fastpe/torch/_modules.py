"""torch.nn.Modules around fastpe.torch's operators.

Their state_dict holds only what is learned (the learned table, T5's bucket
weights): the encodings, frequencies, scalings and default slopes are
computed from the constructor's arguments and never stored, so a checkpoint
does not depend on them and ``.to(device)`` has nothing to move but the
parameters. Every module works under torch.compile and torch.export; give
offsets and positions as tensors for one graph that serves them all.
"""

import torch

from .._formulas import FAIRSEQ_PADDING_IDX
from . import _functions, _impl
from ._graph import rotated as _rotated_in_graph
from ._options import decode, encode

_dynamo_tracing = torch.compiler.is_dynamo_compiling  # (a non-strict torch.export reaches the traced rotation
# through fastpe.torch._functions.rotate)


class SinusoidalPositionalEmbedding(torch.nn.Module):
    """Adds the sinusoidal encoding (or a model preset's) to its input: ``x * scale + PE``.

    The constructor takes `fastpe.add_sinusoidal`'s encoding arguments; with
    ``preset="fairseq"`` (or a `padding_idx`), ``forward(x, token_ids=ids)``
    gives real tokens the positions fairseq's ``make_positions`` counts and
    adds nothing to pad tokens.

    >>> import torch, fastpe.torch
    >>> pe = fastpe.torch.SinusoidalPositionalEmbedding(64, preset="fairseq", scale=8.0)
    >>> ids = torch.tensor([[5, 6, 7, 1, 1]])                          # right padded, padding_idx 1
    >>> y = pe(torch.zeros(1, 5, 64), token_ids=ids)
    >>> y[0, 3:].abs().max().item()                                    # pads get nothing added
    0.0
    >>> list(pe.state_dict())
    []
    """

    def __init__(self, dim, *, scale=None, base=None, layout=None, inv_freq=None, preset=None, padding_idx=None,
                 min_timescale=None, max_timescale=None):
        super().__init__()
        self.dim = dim
        # make_positions' padding_idx: the encoding's (fairseq's default when the preset gives one).
        self.padding_idx = FAIRSEQ_PADDING_IDX if padding_idx is None and preset == "fairseq" else padding_idx
        self._options = dict(scale=scale, base=base, layout=layout, preset=preset, padding_idx=padding_idx,
                             min_timescale=min_timescale, max_timescale=max_timescale)
        self.register_buffer("inv_freq", torch.as_tensor(inv_freq, dtype=torch.float64) if inv_freq is not None
                             else None, persistent=False)

    def forward(self, x, *, offset=0, positions=None, token_ids=None):
        """x of shape (..., T, dim). token_ids (..., T): padding-aware positions
        (``make_positions(token_ids, padding_idx, past_length=offset)``)."""
        if token_ids is not None:
            positions = _functions.make_positions(token_ids, self.padding_idx, past_length=offset)
            offset = 0
        return _functions.add_sinusoidal(x, offset=offset, positions=positions, inv_freq=self.inv_freq,
                                         **self._options)

    def extra_repr(self):
        given = ", ".join(f"{name}={value!r}" for name, value in self._options.items() if value is not None)
        return f"{self.dim}" + (f", {given}" if given else "")


class LearnedPositionalEmbedding(torch.nn.Module):
    """A learned position table added to its input in one fused pass: ``x * scale + weight[p]``.

    ``weight`` (``num_positions, dim``) is an ``nn.Parameter`` initialised
    like ``nn.Embedding``'s (standard normal); its gradient is the scatter-add
    of the output's gradient rows into the rows they read.

    >>> import torch, fastpe.torch
    >>> pe = fastpe.torch.LearnedPositionalEmbedding(512, 64)
    >>> y = pe(torch.zeros(2, 10, 64), offset=torch.tensor([0, 100]))
    >>> torch.equal(y[1], pe.weight[100:110].detach())
    True
    """

    def __init__(self, num_positions, dim, *, scale=None, device=None, dtype=None):
        super().__init__()
        self.scale = scale
        self.weight = torch.nn.Parameter(torch.empty((num_positions, dim), device=device, dtype=dtype))
        self.reset_parameters()

    def reset_parameters(self):
        torch.nn.init.normal_(self.weight)

    def forward(self, x, *, offset=0, positions=None):
        return _functions.add_table(x, self.weight, offset=offset, positions=positions, scale=self.scale)

    def extra_repr(self):
        return f"{self.weight.shape[0]}, {self.weight.shape[1]}" + ("" if self.scale is None else f", scale={self.scale}")


class RotaryEmbedding(torch.nn.Module):
    """Rotary embedding (RoPE) of queries and keys, with Hugging Face's scalings.

    The constructor takes `fastpe.apply_rotary`'s arguments besides the
    positions: `scaling` is a Hugging Face config (anything with
    ``rope_parameters``) or its rope parameters dict, read once, here.
    ``forward(q, k=None, *, offset=0, positions=None)`` returns the rotated
    q, or (q, k). torchtune's call ``forward(x, input_pos=...)`` works too
    (`input_pos` is `positions`); `like_torchtune` builds the module that
    computes what torchtune's ``RotaryPositionalEmbeddings`` does.

    `dim`, when given, is the head width the inputs must have (torchtune's
    ``dim``); nothing is cached, so there is no ``max_seq_len``: any position
    below 2**53 works.

    >>> import torch, fastpe.torch
    >>> rope = fastpe.torch.RotaryEmbedding(128, base=500000.0,
    ...                                     scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
    ...                                              "high_freq_factor": 4.0, "original_max_position_embeddings": 8192})
    >>> q, k = torch.randn(1, 32, 1, 128), torch.randn(1, 8, 1, 128)
    >>> q_rot, k_rot = rope(q, k, offset=torch.tensor(70000))
    >>> q_rot.shape, list(rope.state_dict())
    (torch.Size([1, 32, 1, 128]), [])
    """

    def __init__(self, dim=None, *, base=None, scaling=None, layout="half", rotary_dim=None, seq_axis=-2,
                 num_threads=None):
        super().__init__()
        self.dim = dim
        self._encoded = encode(base=base, layout=layout, rotary_dim=rotary_dim, scaling=scaling, seq_axis=seq_axis,
                               num_threads=num_threads)
        self._options = decode(self._encoded)  # what the eager route passes on (the operators take the string)

    @classmethod
    def like_torchtune(cls, dim, max_seq_len=4096, base=10_000):
        """torchtune's ``RotaryPositionalEmbeddings(dim, max_seq_len, base)``:
        interleaved pairs of x shaped (batch, seq, heads, head_dim). max_seq_len
        is accepted for the signature's sake and bounds nothing."""
        return cls(dim, base=float(base), layout="interleaved", seq_axis=-3)

    def reset_parameters(self):
        """Nothing to reset: the module holds no parameters or caches (torchtune's method, for parity)."""

    def forward(self, q, k=None, *, offset=0, positions=None, input_pos=None):
        if input_pos is not None:
            if positions is not None:
                raise ValueError("input_pos is torchtune's name for positions: pass one of them")
            positions = input_pos
        arrays = [q] if k is None else [q, k]
        if self.dim is not None:
            for name, a in zip(("q", "k"), arrays):
                if a.shape[-1] != self.dim:
                    raise ValueError(f"{name} has {a.shape[-1]} channels, the module was built for dim={self.dim}")
        rotated = None
        if _dynamo_tracing():  # straight to the traced rotation, as fastpe.torch.apply_rotary goes
            rotated = _rotated_in_graph(arrays, offset, positions, self._encoded)
        elif positions is None:
            rotated = _impl.eager_rotation(tuple(arrays), True, offset, **self._options)
        if rotated is None:
            rotated = _functions.rotate(arrays, offset, positions, None, self._options, self._encoded)
        return rotated[0] if k is None else tuple(rotated)

    def extra_repr(self):
        options = {name: value for name, value in self._options.items() if value is not None}
        return ", ".join([f"dim={self.dim}"] + [f"{name}={value!r}" for name, value in options.items()])


class ALiBi(torch.nn.Module):
    """ALiBi's linear biases added to attention scores (batch, heads, queries, keys).

    The default slopes follow from `n_heads` and `max_bias` and are not
    stored; explicit `slopes` are kept in a buffer that is not saved (they are
    a constructor argument, not something learned).

    >>> import torch, fastpe.torch
    >>> alibi = fastpe.torch.ALiBi(4)
    >>> alibi(torch.zeros(1, 4, 1, 3), offset=torch.tensor(2))[0, 0, 0].tolist()
    [-0.5, -0.25, 0.0]
    """

    def __init__(self, n_heads, *, max_bias=8.0, slopes=None):
        super().__init__()
        self.n_heads, self.max_bias = n_heads, max_bias
        self.register_buffer("slopes", None if slopes is None else torch.as_tensor(slopes), persistent=False)

    def forward(self, scores, *, offset=0, key_positions=None):
        if scores.ndim == 4 and scores.shape[1] != self.n_heads:
            raise ValueError(f"scores has {scores.shape[1]} heads, the module was built for n_heads={self.n_heads}")
        return _functions.add_alibi(scores, slopes=self.slopes, max_bias=self.max_bias, offset=offset,
                                    key_positions=key_positions)

    def extra_repr(self):
        return f"{self.n_heads}, max_bias={self.max_bias}" + ("" if self.slopes is None else ", slopes=...")


class T5RelativeBias(torch.nn.Module):
    """T5's bucketed relative position bias added to attention scores, with learned bucket weights.

    ``weight`` (``num_buckets, n_heads``) is an ``nn.Parameter`` laid out as
    Hugging Face's ``relative_attention_bias.weight`` and initialised like
    ``nn.Embedding``'s (standard normal); its gradient sums the
    scores' gradient over each bucket's (query, key) pairs. `bidirectional`
    is True in T5's encoder, False in its decoder.

    >>> import torch, fastpe.torch
    >>> bias = fastpe.torch.T5RelativeBias(8, bidirectional=True)
    >>> out = bias(torch.zeros(2, 8, 16, 16))
    >>> out.sum().backward()
    >>> bias.weight.grad.sum().item()          # every (query, key) pair of every head counted once
    4096.0
    """

    def __init__(self, n_heads, *, bidirectional, num_buckets=32, max_distance=128, device=None, dtype=None):
        super().__init__()
        self.bidirectional, self.num_buckets, self.max_distance = bidirectional, num_buckets, max_distance
        self.weight = torch.nn.Parameter(torch.empty((num_buckets, n_heads), device=device, dtype=dtype))
        self.reset_parameters()

    def reset_parameters(self):
        torch.nn.init.normal_(self.weight)  # as nn.Embedding (Hugging Face's T5 scales it by its d_model)

    def forward(self, scores, *, offset=0):
        return _functions.add_relative_bias(scores, self.weight, bidirectional=self.bidirectional,
                                            num_buckets=self.num_buckets, max_distance=self.max_distance,
                                            offset=offset)

    def extra_repr(self):
        return (f"{self.weight.shape[1]}, bidirectional={self.bidirectional}, num_buckets={self.num_buckets}, "
                f"max_distance={self.max_distance}")
