"""fastpe used the way its users call it, checked by `mypy --strict` (tests/packaging/test_typing.py).

Not a test module (pytest does not collect it): every line must type-check,
and each annotated assignment states the type a call is expected to have.
It also runs as a script, so the calls are real ones.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np
import numpy.typing as npt

import fastpe
import fastpe.reference

Array32 = npt.NDArray[np.float32]
Array64 = npt.NDArray[np.float64]


def tables() -> None:
    table: npt.NDArray[Any] = fastpe.sinusoidal_table(16, 8)
    table64: npt.NDArray[Any] = fastpe.sinusoidal_table(16, 8, offset=3, layout="concat", dtype=np.float64)
    whisper: npt.NDArray[Any] = fastpe.sinusoidal_table(16, 8, preset="whisper", max_timescale=1e4,
                                                        num_threads=2)
    encoded: npt.NDArray[Any] = fastpe.sinusoidal_encode(np.array([0.5, 2.0, 7.0]), 8, base=500.0)
    into = np.empty((4, 8), dtype=np.float32)
    written: npt.NDArray[Any] = fastpe.sinusoidal_table(4, 8, out=into, inv_freq=np.linspace(1.0, 0.1, 4))
    same: npt.NDArray[Any] = fastpe.sinusoidal_encode(np.arange(4), 8, dtype=None, out=into)
    assert written is into and same is into and table.shape == table64.shape == whisper.shape
    assert encoded.shape == (3, 8)

    grid: npt.NDArray[Any] = fastpe.sincos_2d(4, 4, 16, layout="timm", cls_token=True, dtype="float64")
    video: npt.NDArray[Any] = fastpe.sinusoidal_nd((2, 3, 4), 24, max_timescale=100.0)
    cos, sin = fastpe.rotary_cos_sin(16, 8, offset=np.int64(4), dtype=np.float64)
    assert grid.shape == (17, 16) and video.shape == (2, 3, 4, 24) and cos.shape == sin.shape


def fused_adds() -> None:
    x: Array32 = np.zeros((2, 16, 8), dtype=np.float32)
    y: Array32 = fastpe.add_sinusoidal(x)
    y = fastpe.add_sinusoidal(x, offset=np.array([0, 5]), scale=8 ** 0.5, preset="fairseq")
    y = fastpe.add_sinusoidal(x, positions=np.arange(16), layout="interleaved", base=10000)
    out: Array32 = np.empty_like(x)
    z: Array32 = fastpe.add_sinusoidal(x, out=out, num_threads=None)
    assert y is x and z is out

    learned: Array64 = np.random.default_rng(0).standard_normal((32, 8))
    t: Array32 = fastpe.add_table(x, learned, offset=4)
    t = fastpe.add_table(x, learned, positions=[[1] * 16, [2] * 16], scale=2.0)

    patches: Array32 = np.zeros((2, 16, 16), dtype=np.float32)
    p: Array32 = fastpe.add_sincos_2d(patches, 4, 4, layout="big_vision")
    frames: Array64 = np.zeros((1, 24, 16))
    f: Array64 = fastpe.add_sinusoidal_nd(frames, (2, 3, 4), min_timescale=1.0, num_threads=1)
    assert t is x and p is patches and f is frames


def rotary() -> None:
    q: Array32 = np.ones((1, 4, 16, 8), dtype=np.float32)
    k: Array32 = np.ones((1, 4, 16, 8), dtype=np.float32)
    q1: Array32 = fastpe.apply_rotary(q)
    q2, k2 = fastpe.apply_rotary(q, k, offset=3, layout="interleaved")
    pair: tuple[Array32, ...] = fastpe.apply_rotary(q, k, positions=np.arange(16)[None, :])
    scaling: dict[str, Any] = {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 64}
    q3: Array32 = fastpe.apply_rotary(q, scaling=scaling, seq_axis=2, out=[np.empty_like(q)])
    assert q1 is q and q2 is q and k2 is k and len(pair) == 2 and q3 is not q

    inv_freq, attention_factor = fastpe.rope_inv_freq(8, 10000.0, scaling, seq_len=128)
    freq: Array64 = inv_freq
    factor: float = attention_factor
    llama3 = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
              "original_max_position_embeddings": 8192}
    plain: tuple[Array64, float] = fastpe.rope_inv_freq(128, scaling=llama3)
    assert freq.shape == (4,) and factor > 0 and plain[0].shape == (64,)

    class PhiLikeConfig:  # a model config, as transformers has it (duck-typed)
        def __init__(self) -> None:
            self.rope_parameters = {"rope_type": "default", "partial_rotary_factor": 0.5}
            self.hidden_size, self.num_attention_heads = 32, 4

    class Transformers4Config:  # a transformers 4.x config: rope_theta and rope_scaling, no rope_parameters
        def __init__(self) -> None:
            self.rope_theta = 1e6
            self.rope_scaling: Optional[dict[str, Any]] = {"type": "linear", "factor": 2.0}
            self.hidden_size, self.num_attention_heads = 32, 4

    q4: Array32 = fastpe.apply_rotary(q, scaling=PhiLikeConfig())
    q5: Array32 = fastpe.apply_rotary(q, scaling=Transformers4Config())
    by_config: tuple[Array64, float] = fastpe.rope_inv_freq(None, scaling=PhiLikeConfig())
    assert q4 is q and q5 is q and by_config[0].shape == (2,)


def biases() -> None:
    scores: Array32 = np.zeros((2, 4, 8, 8), dtype=np.float32)
    slopes: Array64 = fastpe.alibi_slopes(4)
    a: Array32 = fastpe.add_alibi(scores, slopes=slopes, offset=[0, 3])
    a = fastpe.add_alibi(scores, max_bias=8.0, key_positions=np.arange(8))
    buckets: npt.NDArray[np.int64] = fastpe.relative_position_bucket(np.arange(-4, 4), num_buckets=32)
    bias_table: Array32 = np.zeros((32, 4), dtype=np.float32)
    r: Array32 = fastpe.add_relative_bias(scores, bias_table, bidirectional=True, num_buckets=32,
                                          max_distance=128, out=np.empty_like(scores))
    assert a is scores and buckets.dtype == np.int64 and r is not scores

    ids = np.array([[5, 6, 1, 1]])
    positions: npt.NDArray[np.int64] = fastpe.make_positions(ids, 1, past_length=2)
    assert positions.shape == ids.shape


def reference() -> None:
    x: Array64 = np.zeros((16, 8))
    table: npt.NDArray[Any] = fastpe.reference.sinusoidal_table(16, 8, offset=2, dtype=np.float64)
    y: Array64 = fastpe.reference.add_sinusoidal(x, offset=2)
    q: Array64 = fastpe.reference.apply_rotary(np.ones((16, 8)))
    q2, k2 = fastpe.reference.apply_rotary(np.ones((16, 8)), np.ones((16, 8)))
    w: Array64 = fastpe.reference.frequencies(8)
    scores: Array64 = fastpe.reference.add_alibi(np.zeros((1, 2, 4, 4)))
    assert np.allclose(y, table) and q.shape == q2.shape == k2.shape and w.shape == (4,)
    assert scores.shape == (1, 2, 4, 4)


def configuration() -> None:
    info: dict[str, Any] = fastpe.show_config(print_out=False)
    cache = fastpe.cache_info()
    fastpe.set_cache_limit(64 << 20)
    fastpe.cache_clear()
    names: list[str] = sorted(fastpe.PRESETS)
    version: str = fastpe.__version__
    assert "fastpe" in info and cache.limit >= 0 and "whisper" in names and version


if __name__ == "__main__":
    tables()
    fused_adds()
    rotary()
    biases()
    reference()
    configuration()
