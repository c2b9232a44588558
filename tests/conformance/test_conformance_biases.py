"""ALiBi and T5 relative attention biases against Hugging Face transformers:
BLOOM's slopes and alibi tensor, MPT's alibi tensor, T5's relative position
buckets and compute_bias (skipped where transformers is not installed). The
checks against the ALiBi paper's code and T5's integer definition of the
buckets are in biases/test_biases.py."""

import math

import numpy as np
import pytest

from fastpe import _bias as fast
from optional import missing_reason
from util import assert_within, exact_bucket, rng_for

try:
    import torch

    torch.set_num_threads(1)
    from transformers.models.bloom.modeling_bloom import build_alibi_tensor
    from transformers.models.t5.modeling_t5 import T5Attention
    HAVE_HF = True
except Exception:  # pragma: no cover - optional
    HAVE_HF = False

try:
    from transformers.models.mpt.modeling_mpt import build_mpt_alibi_tensor
except Exception:  # pragma: no cover - optional
    build_mpt_alibi_tensor = None

needs_hf = pytest.mark.skipif(not HAVE_HF, reason=missing_reason("transformers (with torch)"))


# ------------------------------------------------------------------ ALiBi slopes and tensors

@needs_hf
@pytest.mark.parametrize("n", list(range(1, 50)) + [64, 71, 112])
def test_slopes_match_bloom(n):
    from transformers.models.bloom.modeling_bloom import _get_alibi_slopes

    hf = _get_alibi_slopes(n, torch.device("cpu")).double().numpy()
    # BLOOM computes in float32 (torch.pow of a float32 base).
    np.testing.assert_allclose(fast.alibi_slopes(n), hf, rtol=1e-6, atol=0)


@pytest.mark.skipif(build_mpt_alibi_tensor is None, reason=missing_reason("transformers (with its MPT model)"))
@pytest.mark.parametrize("max_bias", [8, 4, 16, 6.5])
@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 6, 7, 8, 12, 16, 24, 32, 40])
def test_mpt_alibi_tensor(n, max_bias):
    """MPT's build_mpt_alibi_tensor(n, T, alibi_bias_max) is slope * (j - (T - 1)):
    one query at position T - 1, i.e. offset T - 1; its slopes (power of two
    rounded up, odd then even slopes) are the paper's with 8 -> max_bias."""
    T = 9
    hf = build_mpt_alibi_tensor(n, T, max_bias).double().numpy()  # (n, 1, T)
    got = fast.add_alibi(np.zeros((1, n, 1, T)), max_bias=float(max_bias), offset=T - 1)
    assert_within(got[0], hf, 1e-6 * np.abs(hf) + 1e-12, f"MPT n={n} max_bias={max_bias}")


@needs_hf
@pytest.mark.parametrize("n_heads", [1, 4, 6, 12, 16])
def test_bloom_alibi_tensor(n_heads):
    rng = rng_for("bloom", n_heads)
    B, T = 3, 11
    mask = np.ones((B, T), dtype=np.int64)
    mask[1, :4] = 0          # left padding
    mask[2, 8:] = 0          # right padding
    mask[2, 2] = 0           # a hole
    hf = build_alibi_tensor(torch.from_numpy(mask), n_heads, torch.float32).double().numpy()
    hf = hf.reshape(B, n_heads, 1, T)
    key_positions = (np.cumsum(mask, axis=-1) - 1) * mask
    Tq = 5
    x = rng.standard_normal((B, n_heads, Tq, T)).astype(np.float32)
    got = fast.add_alibi(x.copy(), key_positions=key_positions)
    expected = x.astype(np.float64) + hf
    # HF's float32 slopes are torch.pow(float32(2 ** (-8 / m)), k): the base's
    # rounding (<= 6e-8 relative) is raised to powers k <= m, so up to ~1e-6
    # relative for 16 heads (as in test_slopes_match_bloom); plus our rounding.
    assert_within(got, expected, 1e-6 * np.abs(hf) + 6e-8 * np.abs(expected) + 1e-12, f"BLOOM H={n_heads}")


# ------------------------------------------------------------------ T5 buckets and bias

@needs_hf
@pytest.mark.parametrize("bidirectional", [True, False])
@pytest.mark.parametrize("num_buckets", [4, 5, 8, 16, 24, 32, 33, 34, 46, 64, 128])
def test_buckets_vs_hf(bidirectional, num_buckets):
    """Equal to HF wherever HF's float32 log is not within its rounding of a bin edge."""
    rp = np.arange(-3000, 3001)
    nb = num_buckets // 2 if bidirectional else num_buckets
    e = nb // 2
    for max_distance in [9, 27, 50, 128, 164, 256, 1000]:
        if max_distance <= e:
            continue  # outside T5's well-defined range (test_bad_bucket_settings)
        got = fast.relative_position_bucket(rp, bidirectional=bidirectional, num_buckets=num_buckets,
                                            max_distance=max_distance)
        hf = T5Attention._relative_position_bucket(torch.from_numpy(rp), bidirectional=bidirectional,
                                                   num_buckets=num_buckets, max_distance=max_distance).numpy()
        for idx in np.flatnonzero(got != hf):
            d = abs(int(rp[idx]))
            v = math.log(d / e) / math.log(max_distance / e) * (nb - e)
            where = (max_distance, int(rp[idx]), int(got[idx]), int(hf[idx]), v)
            assert abs(v - round(v)) < 2e-6 * max(1.0, v), where
            assert abs(int(got[idx]) - int(hf[idx])) == 1, where


@needs_hf
def test_buckets_known_hf_differences():
    """The documented examples: HF's float32 log lands in the neighbouring bucket."""
    rp = np.array([-18, 18])
    kw = dict(bidirectional=True, num_buckets=34, max_distance=27)
    assert fast.relative_position_bucket(rp, **kw).tolist() == [14, 31]
    assert T5Attention._relative_position_bucket(torch.from_numpy(rp), **kw).tolist() == [13, 30]
    assert [exact_bucket(int(r), **kw) for r in rp] == [14, 31]
    rp = np.array([-107])
    kw = dict(bidirectional=False, num_buckets=46, max_distance=164)
    assert fast.relative_position_bucket(rp, **kw).tolist() == [40]
    assert T5Attention._relative_position_bucket(torch.from_numpy(rp), **kw).tolist() == [41]
    assert exact_bucket(-107, **kw) == 40


@needs_hf
@pytest.mark.parametrize("bidirectional", [True, False])
def test_buckets_agree_with_hf_at_t5_settings(bidirectional):
    rp = np.arange(-5000, 5001)
    for nb, md in [(32, 128), (32, 256), (64, 128)]:
        hf = T5Attention._relative_position_bucket(torch.from_numpy(rp), bidirectional=bidirectional,
                                                   num_buckets=nb, max_distance=md).numpy()
        got = fast.relative_position_bucket(rp, bidirectional=bidirectional, num_buckets=nb, max_distance=md)
        np.testing.assert_array_equal(got, hf)


@needs_hf
@pytest.mark.parametrize("is_decoder", [False, True])
@pytest.mark.parametrize("past", [0, 3, 200])
def test_t5_compute_bias(is_decoder, past):
    from transformers import T5Config

    cfg = T5Config(d_model=16, d_kv=4, num_heads=3, relative_attention_num_buckets=32,
                   relative_attention_max_distance=128, is_decoder=is_decoder)
    attn = T5Attention(cfg, has_relative_attention_bias=True, layer_idx=0)
    Tq, Tk = 6, 300
    with torch.no_grad():
        hf = attn.compute_bias(Tq, Tk, past_seen_tokens=past).double().numpy()
    table = attn.relative_attention_bias.weight.detach().numpy()
    got = fast.add_relative_bias(np.zeros((1, 3, Tq, Tk), dtype=np.float32), table, bidirectional=not is_decoder,
                                 num_buckets=32, max_distance=128, offset=past)
    np.testing.assert_array_equal(got, hf)
